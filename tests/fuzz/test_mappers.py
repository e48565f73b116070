"""Hypothesis on every vendor mapper: Shopify (orders/create, orders/cancelled, fulfillments, refunds), Square
(webhook notifications, POS batches), ShipStation (SHIP_NOTIFY, shipments), Amazon SP-API orders, the settlement
files (Amazon flat file, Shopify payouts), the embedded WMS's events and return receipts.

The property, for every mutated fixture and raw body: the mapper returns a valid canonical object — one that
serializes to JSON and validates back to itself, as it must to travel through Temporal — or raises the project's
payload error (`canonical.errors.PayloadInvalid`, or SettlementFileInvalid for report files) with a readable,
bounded, UTF-8-encodable message; never another exception. Settlement files with a garbage line are refused
with that line's number."""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from adapters.erp.base import BookedLine, BookedOrder
from adapters.marketplace import amazon_settlement, amazon_sp, shopify, shopify_payouts
from adapters.pos import square
from adapters.wms import shipstation
from api.intake import returns as return_intake
from canonical.errors import PayloadInvalid
from canonical.finance import SettlementFileInvalid
from canonical.inventory import InventoryEventBatch
from canonical.order import Shipment
from canonical.pos import PosTransaction
from canonical.returns import Receipt, ReturnRequest
from tests.conftest import fixture_bytes
from tests.fuzz import report
from tests.fuzz.strategies import FUZZ, fixture_json, mutated, raw_bodies, to_json

MAX_MESSAGE = 2000


