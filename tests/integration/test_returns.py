"""Returns end to end on the dev server with the real API, worker and database: ship the Shopify sample order,
return one line, receive it through the WMS webhook, and see the credit note, the refund and the restocked
unit, each once, whatever is delivered twice. Also: Shopify's refunds/create sample is inconsistent with the
v2024 order and is quarantined, never booked."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from adapters import sql as db
from adapters.wms.local import SIGNATURE_HEADER, sign
from tests.conftest import fixture_bytes

pytestmark = pytest.mark.integration


def count(engine, table, where) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(where)).scalar_one()


async def _shipped_order(stack) -> tuple[str, dict]:
    body, oid = stack.order_body()
    assert (await stack.send_shopify(body)).status_code == 202
    await stack.wait_status("shopify", oid, {"completed"})
    so = (await stack.http.get("/erp/sales-orders", params={"external_ref": f"order:shopify:{oid}"})).json()[0]
    return oid, so["lines"][0]


async def _wait_return(stack, rid: str, wanted: str, timeout: float = 30) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    last = {}
    while asyncio.get_running_loop().time() < deadline:
        resp = await stack.http.get(f"/returns/shopify/{rid}")
        if resp.status_code == 200:
            last = resp.json()
            if last["status"] == wanted and (wanted != "completed" or last["run_status"] == "COMPLETED"):
                return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"return {rid} never reached {wanted}; last: {last}")


async def _wms_event(stack, rid: str, line_id: str, event_id: str):
    body = json.dumps({"type": "return.received", "event_id": event_id, "external_ref": f"return:shopify:{rid}",
                       "receipt": {"receipt_id": f"RCPT-{event_id}", "return_id": rid,
                                   "received_at": datetime.now(UTC).isoformat(),
                                   "lines": [{"line_id": line_id, "quantity": 1, "condition": "resellable"}]}}).encode()
    secret = stack.settings.local_wms_webhook_secret.get_secret_value()
    return await stack.http.post("/webhooks/wms/local", content=body,
                                 headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, secret)})


async def test_return_one_line_credit_refund_restock_once_each(stack):
    oid, line = await _shipped_order(stack)
    item = line["item_code"]
    on_hand_before = stack.adapters.erp.stock_levels(item)["MAIN"]["on_hand"]
    rid = f"R{uuid.uuid4().hex[:8]}"
    request = {"channel": "shopify", "return_id": rid, "external_order_id": oid,
               "requested_at": datetime.now(UTC).isoformat(),
               "lines": [{"line_id": line["line_id"], "quantity": 1, "reason": "no_longer_needed"}]}
    resp = await stack.http.post("/returns", json=request)
    assert resp.status_code == 202 and resp.json() == {"workflow_id": f"return:shopify:{rid}", "duplicate": False}
    assert (await stack.http.post("/returns", json=request)).json()["duplicate"] is True
    await _wait_return(stack, rid, "awaiting_receipt")

    event_id = uuid.uuid4().hex
    assert (await _wms_event(stack, rid, line["line_id"], event_id)).status_code == 202
    dup = await _wms_event(stack, rid, line["line_id"], event_id)
    assert dup.status_code == 200 and dup.json()["duplicate"] is True
    view = await _wait_return(stack, rid, "completed")
    assert view["received_quantities"] == {line["line_id"]: 1}
    assert view["credit_note_id"].startswith("CN-")
    trail = (await stack.http.get(f"/returns/shopify/{rid}/audit")).json()
    assert any(e["kind"] == "step" and e["name"] == "create_credit_note" for e in trail), trail[:3]
    csv_text = (await stack.http.get(f"/returns/shopify/{rid}/audit", params={"format": "csv"})).text
    assert "create_credit_note" in csv_text

    notes = (await stack.http.get("/erp/credit-notes", params={"external_ref": f"return:shopify:{rid}"})).json()
    assert len(notes) == 1
    note = notes[0]
    assert float(note["grand_total"]) == pytest.approx(float(note["net_total"]) + float(note["tax_total"]))
    unit_net = round(float(line["net"]) / line["quantity"], 2)
    assert abs(float(note["net_total"]) - unit_net) <= 0.01
    refunds = stack.adapters.marketplace.refunds("shopify", oid)
    assert len(refunds) == 1 and refunds[0]["quantity"] == 1
    assert float(refunds[0]["amount"]) == pytest.approx(float(note["grand_total"]))
    assert stack.adapters.erp.stock_levels(item)["MAIN"]["on_hand"] == on_hand_before + 1
    assert count(stack.engine, db.restocks, db.restocks.c.receipt_key.like(f"return:shopify:{rid}:%")) == 1

    # the same unit cannot be returned again: the second return parks with the reason
    rid2 = f"R{uuid.uuid4().hex[:8]}"
    resp = await stack.http.post("/returns", json={**request, "return_id": rid2,
                                                    "lines": [{"line_id": line["line_id"],
                                                               "quantity": line["quantity"]}]})
    assert resp.status_code == 202
    parked = await _wait_return(stack, rid2, "needs_attention")
    assert "returnable" in parked["reason"]
    skip = await stack.http.post(f"/returns/shopify/{rid2}/actions/skip", json={"actor": "t@x", "reason": "test"})
    assert skip.status_code == 409 and "cannot be skipped" in skip.json()["detail"]
    cancel = await stack.http.post(f"/returns/shopify/{rid2}/actions/cancel", json={"actor": "t@x", "reason": "test"})
    assert cancel.status_code == 202
    await _wait_return(stack, rid2, "cancelled")
    again = await stack.http.post(f"/returns/shopify/{rid2}/actions/cancel", json={"actor": "t@x", "reason": "test"})
    assert again.status_code == 409
    assert len(stack.adapters.marketplace.refunds("shopify", oid)) == 1


async def test_shopify_refund_sample_is_inconsistent_and_quarantined(stack):
    body, oid = stack.order_body()  # the v2024 sample under a fresh id (the dev server outlives the test)
    assert (await stack.send_shopify(body)).status_code == 202
    await stack.wait_status("shopify", oid, {"completed"})
    refund = fixture_bytes("shopify", "webhook_refunds_create_sample.json").replace(b"820982911946154508",
                                                                                     oid.encode())
    resp = await stack.send_shopify(refund, topic="refunds/create")
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert "789012345678901234 is not on order" in detail and "890123456789012345" in detail
    assert "refund transactions total 85.00" in detail
    assert resp.json()["quarantine_id"]
    assert count(stack.engine, db.credit_notes,
                 db.credit_notes.c.order_external_ref == f"order:shopify:{oid}") == 0


async def test_consistent_refund_without_return_credits_and_adjusts_tax_stock_untouched(stack):
    oid, line = await _shipped_order(stack)
    on_hand_before = stack.adapters.erp.stock_levels(line["item_code"])["MAIN"]["on_hand"]
    subtotal, tax = line["net"], line["tax"]
    total = f"{float(subtotal) + float(tax):.2f}"
    payload = {"id": 990000000000000001 + int(uuid.uuid4().int % 10**9), "order_id": int(oid),
               "created_at": datetime.now(UTC).isoformat(), "note": "price adjustment", "restock": False,
               "refund_line_items": [{"line_item_id": int(line["line_id"]), "quantity": line["quantity"],
                                      "restock_type": "no_restock", "subtotal": subtotal, "total_tax": tax}],
               "transactions": [{"kind": "refund", "status": "success", "amount": total}]}
    resp = await stack.send_shopify(json.dumps(payload).encode(), topic="refunds/create")
    assert resp.status_code == 202, resp.text
    rid = resp.json()["workflow_id"].split(":", 2)[2]
    view = await _wait_return(stack, rid, "completed")
    assert view["received_quantities"] == {line["line_id"]: 0}
    notes = (await stack.http.get("/erp/credit-notes", params={"order_external_ref": f"order:shopify:{oid}"})).json()
    assert len(notes) == 1 and f"{float(notes[0]['grand_total']):.2f}" == total
    assert stack.adapters.marketplace.refunds("shopify", oid) == []  # Shopify paid it; we never pay again
    adjustments = stack.adapters.tax.adjustments(f"order:shopify:{oid}")
    assert len(adjustments) == (1 if float(tax) else 0)
    assert stack.adapters.erp.stock_levels(line["item_code"])["MAIN"]["on_hand"] == on_hand_before


async def test_cancellation_after_shipment_becomes_a_return(stack):
    body, oid = stack.order_body()
    assert (await stack.send_shopify(body)).status_code == 202
    await stack.wait_status("shopify", oid, {"completed"})
    resp = await stack.send_shopify(body, topic="orders/cancelled")
    assert resp.status_code == 202, resp.text
    assert resp.json()["workflow_id"] == f"return:shopify:cancel-{oid}"
    view = await _wait_return(stack, f"cancel-{oid}", "awaiting_receipt")
    assert sum(view["received_quantities"].values()) == 0
    assert view["status"] == "awaiting_receipt"


def _refund_payload(oid: str, lines: list[dict], paid: str, note: str) -> bytes:
    return json.dumps({"id": 990000000000000001 + int(uuid.uuid4().int % 10**9), "order_id": int(oid),
                       "created_at": datetime.now(UTC).isoformat(), "note": note, "restock": False,
                       "refund_line_items": lines,
                       "transactions": [{"kind": "refund", "status": "success", "amount": paid}]}).encode()


async def _credit_note_of(stack, resp) -> dict:
    assert resp.status_code == 202, resp.text
    rid = resp.json()["workflow_id"].split(":", 2)[2]
    await _wait_return(stack, rid, "completed")
    [note] = (await stack.http.get("/erp/credit-notes", params={"external_ref": f"return:shopify:{rid}"})).json()
    return note


async def test_price_adjustment_and_goodwill_refunds_credit_what_was_refunded_never_more_than_paid(stack):
    from decimal import Decimal

    oid, line = await _shipped_order(stack)
    paid_for_line = Decimal(line["net"]) + Decimal(line["tax"])
    on_hand_before = stack.adapters.erp.stock_levels(line["item_code"])["MAIN"]["on_hand"]

    # 1. a partial price adjustment on the line: no units, 10.00 + 0.60 tax
    adjust = [{"line_item_id": int(line["line_id"]), "quantity": 0, "subtotal": "10.00", "total_tax": "0.60"}]
    note = await _credit_note_of(stack, await stack.send_shopify(
        _refund_payload(oid, adjust, "10.60", "price adjustment"), topic="refunds/create"))
    assert (note["net_total"], note["tax_total"], note["grand_total"]) == ("10.00", "0.60", "10.60")

    # 2. a goodwill refund with no line items: 15.00, tax included, spread over the order's lines
    note = await _credit_note_of(stack, await stack.send_shopify(
        _refund_payload(oid, [], "15.00", "sorry for the delay"), topic="refunds/create"))
    assert note["grand_total"] == "15.00" and len(note["lines"]) == 3
    assert Decimal(note["net_total"]) + Decimal(note["tax_total"]) == Decimal("15.00")
    assert Decimal(note["tax_total"]) > 0  # the tax part of a price reduction goes back too

    # 3. the line is then returned in full: only what is left on it is credited
    credited = sum(Decimal(x["net"]) + Decimal(x["tax"])
                   for n in (await stack.http.get("/erp/credit-notes",
                                                  params={"order_external_ref": f"order:shopify:{oid}"})).json()
                   for x in n["lines"] if x["line_id"] == line["line_id"])
    resp = await stack.http.post("/returns", json={
        "channel": "shopify", "return_id": f"R{uuid.uuid4().hex[:8]}", "external_order_id": oid,
        "requested_at": datetime.now(UTC).isoformat(), "lines": [{"line_id": line["line_id"], "quantity": 1}]})
    assert resp.status_code == 202, resp.text
    rid = resp.json()["workflow_id"].split(":", 2)[2]
    await _wait_return(stack, rid, "awaiting_receipt")
    assert (await _wms_event(stack, rid, line["line_id"], uuid.uuid4().hex)).status_code == 202
    await _wait_return(stack, rid, "completed")
    [last] = (await stack.http.get("/erp/credit-notes", params={"external_ref": f"return:shopify:{rid}"})).json()
    assert Decimal(last["grand_total"]) == paid_for_line - credited
    notes = (await stack.http.get("/erp/credit-notes", params={"order_external_ref": f"order:shopify:{oid}"})).json()
    on_line = sum(Decimal(x["net"]) + Decimal(x["tax"]) for n in notes for x in n["lines"]
                  if x["line_id"] == line["line_id"])
    assert on_line == paid_for_line  # everything paid for the line came back, and not a cent more
    refunds = stack.adapters.marketplace.refunds("shopify", oid)
    assert sum(Decimal(r["amount"]) for r in refunds) == Decimal(last["grand_total"])  # only the return is paid
    assert stack.adapters.erp.stock_levels(line["item_code"])["MAIN"]["on_hand"] == on_hand_before + 1
