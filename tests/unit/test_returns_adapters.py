"""The embedded adapters' return methods on SQLite and PostgreSQL: authorization against what shipped and was
credited, balanced idempotent credit notes, refunds that never pay a line twice, restock only of resellable
units once per receipt, idempotent tax refunds and WMS return announcements."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from adapters import sql as db
from adapters.erp.local import LocalErp
from adapters.marketplace.local import LocalMarketplace
from adapters.tax.local import LocalTax
from adapters.wms.local import LocalWms
from canonical.money import Money
from canonical.returns import (
    CreditNote,
    CreditNoteLine,
    Disposition,
    DispositionLine,
    Refund,
    RefundLine,
    ReturnLine,
    ReturnNotAllowed,
    ReturnRequest,
)

ORDER_REF = "order:shopify:1001"
CREATED = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def erp(engine):
    erp = LocalErp(engine)
    erp.upsert_item("CHAIR", "Chair", "10.00", "USD")
    erp.set_on_hand("CHAIR", "MAIN", 5)
    with engine.begin() as conn:
        conn.execute(db.sales_orders.insert().values(
            id="SO-1", external_ref=ORDER_REF, channel="shopify", external_order_id="1001", currency="USD",
            net_total="40.00", tax_total="3.00", grand_total="43.00", status="invoiced", created_at=CREATED,
            lines=[{"line_id": "L1", "item_code": "CHAIR", "channel_sku": "C", "quantity": 3, "unit_price": "10.00",
                    "discount": "0.00", "net": "30.00", "tax": "3.00"},
                   {"line_id": "L2", "item_code": "CHAIR", "channel_sku": "C2", "quantity": 1, "unit_price": "10.00",
                    "discount": "0.00", "net": "10.00", "tax": "0.00"}]))
        conn.execute(db.deliveries.insert().values(external_ref=ORDER_REF, shipment_id="S1",
                                                   lines=[{"item_code": "CHAIR", "quantity": 2}]))
    return erp


def _request(qty: int, line_id: str = "L1", days: int = 3) -> ReturnRequest:
    return ReturnRequest(channel="shopify", return_id="R1", external_order_id="1001",
                         requested_at=CREATED + timedelta(days=days), lines=[ReturnLine(line_id=line_id, quantity=qty)])


def _note(ref: str, qty: int, net: str = "20.00", tax: str = "2.00") -> CreditNote:
    return CreditNote.build(ref, ORDER_REF, "USD", [CreditNoteLine(
        line_id="L1", item_code="CHAIR", quantity=qty, net=Money.of(net, "USD"), tax=Money.of(tax, "USD"))])


def test_authorize_only_shipped_not_credited_within_window(erp):
    auth = erp.authorize_return(_request(2), workflow_id="return:shopify:R1", return_window_days=30)
    assert auth.erp_sales_order_id == "SO-1"
    line = auth.lines[0]
    assert (line.quantity, line.ordered_quantity, line.item_code) == (2, 3, "CHAIR")
    assert line.share(2) == (Money.of("20.00", "USD"), Money.of("2.00", "USD"))
    with pytest.raises(ReturnNotAllowed, match="3 asked, 2 returnable"):  # only 2 of 3 shipped
        erp.authorize_return(_request(3), workflow_id="return:shopify:R1", return_window_days=30)
    with pytest.raises(ReturnNotAllowed, match="L2: 1 asked, 0 returnable"):  # L1 took both shipped chairs
        erp.authorize_return(_request(1, "L2"), workflow_id="return:shopify:R1", return_window_days=30)
    with pytest.raises(ReturnNotAllowed, match="not on the order"):
        erp.authorize_return(_request(1, "L9"), workflow_id="return:shopify:R1", return_window_days=30)
    with pytest.raises(ReturnNotAllowed, match="return window"):
        erp.authorize_return(_request(1, days=31), workflow_id="return:shopify:R1", return_window_days=30)
    erp.create_credit_note(_note("return:shopify:R0", 2))
    with pytest.raises(ReturnNotAllowed, match="2 already credited"):
        erp.authorize_return(_request(1), workflow_id="return:shopify:R1", return_window_days=30)
    # its own credit note does not count against a retried authorization
    assert erp.authorize_return(_request(2), workflow_id="return:shopify:R0", return_window_days=30).lines


def test_credit_note_balances_is_idempotent_and_never_credits_beyond_the_order(erp):
    first = erp.create_credit_note(_note("return:shopify:R1", 2))
    again = erp.create_credit_note(_note("return:shopify:R1", 2))
    assert first.credit_note_id == again.credit_note_id and first.total == Money.of("22.00", "USD")
    rows = erp.list_credit_notes(external_ref="return:shopify:R1")
    assert len(rows) == 1 and rows[0]["grand_total"] == rows[0]["net_total"] + rows[0]["tax_total"]
    with pytest.raises(ReturnNotAllowed, match="beyond what was ordered"):
        erp.create_credit_note(_note("return:shopify:R2", 2))
    with pytest.raises(ValidationError, match="does not balance"):
        CreditNote(external_ref="x", order_external_ref=ORDER_REF, currency="USD", lines=_note("x", 1).lines,
                   net_total=Money.of("20.00", "USD"), tax_total=Money.of("2.00", "USD"),
                   total=Money.of("23.00", "USD"))
    assert erp.cancel_credit_note("return:shopify:R1") is True
    assert erp.cancel_credit_note("return:shopify:R1") is False
    assert erp.create_credit_note(_note("return:shopify:R2", 2)).credit_note_id  # room again after the cancel


def test_restock_only_resellable_once_per_receipt(erp):
    lines = [DispositionLine(line_id="L1", item_code="CHAIR", quantity=1, disposition=Disposition.RESTOCK),
             DispositionLine(line_id="L1", item_code="CHAIR", quantity=1, disposition=Disposition.SCRAP)]
    assert erp.restock("return:shopify:R1:RC1", lines) == 1
    assert erp.restock("return:shopify:R1:RC1", lines) == 0
    assert erp.stock_levels("CHAIR")["MAIN"]["on_hand"] == 6
    assert erp.restock("return:shopify:R1:RC2", lines[1:]) == 0
    assert erp.stock_levels("CHAIR")["MAIN"]["on_hand"] == 6


def test_marketplace_refund_pays_each_line_once(engine):
    market = LocalMarketplace(engine)
    usd = "USD"
    refund = Refund(refund_key="return:shopify:R1", channel="shopify", external_order_id="1001", currency=usd,
                    lines=[RefundLine(line_id="L1", quantity=2, amount=Money.of("20.00", usd),
                                      tax=Money.of("2.00", usd))],
                    shipping=Money.zero(usd), tax=Money.of("2.00", usd), fees_kept=Money.of("1.00", usd))
    market.refund(refund)
    market.refund(refund)
    rows = market.refunds("shopify", "1001")
    assert [(r["line_id"], r["quantity"], str(r["amount"].normalize())) for r in rows] == [
        ("L1", 2, "22"), ("", 0, "-1")]
    assert refund.total == Money.of("21.00", usd)
    market.notify_return_not_received("shopify", "1001", "R9")
    market.notify_return_not_received("shopify", "1001", "R9")
    assert [u["kind"] for u in market.updates("shopify", "1001")] == ["return_closed"]


def test_tax_refund_and_wms_expectation_are_idempotent(engine):
    tax, wms = LocalTax(engine), LocalWms(engine)
    tax.refund_tax("return:shopify:R1", ORDER_REF, Money.of("2.00", "USD"))
    tax.refund_tax("return:shopify:R1", ORDER_REF, Money.of("2.00", "USD"))
    assert [(a["code"], a["status"]) for a in tax.adjustments(ORDER_REF)] == [("return:shopify:R1", "committed")]
    assert tax.void_tax_refund("return:shopify:R1") is True and tax.void_tax_refund("return:shopify:R1") is False
    from canonical.returns import AuthorizedLine

    line = AuthorizedLine(line_id="L1", item_code="CHAIR", quantity=1, ordered_quantity=3,
                          line_net=Money.of("30.00", "USD"), line_tax=Money.of("3.00", "USD"))
    rma = wms.expect_return("return:shopify:R1", [line])
    assert wms.expect_return("return:shopify:R1", [line]) == rma
    assert wms.cancel_expected_return("return:shopify:R1") is True
    assert wms.cancel_expected_return("return:shopify:R1") is False


def test_partial_shares_never_exceed_what_was_paid():
    from canonical.returns import AuthorizedLine

    line = AuthorizedLine(line_id="L1", item_code="X", quantity=3, ordered_quantity=3,
                          line_net=Money.of("10.00", "USD"), line_tax=Money.of("0.05", "USD"))
    parts = []
    for _ in range(3):  # three returns of one unit each, every one after the earlier notes (as the ERPs report them)
        done = len(parts)
        credited = line.model_copy(update={
            "credited_quantity": done,
            "credited_net": Money.of(sum((p[0].amount for p in parts), Decimal(0)), "USD"),
            "credited_tax": Money.of(sum((p[1].amount for p in parts), Decimal(0)), "USD")})
        parts.append(credited.share(1))
    assert sum(p[0].amount for p in parts) == Decimal("10.00") and sum(p[1].amount for p in parts) == Decimal("0.05")
    assert all(p[1].amount <= Decimal("0.02") for p in parts)
    assert line.share(3) == (Money.of("10.00", "USD"), Money.of("0.05", "USD"))


def test_a_credit_note_may_not_credit_more_money_than_was_paid_for_the_line(erp):
    """L1 was charged 30.00 + 3.00 for 3 units: amounts-only notes add up against that, not against units."""
    first = CreditNote.build("return:shopify:adj-1", ORDER_REF, "USD", [CreditNoteLine(
        line_id="L1", item_code="CHAIR", quantity=0, net=Money.of("20.00", "USD"), tax=Money.of("2.00", "USD"))])
    erp.create_credit_note(first)
    too_much = CreditNote.build("return:shopify:adj-2", ORDER_REF, "USD", [CreditNoteLine(
        line_id="L1", item_code="CHAIR", quantity=0, net=Money.of("10.01", "USD"), tax=Money.of("1.00", "USD"))])
    with pytest.raises(ReturnNotAllowed, match="more than was paid"):
        erp.create_credit_note(too_much)
    exact = CreditNote.build("return:shopify:adj-3", ORDER_REF, "USD", [CreditNoteLine(
        line_id="L1", item_code="CHAIR", quantity=0, net=Money.of("10.00", "USD"), tax=Money.of("1.00", "USD"))])
    assert erp.create_credit_note(exact).credit_note_id
