"""InventorySync on the time-skipping server. The activities are the real InventoryActivities over an in-memory
ledger and a recording marketplace: coalescing (many events in a window → one publication per channel),
immediate publication at zero and below the low-stock threshold, continue-as-new carrying its state, and a
channel's 429 retried after its Retry-After."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.worker import Worker

from activities.inventory import InventoryActivities
from adapters.inventory.ledger import availability_of
from adapters.ports import Adapters
from canonical.errors import RateLimited
from canonical.inventory import (
    ApplyResult,
    ChannelInventoryPolicy,
    InventoryEvent,
    InventorySyncInput,
    StockLevel,
)
from workflows.inventory_sync import InventorySync

POLICIES = {
    "shopify": ChannelInventoryPolicy(low_stock_threshold=5, publish_window_seconds=60),
    "amazon": ChannelInventoryPolicy(low_stock_threshold=0, publish_window_seconds=300),
}
T0 = datetime(2026, 11, 2, tzinfo=UTC)


class MemoryLedger:
    """On-hand per SKU (receipts and sales), idempotent by source event id."""

    def __init__(self) -> None:
        self.on_hand: dict[str, int] = {}
        self.seen: set[str] = set()
        self.applied = 0

    def apply_events(self, events, *, mark_changed=True):
        out = []
        for ev in events:
            new = ev.source_event_id not in self.seen
            if new:
                self.seen.add(ev.source_event_id)
                self.applied += 1
                sign = 1 if ev.kind == "receipt" else -1
                self.on_hand[ev.sku] = self.on_hand.get(ev.sku, 0) + sign * ev.quantity
            out.append(ApplyResult(source_event_id=ev.source_event_id, applied=new))
        return out

    def availability(self, sku):
        levels = [StockLevel(sku=sku, location="MAIN", on_hand=self.on_hand.get(sku, 0))]
        return [availability_of(levels, ch, POLICIES[ch]).model_copy(update={"sku": sku}) for ch in sorted(POLICIES)]


class RecordingMarket:
    def __init__(self, rate_limited: int = 0) -> None:
        self.published: list[tuple[str, str, int]] = []
        self.attempts: list[tuple[int, datetime]] = []
        self.rate_limited = rate_limited

    def publish_availability(self, channel, sku, quantity, *, key=None):
        info = activity.info()
        self.attempts.append((info.attempt, info.current_attempt_scheduled_time))
        if self.rate_limited > 0:
            self.rate_limited -= 1
            raise RateLimited("429 Too Many Requests", retry_after=30)
        self.published.append((channel, sku, quantity))

    def of(self, channel: str) -> list[int]:
        return [q for ch, _, q in self.published if ch == channel]


def ev(sku: str, kind: str, qty: int, n: int | None = None) -> InventoryEvent:
    return InventoryEvent(source="wms", source_event_id=f"{sku}-{n if n is not None else uuid.uuid4().hex}",
                          kind=kind, sku=sku, location="MAIN", quantity=qty, occurred_at=T0)


class Harness:
    def __init__(self, env, market: RecordingMarket | None = None) -> None:
        self.env = env
        self.ledger = MemoryLedger()
        self.market = market or RecordingMarket()
        adapters = Adapters(erp=None, wms=None, tax=None, marketplace=self.market,  # type: ignore[arg-type]
                            inventory=self.ledger)  # type: ignore[arg-type]
        self.acts = InventoryActivities(adapters)
        self.queue = f"inv-{uuid.uuid4().hex[:8]}"

    def worker(self) -> Worker:
        return Worker(self.env.client, task_queue=self.queue, workflows=[InventorySync], activities=self.acts.all(),
                      activity_executor=concurrent.futures.ThreadPoolExecutor(8))

    async def start(self, sku: str, events: list[InventoryEvent], **kw) -> WorkflowHandle:
        return await self.env.client.start_workflow(
            InventorySync.run, InventorySyncInput(sku=sku, **kw), id=f"inventory:{sku}", task_queue=self.queue,
            start_signal="events", start_signal_args=[events])

    async def until(self, predicate, *, step: float = 1, limit: int = 120) -> None:
        for _ in range(limit):
            if predicate():
                return
            await self.env.sleep(step)
        raise AssertionError("condition not reached")


async def test_many_events_in_a_window_make_one_publication_per_channel(ts_env):
    h = Harness(ts_env)
    sku = f"SKU-{uuid.uuid4().hex[:6]}"
    async with h.worker():
        handle = await h.start(sku, [ev(sku, "receipt", 100)])
        await h.until(lambda: h.market.of("shopify") == [100] and h.market.of("amazon") == [100])
        for _ in range(20):  # twenty sales within the window
            await handle.signal(InventorySync.events, [ev(sku, "sale", 1)])
        await h.until(lambda: h.ledger.on_hand[sku] == 80)
        await ts_env.sleep(20)
        assert h.market.of("shopify") == [100]  # still inside shopify's 60 s window
        await h.until(lambda: len(h.market.of("shopify")) == 2, step=5)
        assert h.market.of("shopify") == [100, 80] and h.market.of("amazon") == [100]  # amazon: 300 s
        await h.until(lambda: len(h.market.of("amazon")) == 2, step=30)
        assert h.market.of("amazon") == [100, 80]
        await ts_env.sleep(600)
        assert h.market.of("shopify") == [100, 80]  # nothing changed: nothing published again
        view = await handle.query(InventorySync.status)
        assert view.events_this_run == 21 and view.published["shopify"].quantity == 80
        await handle.terminate()


async def test_zero_and_low_stock_are_published_at_once(ts_env):
    h = Harness(ts_env)
    sku = f"SKU-{uuid.uuid4().hex[:6]}"
    async with h.worker():
        handle = await h.start(sku, [ev(sku, "receipt", 10)])
        await h.until(lambda: h.market.of("shopify") == [10])
        start = await ts_env.get_current_time()
        await handle.signal(InventorySync.events, [ev(sku, "sale", 6)])  # 4 < threshold 5
        await h.until(lambda: h.market.of("shopify") == [10, 4], step=0.5)
        await handle.signal(InventorySync.events, [ev(sku, "sale", 4)])  # zero
        await h.until(lambda: h.market.of("shopify") == [10, 4, 0] and h.market.of("amazon") == [10, 0], step=0.5)
        assert await ts_env.get_current_time() - start < timedelta(seconds=30)  # no window waited
        await handle.terminate()


async def test_continue_as_new_keeps_pending_events_and_what_was_published(ts_env):
    h = Harness(ts_env)
    sku = f"SKU-{uuid.uuid4().hex[:6]}"
    async with h.worker():
        handle = await h.start(sku, [ev(sku, "receipt", 50, 0)], events_per_run=5)
        first_run = (await handle.describe()).run_id
        await h.until(lambda: h.market.of("shopify") == [50])
        for i in range(1, 13):
            await handle.signal(InventorySync.events, [ev(sku, "sale", 1, i), ev(sku, "sale", 1, i)])  # dup
        await h.until(lambda: h.ledger.applied == 13)
        await h.until(lambda: len(h.market.of("shopify")) == 2, step=5)
        latest = h.env.client.get_workflow_handle(f"inventory:{sku}")
        view = await latest.query(InventorySync.status)
        assert view.run >= 2 and (await latest.describe()).run_id != first_run
        assert h.ledger.on_hand[sku] == 38 and h.market.of("shopify") == [50, 38]
        assert view.published["shopify"].quantity == 38  # carried across runs
        await latest.terminate()


async def test_a_channels_429_is_retried_after_its_delay(ts_env):
    market = RecordingMarket(rate_limited=2)
    h = Harness(ts_env, market)
    sku = f"SKU-{uuid.uuid4().hex[:6]}"
    async with h.worker():
        start = await ts_env.get_current_time()
        handle = await h.start(sku, [ev(sku, "receipt", 7)])
        await h.until(lambda: len(market.published) == 2, step=1)
        elapsed = await ts_env.get_current_time() - start
        assert sorted(market.of("shopify") + market.of("amazon")) == [7, 7]
        assert sorted(a for a, _ in market.attempts) == [1, 1, 2, 2]  # each channel: one 429, then through
        assert elapsed >= timedelta(seconds=30), elapsed  # after the Retry-After, not a hot loop
        await handle.terminate()


async def test_idle_sync_ends_by_itself(ts_env):
    h = Harness(ts_env)
    sku = f"SKU-{uuid.uuid4().hex[:6]}"
    async with h.worker():
        handle = await h.start(sku, [ev(sku, "receipt", 3)], idle_hours=1)
        await asyncio.wait_for(handle.result(), timeout=60)
        assert h.market.of("shopify") == [3]
