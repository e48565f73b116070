"""Several shops (issue 16) end to end on the dev server with the real API, worker and database: two Shopify
shops with their own secrets, currencies (EUR, GBP) and legal entities send orders and a refund side by side;
each shop's Shopify Payments payout posts one journal to its own legal entity, in its currency;
each run is named by its store's channel (`order:shopify-de:<id>`), found by the `Channel` search attribute and
the API's channel filter; a delivery signed with the other shop's secret is 401; an unknown shop domain is 422
and quarantined, never attributed to another shop."""

from __future__ import annotations

import asyncio
import csv
import json
import secrets
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from adapters.marketplace.shopify import compute_hmac
from canonical.finance import SettlementInput
from retailflow.catalog import DEMO_CATALOG
from starters.settlements import start_reconciliation
from tests.auth import headers as auth_headers
from tests.conftest import fixture_bytes

pytestmark = pytest.mark.integration

DE_SECRET, UK_SECRET = "it-shpss-de-" + uuid.uuid4().hex[:8], "it-shpss-uk-" + uuid.uuid4().hex[:8]
DE_DOMAIN, UK_DOMAIN = "de-shop.myshopify.com", "uk-shop.myshopify.com"
SHOPS = {
    "stores": [
        {"channel": "shopify-de", "vendor": "shopify", "shop_domain": DE_DOMAIN, "legal_entity": "retail-de",
         "currency": "EUR", "webhook_secret": DE_SECRET},
        {"channel": "shopify-uk", "vendor": "shopify", "shop_domain": UK_DOMAIN, "legal_entity": "retail-uk",
         "currency": "GBP", "webhook_secret": UK_SECRET},
    ],
    "legal_entities": {"retail-de": {"name": "Retail DE GmbH", "currency": "EUR"},
                       "retail-uk": {"name": "Retail UK Ltd", "currency": "GBP"}},
}
ORDER_ID = b"820982911946154508"  # the v2024 sample order's id (tests/fixtures/shopify)


def _map_catalog(stack, *channels: str) -> None:
    """The demo catalog's Shopify SKUs, mapped for each shop's channel too (SKU mappings are per channel)."""
    with open(DEMO_CATALOG, encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["channel"] == "shopify"]
    for channel in channels:
        for row in rows:
            stack.adapters.erp.map_sku(channel, row["channel_sku"], row["item_code"])


def _order(currency: str, external_id: str) -> bytes:
    body = fixture_bytes("shopify", "webhook_orders_create_sample_v2024.json")
    return body.replace(ORDER_ID, external_id.encode()).replace(b'"USD"', f'"{currency}"'.encode())


async def _send(stack, body: bytes, *, domain: str | None, secret: str, topic: str = "orders/create"
                ) -> httpx.Response:
    headers = {"Content-Type": "application/json", "X-Shopify-Topic": topic,
               "X-Shopify-Webhook-Id": str(uuid.uuid4()), "X-Shopify-Hmac-Sha256": compute_hmac(body, secret),
               "X-Shopify-Triggered-At": datetime.now(UTC).isoformat()}
    if domain is not None:
        headers["X-Shopify-Shop-Domain"] = domain
    return await stack.http.post("/webhooks/shopify", content=body, headers=headers)


async def _visible(stack, query: str, want: str, timeout: float = 20) -> list[str]:
    """Workflow ids matching `query` once `want` is among them (visibility follows the start)."""
    deadline = asyncio.get_running_loop().time() + timeout
    ids: list[str] = []
    while asyncio.get_running_loop().time() < deadline:
        ids = [w.id async for w in stack.client.list_workflows(query)]
        if want in ids:
            return ids
        await asyncio.sleep(0.3)
    raise AssertionError(f"{want} never listed by {query!r}; got {ids}")


async def _wait_return(stack, channel: str, rid: str, timeout: float = 30) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    last: dict = {}
    while asyncio.get_running_loop().time() < deadline:
        resp = await stack.http.get(f"/returns/{channel}/{rid}")
        if resp.status_code == 200:
            last = resp.json()
            if last["status"] == "completed" and last["run_status"] == "COMPLETED":
                return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"return {rid} never completed; last: {last}")


