"""Inventory as the platform sees it: stock events from every source, ledger levels, availability per channel.

Quantities are whole units (`int`); allocation shares are `Decimal`. Every event carries the id its source gave
it (`source_event_id`), which makes replaying it a no-op.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import Field, NonNegativeInt, field_validator, model_validator

from canonical.order import CanonicalModel, UtcDatetime


class InventoryEventKind(StrEnum):
    RECEIPT = "receipt"  # goods received at a location: on-hand up
    ADJUSTMENT = "adjustment"  # signed correction of on-hand (found, lost, drift correction)
    CYCLE_COUNT = "cycle_count"  # the counted on-hand at `occurred_at`; later movements apply on top of it
    SALE = "sale"  # a unit left the building (POS sale, shipment): on-hand down
    RESERVATION = "reservation"  # units promised to an order: reserved up
    RELEASE = "release"  # a reservation given back: reserved down
    ALLOCATION = "allocation"  # reserved units handed to the warehouse for picking (signed): allocated up
    TRANSFER_OUT = "transfer_out"  # on-hand down here, in transit to `counterpart_location`
    TRANSFER_IN = "transfer_in"  # on-hand up here, in transit here down
    DAMAGE = "damage"  # a unit found damaged: out of sellable on-hand into `damaged`


SIGNED_KINDS = frozenset({InventoryEventKind.ADJUSTMENT, InventoryEventKind.ALLOCATION})


class InventoryEvent(CanonicalModel):
    """One stock movement reported by a source system (WMS, ERP, POS, the platform itself)."""

    source: str = Field(min_length=1, max_length=64, description="Who reported it: wms, erp, pos:store-12 …")
    source_event_id: str = Field(min_length=1, max_length=255, description="The source's id; replays are no-ops")
    kind: InventoryEventKind
    sku: str = Field(min_length=1, max_length=64, description="The ERP item code")
    location: str = Field(min_length=1, max_length=64)
    quantity: int = Field(description="Units; > 0 except for adjustment/allocation (signed) and cycle_count (>= 0)")
    occurred_at: UtcDatetime = Field(description="When it happened at the source (timezone-aware, stored UTC)")
    counterpart_location: str | None = Field(
        default=None, max_length=64, description="transfer_out: the destination; transfer_in: the origin")
    reference: str | None = Field(default=None, max_length=255, description="Order, transfer or count reference")

    @field_validator("source", "source_event_id", "sku", "location", "counterpart_location", "reference")
    @classmethod
    def _no_nul(cls, v: str | None) -> str | None:
        # PostgreSQL text cannot hold a NUL: such an event would fail the ledger on every retry, holding up the SKU
        if v is not None and "\x00" in v:
            raise ValueError("must not contain a NUL character (\\u0000)")
        return v

    @model_validator(mode="after")
    def _check(self) -> InventoryEvent:
        if self.kind == InventoryEventKind.CYCLE_COUNT:
            if self.quantity < 0:
                raise ValueError("a cycle count cannot be negative")
        elif self.kind in SIGNED_KINDS:
            if self.quantity == 0:
                raise ValueError(f"a {self.kind} of 0 units changes nothing")
        elif self.quantity <= 0:
            raise ValueError(f"a {self.kind} must move a positive quantity")
        if self.kind == InventoryEventKind.TRANSFER_OUT and not self.counterpart_location:
            raise ValueError("a transfer_out needs counterpart_location (the destination)")
        if self.counterpart_location and self.counterpart_location == self.location:
            raise ValueError("a transfer needs two different locations")
        return self


class InventoryEventBatch(CanonicalModel):
    events: list[InventoryEvent] = Field(min_length=1, max_length=5000)


class StockLevel(CanonicalModel):
    """The ledger's row for one SKU at one location."""

    sku: str
    location: str
    on_hand: int
    reserved: int = 0
    allocated: int = 0
    in_transit: int = 0
    damaged: int = 0
    last_count_at: datetime | None = None

    @property
    def free(self) -> int:
        return self.on_hand - self.reserved - self.allocated


class ChannelInventoryPolicy(CanonicalModel):
    """How a sales channel sees stock (configured in `RETAILFLOW_INVENTORY_CHANNELS`)."""

    locations: list[str] = Field(default_factory=list, description="Eligible locations; empty means all")
    share: Decimal = Field(default=Decimal(1), gt=0, le=1, description="Allocation share of the free stock")
    safety_stock: int = Field(default=0, ge=0, description="Units held back at each eligible location")
    location_buffers: dict[str, NonNegativeInt] = Field(
        default_factory=dict, description="Units held back from this channel at these locations (store shelves: "
        "RETAILFLOW_INVENTORY_STORE_BUFFERS), on top of safety_stock")
    low_stock_threshold: int = Field(default=0, ge=0, description="Publish at once when ATS drops below this")
    publish_window_seconds: int = Field(default=60, ge=0, description="At most one publication per window")
    backorder: bool | None = Field(default=None, description="Backorder when short; None: the global setting")


