"""POS: Square's webhook signature against the SDK's published test vectors; each published Square webhook example
mapped to canonical; transaction validation; the store-day journal balances; POS stock movements are idempotent
by POS transaction id and refuse unknown SKUs (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from adapters.inventory.ledger import InventoryLedger
from adapters.pos import square
from adapters.pos.stock import PosStock
from canonical.errors import UnknownSku
from canonical.pos import (
    PosAccounts,
    PosKind,
    PosLine,
    PosTransaction,
    StoreDayTotals,
    Tender,
    TenderType,
    build_store_day_journal,
    merge_totals,
)
from tests.conftest import fixture_bytes


def _fixture(name: str) -> dict:
    return json.loads(fixture_bytes("square", name))


# -- signature ---------------------------------------------------------------------------------------
def test_signature_matches_the_published_test_vector():
    vectors = _fixture("webhook_signature_test_vectors.json")
    body = fixture_bytes("square", "webhook_signature_test_vector_body.json")
    key, url, expected = vectors["signature_key"], vectors["notification_url"], vectors["x-square-hmacsha256-signature"]
    assert square.signature(key, url, body) == expected
    assert square.verify(body, expected, key, url)
    # anything else fails: another URL, another key, a re-serialized body, a missing header
    assert not square.verify(body, expected, key, url + "/")
    assert not square.verify(body, expected, key + "x", url)
    assert not square.verify(json.dumps(json.loads(body), indent=1).encode(), expected, key, url)
    assert not square.verify(body, None, key, url)
    assert not square.verify(body, expected, "", url)


def test_signature_escaped_case_is_over_the_literal_bytes():
    case = _fixture("webhook_signature_test_vectors.json")["escaped_case"]
    body = case["request_body"].encode()
    assert square.verify(body, case["x-square-hmacsha256-signature"], case["signature_key"], case["notification_url"])
    escaped = body.replace(b">", b"\\u003e").replace(b"<", b"\\u003c")
    assert not square.verify(escaped, case["x-square-hmacsha256-signature"], case["signature_key"],
                             case["notification_url"])


# -- mapping ------------------------------------------------------------------------------------------
def test_payment_updated_completed_maps_to_an_unitemized_sale_in_the_store_timezone():
    event = square.map_event(_fixture("webhook_payment.updated_example.json"),
                             timezones={"S8GWD5R9QB376": "America/Los_Angeles"})
    t = event.transaction
    assert event.event_id == "6a8f5f28-54a1-4eb0-a98a-3111513fd4fc" and event.event_type == "payment.updated"
    assert t is not None and t.kind == PosKind.SALE and not t.itemized
    assert t.pos_transaction_id == "square:payment:hYy9pRFVxpDsO1FB05SunFWUe9JZY"
    assert t.store_id == "S8GWD5R9QB376" and t.currency == "USD" and t.source == "square"
    assert t.tenders == [Tender(type=TenderType.CARD, amount=Decimal("1.00"))]
    assert t.occurred_at == datetime(2020, 11, 22, 21, 16, 51, 86000, tzinfo=UTC)
    assert t.business_date == date(2020, 11, 22)  # 13:16 in Los Angeles
    assert t.reference == "03O3USaPaAaFnI6kkwB1JxGgBsUZY"
    # east of UTC the same instant is already the next local day
    later = square.map_event(_fixture("webhook_payment.updated_example.json"),
                             timezones={"S8GWD5R9QB376": "Pacific/Auckland"}).transaction
    assert later.business_date == date(2020, 11, 23)


def test_payment_created_that_is_only_authorized_is_ignored():
    event = square.map_event(_fixture("webhook_payment.created_example.json"))
    assert event.transaction is None and "APPROVED" in event.ignored
    # the same payment once completed is the same transaction as its payment.updated
    payload = _fixture("webhook_payment.created_example.json")
    payload["data"]["object"]["payment"]["status"] = "COMPLETED"
    created = square.map_event(payload).transaction
    updated = square.map_event(_fixture("webhook_payment.updated_example.json")).transaction
    assert created.pos_transaction_id == updated.pos_transaction_id
    assert created.workflow_id == updated.workflow_id == "storeday:S8GWD5R9QB376:2020-11-22"


def test_refund_created_maps_to_an_unitemized_return():
    t = square.map_event(_fixture("webhook_refund.created_example.json")).transaction
    assert t.kind == PosKind.RETURN and t.store_id == "NAQ1FHV6ZJ8YV"
    assert t.pos_transaction_id == "square:refund:KkAkhdMsgzn59SM8A89WgKwekxLZY_ptNBVqHYxt5gAdfcobBe4u1AZsXhoz06KTtuq9Ls24P"
    assert t.tenders == [Tender(type=TenderType.OTHER, amount=Decimal("10.00"))]  # no destination_type given
    assert t.business_date == date(2020, 2, 6)
    payload = _fixture("webhook_refund.created_example.json")
    payload["data"]["object"]["refund"]["destination_type"] = "CASH"
    assert square.map_event(payload).transaction.tenders[0].type == TenderType.CASH
    payload["data"]["object"]["refund"]["status"] = "REJECTED"
    assert square.map_event(payload).transaction is None


@pytest.mark.parametrize("name,event_type", [("webhook_order.created_example.json", "order.created"),
                                              ("webhook_order.updated_example.json", "order.updated")])
def test_order_events_map_to_a_notice_and_post_nothing(name, event_type):
    event = square.map_event(_fixture(name), timezones={"FPYCBCHYMXFK1": "America/New_York"})
    assert event.event_type == event_type and event.transaction is None and event.ignored
    assert event.order.order_id == "eA3vssLHKJrv9H0IdJCM3gNqfdcZY" and event.order.store_id == "FPYCBCHYMXFK1"
    assert event.order.state == "OPEN" and event.order.business_date == date(2020, 4, 16)


def test_unmappable_payloads_raise_mapping_errors():
    payload = _fixture("webhook_payment.updated_example.json")
    payload["data"]["object"]["payment"]["total_money"]["amount"] = 1.5  # money is integer minor units
    with pytest.raises(square.SquareMappingError, match="integer"):
        square.map_event(json.loads(json.dumps(payload)))
    with pytest.raises(square.SquareMappingError, match="location_id"):
        p = _fixture("webhook_refund.created_example.json")
        del p["data"]["object"]["refund"]["location_id"]
        square.map_event(p)
    with pytest.raises(square.SquareMappingError, match="event_id"):
        square.map_event({"type": "payment.updated"})
    with pytest.raises(square.SquareMappingError):
        square.loads(b"[1, 2]")
    assert square.map_event(json.loads(fixture_bytes("square", "webhook_signature_test_vector_body.json"))).ignored


# -- canonical ------------------------------------------------------------------------------------------
AT = datetime(2024, 3, 9, 12, tzinfo=UTC)


def _txn(tid: str, kind: str = "sale", **kw) -> PosTransaction:
    base = {"pos_transaction_id": tid, "store_id": "S1", "business_date": date(2024, 3, 9), "kind": kind,
            "lines": [PosLine(sku="A", quantity=3, unit_price="9.99", discount="1.00", tax="2.32")],
            "tenders": [Tender(type="cash", amount="10.00"), Tender(type="gift_card", amount="21.29")],
            "occurred_at": AT, "currency": "usd"}
    return PosTransaction(**{**base, **kw})


def test_transaction_validation():
    assert _txn("T").lines_total == Decimal("31.29") and _txn("T").currency == "USD"
    with pytest.raises(ValidationError, match="tenders add up"):
        _txn("T", tenders=[Tender(type="cash", amount="31.28")])
    with pytest.raises(ValidationError, match="more decimals"):
        _txn("T", lines=[], tenders=[Tender(type="cash", amount="1.005")])
    with pytest.raises(ValidationError, match="discount"):
        _txn("T", lines=[PosLine(sku="A", quantity=1, unit_price="1.00", discount="2.00")],
             tenders=[Tender(type="cash", amount="1")])
    with pytest.raises(ValidationError):
        Tender(type="cash", amount=1.5)  # money is never float
    with pytest.raises(ValidationError):
        _txn("T", occurred_at=datetime(2024, 3, 9, 12))  # naive


def test_store_day_journal_balances_with_cash_over_short():
    totals = StoreDayTotals()
    for t in [_txn("T1"), _txn("T2", lines=[], tenders=[Tender(type="card", amount="7.00")]),
              _txn("R1", kind="return", lines=[PosLine(sku="A", quantity=1, unit_price="9.99", tax="0.80")],
                   tenders=[Tender(type="cash", amount="10.79")])]:
        totals = totals.add(t)
    with pytest.raises(ValueError, match="EUR"):
        totals.add(_txn("E", currency="EUR"))
    acc = PosAccounts()
    j = build_store_day_journal(totals, external_ref="storeday:S1:2024-03-09", store_id="S1",
                                business_date=date(2024, 3, 9), accounts=acc, counted_cash=Decimal("0"))
    assert j.total_debit == j.total_credit
    signed = {x.account: x.debit - x.credit for x in j.lines}
    assert signed[acc.sales] == Decimal("-29.97") and signed[acc.returns] == Decimal("9.99")
    assert signed[acc.discounts] == Decimal("1.00") and signed[acc.tax_payable] == Decimal("-1.52")
    assert signed[acc.unitemized_sales] == Decimal("-7.00")
    assert signed[acc.tender_clearing[TenderType.GIFT_CARD]] == Decimal("21.29")
    assert signed[acc.tender_clearing[TenderType.CARD]] == Decimal("7.00")
    # expected cash 10.00 − 10.79 = −0.79; counted 0 → the cash account shows 0 and 0.79 is over
    assert acc.tender_clearing[TenderType.CASH] not in signed
    assert signed[acc.cash_over_short] == Decimal("-0.79")
    assert totals.net_sales == Decimal("25.98")  # 29.97 − 1.00 + 7.00 − 9.99
    assert build_store_day_journal(StoreDayTotals(), external_ref="x", store_id="S1", business_date=date.today(),
                                   accounts=acc) is None


# -- stock ------------------------------------------------------------------------------------------------
def test_pos_stock_is_idempotent_by_transaction_and_refuses_unknown_skus(engine):
    from adapters.erp.local import LocalErp

    erp = LocalErp(engine)
    erp.upsert_item("ITEM-A", "A", Decimal("9.99"), "USD")
    erp.map_sku("pos", "A", "ITEM-A")
    erp.set_on_hand("ITEM-A", "S1", 10)
    stock = PosStock(engine, InventoryLedger(engine))
    now = datetime.now(UTC)  # after the count: a sale older than the latest count is already in it
    sale = _txn("T1", occurred_at=now)
    ret = _txn("R1", kind="return", lines=[PosLine(sku="ITEM-A", quantity=1, unit_price="9.99", tax="0.80")],
               tenders=[Tender(type="cash", amount="10.79")], occurred_at=now)
    assert stock.apply("S1", "S1", [sale, ret]) == (2, 0)
    assert erp.stock_levels("ITEM-A")["S1"]["on_hand"] == 10 - 3 + 1
    assert stock.apply("S1", "S1", [sale]) == (0, 1)  # an offline replay moves nothing
    assert erp.stock_levels("ITEM-A")["S1"]["on_hand"] == 8
    with pytest.raises(UnknownSku, match="NOPE"):
        stock.apply("S1", "S1", [_txn("T3", lines=[PosLine(sku="NOPE", quantity=1, unit_price="31.29")])])
    assert stock.apply("S1", "S1", [_txn("T4", lines=[], tenders=[Tender(type="card", amount="5")])]) == (0, 0)


def test_merge_totals_adds_the_late_adjustments_to_the_day():
    day = StoreDayTotals().add(_txn("T1")).add(_txn("T2", lines=[], tenders=[Tender(type="card", amount="7.00")]))
    late = StoreDayTotals().add(_txn("L1", lines=[], tenders=[Tender(type="card", amount="3.00")]))
    both = merge_totals(day, late)
    assert both.transactions == 3 and both.unitemized_sales == day.unitemized_sales + Decimal("3.00")
    assert both.tenders[TenderType.CARD] == Decimal("10.00") and both.currency == day.currency
    assert merge_totals(day, StoreDayTotals()) is day  # nothing late: the day as it is
    assert merge_totals(StoreDayTotals(), late).currency == late.currency
