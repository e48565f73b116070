"""Pricing rules (canonical/pricing.py): no negative prices, windows that end after they start, promotions that
end and sit below their regular price, amounts rounded to the currency, no overlapping windows for one item and
channel (within a set, or against the accepted windows, where an earlier open-ended price is superseded), the
channel's currency, the discount depth that decides a second approver, and a percent-off promotion's lines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from canonical.pricing import (
    PriceChange,
    PriceChangeSet,
    PriceError,
    PriceList,
    PriceWindow,
    Promotion,
    change_set_depth,
    currency_problems,
    discount_depth,
)

T0 = datetime(2027, 3, 1, tzinfo=UTC)


def line(**kw) -> PriceChange:
    base = dict(item_code="MUG", channel="shopify", currency="USD", amount="15.00", effective_from=T0)
    return PriceChange.model_validate({**base, **kw})


def window(cs: str, start: datetime, end: datetime | None, **kw) -> PriceWindow:
    return PriceWindow(change_set_id=cs, item_code=kw.get("item", "MUG"), channel=kw.get("channel", "shopify"),
                       amount=Decimal("10.00"), currency="USD", effective_from=start, effective_to=end,
                       status="approved")


def test_a_line_keeps_the_rules():
    assert line(amount="15.005").amount == Decimal("15.00")  # half-even to the cent
    assert line(currency="jpy", amount="1500.4").amount == Decimal("1500")
    for bad, words in (({"amount": "-0.01"}, "cannot be negative"), ({"compare_at": "-1"}, "compare_at"),
                       ({"effective_to": T0}, "after effective_from"),
                       ({"kind": "promotion"}, "needs an end"),
                       ({"kind": "promotion", "effective_to": T0 + timedelta(days=1), "compare_at": "10.00"},
                        "above its regular price"),
                       ({"amount": 15.0}, "float"), ({"currency": "ABC"}, "unknown currency"),
                       ({"effective_from": datetime(2027, 3, 1)}, "timezone-aware")):
        with pytest.raises(ValidationError, match=words):
            line(**bad)


def test_overlapping_windows_of_one_item_and_channel_within_a_set_are_refused():
    week = dict(effective_to=T0 + timedelta(days=7))
    with pytest.raises(ValidationError, match="overlapping effective windows for MUG on shopify"):
        PriceChangeSet(change_set_id="A", reason="r", requested_by="key:a",
                       lines=[line(**week), line(effective_from=T0 + timedelta(days=6))])
    ok = PriceChangeSet(change_set_id="A", reason="r", requested_by="key:a", lines=[
        line(**week), line(effective_from=T0 + timedelta(days=7)),  # back to back: [from, to) do not meet
        line(channel="amazon", **week)])
    assert ok.workflow_id == "price:A" and ok.channels == ["amazon", "shopify"]
    with pytest.raises(ValidationError, match="change_set_id"):
        PriceChangeSet(change_set_id="a b", reason="r", requested_by="key:a", lines=[line()])


def test_accepted_windows_conflict_unless_an_earlier_open_ended_price_is_superseded():
    new = PriceChangeSet(change_set_id="NEW", reason="r", requested_by="key:a",
                         lines=[line(effective_from=T0 + timedelta(days=2), effective_to=T0 + timedelta(days=4))])
    assert PriceList(windows=[window("REGULAR", T0 - timedelta(days=30), None)]).conflicts(new) == []
    assert PriceList(windows=[window("OLD", T0, T0 + timedelta(days=2))]).conflicts(new) == []  # ends as it starts
    assert PriceList(windows=[window("X", T0, None, channel="amazon")]).conflicts(new) == []  # another channel
    clash = PriceList(windows=[window("PROMO", T0 + timedelta(days=3), T0 + timedelta(days=9)),
                               window("LATER", T0 + timedelta(days=3), None)]).conflicts(new)
    assert len(clash) == 2 and "'PROMO'" in clash[0] and "'LATER'" in clash[1] and "open-ended" in clash[1]
    assert PriceList(windows=[window("NEW", T0, None)]).conflicts(new) == []  # its own lines


def test_currency_of_the_channel():
    cs = PriceChangeSet(change_set_id="C", reason="r", requested_by="key:a",
                        lines=[line(), line(channel="amazon-de", currency="USD"), line(channel="tiktok")])
    problems = currency_problems(cs, {"shopify": "usd", "amazon-de": "EUR"})
    assert problems == ["MUG on amazon-de: priced in USD, but amazon-de sells in EUR",
                        "MUG: channel 'tiktok' has no price currency configured "
                        "(RETAILFLOW_PRICING_CHANNEL_CURRENCIES; known: amazon-de, shopify)"]


def test_discount_depth_against_compare_at_or_the_price_shown_now():
    assert discount_depth(Decimal("15"), Decimal("20")) == Decimal("0.25")
    assert discount_depth(Decimal("25"), Decimal("20")) == 0 and discount_depth(Decimal("1"), None) == 0
    cs = PriceChangeSet(change_set_id="D", reason="r", requested_by="key:a", lines=[
        line(amount="18.00", compare_at="20.00"), line(channel="pos", amount="6.00")])
    assert change_set_depth(cs, {("MUG", "pos"): Decimal("10.00")}) == Decimal("0.4")
    assert change_set_depth(cs, {}) == Decimal("0.1")


def test_a_percent_off_promotion_becomes_lines_from_the_regular_prices():
    promo = Promotion(promotion_id="SPRING", name="Spring", percent_off="25", item_codes=["MUG", "CUP"],
                      channels=["shopify"], effective_from=T0, effective_to=T0 + timedelta(days=7))
    lines = promo.to_changes({("MUG", "shopify"): (Decimal("19.99"), "USD"), ("CUP", "shopify"): (Decimal("8"), "USD")})
    assert [(ln.item_code, ln.amount, ln.compare_at, ln.kind.value) for ln in lines] == [
        ("MUG", Decimal("14.99"), Decimal("19.99"), "promotion"), ("CUP", Decimal("6.00"), Decimal("8.00"), "promotion")]
    with pytest.raises(PriceError, match="no regular price for CUP on shopify"):
        promo.to_changes({("MUG", "shopify"): (Decimal("19.99"), "USD")})