class Tally:
    """What one test tried and how the mapper answered."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def run(self, fn: Callable[[], Any], errors: tuple[type[Exception], ...] = (PayloadInvalid,)) -> Any:
        self.counts["inputs"] += 1
        try:
            result = fn()
        except errors as exc:
            self.counts["rejected"] += 1
            message = str(exc)
            assert message.strip(), f"{type(exc).__name__} without a message"
            assert len(message) <= MAX_MESSAGE, f"message of {len(message)} characters"
            message.encode("utf-8")  # a lone surrogate in a message breaks the JSON answer and the database
            return exc
        # anything else propagates: hypothesis shrinks it and the test fails
        self.counts["mapped"] += 1
        for obj in result if isinstance(result, tuple | list) else [result]:
            if isinstance(obj, BaseModel):
                assert type(obj).model_validate_json(obj.model_dump_json()) == obj
        return result


def _booked() -> BookedOrder:
    order = shopify.map_order(fixture_json("shopify", "webhook_orders_create_sample_v2024.json"))
    return BookedOrder(external_ref=order.workflow_id, erp_sales_order_id="SO-1", currency=order.currency,
                       status="booked", lines=[BookedLine(line_id=li.line_id, item_code=li.channel_sku,
                                                          quantity=li.quantity, shipped=li.quantity)
                                               for li in order.lines])


SHOPIFY_ORDER = fixture_json("shopify", "webhook_orders_create_sample_v2024.json")
SHOPIFY_FULFILLMENT = fixture_json("shopify", "webhook_fulfillments_create_sample.json")
SHOPIFY_REFUND = fixture_json("shopify", "webhook_refunds_create_sample.json")
SQUARE_EVENTS = {name: fixture_json("square", f"webhook_{name}_example.json") for name in (
    "payment.created", "payment.updated", "refund.created", "order.created", "order.updated")}
SHIPSTATION_SHIPMENTS = fixture_json("shipstation", "v1_shipment_docs_example.json")
AMAZON_ORDER = fixture_json("amazon", "orders_v0_getOrder_200_example.json")["payload"]
AMAZON_ITEMS = fixture_json("amazon", "orders_v0_getOrderItems_200_example.json")["payload"]["OrderItems"]
AMAZON_ORDERS_PAGE = fixture_json("amazon", "orders_v0_getOrders_200_example.json")


def _pos_transaction() -> dict:
    event = square.map_event(fixture_json("square", "webhook_payment.updated_example.json")
                             | {"data": {"object": {"payment": {
                                 **fixture_json("square", "webhook_payment.updated_example.json")["data"]["object"][
                                     "payment"], "status": "COMPLETED"}}}})
    assert event.transaction is not None
    txn = event.transaction.model_dump(mode="json")
    txn["lines"] = [{"sku": "SKU-1", "name": "Mug", "quantity": 1, "unit_price": "1.00", "discount": "0",
                     "tax": "0"}]
    return txn


def _wms_shipment_event() -> dict:
    return {"type": "shipment.shipped", "event_id": "evt-1", "external_ref": "order:shopify:1",
            "shipment": {"shipment_id": "wms:1", "carrier": "ups", "tracking_number": "1Z", "shipped_at":
                         "2026-01-05T10:00:00Z", "lines": [{"line_id": "1", "channel_sku": "SKU-1", "quantity": 1}]}}


def _receipt_event() -> dict:
    return {"type": "return.received", "event_id": "evt-2", "external_ref": "return:shopify:r1",
            "receipt": {"receipt_id": "rcpt-1", "return_id": "r1", "received_at": "2026-01-05T10:00:00Z",
                        "lines": [{"line_id": "1", "quantity": 1, "condition": "resellable"}]}}


def _inventory_batch() -> dict:
    return {"events": [{"kind": "receipt", "source": "wms", "source_event_id": "e-1", "sku": "SKU-1",
                        "location": "WH1", "quantity": 5, "occurred_at": "2026-01-05T10:00:00Z"}]}


def _return_request() -> dict:
    return {"channel": "shopify", "return_id": "r-1", "external_order_id": "1", "requested_at":
            "2026-01-05T10:00:00Z", "lines": [{"line_id": "1", "quantity": 1, "reason": "damaged"}]}


def finish(test_id: str, tally: Tally, *, injects: str) -> None:
    report(test_id, injects=injects, inputs=tally.counts["inputs"], rejected=tally.counts["rejected"],
           mapped=tally.counts["mapped"], **{"other exceptions": 0}, invariant="a valid canonical object or the payload error naming the "
           "field; never another exception")
    assert tally.counts["rejected"] > 0 and tally.counts["inputs"] >= 50  # FUZZ: 50 examples, one input or more


# -- Shopify -----------------------------------------------------------------------------------------------------
def test_shopify_orders_create():
    tally = Tally()

    @FUZZ
    @given(st.one_of(mutated(SHOPIFY_ORDER, times=3), raw_bodies(to_json(SHOPIFY_ORDER)).map(lambda b: ("raw", b))))
    def prop(doc):
        if isinstance(doc, tuple):
            tally.run(lambda: shopify.map_order(shopify.loads(doc[1])))
            return
        tally.run(lambda: shopify.map_order(doc))
        tally.run(lambda: shopify.map_order(shopify.loads(to_json(doc))))

    prop()
    finish("fuzz/mappers/shopify-orders-create", tally, injects="mutated orders/create fixture and raw bodies")


def test_shopify_orders_cancelled_fulfillments_and_refunds():
    tally = Tally()
    booked = _booked()

    @FUZZ
    @given(mutated(SHOPIFY_ORDER, times=2), mutated(SHOPIFY_FULFILLMENT, times=2), mutated(SHOPIFY_REFUND, times=2))
    def prop(cancel, fulfillment, refund):
        tally.run(lambda: shopify.map_cancellation(shopify.loads(to_json(cancel))))
        tally.run(lambda: shopify.map_fulfillment(shopify.loads(to_json(fulfillment))))
        tally.run(lambda: return_intake.map_shopify_refund(lambda ref: booked, shopify.loads(to_json(refund)),
                                                           "shopify"))

    prop()
    finish("fuzz/mappers/shopify-cancel-fulfillment-refund", tally,
           injects="mutated orders/cancelled, fulfillments/create and refunds/create fixtures")


# -- Square ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("event", sorted(SQUARE_EVENTS))
def test_square_notifications(event):
    tally = Tally()
    doc = SQUARE_EVENTS[event]

    @FUZZ
    @given(st.one_of(mutated(doc, pinned=(("type",),), times=3), raw_bodies(to_json(doc)).map(lambda b: ("raw", b))))
    def prop(body):
        raw = body[1] if isinstance(body, tuple) else to_json(body)
        tally.run(lambda: square.map_event(square.loads(raw), timezones={"S8GWD5R9QB376": "America/New_York"}))
        if not isinstance(body, tuple):
            tally.run(lambda: square.notification_time(body))

    prop()
    finish(f"fuzz/mappers/square-{event}", tally, injects=f"mutated Square {event} notification and raw bodies")


def test_pos_batch_transactions():
    tally = Tally()
    txn = _pos_transaction()

    @FUZZ
    @given(mutated(txn, times=3))
    def prop(doc):
        tally.run(lambda: PosTransaction.model_validate_json(to_json(doc)), (PayloadInvalid, ValidationError))

    prop()
    finish("fuzz/mappers/pos-batch", tally, injects="mutated POS batch transaction (from a mapped Square payment)")


# -- ShipStation -------------------------------------------------------------------------------------------------
def test_shipstation_shipments_and_ship_notify():
    tally = Tally()
    shipment = SHIPSTATION_SHIPMENTS
    notify = json.loads(fixture_bytes("shipstation", "webhook_SHIP_NOTIFY_real_capture_metactical.json"))

    @FUZZ
    @given(mutated(shipment, times=3), mutated(notify, times=1))
    def prop(doc, note):
        tally.run(lambda: shipstation.map_shipment(json.loads(to_json(doc), parse_float=Decimal)))
        tally.run(lambda: shipstation.resource_path(shipstation.notification(to_json(note))[1]))

    prop()
    finish("fuzz/mappers/shipstation", tally, injects="mutated ShipStation shipment and SHIP_NOTIFY bodies")


# -- Amazon ------------------------------------------------------------------------------------------------------
def test_amazon_orders():
    tally = Tally()

    @FUZZ
    @given(mutated(AMAZON_ORDER, times=2), mutated(AMAZON_ITEMS, times=2), mutated(AMAZON_ORDERS_PAGE, times=2))
    def prop(order, items, page):
        tally.run(lambda: amazon_sp.map_order(order, items if isinstance(items, list) else [items]))
        tally.run(lambda: amazon_sp.map_order(AMAZON_ORDER, items))
        tally.run(lambda: amazon_sp.map_orders_page(page))

    prop()
    finish("fuzz/mappers/amazon-orders", tally, injects="mutated getOrder, getOrderItems and getOrders payloads")


# -- WMS and returns ---------------------------------------------------------------------------------------------
def test_wms_events_receipts_inventory_and_returns():
    tally = Tally()

    @FUZZ
    @given(mutated(_wms_shipment_event(), pinned=(("type",),)), mutated(_receipt_event(), pinned=(("type",),)),
           mutated(_inventory_batch(), times=3), mutated(_return_request(), times=3))
    def prop(shipment, receipt, inventory, ret):
        tally.run(lambda: Shipment.model_validate_json(to_json(shipment.get("shipment") if isinstance(
            shipment, dict) else shipment)), (PayloadInvalid, ValidationError))
        tally.run(lambda: return_intake.map_receipt(shopify.loads(to_json(receipt))))
        tally.run(lambda: InventoryEventBatch.model_validate_json(to_json(inventory)), (PayloadInvalid, ValidationError))
        tally.run(lambda: ReturnRequest.model_validate_json(to_json(ret)), (PayloadInvalid, ValidationError))
        tally.run(lambda: Receipt.model_validate(receipt.get("receipt") if isinstance(receipt, dict) else receipt),
                  (PayloadInvalid, ValidationError))

    prop()
    finish("fuzz/mappers/wms-returns-inventory", tally,
           injects="mutated WMS shipment and receipt events, inventory batches, return requests")


# -- settlement files --------------------------------------------------------------------------------------------
AMAZON_TSV = fixture_bytes("amazon", "settlement_flat_file_V1_GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE_sample.tsv")
GARBAGE_LINES = [b"\xff\xfe garbage \x00", b"not\ta\tsettlement\trow", b"6016502941\t\t\t\t\t\tOrder\tx" + b"\tNaN" * 34,
                 b'"unterminated\tquote', b"\t".join([b"6016502941"] + [b"1e400"] * 35), b"\x00" * 40,
                 b"6016502941" + b"\t" * 22 + b"-99999999999999999999999999999999999", b"A" * 200_000]


def _read_all(reader) -> int:
    return sum(1 for _ in reader)


ORIGINAL_LINES = _read_all(amazon_settlement.read_settlement(io.BytesIO(AMAZON_TSV)))


def test_amazon_settlement_garbage_lines_are_refused_with_their_line_number():
    tally = Tally()
    lines = AMAZON_TSV.rstrip(b"\n").split(b"\n")

    @FUZZ
    @given(st.integers(2, len(lines)), st.one_of(st.sampled_from(GARBAGE_LINES), st.binary(min_size=1, max_size=80)),
           st.booleans())
    def prop(at, garbage, replace):
        garbage = garbage.replace(b"\n", b" ").replace(b"\r", b" ")
        body = lines[:at] + [garbage] + lines[at + (1 if replace else 0):]
        result = tally.run(lambda: _read_all(amazon_settlement.read_settlement(io.BytesIO(b"\n".join(body) + b"\n"))),
                           (SettlementFileInvalid,))
        if isinstance(result, SettlementFileInvalid):
            assert f"row {at + 1}" in str(result) or f"line {at + 1}" in str(result), (at, str(result))
        elif not replace:  # taken (a blank line, a row without amounts): it adds no settlement line
            assert result == ORIGINAL_LINES, (garbage, result)

    prop()
    finish("fuzz/mappers/amazon-settlement-lines", tally, injects="a garbage line at a random line of the flat file")


def _payout() -> dict:
    return {"payout": {"id": 623721858, "status": "paid", "date": "2026-01-10", "currency": "USD", "amount": "41.90"},
            "transactions": [
                {"id": 1, "type": "charge", "payout_id": 623721858, "currency": "USD", "amount": "50.00",
                 "fee": "2.10", "net": "47.90", "source_order_id": 820982911946154508,
                 "processed_at": "2026-01-08T10:00:00Z"},
                {"id": 2, "type": "refund", "payout_id": 623721858, "currency": "USD", "amount": "-6.00", "fee": "0",
                 "net": "-6.00", "source_order_id": 820982911946154509, "processed_at": "2026-01-09T10:00:00Z"},
                {"id": 3, "type": "payout", "payout_id": 623721858, "currency": "USD", "amount": "-41.90",
                 "fee": "0", "net": "-41.90"}]}


def test_shopify_payout_files():
    tally = Tally()
    payout = _payout()
    pretty = json.dumps(payout, indent=1).encode()
    pretty_lines = pretty.split(b"\n")

    @FUZZ
    @given(st.one_of(mutated(payout, times=2).map(lambda d: ("doc", d)),
                     st.tuples(st.just("line"), st.integers(1, len(pretty_lines) - 1),
                               st.sampled_from([b"garbage", b"\xff\xfe", b'"x": }', b"[[[[", b"NaN,", b"1e400,"]))))
    def prop(case):
        if case[0] == "doc":
            body = to_json(case[1])
            tally.run(lambda: _read_all(shopify_payouts.read_payout(io.BytesIO(body))), (SettlementFileInvalid,))
            return
        _, at, garbage = case
        body = b"\n".join(pretty_lines[:at] + [garbage] + pretty_lines[at:])
        result = tally.run(lambda: _read_all(shopify_payouts.read_payout(io.BytesIO(body))), (SettlementFileInvalid,))
        if isinstance(result, SettlementFileInvalid):  # everything before the garbage is valid: the line
            # named is the garbage's, or a later one where the parser first notices it (an unclosed `[[[[`)
            found = re.search(r"line (\d+)", str(result))
            assert found and int(found.group(1)) >= at + 1, (at, str(result))

    prop()
    finish("fuzz/mappers/shopify-payout", tally, injects="mutated payout documents and garbage lines in payout files")
