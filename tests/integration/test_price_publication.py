"""A promotion end to end on the dev server: the real API and worker with the Shopify channel on the GraphQL Admin
API and the Amazon channel on SP-API, both served by the sandboxes. Requested through `POST /prices/changes`,
approved by a finance key (not the requester), it is published at its effective time under each channel's own SKU,
read back from both vendors' APIs, shown by `GET /prices/{sku}`, and reverted at its end date.

Then finance (issue 21, done when: "an Amazon settlement's promotion line is explained by it"): an Amazon order placed
while the promotion was live (its PromotionDiscount on the item) and one placed after it ended are found by the
order poll, booked in the ERP, shipped and confirmed to Amazon; the Amazon sandbox settles both (each with a
Promotion/Principal line), the platform downloads the report through the Reports API (SettlementFetch) and
SettlementReconciliation explains the first order's promotion line by the published promotion, while the second
one's, with no promotion live when it was placed, is unexplained and parks the run for an analyst."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from activities.order_poll import OrderPollInput
from adapters.marketplace.amazon_sp import build_amazon_sp
from adapters.marketplace.shopify_graphql import build_shopify_graphql
from canonical.finance import ExceptionKind, ReconciliationResult, SettlementStatus
from canonical.money import Money
from canonical.settlement_matching import order_ref
from sandbox.amazon import create_app as amazon_app
from sandbox.demo import amazon_order
from sandbox.shopify import create_app as shopify_app
from starters.settlements import fetch_settlements_now
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
           "pricing_channel_currencies": {"shopify": "USD", "amazon": "USD"},
           "data_dir": Path(tempfile.mkdtemp(prefix="rf-prices-"))}  # the settlement reports are downloaded here


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
    # the sandbox restarts with each parametrization and its report ids with it (sequential, from the same start):
    # a report downloaded by the previous run would stand for this run's report of the same id
    shutil.rmtree(Path(s.settings.data_dir) / "settlements", ignore_errors=True)
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
    s.adapters.erp.set_on_hand("MUG", "MAIN", 50)  # type: ignore[attr-defined]
    poll = await s.client.start_workflow(  # the Amazon order poll, as the worker starts it, every second
        "ChannelOrderPoll", OrderPollInput(channel="amazon", interval_seconds=1, lookback_hours=1),
        id=f"poll:amazon:{uuid.uuid4().hex[:8]}", task_queue=s.settings.queue_for("orders"))

    start = datetime.now(UTC) + timedelta(seconds=10)
    end = start + timedelta(seconds=25)  # room to place, poll and book an order while it is live
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

    # an Amazon order placed while the promotion is live: 2 mugs at 20.00, 10.00 off by the promotion
    live_order = await asyncio.to_thread(_place_amazon_order, AMAZON)
    live_booked = await until("the live order booked", lambda: _booked(s, live_order))
    assert start <= live_booked < end, (start, live_booked, end)

    view = await until("completed", lambda: _completed(s, cs_id))
    assert [a["actor"] for a in view["approvals"]] == [f"key:fin-{cs_id[-8:]}"]
    assert (await asyncio.to_thread(shop.read_price, "shopify", "SH-MUG")).amount == Decimal("20.00")
    assert (await asyncio.to_thread(amazon.read_price, "amazon", "AMZ-MUG")).amount == Decimal("20.00")
    final = (await s.http.get("/prices/MUG")).json()
    assert {c["action"] for c in final["channels"]} == {"revert"}
    assert {c["status"] for c in final["changes"]} == {"ended"}

    # the control: the same promotion discount on an order placed after the promotion ended
    late_order = await asyncio.to_thread(_place_amazon_order, AMAZON)
    assert await until("the late order booked", lambda: _booked(s, late_order)) >= end
    for oid in (live_order, late_order):  # shipped and confirmed to Amazon: the sandbox settles shipped orders
        await s.wait_status("amazon", oid, {"completed"}, timeout=60)
    await poll.terminate("test done")

    # Amazon closes a settlement cycle; the platform downloads it (Reports API) and reconciles it
    settlement_id = f"9{uuid.uuid4().int % 10**9:09d}"
    settled = httpx.post(f"{AMAZON}/_admin/settlements", params={"settlement_id": settlement_id}).json()
    assert settled["settlementId"] == settlement_id and set(settled["orders"]) == {live_order, late_order}
    fetched = await fetch_settlements_now(s.client, s.settings, provider="amazon", channel=None)
    wf_id = f"settlement:amazon:{settlement_id}"
    assert wf_id in fetched.started, fetched
    handle = s.client.get_workflow_handle(wf_id, result_type=ReconciliationResult)

    async def parked():
        view = await handle.query("status")
        return view if view["status"] == SettlementStatus.NEEDS_ATTENTION.value else None

    parked_view = await until("the reconciliation to park", parked)
    assert parked_view["matched_count"] == settled["lines"] and parked_view["unmatched_count"] == 0, parked_view
    assert parked_view["exception_count"] == 1, parked_view  # the late order's promotion line, nothing else
    assert f"order {late_order}" in parked_view["reason"] and "no promotion was published" in parked_view["reason"]
    got = (await s.http.get(f"/settlements/amazon/{settlement_id}")).json()
    unexplained = [e for e in got["exceptions"] if e["kind"] == ExceptionKind.PROMOTION_UNEXPLAINED.value]
    assert [e["order_id"] for e in unexplained] == [late_order], got["exceptions"]
    skip = await s.http.post(f"/settlements/amazon/{settlement_id}/actions/skip",
                             json={"reason": "the late order's promotion was a goodwill coupon"})
    assert skip.status_code == 202, skip.text
    result = await handle.result()
    assert result.status == "posted", result
    assert result.promotions_explained_count == 1
    (explained,) = result.promotions
    assert explained.kind == ExceptionKind.PROMOTION_EXPLAINED and explained.order_id == live_order
    assert f"change set {cs_id}" in explained.cause and start.isoformat() in explained.cause
    assert explained.settlement_amount == Decimal("10.00") == explained.platform_amount
    assert [e.order_id for e in result.exceptions if e.kind == ExceptionKind.PROMOTION_UNEXPLAINED] == [late_order]


def _place_amazon_order(base_url: str) -> str:
    """Two mugs at the regular 20.00 with Amazon's PromotionDiscount of 10.00 on the item (5.00 a unit), taxed on
    what the buyer pays."""
    body = amazon_order(lines=[("AMZ-MUG", 2, "20.00")])
    (item,) = body["items"]
    item["PromotionDiscount"] = {"CurrencyCode": "USD", "Amount": "10.00"}
    item["PromotionIds"] = ["SPRING-MUG"]
    item["ItemTax"]["Amount"] = "1.95"  # Washington's 6.5 % on the 30.00 paid
    body["order"]["OrderTotal"]["Amount"] = "31.95"  # what the buyer pays: net of the promotion, with tax
    resp = httpx.post(f"{base_url}/_admin/orders", json=body)
    assert resp.status_code in (200, 201), resp.text
    return body["order"]["AmazonOrderId"]


async def _booked(s, order_id: str) -> datetime | None:
    """When the ERP booked the order's sales order (the time its promotion is matched at), once it has."""
    facts = (await asyncio.to_thread(s.adapters.erp.settlement_orders, [order_ref("amazon", order_id)])).get(
        order_ref("amazon", order_id))
    if facts is None or facts.created_at is None:
        return None
    at = facts.created_at
    return at if at.tzinfo else at.replace(tzinfo=UTC)


async def _completed(s, cs_id: str):
    view = (await s.http.get(f"/prices/changes/{cs_id}")).json()
    return view if view.get("status") == "completed" else None
