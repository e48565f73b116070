"""A promotion end to end on the dev server: the real API and worker with the Shopify channel on the GraphQL Admin
API and the Amazon channel on SP-API, both served by the sandboxes. Requested through `POST /prices/changes`,
approved by a finance key (not the requester), it is published at its effective time under each channel's own SKU,
read back from both vendors' APIs, shown by `GET /prices/{sku}`, and reverted at its end date."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from pydantic import SecretStr

from adapters.marketplace.amazon_sp import build_amazon_sp
from adapters.marketplace.shopify_graphql import build_shopify_graphql
from canonical.money import Money
from sandbox.amazon import create_app as amazon_app
from sandbox.shopify import create_app as shopify_app
from tests.auth import headers
from tests.contract.serve_sandbox import free_port, serve

TOKEN, CID, CSECRET, REFRESH = "shpat_prices", "amzn1.app.prices", "amzn-secret", "Atzr|prices"
SHOP_PORT, AMAZON_PORT = free_port(), free_port()
SHOP, AMAZON = f"http://127.0.0.1:{SHOP_PORT}", f"http://127.0.0.1:{AMAZON_PORT}"
VENDORS = {"marketplace_adapters": {"shopify": "shopify", "amazon": "amazon"},
           "shopify_admin_base_url": SHOP, "shopify_admin_access_token": SecretStr(TOKEN),
           "amazon_sp_base_url": AMAZON, "amazon_lwa_token_url": f"{AMAZON}/auth/o2/token",
           "amazon_lwa_client_id": CID, "amazon_lwa_client_secret": SecretStr(CSECRET),
           "amazon_refresh_token": SecretStr(REFRESH),
           "pricing_channel_currencies": {"shopify": "USD", "amazon": "USD"}}


@pytest.fixture
def vendors():
    os.environ.pop("RETAILFLOW_SHOPIFY_ADMIN_API", None)
    with serve(shopify_app(access_token=TOKEN, webhook_url="http://127.0.0.1:9/none", webhook_secret="s",
                           client_id="c"), port=SHOP_PORT), \
            serve(amazon_app(client_id=CID, client_secret=CSECRET, refresh_token=REFRESH), port=AMAZON_PORT):
        yield


async def until(what: str, probe, timeout: float = 60.0):
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while asyncio.get_running_loop().time() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.3)
    raise AssertionError(f"{what} never happened; last {last}")


@pytest.mark.parametrize("stack_with", [VENDORS], indirect=True)
async def test_a_promotion_is_published_to_shopify_and_amazon_read_back_from_both_and_reverted(vendors, stack_with):
    s = stack_with
    assert httpx.post(f"{SHOP}/_admin/products", json=["SH-MUG"]).status_code == 201
    assert httpx.post(f"{AMAZON}/_admin/listings", json={"sku": "AMZ-MUG", "seller_id": s.settings.amazon_seller_id,
                                                         "price": "20.00", "product_type": "DRINKING_CUP"}
                      ).status_code == 201
    shop, amazon = build_shopify_graphql(s.settings), build_amazon_sp(s.settings)
    shop.shop_currency = "USD"
    shop.publish_price("shopify", "SH-MUG", Money.of("20.00", "USD"))  # the regular prices before
    s.adapters.erp.upsert_item("MUG", "Mug", Decimal("20.00"), "USD")  # type: ignore[attr-defined]
    s.adapters.erp.map_sku("shopify", "SH-MUG", "MUG")  # type: ignore[attr-defined]
    s.adapters.erp.map_sku("amazon", "AMZ-MUG", "MUG")  # type: ignore[attr-defined]

    start = datetime.now(UTC) + timedelta(seconds=10)
    end = start + timedelta(seconds=6)
    body = {"change_set_id": f"it-spring-{start.strftime('%H%M%S%f')}", "reason": "spring promotion", "lines": [
        {"item_code": "MUG", "channel": ch, "currency": "USD", "amount": "15.00", "compare_at": "20.00",
         "kind": "promotion", "effective_from": start.isoformat(), "effective_to": end.isoformat()}
        for ch in ("shopify", "amazon")]}
    resp = await s.http.post("/prices/changes", json=body)
    assert resp.status_code == 202, resp.text
    cs_id = body["change_set_id"]
    finance = headers(s.key("finance", f"fin-{cs_id[-8:]}"))
    async def approve():
        resp = await s.http.post(f"/prices/changes/{cs_id}/approve", json={"reason": "ok"}, headers=finance)
        assert resp.status_code in (200, 409), resp.text  # 409 while it is still validating
        return resp if resp.status_code == 200 else None

    await until("approved", approve)
    assert datetime.now(UTC) < start  # approved before its time: nothing published yet
    assert (await asyncio.to_thread(amazon.read_price, "amazon", "AMZ-MUG")).amount == Decimal("20.00")

    async def published():
        shown = (await s.http.get("/prices/MUG")).json()["channels"]
        return shown if {(c["channel"], c["action"]) for c in shown} == {("shopify", "publish"),
                                                                          ("amazon", "publish")} else None

    shown = await until("published to both", published)
    assert datetime.now(UTC) >= start
    assert {(c["channel"], c["channel_sku"], c["amount"]) for c in shown} == {
        ("shopify", "SH-MUG", "15.00"), ("amazon", "AMZ-MUG", "15.00")}
    # read back from the vendors' own APIs
    on_shop = await asyncio.to_thread(shop.read_price, "shopify", "SH-MUG")
    on_amazon = await asyncio.to_thread(amazon.read_price, "amazon", "AMZ-MUG")
    assert (on_shop.amount, on_shop.compare_at) == (Decimal("15.00"), Decimal("20.00"))
    assert (on_amazon.amount, on_amazon.compare_at) == (Decimal("15.00"), Decimal("20.00"))

    view = await until("completed", lambda: _completed(s, cs_id))
    assert [a["actor"] for a in view["approvals"]] == [f"key:fin-{cs_id[-8:]}"]
    assert (await asyncio.to_thread(shop.read_price, "shopify", "SH-MUG")).amount == Decimal("20.00")
    assert (await asyncio.to_thread(amazon.read_price, "amazon", "AMZ-MUG")).amount == Decimal("20.00")
    final = (await s.http.get("/prices/MUG")).json()
    assert {c["action"] for c in final["channels"]} == {"revert"}
    assert {c["status"] for c in final["changes"]} == {"ended"}


async def _completed(s, cs_id: str):
    view = (await s.http.get(f"/prices/changes/{cs_id}")).json()
    return view if view.get("status") == "completed" else None