@pytest.mark.parametrize("stack_with", [SHOPS], indirect=True)
async def test_two_shops_side_by_side(stack_with, tmp_path):
    stack = stack_with
    _map_catalog(stack, "shopify-de", "shopify-uk")
    oid = str(secrets.randbelow(9 * 10**17) + 10**17)  # the same Shopify order id in both shops

    # 1. an order to each shop: its store's secret, its currency; one run each, named by the store's channel
    de = await _send(stack, _order("EUR", oid), domain=DE_DOMAIN, secret=DE_SECRET)
    uk = await _send(stack, _order("GBP", oid), domain=UK_DOMAIN.upper(), secret=UK_SECRET)
    assert de.status_code == 202, de.text
    assert uk.status_code == 202, uk.text
    de_wf, uk_wf = f"order:shopify-de:{oid}", f"order:shopify-uk:{oid}"
    assert de.json() == {"workflow_id": de_wf, "duplicate": False}
    assert uk.json() == {"workflow_id": uk_wf, "duplicate": False}
    for channel in ("shopify-de", "shopify-uk"):
        view = await stack.wait_status(channel, oid, {"completed"})
        assert view["run_status"] == "COMPLETED"

    # 2. the ERP booked each in its shop's currency
    for wf, currency in ((de_wf, "EUR"), (uk_wf, "GBP")):
        [so] = (await stack.http.get("/erp/sales-orders", params={"external_ref": wf})).json()
        assert so["currency"] == currency and so["status"] == "invoiced", so
        assert so["grand_total"] == "381.57"  # the sample's amounts, in the shop's currency

    # 3. the Channel search attribute (the Web UI's `Channel = "shopify-de"`) and the API filter find one shop's
    de_ids = await _visible(stack, f'Channel = "shopify-de" AND ExternalOrderId = "{oid}"', de_wf)
    assert de_ids == [de_wf]
    every_de = await _visible(stack, 'Channel = "shopify-de"', de_wf)
    assert uk_wf not in every_de and all(":shopify-de:" in i for i in every_de), every_de
    desc = await stack.client.get_workflow_handle(uk_wf).describe()
    from workflows import search_attributes as sa
    assert desc.typed_search_attributes.get(sa.CHANNEL) == "shopify-uk"
    page = (await stack.http.get("/orders", params={"channel": "shopify-de"})).json()
    assert {i["workflow_id"] for i in page["items"]} >= {de_wf}
    assert all(i["channel"] == "shopify-de" for i in page["items"])

    # 4. the other shop's secret on the DE domain: 401, nothing started or booked
    other = str(secrets.randbelow(9 * 10**17) + 10**17)
    wrong = await _send(stack, _order("EUR", other), domain=DE_DOMAIN, secret=UK_SECRET)
    assert wrong.status_code == 401, wrong.text
    assert (await stack.http.get(f"/orders/shopify-de/{other}")).status_code == 404
    assert (await stack.http.get(f"/orders/shopify-uk/{other}")).status_code == 404

    # 5. a shop domain not configured (a new shop of the same app, signed with its secret): 422, quarantined
    unknown = await _send(stack, _order("EUR", other), domain="fr-shop.myshopify.com", secret=DE_SECRET)
    assert unknown.status_code == 422, unknown.text
    assert "fr-shop.myshopify.com" in unknown.json()["detail"]
    analyst = auth_headers(stack.key("analyst", f"it-analyst-{uuid.uuid4().hex[:6]}"))
    items = (await stack.http.get("/ops/quarantine", params={"source": "shopify"}, headers=analyst)).json()
    [row] = [i for i in items if i["id"] == unknown.json()["quarantine_id"]]
    assert row["status_code"] == 422 and not row["resolved"]
    assert "not a configured store" in row["reason"]
    replay = await stack.http.post(f"/ops/quarantine/{row['id']}/replay", headers=analyst)  # still no shop's
    assert replay.status_code == 200 and replay.json()["status_code"] == 422 and not replay.json()["resolved"]
    for channel in ("shopify", "shopify-de", "shopify-uk"):  # attributed to no shop
        assert (await stack.http.get(f"/orders/{channel}/{other}")).status_code == 404

    # 6. a refund to the DE shop maps against the DE order and is credited in EUR; the UK order is untouched
    [so] = (await stack.http.get("/erp/sales-orders", params={"external_ref": de_wf})).json()
    line = so["lines"][0]
    total = str(Decimal(line["net"]) + Decimal(line["tax"]))
    refund = json.dumps({"id": 990000000000000001 + int(uuid.uuid4().int % 10**9), "order_id": int(oid),
                         "created_at": datetime.now(UTC).isoformat(), "note": "price adjustment", "restock": False,
                         "refund_line_items": [{"line_item_id": int(line["line_id"]), "quantity": line["quantity"],
                                                "restock_type": "no_restock", "subtotal": line["net"],
                                                "total_tax": line["tax"]}],
                         "transactions": [{"kind": "refund", "status": "success", "amount": total}]}).encode()
    resp = await _send(stack, refund, domain=DE_DOMAIN, secret=DE_SECRET, topic="refunds/create")
    assert resp.status_code == 202, resp.text
    ret_wf = resp.json()["workflow_id"]
    assert ret_wf.startswith("return:shopify-de:refund-")
    await _wait_return(stack, "shopify-de", ret_wf.split(":", 2)[2])
    [note] = (await stack.http.get("/erp/credit-notes", params={"order_external_ref": de_wf})).json()
    assert note["currency"] == "EUR" and Decimal(note["grand_total"]) == Decimal(total)
    assert (await stack.http.get("/erp/credit-notes", params={"order_external_ref": uk_wf})).json() == []

    # 7. each shop's Shopify Payments payout (its charge, the DE refund, the processing fees) reconciles against
    # that shop's orders and posts one journal to that shop's legal entity, in its currency
    de_payout = _payout(oid, "EUR", charge="381.57", fee="11.37", refund=total)
    uk_payout = _payout(oid, "GBP", charge="381.57", fee="9.80")
    results = {}
    for channel, doc in (("shopify-de", de_payout), ("shopify-uk", uk_payout)):
        path = tmp_path / f"{channel}-{doc['payout']['id']}.json"
        path.write_text(json.dumps(doc))
        inp = SettlementInput(provider=channel, settlement_id=str(doc["payout"]["id"]), source=str(path),
                              channel=channel)
        handle = await start_reconciliation(stack.client, stack.settings, inp)
        results[channel] = await asyncio.wait_for(handle.result(), 60)
    for channel, entity, currency, doc in (("shopify-de", "retail-de", "EUR", de_payout),
                                           ("shopify-uk", "retail-uk", "GBP", uk_payout)):
        result = results[channel]
        assert result.status == "posted" and result.journal_posted_now, result
        assert result.unmatched_settlement_count == 0 and result.currency == currency
        journal = stack.adapters.erp.get_journal(f"settlement:{channel}:{doc['payout']['id']}")
        assert journal is not None and journal["currency"] == currency
        assert {x["dimensions"]["legal_entity"] for x in journal["lines"]} == {entity}
        assert {x["dimensions"]["channel"] for x in journal["lines"]} == {channel}
        assert {x["dimensions"]["currency"] for x in journal["lines"]} == {currency}
        signed: dict[str, Decimal] = {}
        for x in journal["lines"]:
            signed[x["account"]] = signed.get(x["account"], Decimal(0)) + Decimal(x["debit"]) - Decimal(x["credit"])
        assert signed["1010"] == Decimal(doc["payout"]["amount"])  # the deposit
        assert signed["6105"] == Decimal(doc["transactions"][0]["fee"])  # processing fees
        # the clearing account takes what was invoiced less what was credited: it nets the receivable to zero
        assert -signed["1150"] == Decimal("381.57") - (Decimal(total) if channel == "shopify-de" else 0)
        assert sum(signed.values()) == 0


