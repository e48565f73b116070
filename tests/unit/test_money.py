"""Money: Decimal with an ISO-4217 currency, half-even rounding to the minor unit, no floats, no mixing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from canonical.money import Money, parse_decimal, sum_money


@pytest.mark.parametrize(("amount", "currency", "expected"), [
    ("0.125", "USD", "0.12"),   # half-even: to the even neighbour
    ("0.135", "USD", "0.14"),
    ("2.5", "JPY", "2"),        # JPY has no minor unit
    ("3.5", "JPY", "4"),
    ("1.0005", "KWD", "1.000"),  # three minor digits
    ("1.0015", "KWD", "1.002"),
    ("-0.125", "EUR", "-0.12"),
])
def test_rounds_half_even_to_the_currency_minor_unit(amount, currency, expected):
    assert Money.of(amount, currency).amount == Decimal(expected)
    assert str(Money.of(amount, currency).amount) == expected


def test_floats_are_refused_and_decimal_commas_accepted():
    with pytest.raises(ValidationError, match="float"):
        Money.of(0.1, "USD")
    with pytest.raises(TypeError):
        Money.of("1.00", "USD") * 1.5
    assert Money.of("95,00", "EUR").amount == Decimal("95.00")
    with pytest.raises(ValueError, match="not a decimal"):
        parse_decimal("1,000.00,0")
    with pytest.raises(ValueError, match="finite"):
        parse_decimal("NaN")


def test_currencies_are_checked_and_never_mixed():
    with pytest.raises(ValidationError, match="unknown currency"):
        Money.of("1", "XYZ")
    with pytest.raises(ValidationError, match="3-letter"):
        Money.of("1", "US")
    assert Money.of("1", "usd").currency == "USD"
    with pytest.raises(ValueError, match="currency mismatch"):
        Money.of("1", "USD") + Money.of("1", "EUR")
    with pytest.raises(ValueError, match="currency mismatch"):
        _ = Money.of("1", "USD") < Money.of("2", "EUR")


def test_arithmetic_keeps_exact_cents():
    total = sum_money([Money.of("0.10", "USD")] * 3, "USD")
    assert total == Money.of("0.30", "USD")
    assert Money.of("19.99", "USD") * 3 == Money.of("59.97", "USD")
    assert -Money.of("1.50", "USD") == Money.of("-1.50", "USD")
    assert Money.of("10.00", "USD") * Decimal("0.0725") == Money.of("0.72", "USD")  # 0.725 → 0.72 (even)


@pytest.mark.parametrize(("amount", "weights"), [
    ("10.00", [1, 1, 1]),
    ("0.05", [1, 1, 1, 1, 1, 1]),
    ("100.00", [Decimal("33.3"), Decimal("33.3"), Decimal("33.4")]),
    ("7", [3, 2]),
])
def test_allocate_parts_sum_exactly_to_the_whole(amount, weights):
    currency = "JPY" if "." not in amount else "USD"
    whole = Money.of(amount, currency)
    parts = whole.allocate(weights)
    assert len(parts) == len(weights)
    assert sum_money(parts, currency) == whole
    spread = max(p.amount for p in parts) - min(p.amount for p in parts)
    if len(set(weights)) == 1:
        assert spread <= Decimal(1).scaleb(-2 if currency == "USD" else 0)


def test_allocate_of_nothing():
    assert Money.of("5", "USD").allocate([]) == []
    assert Money.of("5", "USD").allocate([0, 0]) == [Money.zero("USD")] * 2


def test_json_keeps_amounts_as_strings():
    dumped = Money.of("12.30", "USD").model_dump(mode="json")
    assert dumped == {"amount": "12.30", "currency": "USD"}
    assert Money.model_validate(dumped) == Money.of("12.30", "USD")


@given(a=st.decimals(min_value=-10**13, max_value=10**13, places=3, allow_nan=False, allow_infinity=False),
       b=st.decimals(min_value=-10**13, max_value=10**13, places=3, allow_nan=False, allow_infinity=False),
       k=st.integers(min_value=-1000, max_value=1000),
       currency=st.sampled_from(["USD", "EUR", "JPY", "KWD", "GBP"]))
def test_arithmetic_without_revalidation_equals_validated_money(a, b, k, currency):
    """`+`, `-`, negation and whole multiples build their result without validating again (the order-total hot
    path): the result is exactly what a validated Money of the same amount is, exponent included."""
    x, y = Money.of(a, currency), Money.of(b, currency)
    for op, exact in ((lambda: x + y, x.amount + y.amount), (lambda: x - y, x.amount - y.amount),
                      (lambda: -x, -x.amount), (lambda: x * k, x.amount * k), (lambda: k * x, x.amount * k)):
        if abs(exact) >= Decimal(10) ** 15:  # beyond the largest amount: refused either way
            with pytest.raises(ValueError):
                op()
            continue
        fast, validated = op(), Money.of(exact, currency)
        assert fast == validated and fast.amount.as_tuple() == validated.amount.as_tuple()
        assert fast.model_dump(mode="json") == validated.model_dump(mode="json")
        assert hash(fast) == hash(validated)


def test_a_sum_beyond_the_largest_amount_is_still_refused():
    big = Money.of(Decimal(10) ** 15 - 1, "USD")
    with pytest.raises(ValueError):
        big + Money.of("1", "USD")
    with pytest.raises(ValueError):
        big * 2
