"""Prices and promotions as the platform governs them, whatever channel shows them (docs/pricing.md).

- `PriceChange`: one item's price on one channel (a sales channel such as `shopify`, or a store / POS channel)
  from `effective_from` until `effective_to` (open-ended when None), in the channel's currency, with why and who
  asked. `kind` is `price` (a new regular price) or `promotion` (a temporary price, shown against `compare_at`,
  the regular price struck through). A change with an end date is reverted automatically when it ends.
- `PriceChangeSet`: what one request carries and one `PricePublication` workflow publishes (workflow id
  `price:{change_set_id}`): one approval covers every line.
- `Promotion`: a named discount (percent off) over items and channels for a window; `to_changes` turns it into
  the change set's lines from each item's regular price.
- `PriceList`: the windows already accepted for each item and channel (from the price book); `conflicts` finds a
  new line overlapping one of them — for one item on one channel only one price may be in force at a time.

Pure rules only: no I/O, no Temporal. Amounts are Decimal, rounded half-even to the currency's minor unit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import Field, field_validator, model_validator

from canonical.errors import BUSINESS_ERROR_TYPES, BusinessError
from canonical.fulfillment import StepRecord
from canonical.money import DecimalAmount, currency_code, quantize
from canonical.order import CanonicalModel, UtcDatetime

CHANGE_SET_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
MAX_LINES = 1000


class PriceError(ValueError):
    """A price change that breaks a pricing rule (the API answers 409 for overlaps, 422 otherwise)."""


class InvalidPriceChange(BusinessError):
    """The change set breaks a pricing rule against the price book (an overlap accepted meanwhile, a currency)."""

    action = "Correct the change set and send it again as a new change set."


class PriceNotApplied(BusinessError):
    """The channel took the price, but reading it back shows another one."""

    action = ("Check the item's price in the channel (a rule or another tool may override it), then send `retry`; "
              "or `skip` this channel.")
    skippable = True


# ApplicationError types that park a PricePublication (a channel's refusal among them: ChannelRejected,
# VendorRejected, VendorAuthFailed)
PRICING_ERROR_TYPES: frozenset[str] = BUSINESS_ERROR_TYPES | {"InvalidPriceChange", "PriceNotApplied"}


class PriceKind(StrEnum):
    PRICE = "price"
    PROMOTION = "promotion"


class PriceChange(CanonicalModel):
    """One item's price on one channel for a window."""

    item_code: str = Field(min_length=1, max_length=128, description="The ERP item code")
    channel: str = Field(min_length=1, max_length=64, description="A sales channel (`shopify`, `amazon`) or a store")
    currency: str
    amount: DecimalAmount = Field(description="The price the channel shows, in `currency`")
    compare_at: DecimalAmount | None = Field(
        default=None, description="The regular price shown struck through (promotions); also the price a "
                                  "promotion reverts to when the channel had none before")
    effective_from: UtcDatetime
    effective_to: UtcDatetime | None = Field(default=None, description="When the price ends (then it is reverted)")
    kind: PriceKind = PriceKind.PRICE
    promotion_id: str | None = Field(default=None, max_length=100)

    @field_validator("currency", mode="before")
    @classmethod
    def _currency(cls, v: object) -> str:
        return currency_code(v)

    @model_validator(mode="after")
    def _rules(self) -> PriceChange:
        if self.amount < 0:
            raise ValueError(f"{self.item_code} on {self.channel}: a price cannot be negative ({self.amount})")
        if self.compare_at is not None and self.compare_at < 0:
            raise ValueError(f"{self.item_code} on {self.channel}: compare_at cannot be negative")
        if self.effective_to is not None and self.effective_to <= self.effective_from:
            raise ValueError(f"{self.item_code} on {self.channel}: effective_to must be after effective_from")
        if self.kind == PriceKind.PROMOTION:
            if self.effective_to is None:
                raise ValueError(f"{self.item_code} on {self.channel}: a promotion needs an end (effective_to)")
            if self.compare_at is not None and self.compare_at < self.amount:
                raise ValueError(f"{self.item_code} on {self.channel}: a promotion's price is above its regular "
                                 f"price {self.compare_at}")
        object.__setattr__(self, "amount", quantize(self.amount, self.currency))
        if self.compare_at is not None:
            object.__setattr__(self, "compare_at", quantize(self.compare_at, self.currency))
        return self

    @property
    def key(self) -> tuple[str, str]:
        return (self.item_code, self.channel)

    def overlaps(self, start: datetime, end: datetime | None) -> bool:
        """Whether this line's window [effective_from, effective_to) meets [start, end) (None: open-ended)."""
        return (end is None or self.effective_from < end) and (self.effective_to is None or start < self.effective_to)

    def label(self) -> str:
        until = f" until {self.effective_to.isoformat()}" if self.effective_to else ""
        return f"{self.item_code} on {self.channel}: {self.amount} {self.currency} from " \
               f"{self.effective_from.isoformat()}{until}"