def _payout(order_id: str, currency: str, *, charge: str, fee: str, refund: str | None = None) -> dict:
    """A Shopify Payments payout and its balance transactions, shaped as tests/unit/test_finance.py's (the REST
    Admin API's documented fields): the order's charge, optionally its refund, and the payout itself."""
    payout_id = 620000000000000000 + secrets.randbelow(10**15)
    net = Decimal(charge) - Decimal(fee) - (Decimal(refund) if refund else 0)
    common = {"test": False, "payout_id": payout_id, "payout_status": "paid", "currency": currency,
              "source_order_transaction_id": None}
    txns = [{**common, "id": payout_id + 1, "type": "charge", "amount": charge, "fee": fee,
             "net": str(Decimal(charge) - Decimal(fee)), "source_id": payout_id + 11, "source_type": "charge",
             "source_order_id": int(order_id), "processed_at": "2026-11-30T10:00:00Z"}]
    if refund:
        txns.append({**common, "id": payout_id + 2, "type": "refund", "amount": f"-{refund}", "fee": "0.00",
                     "net": f"-{refund}", "source_id": payout_id + 12, "source_type": "refund",
                     "source_order_id": int(order_id), "processed_at": "2026-11-30T12:00:00Z"})
    txns.append({**common, "id": payout_id + 3, "type": "payout", "amount": f"-{net}", "fee": "0.00",
                 "net": f"-{net}", "source_id": payout_id, "source_type": "payout", "source_order_id": None,
                 "processed_at": "2026-12-01T00:00:00Z"})
    return {"payout": {"id": payout_id, "status": "paid", "date": "2026-12-01", "currency": currency,
                       "amount": str(net)}, "transactions": txns}
