"""Inventory activities: apply stock events to the ledger, compute availability per channel, publish it to the
channels, reconcile drift. Each is one idempotent call into one adapter.

A channel's 429 (`RateLimited`) becomes a *retryable* ApplicationError with `next_retry_delay`, so Temporal
retries after the channel's Retry-After instead of backing off blindly or hammering it.

`request_inventory_sync` starts InventorySync through the starter the composition root injects
(starters/inventory.py, the one way in).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.orders import business_errors
from adapters.inventory.backorders import BackorderBook
from adapters.inventory.base import StockSnapshotSource
from adapters.inventory.ledger import InventoryLedger
from adapters.marketplace.base import lists_by_channel_sku
from adapters.ports import Adapters
from canonical.errors import RateLimited
from canonical.inventory import (
    Availability,
    BackorderReceipt,
    DriftLine,
    InventoryEvent,
    StockShortfall,
)

log = structlog.get_logger(__name__)

# how `request_inventory_sync` starts InventorySync: starters.inventory.start_inventory_sync, injected by the
# composition root (activities never import the layers that start workflows)
SyncStarter = Callable[..., Awaitable[str]]


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ApplyEventsInput(_In):
    events: list[InventoryEvent]


class ApplySummary(_In):
    applied: int
    replayed: int
    superseded_by_count: int
    shortfalls: list[StockShortfall] = []  # reservations store sales took units from (absent in old histories)
    # orders with a backordered line waiting for stock an event of the batch raised on-hand of (absent in old ones)
    backorder_receipts: list[BackorderReceipt] = []


class OrderKeysInput(_In):
    keys: list[str]


class SkuInput(_In):
    sku: str


class PublishInput(_In):
    channel: str
    sku: str
    quantity: int = Field(ge=0)
    key: str


class SnapshotInput(_In):
    snapshot_id: str | None = None
    source: str = "erp"


class CompareInput(_In):
    snapshot_id: str


class DriftRecordInput(_In):
    run_id: str
    lines: list[DriftLine]
    status: str


class DriftCorrectInput(_In):
    run_id: str
    lines: list[DriftLine]


class SkusInput(_In):
    skus: list[str]


def group_by_sku(events: Iterable[InventoryEvent]) -> dict[str, list[InventoryEvent]]:
    out: dict[str, list[InventoryEvent]] = defaultdict(list)
    for ev in events:
        out[ev.sku].append(ev)
    return dict(out)


def _transient(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A partner's 429 → retryable ApplicationError that Temporal retries after the partner's delay."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RateLimited as exc:
            log.warning("activity.rate_limited", activity=activity.info().activity_type, retry_after=exc.retry_after)
            raise ApplicationError(exc.message, {"retry_after": exc.retry_after}, type="RateLimited",
                                   next_retry_delay=timedelta(seconds=exc.retry_after)) from exc

    return wrapper


class InventoryActivities:
    def __init__(self, adapters: Adapters, *, task_queue: str | None = None, events_per_run: int = 500,
                 sync_starter: SyncStarter | None = None) -> None:
        if adapters.inventory is None:
            raise ValueError("InventoryActivities needs adapters.inventory (the ledger)")
        self.adapters = adapters
        self.ledger: InventoryLedger = adapters.inventory
        self.task_queue = task_queue
        self.events_per_run = events_per_run
        self.sync_starter = sync_starter

    @activity.defn(name="apply_inventory_events")
    @business_errors
    def apply_inventory_events(self, inp: ApplyEventsInput) -> ApplySummary:
        # InventorySync applies these itself, so they do not go through the outbox back to it
        results = self.ledger.apply_events(inp.events, mark_changed=False)
        return ApplySummary(applied=sum(r.applied for r in results), replayed=sum(not r.applied for r in results),
                            superseded_by_count=sum(r.superseded_by_count for r in results),
                            shortfalls=[s for r in results for s in r.shortfalls],
                            backorder_receipts=self._backorder_receipts(inp.events, results))

    def _backorder_receipts(self, events: list[InventoryEvent], results: list) -> list[BackorderReceipt]:
        """Each event that raised on-hand (a receipt, a transfer in, a count or adjustment up), once per order with a
        line waiting for the item at that location. Read after the batch committed: an order that backordered
        before wrote its wait first (plan_sourcing reads the stock again after writing it)."""
        if not any(r.applied and r.on_hand_delta > 0 for r in results):
            return []  # nothing raised on-hand: no lookup (and no database for a stand-in ledger)
        out = self.backorders.receipts(events, results)
        if out:
            log.info("inventory.backorder_receipts", orders=len({b.order_key for b in out}),
                     events=len({b.event_id for b in out}))
        return out

    @property
    def backorders(self) -> BackorderBook:
        return BackorderBook(self.ledger.engine)

    @activity.defn(name="forget_backorders")
    @business_errors
    def forget_backorders(self, inp: OrderKeysInput) -> int:
        """The orders ended (or are gone): their lines wait for nothing; returns the waits removed."""
        return sum(self.backorders.forget(key) for key in inp.keys)

    @activity.defn(name="compute_availability")
    @business_errors
    def compute_availability(self, inp: SkuInput) -> list[Availability]:
        return self.ledger.availability(inp.sku)

    @activity.defn(name="publish_availability")
    @business_errors
    @_transient
    def publish_availability(self, inp: PublishInput) -> None:
        """The ledger and InventorySync speak ERP item codes; a real channel knows its listings by its own SKUs,
        so for those the item's channel SKUs are looked up in the ERP and each is set to the same quantity."""
        market = self.adapters.marketplace
        if not lists_by_channel_sku(market, inp.channel):
            market.publish_availability(inp.channel, inp.sku, inp.quantity, key=inp.key)
            return
        for sku in self.adapters.erp.channel_skus_of(inp.channel, inp.sku):
            market.publish_availability(inp.channel, sku, inp.quantity,
                                        key=inp.key if sku == inp.sku else f"{inp.key}:{sku}")

    # -- drift ----------------------------------------------------------------------------------------
    @activity.defn(name="take_stock_snapshot")
    @business_errors
    @_transient
    def take_stock_snapshot(self, inp: SnapshotInput) -> str:
        if inp.snapshot_id:
            return inp.snapshot_id
        # the ERP port declares stock_snapshot; a WMS may offer it too (the StockSnapshotSource port)
        candidates: dict[str, object] = {"erp": self.adapters.erp, "wms": self.adapters.wms}
        source = candidates.get(inp.source)
        if not isinstance(source, StockSnapshotSource):
            raise ApplicationError(f"adapter {inp.source!r} cannot give a stock snapshot", type="NoSnapshotSource",
                                   non_retryable=True)
        info = activity.info()
        return self.ledger.save_snapshot(source.stock_snapshot(), f"{info.workflow_id}:{info.workflow_run_id}")

    @activity.defn(name="compare_inventory")
    @business_errors
    def compare_inventory(self, inp: CompareInput) -> list[DriftLine]:
        return self.ledger.compare(inp.snapshot_id)

    @activity.defn(name="record_inventory_drift")
    @business_errors
    def record_inventory_drift(self, inp: DriftRecordInput) -> int:
        return self.ledger.record_drift(inp.run_id, inp.lines, inp.status)

    @activity.defn(name="correct_inventory_drift")
    @business_errors
    def correct_inventory_drift(self, inp: DriftCorrectInput) -> int:
        """Post one correcting adjustment per line (snapshot − ledger as found); idempotent per run and line."""
        done = 0
        for ln in inp.lines:
            result = self.ledger.adjust_to(
                ln.sku, ln.location, ln.snapshot_on_hand, source="drift", expected_on_hand=ln.ledger_on_hand,
                source_event_id=f"drift:{inp.run_id}:{ln.sku}:{ln.location}", reference=inp.run_id)
            done += result.applied
        self.ledger.record_drift(inp.run_id, inp.lines, "corrected")
        return done

    @activity.defn(name="request_inventory_sync")
    async def request_inventory_sync(self, inp: SkusInput) -> int:
        if self.sync_starter is None:
            raise ApplicationError("this worker was built without an InventorySync starter",
                                   type="NotConfigured", non_retryable=True)
        client = activity.client()
        for sku in inp.skus:
            await self.sync_starter(client, sku=sku, task_queue=self.task_queue or activity.info().task_queue,
                                       events_per_run=self.events_per_run)
        return len(inp.skus)

    def all(self) -> list[Callable[..., Any]]:
        return [self.apply_inventory_events, self.compute_availability, self.publish_availability,
                self.take_stock_snapshot, self.compare_inventory, self.record_inventory_drift,
                self.correct_inventory_drift, self.request_inventory_sync, self.forget_backorders]


