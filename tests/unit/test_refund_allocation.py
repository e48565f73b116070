"""ReturnToRefund's credit amounts as a pure rule (canonical.returns.allocate_refund): no server, no database."""

from __future__ import annotations

from datetime import UTC, datetime

from canonical.money import Money
from canonical.returns import AuthorizedLine, AuthorizedReturn, ReturnLine, ReturnRequest, allocate_refund


def eur(x: str) -> Money:
    return Money.of(x, "EUR")


def auth(*lines: AuthorizedLine) -> AuthorizedReturn:
    return AuthorizedReturn(order_external_ref="order:shopify:1", erp_sales_order_id="SO-1", currency="EUR",
                            lines=list(lines))


def line(line_id: str, qty: int, net: str, tax: str, *, credited_net: str | None = None,
         credited_tax: str | None = None) -> AuthorizedLine:
    return AuthorizedLine(line_id=line_id, item_code=f"I-{line_id}", quantity=qty, ordered_quantity=qty,
                          line_net=eur(net), line_tax=eur(tax),
                          credited_net=eur(credited_net) if credited_net else None,
                          credited_tax=eur(credited_tax) if credited_tax else None)


def request(*lines: ReturnLine, adjustment: str | None = None) -> ReturnRequest:
    return ReturnRequest(channel="shopify", return_id="r1", external_order_id="1",
                         requested_at=datetime(2026, 12, 1, tzinfo=UTC), lines=list(lines),
                         adjustment=eur(adjustment) if adjustment else None)


def test_units_share_rounds_down_and_nothing_is_uncredited():
    a = auth(line("1", 3, "10.00", "1.90"))
    out, beyond = allocate_refund(a, request(ReturnLine(line_id="1", quantity=1)), {"1": 1})
    assert out == {"1": (eur("3.33"), eur("0.63"))} and beyond.is_zero


def test_a_channel_refund_above_what_is_left_is_capped_and_the_excess_reported():
    a = auth(line("1", 1, "20.92", "3.98", credited_net="5.00", credited_tax="0.95"))
    req = request(ReturnLine(line_id="1", quantity=1, amount=eur("20.92"), tax=eur("3.98")))
    out, beyond = allocate_refund(a, req, {"1": 1})
    assert out == {"1": (eur("15.92"), eur("3.03"))}
    assert beyond == eur("5.95")  # what the channel paid out beyond what the line had left


def test_a_lump_sum_is_spread_by_what_is_left_with_its_tax_share():
    a = auth(line("1", 1, "10.00", "2.00"), line("2", 1, "30.00", "6.00"))
    req = request(ReturnLine(line_id="1", quantity=0), ReturnLine(line_id="2", quantity=0), adjustment="12.00")
    out, beyond = allocate_refund(a, req, {"1": 0, "2": 0})
    (n1, t1), (n2, t2) = out["1"], out["2"]
    assert n1 + t1 == eur("3.00") and n2 + t2 == eur("9.00")  # 12 over what is left: 12 and 36
    assert t2 == eur("1.50") and n2 == eur("7.50")  # the line's tax share of the gross
    assert beyond.is_zero


def test_a_lump_sum_larger_than_everything_left_stops_at_zero_left():
    a = auth(line("1", 1, "10.00", "0.00", credited_net="9.00"))
    req = request(ReturnLine(line_id="1", quantity=0), adjustment="5.00")
    out, beyond = allocate_refund(a, req, {"1": 0})
    assert out["1"] == (eur("1.00"), eur("0.00")) and beyond == eur("4.00")


def test_lines_not_returned_are_not_credited():
    a = auth(line("1", 1, "10.00", "1.00"), line("2", 1, "10.00", "1.00"))
    out, _ = allocate_refund(a, request(ReturnLine(line_id="1", quantity=1)), {"1": 1})
    assert set(out) == {"1"}
