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


def test_units_share_is_the_gross_share_rounded_half_even_and_nothing_is_uncredited():
    a = auth(line("1", 3, "10.00", "1.90"))
    out, beyond = allocate_refund(a, request(ReturnLine(line_id="1", quantity=1)), {"1": 1})
    # a third of 11.90 is 3.9667 -> 3.97, a third of 1.90 is 0.6333 -> 0.63: net is the difference
    assert out == {"1": (eur("3.34"), eur("0.63"))} and beyond.is_zero


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


# -- issue 16, defect 10: partial refunds of a line add up to exactly what was paid ---------------------------
from decimal import Decimal  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _credit_in_parts(line_net: str, line_tax: str, ordered: int, parts: list[int], *,
                     report_units: bool = True) -> list[tuple[Money, Money]]:
    """Return `parts` units of one line in that many successive returns, each authorized the way the ERP does
    (what earlier notes credited on the line: units and amounts), and credit each as allocate_refund says."""
    credited_net, credited_tax, credited_units = eur("0"), eur("0"), 0
    out = []
    for n, qty in enumerate(parts):
        a = auth(AuthorizedLine(line_id="1", item_code="I-1", quantity=qty, ordered_quantity=ordered,
                                line_net=eur(line_net), line_tax=eur(line_tax), credited_net=credited_net,
                                credited_tax=credited_tax,
                                credited_quantity=credited_units if report_units else None))
        req = ReturnRequest(channel="shopify", return_id=f"r{n}", external_order_id="1",
                            requested_at=datetime(2026, 12, 1, tzinfo=UTC),
                            lines=[ReturnLine(line_id="1", quantity=qty)])
        got, beyond = allocate_refund(a, req, {"1": qty})
        assert beyond.is_zero
        net, tax = got["1"]
        out.append((net, tax))
        credited_net, credited_tax, credited_units = credited_net + net, credited_tax + tax, credited_units + qty
    return out


def test_one_of_two_identical_units_refunds_half_of_what_was_paid():
    # 2 × 19.95 with 19 % VAT inside: net 33.53, tax 6.37. Rounding net and tax down apart gave 16.76 + 3.18 = 19.94.
    [(net, tax)] = _credit_in_parts("33.53", "6.37", 2, [1])
    assert net + tax == eur("19.95")
    assert tax == eur("3.18") and net == eur("16.77")  # 6.37 / 2 = 3.185 -> 3.18 (half-even); net is the rest
    second = _credit_in_parts("33.53", "6.37", 2, [1, 1])[1]
    assert second[0] + second[1] == eur("19.95") and second == (eur("16.76"), eur("3.19"))


def test_the_last_units_take_the_remainder():
    parts = _credit_in_parts("10.00", "1.90", 3, [1, 1, 1])
    assert sum((n for n, _ in parts), eur("0")) == eur("10.00")
    assert sum((t for _, t in parts), eur("0")) == eur("1.90")


def test_without_credited_units_every_unit_at_once_still_takes_the_remainder():
    a = auth(line("1", 2, "33.53", "6.37", credited_net="16.77", credited_tax="3.18"))
    out, _ = allocate_refund(a, request(ReturnLine(line_id="1", quantity=2)), {"1": 2})
    assert out["1"] == (eur("16.76"), eur("3.19"))  # an ERP that does not report units: all units are the last


@st.composite
def _line_and_partition(draw):
    ordered = draw(st.integers(min_value=1, max_value=12))
    net_cents = draw(st.integers(min_value=0, max_value=10_000_000))
    tax_cents = draw(st.integers(min_value=0, max_value=net_cents // 2 + 50))
    cuts = sorted(draw(st.sets(st.integers(min_value=1, max_value=ordered - 1), max_size=ordered - 1))) \
        if ordered > 1 else []
    bounds = [0, *cuts, ordered]
    parts = [b - a for a, b in zip(bounds, bounds[1:], strict=False)]
    return str(Decimal(net_cents).scaleb(-2)), str(Decimal(tax_cents).scaleb(-2)), ordered, parts


@settings(max_examples=400, deadline=None)
@given(_line_and_partition())
def test_any_partition_of_a_line_refunds_exactly_what_was_paid_and_never_more_than_is_left(case):
    net_s, tax_s, ordered, parts = case
    paid_net, paid_tax = eur(net_s), eur(tax_s)
    credits = _credit_in_parts(net_s, tax_s, ordered, parts)
    left_net, left_tax = paid_net, paid_tax
    for (net, tax), qty in zip(credits, parts, strict=True):
        assert eur("0") <= net <= left_net and eur("0") <= tax <= left_tax
        # each refund is within a cent of its units' share of what was paid (gross)
        exact = (paid_net + paid_tax).amount * Decimal(qty) / Decimal(ordered)
        assert abs((net + tax).amount - exact) <= Decimal("0.01") * len(parts)
        left_net, left_tax = left_net - net, left_tax - tax
    assert left_net.is_zero and left_tax.is_zero  # every unit credited: exactly what was paid, net and tax


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=5_000_000), st.integers(min_value=0, max_value=1_000_000))
def test_one_of_two_units_is_half_the_gross_rounded_half_even(net_cents, tax_cents):
    net, tax = eur(str(Decimal(net_cents).scaleb(-2))), eur(str(Decimal(tax_cents).scaleb(-2)))
    [(n, t)] = _credit_in_parts(str(net.amount), str(tax.amount), 2, [1])
    assert n + t == Money.of((net + tax).amount / 2, "EUR")  # Money rounds half-even to the minor unit