class PriceChangeSet(CanonicalModel):
    """What one request asks for, approved as one (one PricePublication workflow)."""

    change_set_id: str = Field(min_length=1, max_length=100)
    lines: list[PriceChange] = Field(min_length=1, max_length=MAX_LINES)
    reason: str = Field(min_length=1, max_length=2000)
    requested_by: str = Field(min_length=1, max_length=200, description="The requesting principal")
    requested_at: UtcDatetime | None = None

    @field_validator("change_set_id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not CHANGE_SET_ID.match(v):
            raise ValueError("change_set_id: letters, digits and . _ : - only (at most 100), starting with a "
                             "letter or digit")
        return v

    @model_validator(mode="after")
    def _no_overlap_within(self) -> PriceChangeSet:
        problems = overlaps_within(self.lines)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def workflow_id(self) -> str:
        return price_workflow_id(self.change_set_id)

    @property
    def items(self) -> list[str]:
        return sorted({ln.item_code for ln in self.lines})

    @property
    def channels(self) -> list[str]:
        return sorted({ln.channel for ln in self.lines})


def price_workflow_id(change_set_id: str) -> str:
    return f"price:{change_set_id}"


def overlaps_within(lines: Iterable[PriceChange]) -> list[str]:
    """Every pair of lines of one item and channel whose windows overlap (as messages)."""
    seen: dict[tuple[str, str], list[PriceChange]] = {}
    problems = []
    for ln in lines:
        for other in seen.get(ln.key, []):
            if ln.overlaps(other.effective_from, other.effective_to):
                problems.append(f"overlapping effective windows for {ln.item_code} on {ln.channel}: "
                                f"[{other.label()}] and [{ln.label()}]")
        seen.setdefault(ln.key, []).append(ln)
    return problems


class PriceWindow(CanonicalModel):
    """A window already accepted for one item and channel (in the price book), with the change set it is from."""

    change_set_id: str
    item_code: str
    channel: str
    amount: DecimalAmount
    currency: str
    effective_from: UtcDatetime
    effective_to: UtcDatetime | None = None
    status: str


class PriceList(CanonicalModel):
    """The accepted windows per item and channel (pending approval, approved, live): what a new line may not
    overlap. An open-ended price that started earlier is no conflict: the new line supersedes it from its start
    (a promotion over a regular price reverts to it)."""

    windows: list[PriceWindow] = Field(default_factory=list)

    def conflicts(self, change_set: PriceChangeSet) -> list[str]:
        """Why lines of `change_set` overlap an accepted window of another change set (as messages)."""
        problems = []
        for ln in change_set.lines:
            for w in self.windows:
                if w.change_set_id == change_set.change_set_id or (w.item_code, w.channel) != ln.key:
                    continue
                if w.effective_to is None and w.effective_from < ln.effective_from:
                    continue  # an open-ended price is superseded from the new line's start (it is the one reverted to)
                if ln.overlaps(w.effective_from, w.effective_to):
                    until = w.effective_to.isoformat() if w.effective_to else "open-ended"
                    problems.append(
                        f"{ln.item_code} on {ln.channel}: the window from {ln.effective_from.isoformat()} overlaps "
                        f"change set {w.change_set_id!r} ({w.amount} {w.currency}, {w.status}, "
                        f"{w.effective_from.isoformat()} – {until})")
        return problems


def currency_problems(change_set: PriceChangeSet, channel_currencies: Mapping[str, str]) -> list[str]:
    """Lines whose currency is not their channel's (`channel_currencies`: channel → ISO code). A channel not
    listed there is unknown to pricing and refused."""
    problems = []
    for ln in change_set.lines:
        expected = channel_currencies.get(ln.channel)
        if expected is None:
            problems.append(f"{ln.item_code}: channel {ln.channel!r} has no price currency configured "
                            f"(RETAILFLOW_PRICING_CHANNEL_CURRENCIES; known: {', '.join(sorted(channel_currencies))})")
        elif ln.currency != expected.upper():
            problems.append(f"{ln.item_code} on {ln.channel}: priced in {ln.currency}, but {ln.channel} sells in "
                            f"{expected.upper()}")
    return problems


def discount_depth(amount: Decimal, reference: Decimal | None) -> Decimal:
    """How deep a price cuts below its reference (the regular price): 0.25 for 25 % off; 0 without a reference
    or for a price at or above it."""
    if reference is None or reference <= 0 or amount >= reference:
        return Decimal(0)
    return ((reference - amount) / reference).quantize(Decimal("0.0001"))


def change_set_depth(change_set: PriceChangeSet, current: Mapping[tuple[str, str], Decimal | None]) -> Decimal:
    """The deepest discount of the set: each line against its `compare_at`, else the price its channel shows now
    (`current`, by (item, channel))."""
    depths = [discount_depth(ln.amount, ln.compare_at if ln.compare_at is not None else current.get(ln.key))
              for ln in change_set.lines]
    return max(depths, default=Decimal(0))


class Promotion(CanonicalModel):
    """A named percent-off promotion over items and channels for a window."""

    promotion_id: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=200)
    percent_off: DecimalAmount = Field(gt=0, lt=100)
    item_codes: list[str] = Field(min_length=1)
    channels: list[str] = Field(min_length=1)
    effective_from: UtcDatetime
    effective_to: UtcDatetime

    @model_validator(mode="after")
    def _window(self) -> Promotion:
        if self.effective_to <= self.effective_from:
            raise ValueError("effective_to must be after effective_from")
        return self

    def to_changes(self, regular: Mapping[tuple[str, str], tuple[Decimal, str]]) -> list[PriceChange]:
        """The promotion's lines from each (item, channel)'s regular price and currency; a pair without one is a
        PriceError (a promotion cannot discount a price nobody knows)."""
        missing = [f"{i} on {c}" for i in self.item_codes for c in self.channels if (i, c) not in regular]
        if missing:
            raise PriceError(f"promotion {self.promotion_id}: no regular price for {', '.join(missing)}")
        lines = []
        for item in self.item_codes:
            for channel in self.channels:
                price, currency = regular[(item, channel)]
                amount = quantize(price * (Decimal(100) - self.percent_off) / Decimal(100), currency)
                lines.append(PriceChange(item_code=item, channel=channel, currency=currency, amount=amount,
                                         compare_at=price, effective_from=self.effective_from,
                                         effective_to=self.effective_to, kind=PriceKind.PROMOTION,
                                         promotion_id=self.promotion_id))
        return lines


