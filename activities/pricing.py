"""Price publication activities (the PricePublication workflow, docs/pricing.md): validate a change set against
the price book, record its status, publish one line to one channel with each of the channel's own SKUs, read it
back, and record what the channel shows. Each is one idempotent call into one adapter; a channel's refusal is a
BusinessError (ChannelRejected / VendorRejected) that parks the run, a transient fault is retried.

PricingActivities receives its adapters: the price ports by channel (adapters/pricing/base.py `PriceChannels`),
the price book, and the ERP (the channel SKUs of an item)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from temporalio import activity

from activities.orders import business_errors
from adapters.erp.base import ErpAdapter
from adapters.pricing.base import PriceChannels
from adapters.pricing.book import PriceBook
from canonical.errors import ChannelRejected
from canonical.money import DecimalAmount, Money
from canonical.pricing import (
    InvalidPriceChange,
    PriceChange,
    PriceChangeSet,
    PriceNotApplied,
    PublishedLine,
    change_set_depth,
    currency_problems,
)
from canonical.vendor_errors import VendorUnavailable

PRICE_PUBLICATION_WORKFLOW = "PricePublication"


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ValidateInput(_In):
    change_set: PriceChangeSet


class ValidationResult(_In):
    discount_depth: DecimalAmount
    current: dict[str, DecimalAmount | None] = Field(
        default_factory=dict, description="`item|channel` → the price the channel was last verified to show")


class StatusInput(_In):
    change_set_id: str
    status: str
    lines: list[int] | None = None
    approved_by: str | None = None


class PublishLineInput(_In):
    change_set_id: str
    line_no: int
    line: PriceChange
    action: Literal["publish", "revert"] = "publish"
    amount: DecimalAmount  # what to show (the line's amount, or on revert what the channel showed before)
    compare_at: DecimalAmount | None = None
    actor: str  # who approved it (recorded in the history with the step)


class RecordShownInput(_In):
    change_set_id: str
    published: PublishedLine
    reason: str
    approved_by: str | None = None


def _key(item: str, channel: str) -> str:
    return f"{item}|{channel}"


class PricingActivities:
    def __init__(self, prices: PriceChannels, book: PriceBook, erp: ErpAdapter,
                 channel_currencies: Mapping[str, str]) -> None:
        self.prices = prices
        self.book = book
        self.erp = erp
        self.channel_currencies = {c: v.upper() for c, v in channel_currencies.items()}

    @activity.defn(name="validate_price_changes")
    @business_errors
    def validate_price_changes(self, inp: ValidateInput) -> ValidationResult:
        """The set against the channels' currencies and the price book's accepted windows; accepted, its lines
        enter the book as `pending` (so a later overlapping set is refused) and the deepest discount is returned."""
        cs = inp.change_set
        problems = currency_problems(cs, self.channel_currencies)
        problems += self.book.windows(cs.items, cs.channels).conflicts(cs)
        current = {ln.key: self.book.current(ln.item_code, ln.channel) for ln in cs.lines}
        problems += [f"{ln.item_code} on {ln.channel}: ends at {ln.effective_to.isoformat()} but has no price to "
                     "revert to (give compare_at: the channel shows no verified price yet)"
                     for ln in cs.lines if ln.effective_to is not None and ln.compare_at is None
                     and current[ln.key] is None]
        if problems:
            raise InvalidPriceChange("; ".join(problems[:20]), details={"problems": problems[:50]})
        self.book.record_change_set(cs, "pending")
        return ValidationResult(discount_depth=change_set_depth(cs, current),
                                current={_key(*k): v for k, v in current.items()})

    @activity.defn(name="record_price_status")
    @business_errors
    def record_price_status(self, inp: StatusInput) -> int:
        return self.book.set_status(inp.change_set_id, inp.status, lines=inp.lines, approved_by=inp.approved_by)

    def channel_skus(self, channel: str, item_code: str) -> list[str]:
        """The channel's own SKUs of the item (a vendor channel), or the item code (an embedded channel)."""
        if not self.prices.lists_by_channel_sku(channel):
            return [item_code]
        skus = self.erp.channel_skus_of(channel, item_code)
        if not skus:
            raise ChannelRejected(f"item {item_code} has no SKU on channel {channel}")
        return skus

    @activity.defn(name="publish_price_line")
    @business_errors
    def publish_price_line(self, inp: PublishLineInput) -> PublishedLine:
        """Set the line's price on its channel under each of the channel's SKUs for the item; what the channel
        showed before (its first SKU) is returned, so the end date can revert to it."""
        ln = inp.line
        skus = self.channel_skus(ln.channel, ln.item_code)
        before = self.prices.read_price(ln.channel, skus[0])
        if before is not None and before.currency != ln.currency:
            raise ChannelRejected(f"{ln.channel} shows {ln.item_code} ({skus[0]}) in {before.currency}, not "
                                  f"{ln.currency}")
        price = Money.of(inp.amount, ln.currency)
        compare = Money.of(inp.compare_at, ln.currency) if inp.compare_at is not None else None
        for sku in skus:
            self.prices.publish_price(ln.channel, sku, price, compare)
        return PublishedLine(
            line=inp.line_no, item_code=ln.item_code, channel=ln.channel, channel_skus=skus, amount=price.amount,
            currency=ln.currency, compare_at=compare.amount if compare is not None else None,
            previous=before.amount if before is not None else None,
            previous_compare_at=before.compare_at if before is not None else None,
            action=inp.action, at=datetime.now(UTC))

    @activity.defn(name="verify_price_line")
    @business_errors
    def verify_price_line(self, published: PublishedLine) -> PublishedLine:
        """Read the price back from the channel, SKU by SKU: another price there is PriceNotApplied (parks)."""
        wrong = []
        for sku in published.channel_skus:
            shown = self.prices.read_price(published.channel, sku)
            if shown is None or shown.amount != published.amount or shown.currency != published.currency:
                wrong.append(f"{sku} shows {'nothing' if shown is None else f'{shown.amount} {shown.currency}'}")
        if wrong and self.prices.applies_async(published.channel):
            # accepted, applied shortly after: read again (the retry budget bounds it; then it parks)
            raise VendorUnavailable(f"{published.channel} has not applied {published.amount} {published.currency} "
                                    f"for {published.item_code} yet: {'; '.join(wrong)}", vendor=published.channel,
                                    error_type="PriceNotAppliedYet", retry_after=5.0)
        if wrong:
            raise PriceNotApplied(f"{published.channel} did not take {published.amount} {published.currency} for "
                                  f"{published.item_code}: {'; '.join(wrong)}")
        return published.model_copy(update={"at": datetime.now(UTC)})

    @activity.defn(name="record_price_shown")
    @business_errors
    def record_price_shown(self, inp: RecordShownInput) -> None:
        self.book.record_shown(inp.published, change_set_id=inp.change_set_id, reason=inp.reason,
                               approved_by=inp.approved_by, verified_at=inp.published.at)

    def all(self) -> list[Callable[..., Any]]:
        return [self.validate_price_changes, self.record_price_status, self.publish_price_line,
                self.verify_price_line, self.record_price_shown]