class Availability(CanonicalModel):
    """Available to sell for one SKU on one channel, and the policy it was computed with."""

    sku: str
    channel: str
    ats: int = Field(ge=0)
    on_hand: int
    reserved: int
    allocated: int
    locations: list[str]
    low_stock_threshold: int = 0
    publish_window_seconds: int = 60
    backorder: bool = False


class StockShortfall(CanonicalModel):
    """Units an open reservation lost to a store sale (issue 17): the sale is a fact (the customer left with the
    item), so the ledger takes the units back from the reservations that held them — by policy the newest
    reservation at that location first — and each affected order is told (signal `stock_shortfall`)."""

    reservation_key: str = Field(description="The reservation's key: the order workflow id")
    item_code: str
    location: str
    quantity: int = Field(gt=0, description="Units the reservation lost (released from it with the sale)")
    cause_source: str = Field(description="The sale's source (pos, pos:AMS01, square …)")
    cause_event_id: str = Field(description="The sale's source_event_id")
    store: str | None = Field(default=None, description="The store that sold them (the sale's location)")
    occurred_at: UtcDatetime


class BackorderWait(CanonicalModel):
    """A backordered order line waiting for stock of one item (issue 20): the line's item, or one component of the
    kit it sold. Written by the sourcing activity when a plan backorders the line, removed when a plan places it or
    the order ends (`adapters/inventory/backorders.py`, table `backorder_waits`)."""

    order_key: str = Field(min_length=1, description="The order workflow id")
    line_id: str = Field(min_length=1)
    item_code: str = Field(min_length=1)
    channel: str = Field(min_length=1)
    quantity: int = Field(gt=0, description="Units of item_code the line needs")
    locations: list[str] = Field(default_factory=list, description="Where a receipt may place it: the locations of "
                                 "the nodes the channel's policy still plans on for this order; empty: anywhere")
    since: datetime | None = Field(default=None, description="When the line first waited for the item")


class BackorderReceipt(CanonicalModel):
    """Stock of an item arrived at a location where a backordered line of an order waits for it: InventorySync
    signals the order `stock_received` (event id = the stock event's source_event_id)."""

    order_key: str
    event_id: str
    item_code: str
    quantity: int = Field(gt=0, description="Units on-hand rose by")
    location: str


class ShortPickLine(CanonicalModel):
    line_id: str
    channel_sku: str
    item_code: str | None = None
    quantity: int = Field(gt=0, description="Units not picked")


class ShortPick(CanonicalModel):
    """The warehouse picked fewer units than released (issue 17): it shipped what was there (a partial shipment,
    possibly of nothing) and reports the rest short. Signal `short_pick` of OrderFulfillment."""

    release_id: str
    external_ref: str = Field(description="The order workflow id")
    lines: list[ShortPickLine] = Field(min_length=1)
    reported_at: UtcDatetime


class ApplyResult(CanonicalModel):
    source_event_id: str
    applied: bool  # False: a replay (the source event id was seen before)
    on_hand_delta: int = 0
    superseded_by_count: bool = False  # older than the latest cycle count: its on-hand effect is in the count
    shortfalls: list[StockShortfall] = Field(default_factory=list, description="Reservations this (store) sale took "
                                             "units from")


class DriftLine(CanonicalModel):
    sku: str
    location: str
    ledger_on_hand: int
    snapshot_on_hand: int

    @property
    def difference(self) -> int:
        return self.snapshot_on_hand - self.ledger_on_hand


class StockSnapshotLine(CanonicalModel):
    sku: str = Field(min_length=1, max_length=64)
    location: str = Field(min_length=1, max_length=64)
    on_hand: int = Field(ge=0)


def inventory_workflow_id(sku: str) -> str:
    return f"inventory:{sku}"


# -- InventorySync / drift workflow payloads -------------------------------------------------------------
class PublishedState(CanonicalModel):
    quantity: int
    at: datetime
    error: str | None = None  # the channel refused it (non-retryable); the next change publishes again


class InventorySyncInput(CanonicalModel):
    sku: str = Field(min_length=1, max_length=64)
    pending: list[InventoryEvent] = Field(default_factory=list, description="Events carried over continue-as-new")
    published: dict[str, PublishedState] = Field(default_factory=dict)
    refresh: bool = Field(default=False, description="Recompute and publish at start (stock changed elsewhere)")
    events_per_run: int = Field(default=500, gt=0, description="Continue as new after this many events")
    idle_hours: float = Field(default=24, gt=0, description="End after this long with nothing to do")
    run: int = 1


class InventorySyncView(CanonicalModel):
    sku: str
    run: int
    pending_events: int
    events_this_run: int
    availability: list[Availability]
    published: dict[str, PublishedState]
    publishing: list[str]


class DriftInput(CanonicalModel):
    snapshot_id: str | None = Field(default=None, description="A stored snapshot (e.g. loaded from a CSV)")
    source: str = Field(default="erp", description="Else the adapter whose stock_snapshot() to take: erp or wms")
    threshold: int = Field(default=10, ge=0, description="Differences beyond this many units park for an analyst")


class DriftResult(CanonicalModel):
    run_id: str
    snapshot_id: str
    differences: int
    corrected: int
    skipped: int
    republished: list[str]