# -- the workflow's view -------------------------------------------------------------------------------------------

class PriceStatus(StrEnum):
    VALIDATING = "validating"
    AWAITING_APPROVAL = "awaiting_approval"
    SCHEDULED = "scheduled"  # approved, waiting for its effective time
    PUBLISHING = "publishing"
    LIVE = "live"  # published and verified on every channel; waiting for an end date, if any
    REVERTING = "reverting"
    COMPLETED = "completed"  # every line published (and reverted where it ended)
    REJECTED = "rejected"
    INVALID = "invalid"
    CANCELLED = "cancelled"
    NEEDS_ATTENTION = "needs_attention"


class ApprovalDecision(CanonicalModel):
    """An `approve` / `reject` update: who (the authenticated principal), with which role, and why."""

    actor: str = Field(min_length=1, max_length=200)
    role: str = Field(min_length=1, max_length=32)
    reason: str | None = Field(default=None, max_length=2000)


class Approval(CanonicalModel):
    actor: str
    role: str
    decision: Literal["approve", "reject"]
    reason: str | None = None
    at: UtcDatetime


class ChannelPrice(CanonicalModel):
    """What a channel shows for one of its SKUs, read back from it."""

    channel: str
    channel_sku: str
    amount: DecimalAmount
    currency: str
    compare_at: DecimalAmount | None = None


class PublishedLine(CanonicalModel):
    """One line on one channel after publishing (or reverting): what it showed before, what it shows now."""

    line: int
    item_code: str
    channel: str
    channel_skus: list[str]
    amount: DecimalAmount
    currency: str
    compare_at: DecimalAmount | None = None
    previous: DecimalAmount | None = None  # what the channel showed before the change (the revert's target)
    previous_compare_at: DecimalAmount | None = None
    action: Literal["publish", "revert"] = "publish"
    skipped: bool = False  # an analyst skipped this channel (it kept its price)
    at: UtcDatetime


class PricePublicationView(CanonicalModel):
    workflow_id: str
    change_set_id: str
    status: PriceStatus
    reason: str | None = None
    requested_by: str
    approvals: list[Approval] = Field(default_factory=list)
    approvals_needed: int = 1
    discount_depth: DecimalAmount = Decimal(0)
    published: list[PublishedLine] = Field(default_factory=list)
    steps: list[StepRecord] = Field(default_factory=list)


class PricePublicationInput(CanonicalModel):
    """The one input of PricePublication (starters/pricing.py builds it from settings)."""

    change_set: PriceChangeSet
    approver_roles: list[str] = Field(default_factory=lambda: ["finance", "admin"], min_length=1)
    second_approval_depth: DecimalAmount = Field(
        default=Decimal("0.30"), ge=0, le=1,
        description="A discount deeper than this (0.30 = 30 % off) needs a second, different approver")
    approval_timeout_hours: int = Field(default=72, gt=0, description="Unapproved for this long: the change ends")
    step_max_attempts: int = Field(default=20, gt=0)
    activity_task_queues: dict[str, str] = Field(default_factory=dict)
