"""Promotion lines of a marketplace settlement explained by the price book (issue 21; docs/finance.md
"Promotions explained by the price book").

A settled order's promotion lines for one SKU (Amazon's `Promotion` amount type, its `Principal` description:
the discount on the item price) are matched to the promotion the platform published for that item on that channel
and that was live when the order was placed: `effective_from <= placed_at < effective_to` (the half-open window
of `canonical.pricing.PriceChange`). The published discount is `compare_at - amount` per unit; the settled
discount must equal it × the quantity within one minor unit (a cent). Otherwise, or with no live promotion, the
lines are an exception with the reason (`promotion_unexplained`, it parks the run); without the order's time (an
ERP that does not report it) they are only noted (`promotion_unchecked`). The journal does not change: the buyer amounts (promotions included) still
clear against the sales order (canonical.settlement_matching.plan_journal).

Pure rules only: the settlement store reads the lines, the ERP's order facts and the price book, and writes what
these return. Amounts are integers of the currency's minor unit.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from canonical.finance import ExceptionKind
from canonical.settlement_matching import ExceptionDraft, from_minor, to_minor

PUBLISHED_STATUSES = frozenset({"live", "ended"})  # lines that were published (and maybe reverted since)
TOLERANCE_MINOR = 1  # "within a cent": one minor unit of the currency


def is_item_promotion(amount_type: str, amount_description: str) -> bool:
    """A settlement line that is a promotion on the item price (not a shipping promotion, which the price book
    does not publish)."""
    return amount_type.strip().lower() == "promotion" and "ship" not in amount_description.strip().lower()


class PublishedPromotion(NamedTuple):
    """A promotion line of the price book (table `price_changes`, kind `promotion`)."""

    change_set_id: str
    line: int
    promotion_id: str | None
    item_code: str
    channel: str
    currency: str
    amount: Decimal  # the promotional price
    compare_at: Decimal | None  # the regular price it discounts
    effective_from: datetime
    effective_to: datetime | None
    status: str

    def live_at(self, when: datetime) -> bool:
        return self.status in PUBLISHED_STATUSES and self.effective_from <= when \
            and (self.effective_to is None or when < self.effective_to)

    @property
    def unit_discount(self) -> Decimal | None:
        return None if self.compare_at is None else self.compare_at - self.amount

    def label(self) -> str:
        name = f"promotion {self.promotion_id}" if self.promotion_id else "a promotion"
        until = self.effective_to.isoformat() if self.effective_to else "open-ended"
        return (f"{name} (change set {self.change_set_id} line {self.line}, {self.amount} {self.currency} "
                f"instead of {self.compare_at}, {self.effective_from.isoformat()} – {until})")


class SettledPromotion(NamedTuple):
    """The promotion lines of one settled order and SKU."""

    order_id: str
    sku: str
    line_count: int
    promotion_minor: int  # as settled: negative (money taken off what the buyer paid)
    quantity: int  # units of the SKU on the order's lines (1 when the report gives none)
    amount_description: str = "Principal"


class PromotionMatch(NamedTuple):
    """What the match found: the promotion (or None), whether the amount agrees, and the row to record."""

    promotion: PublishedPromotion | None
    agrees: bool
    draft: ExceptionDraft


def live_promotion(candidates: Iterable[PublishedPromotion], item_code: str, channel: str, placed_at: datetime
                   ) -> PublishedPromotion | None:
    """The published promotion of the item on the channel live at `placed_at` (windows of one item and channel
    never overlap; the latest start wins should they)."""
    live = [p for p in candidates if p.item_code == item_code and p.channel == channel and p.live_at(placed_at)]
    return max(live, key=lambda p: (p.effective_from, p.change_set_id, p.line)) if live else None


def match_promotion(settled: SettledPromotion, *, item_code: str | None, channel: str, placed_at: datetime | None,
                    candidates: Iterable[PublishedPromotion], currency: str) -> PromotionMatch:
    """Explain one order's promotion lines for one SKU. The row is `promotion_explained` (informational: the
    promotion, its window and the agreeing amount) or `promotion_unexplained` (an exception naming why)."""
    oid, sku, n = settled.order_id, settled.sku, settled.line_count
    taken = -settled.promotion_minor  # the discount, positive
    what = f"order {oid}, SKU {sku}" + (f" (item {item_code})" if item_code and item_code != sku else "")

    def row(kind: ExceptionKind, cause: str, expected: int | None) -> ExceptionDraft:
        return ExceptionDraft(kind=kind.value, cause=cause[:2000], txn_kind="promotion", order_id=oid, line_count=n,
                              settlement_minor=taken, platform_minor=expected,
                              difference_minor=taken - (expected or 0), amount_type="Promotion",
                              amount_description=f"{settled.amount_description} {sku}"[:255])

    unexplained = ExceptionKind.PROMOTION_UNEXPLAINED
    if placed_at is None:  # informational: an ERP adapter that does not report the order time parks nothing
        return PromotionMatch(None, False, row(ExceptionKind.PROMOTION_UNCHECKED, f"{what}: promotion of "
                                               f"{from_minor(taken, currency)} settled, not checked: the platform's "
                                               "order gives no order time to find the promotion live then", None))
    promo = live_promotion(candidates, item_code or sku, channel, placed_at)
    if promo is None:
        return PromotionMatch(None, False, row(unexplained, f"{what}: promotion of {from_minor(taken, currency)} "
                                               f"settled, but no promotion was published for it on {channel} live "
                                               f"when the order was placed ({placed_at.isoformat()})", None))
    unit = promo.unit_discount
    if unit is None or promo.currency != currency:
        why = "no regular price to discount from" if unit is None else f"it is priced in {promo.currency}"
        return PromotionMatch(promo, False, row(unexplained, f"{what}: settled promotion of "
                                                f"{from_minor(taken, currency)} against {promo.label()}, but {why}",
                                                None))
    expected = to_minor(unit, currency) * settled.quantity
    agrees = abs(taken - expected) <= TOLERANCE_MINOR
    published = (f"{promo.label()}, live when the order was placed ({placed_at.isoformat()}): "
                 f"{settled.quantity} × {from_minor(to_minor(unit, currency), currency)} = "
                 f"{from_minor(expected, currency)}")
    if agrees:
        return PromotionMatch(promo, True, row(ExceptionKind.PROMOTION_EXPLAINED, f"{what}: settled promotion of "
                                               f"{from_minor(taken, currency)} explained by {published}", expected))
    return PromotionMatch(promo, False, row(unexplained, f"{what}: settled promotion of "
                                            f"{from_minor(taken, currency)} differs from the published discount of "
                                            f"{published} by {from_minor(taken - expected, currency)}", expected))
