"""InventorySync (`inventory:{sku}`): one per SKU, started or signalled with signal-with-start.

- `events` (a batch of canonical stock events) are applied to the ledger in one activity per wake-up, however
  many arrived meanwhile; `refresh` says the stock moved elsewhere (the ERP reserved or shipped), so only
  availability is recomputed.
- Availability is published to each channel at most once per the channel's window (leading edge, then the
  latest number at the end of the window: N changes in a window → one more publication), and at once when the
  SKU drops to zero or below the channel's low-stock threshold. Unchanged numbers are not published again.
- Publications run in the background, one per channel at a time, retried without limit (a channel's 429 after
  its Retry-After); meanwhile new events keep being applied and coalesced.
- After `events_per_run` events (or when Temporal suggests it) the run continues as new, carrying the events not
  yet applied and what each channel was last told; after `idle_hours` with nothing to do it ends (the next
  signal-with-start begins afresh).
- A store sale that took units open reservations held (a *shortfall*, `ApplySummary.shortfalls`) is told to each
  affected order workflow (signal `stock_shortfall`, id = the reservation key; an order that is gone or closed is
  logged, not an error), and the next publication to every channel goes out at once, not at the window's end.
  StoreDay applies POS sales itself and sends this workflow the `shortfall` signal for the same effect.
- A stock event that raised on-hand at a location (a receipt, a transfer in, a count or adjustment up) where a
  backordered order line waits for the item (table `backorder_waits`, `ApplySummary.backorder_receipts`) is told
  to that order (signal `stock_received`, event id = the stock event's source_event_id, so a redelivery is dropped
  by the order); an order that is gone is logged and its waits are removed (patch `backorder-receipts-v1`).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.inventory import (
        ApplyEventsInput,
        InventoryActivities,
        OrderKeysInput,
        PublishInput,
        SkuInput,
    )
    from activities.sourcing import StockReceived
    from canonical.inventory import (
        Availability,
        BackorderReceipt,
        InventoryEvent,
        InventorySyncInput,
        InventorySyncView,
        PublishedState,
        StockShortfall,
    )
    from canonical.sourcing import order_of_reference
    from workflows import search_attributes as sa

LEDGER_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                           maximum_interval=timedelta(seconds=60), maximum_attempts=0)
PUBLISH_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), backoff_coefficient=2.0,
                            maximum_interval=timedelta(minutes=5), maximum_attempts=0)
ACTIVITY_TIMEOUT = timedelta(seconds=60)
# The order signals and the at-once publication after a shortfall. Deprecated (workflow.deprecate_patch;
# docs/deployment.md "Safe deploys"): the code before it is gone, the call goes next release.
SHORTFALL_PATCH = "stock-shortfall-signals"
STOCK_SHORTFALL_SIGNAL = "stock_shortfall"  # OrderFulfillment's signal
# A split order reserves per node under its releases' references (canonical.sourcing.release_reference): the
# shortfall of one goes to the order's workflow, not to a workflow named after the reservation.
SPLIT_SHORTFALL_PATCH = "split-release-shortfalls"
# Issue 20: a receipt of an item that backordered order lines wait for is told to each order (`stock_received`).
BACKORDER_RECEIPTS_PATCH = "backorder-receipts-v1"
STOCK_RECEIVED_SIGNAL = "stock_received"  # OrderFulfillment's signal


async def signal_shortfalls(shortfalls: list[StockShortfall]) -> list[str]:
    """Tell each affected order workflow (id = the reservation key) what its reservation lost. A missing or closed
    order workflow does not fail the caller: it is logged and returned ("key: why")."""
    failed = []
    for s in shortfalls:
        target = s.reservation_key
        if workflow.patched(SPLIT_SHORTFALL_PATCH):  # a split order's node reservation: `<order>/<node>/<n>`
            target = order_of_reference(s.reservation_key)[0]
        try:
            await workflow.get_external_workflow_handle(target).signal(STOCK_SHORTFALL_SIGNAL, s)
        except FailureError as err:
            workflow.logger.warning("order %s not told of its %d-unit shortfall of %s at %s (sale %s): %s",
                                    s.reservation_key, s.quantity, s.item_code, s.location, s.cause_event_id,
                                    err.message)
            failed.append(f"{s.reservation_key}: {err.message}")
    return failed


async def signal_backorder_receipts(receipts: list[BackorderReceipt]) -> tuple[list[str], list[str]]:
    """Tell each order with a backordered line waiting for the item that stock arrived. Returns the orders that
    could not be told (gone or closed: "key: why") and their keys; the caller removes their waits."""
    failed, gone = [], []
    for r in receipts:
        try:
            await workflow.get_external_workflow_handle(r.order_key).signal(
                STOCK_RECEIVED_SIGNAL, StockReceived(event_id=r.event_id, item_code=r.item_code, quantity=r.quantity,
                                                     location=r.location))
        except FailureError as err:
            workflow.logger.warning("order %s not told of the receipt %s (%d × %s at %s): %s", r.order_key,
                                    r.event_id, r.quantity, r.item_code, r.location, err.message)
            failed.append(f"{r.order_key}: {err.message}")
            gone.append(r.order_key)
    return failed, sorted(set(gone))


@workflow.defn(name="InventorySync")
class InventorySync:
    @workflow.init
    def __init__(self, inp: InventorySyncInput) -> None:
        self._inp = inp
        self._sku = inp.sku
        self._pending: list[InventoryEvent] = list(inp.pending)
        self._pending_ids: set[str] = {e.source_event_id for e in self._pending}
        self._dirty = inp.refresh or bool(self._pending)
        self._published: dict[str, PublishedState] = dict(inp.published)
        self._latest: dict[str, Availability] = {}
        self._inflight: dict[str, asyncio.Task] = {}
        self._woken = False
        self._events_this_run = 0
        self._rush_pending = False  # a shortfall happened: the next publication of every channel goes out at once
        self._rush: set[str] = set()  # the channels owed that at-once publication
        self.shortfall_signal_failures: list[str] = []
        self.receipt_signal_failures: list[str] = []

    # -- signals and queries ----------------------------------------------------------------------------
    @workflow.signal
    def events(self, events: list[InventoryEvent]) -> None:
        for ev in events:
            if ev.sku != self._sku:
                workflow.logger.warning("event %s is for %s, not %s: ignored", ev.source_event_id, ev.sku, self._sku)
                continue
            if ev.source_event_id not in self._pending_ids:  # a duplicate delivery within the batch window
                self._pending_ids.add(ev.source_event_id)
                self._pending.append(ev)
        self._dirty = True

    @workflow.signal
    def refresh(self) -> None:
        self._dirty = True

    @workflow.signal
    def shortfall(self, shortfalls: list[StockShortfall]) -> None:
        """A store sale elsewhere (StoreDay) took reserved units of this SKU: recompute and publish at once."""
        workflow.deprecate_patch(SHORTFALL_PATCH)  # deprecated: every run acts on it
        self._dirty = True
        self._rush_pending = True

    @workflow.query
    def status(self) -> InventorySyncView:
        return InventorySyncView(sku=self._sku, run=self._inp.run, pending_events=len(self._pending),
                                 events_this_run=self._events_this_run,
                                 availability=[self._latest[c] for c in sorted(self._latest)],
                                 published=dict(self._published), publishing=sorted(self._inflight))

    # -- the run --------------------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: InventorySyncInput) -> None:
        workflow.upsert_search_attributes([sa.SKUS.value_set([self._sku])])
        idle = timedelta(hours=inp.idle_hours)
        while True:
            due = self._next_due()
            busy = bool(self._inflight) or due is not None
            timeout = due - workflow.now() if due is not None else None if busy else idle
            if not self._dirty and (timeout is None or timeout > timedelta(0)):
                try:
                    await workflow.wait_condition(lambda: self._dirty or self._woken, timeout=timeout)
                except TimeoutError:
                    if not busy and not self._dirty:
                        await workflow.wait_condition(workflow.all_handlers_finished)
                        if not self._dirty:
                            workflow.logger.info("inventory sync for %s idle for %s: ending", self._sku, idle)
                            return
            self._woken = False
            if self._dirty:
                await self._apply_and_compute()
            self._publish_due()
            if self._should_continue_as_new():
                await self._continue_as_new()

    async def _apply_and_compute(self) -> None:
        self._dirty = False
        batch, self._pending = self._pending, []
        shortfalls: list[StockShortfall] = []
        receipts: list[BackorderReceipt] = []
        if batch:
            summary = await workflow.execute_activity_method(
                InventoryActivities.apply_inventory_events, ApplyEventsInput(events=batch),
                start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=LEDGER_RETRY,
                summary=f"Apply {len(batch)} stock event(s) of {self._sku} to the ledger")
            self._pending_ids.difference_update(e.source_event_id for e in batch)
            self._events_this_run += len(batch)
            if summary.shortfalls:
                workflow.deprecate_patch(SHORTFALL_PATCH)
                shortfalls = list(summary.shortfalls)
                self._rush_pending = True
            if summary.backorder_receipts and workflow.patched(BACKORDER_RECEIPTS_PATCH):
                receipts = list(summary.backorder_receipts)
        availability = await workflow.execute_activity_method(
            InventoryActivities.compute_availability, SkuInput(sku=self._sku),
            start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=LEDGER_RETRY,
            summary=f"Compute availability of {self._sku} per channel")
        self._latest = {a.channel: a for a in availability}
        if self._rush_pending:
            self._rush_pending = False
            self._rush = set(self._latest)
        if shortfalls:
            self._publish_due()  # the at-once publications first, then the orders
            self.shortfall_signal_failures = (self.shortfall_signal_failures
                                              + await signal_shortfalls(shortfalls))[-50:]
        if receipts:
            failed, gone = await signal_backorder_receipts(receipts)
            self.receipt_signal_failures = (self.receipt_signal_failures + failed)[-50:]
            if gone:  # the order ended without removing its waits (terminated, or it failed to): they go now
                await workflow.execute_activity_method(
                    InventoryActivities.forget_backorders, OrderKeysInput(keys=gone),
                    start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=LEDGER_RETRY,
                    summary=f"Forget the backorders of {len(gone)} order(s) that are gone")

    # -- publication policy ---------------------------------------------------------------------------
    def _changed(self, channel: str) -> bool:
        last = self._published.get(channel)
        return last is None or last.quantity != self._latest[channel].ats

    def _urgent(self, channel: str) -> bool:
        """Never told, dropped to zero, crossed below the low-stock threshold, or a store sale just took reserved
        units (a shortfall): publish at once."""
        a, last = self._latest[channel], self._published.get(channel)
        if last is None or channel in self._rush:
            return True
        if a.ats == 0:
            return last.quantity != 0
        return a.ats < a.low_stock_threshold <= last.quantity

    def _due_at(self, channel: str) -> datetime | None:
        """When the channel may next be told (None: nothing to tell)."""
        if channel in self._inflight or not self._changed(channel):
            return None
        last = self._published.get(channel)
        if last is None or self._urgent(channel):
            return workflow.now()
        return last.at + timedelta(seconds=self._latest[channel].publish_window_seconds)

    def _next_due(self) -> datetime | None:
        dues = [d for d in (self._due_at(c) for c in self._latest) if d is not None]
        return min(dues) if dues else None

    def _publish_due(self) -> None:
        now = workflow.now()
        for channel in sorted(self._latest):
            due = self._due_at(channel)
            if due is not None and due <= now:
                self._inflight[channel] = asyncio.create_task(self._publish(channel, self._latest[channel]))
                self._rush.discard(channel)
            elif due is None and channel not in self._inflight:  # unchanged: nothing owed at once
                self._rush.discard(channel)

    async def _publish(self, channel: str, a: Availability) -> None:
        started = workflow.now()
        key = f"{workflow.info().workflow_id}:{channel}:{workflow.uuid4()}"
        try:
            await workflow.execute_activity_method(
                InventoryActivities.publish_availability,
                PublishInput(channel=channel, sku=a.sku, quantity=a.ats, key=key),
                start_to_close_timeout=timedelta(seconds=30), retry_policy=PUBLISH_RETRY,
                summary=f"Publish {a.ats} available of {a.sku} to {channel}")
            self._published[channel] = PublishedState(quantity=a.ats, at=started)
        except ActivityError as err:  # the channel refused it (non-retryable): say so, try on the next change
            cause = err.cause
            message = str(cause.message if isinstance(cause, ApplicationError) else cause or err)
            workflow.logger.warning("publishing %s to %s failed: %s", a.sku, channel, message)
            self._published[channel] = PublishedState(quantity=a.ats, at=started, error=message)
        finally:
            self._inflight.pop(channel, None)
            self._woken = True

    # -- keeping the history bounded ------------------------------------------------------------------
    def _should_continue_as_new(self) -> bool:
        return (self._events_this_run >= self._inp.events_per_run
                or workflow.info().is_continue_as_new_suggested())

    async def _continue_as_new(self) -> None:
        if self._inflight:  # let running publications finish so what each channel was told is carried over
            await asyncio.gather(*list(self._inflight.values()))
        await workflow.wait_condition(workflow.all_handlers_finished)
        owed = any(self._changed(c) for c in self._latest)
        workflow.continue_as_new(self._inp.model_copy(update={
            "pending": list(self._pending), "published": dict(self._published),
            "refresh": owed or bool(self._pending), "run": self._inp.run + 1}))
