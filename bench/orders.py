"""Drive orders (the real `OrderFulfillment`) and baseline workflows through running bench workers, from the
bench process, and time them from the first start to the last completion."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench.baseline import BareInput
from bench.fixtures import canonical_order, external_id, full_shipment
from canonical.fulfillment import OrderResult
from canonical.order import OrderStatus
from runtime.settings import Settings
from starters.orders import start_order

START_CONCURRENCY = 32  # client RPCs in flight while starting a batch


@dataclass
class Batch:
    count: int
    seconds: float
    failures: int

    @property
    def per_second(self) -> float:
        return self.count / self.seconds


async def _bounded(coros, limit: int) -> list:
    sem = asyncio.Semaphore(limit)

    async def one(coro):
        async with sem:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))


async def start_orders(client: Client, settings: Settings, run: int, n: int, *, ship: bool) -> list[str]:
    """Start `n` orders the way intake does (`starters.orders.start_order`); with `ship` the full shipment is
    signalled right away (the workflow buffers it until it waits for shipments), so no WMS delay is timed."""
    orders = [canonical_order(external_id(run, i), settings.shopify_channel) for i in range(n)]

    async def one(order) -> str:
        wf_id, duplicate = await start_order(client, settings, order)
        if duplicate:
            raise RuntimeError(f"bench order {wf_id} already existed")
        if ship:
            await client.get_workflow_handle(wf_id).signal("shipment", full_shipment(order))
        return wf_id

    return await _bounded([one(o) for o in orders], START_CONCURRENCY)


async def run_orders(client: Client, settings: Settings, run: int, n: int) -> Batch:
    t0 = time.perf_counter()
    ids = await start_orders(client, settings, run, n, ship=True)
    results = await asyncio.gather(*(client.get_workflow_handle(i, result_type=OrderResult).result() for i in ids),
                                   return_exceptions=True)
    seconds = time.perf_counter() - t0
    failures = sum(1 for r in results if isinstance(r, BaseException) or r.status != OrderStatus.COMPLETED)
    if failures == n:
        raise RuntimeError(f"every bench order failed; first: {results[0]!r}")
    return Batch(n, seconds, failures)


def _bare_start_options(shape: BareInput, i: int) -> dict:
    """The plain baseline starts with nothing but id and queue; the "same history" one like `start_order`: the
    same search attributes and a static summary and details of an order's length."""
    if not shape.summaries:
        return {}
    from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

    kw = SearchAttributeKey.for_keyword
    return {"search_attributes": TypedSearchAttributes([
        SearchAttributePair(kw("Channel"), "bench"), SearchAttributePair(kw("ExternalOrderId"), f"bench-{i}"),
        SearchAttributePair(kw("OrderStatus"), "received"),
        SearchAttributePair(SearchAttributeKey.for_bool("NeedsAttention"), False),
        SearchAttributePair(SearchAttributeKey.for_keyword_list("Skus"), ["SKU-A", "SKU-B"])]),
        "static_summary": f"bench order #{i}: 3 item(s), 123.45 USD",
        "static_details": "Order lines:\n- 1 × SKU-A bench item @ 10.00 USD\n- 2 × SKU-B bench item @ 20.00 USD"}


async def run_baseline(client: Client, task_queue: str, shape: BareInput, run: int, n: int) -> Batch:
    t0 = time.perf_counter()

    async def one(i: int) -> str:
        handle = await client.start_workflow("BenchBare", shape, id=f"bench-bare-{run}-{i}", task_queue=task_queue,
                                             **_bare_start_options(shape, i))
        await handle.signal("go", "shipped")
        return handle.id

    ids = await _bounded([one(i) for i in range(n)], START_CONCURRENCY)
    results = await asyncio.gather(*(client.get_workflow_handle(i).result() for i in ids), return_exceptions=True)
    seconds = time.perf_counter() - t0
    failures = sum(1 for r in results if isinstance(r, BaseException))
    if failures == n:
        raise RuntimeError(f"every baseline workflow failed; first: {results[0]!r}")
    return Batch(n, seconds, failures)


async def order_shape(client: Client, workflow_id: str) -> BareInput:
    """The baseline's shape from a completed order's history: its activities, where it waited for the
    shipment signal, and after how many activities each local activity (marker) was recorded."""
    activities = 0
    signal_after = None
    local_at: list[int] = []
    upsert_at: list[int] = []
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            activities += 1
        elif event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            local_at.append(activities)
        elif event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            upsert_at.append(activities)
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED and signal_after is None:
            signal_after = activities
    # the shipment signal is sent right after the start, so it shows up early in the history; the order only
    # consumes it after the warehouse release (6 activities in)
    return BareInput(activities=activities, signal_after=min(6, activities), local_at=local_at,
                     upsert_at=upsert_at)


async def wait_parked(engine, ids: list[str], status: str, timeout: float) -> float:
    """Seconds until every workflow in `ids` shows `status` in the platform's status projection."""
    from sqlalchemy import func, select

    from adapters import sql as db

    t0 = time.perf_counter()
    wanted = set(ids)
    while time.perf_counter() - t0 < timeout:
        with engine.connect() as conn:
            count = conn.execute(select(func.count()).select_from(db.run_status).where(
                db.run_status.c.status == status, db.run_status.c.workflow_id.in_(wanted))).scalar_one()
        if count >= len(wanted):
            return time.perf_counter() - t0
        await asyncio.sleep(0.5)
    raise TimeoutError(f"only {count}/{len(wanted)} orders reached {status} within {timeout:.0f}s")


async def event_counts(client: Client, workflow_id: str) -> dict[str, int]:
    """History events of one workflow by type (EVENT_TYPE_ prefix dropped), plus the total."""
    counts: dict[str, int] = {}
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_").lower()
        counts[name] = counts.get(name, 0) + 1
    counts["total"] = sum(counts.values())
    return counts


async def history_bytes(client: Client, workflow_id: str) -> int:
    """Serialized size of a workflow's whole history (what the server stores and replays)."""
    total = 0
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        total += event.ByteSize()
    return total


async def activity_seconds(client: Client, workflow_id: str) -> dict[str, float]:
    """Seconds from scheduled to completed per activity type (summed over retries and repeats)."""
    scheduled: dict[int, tuple[str, float]] = {}
    out: dict[str, float] = {}
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        t = event.event_time.ToDatetime().timestamp()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[event.event_id] = (event.activity_task_scheduled_event_attributes.activity_type.name, t)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            name, t0 = scheduled[event.activity_task_completed_event_attributes.scheduled_event_id]
            out[name] = out.get(name, 0.0) + t - t0
    return out


async def start_baseline(client: Client, task_queue: str, shape: BareInput, run: int, n: int) -> list[str]:
    """Start `n` bare workflows without their signal: each parks after `shape.signal_after` activities."""
    async def one(i: int) -> str:
        handle = await client.start_workflow("BenchBare", shape, id=f"bench-bare-{run}-{i}", task_queue=task_queue)
        return handle.id

    return await _bounded([one(i) for i in range(n)], START_CONCURRENCY)


async def wait_quiet(client: Client, ids: list[str], pids: list[int], signal_after: int, timeout: float,
                     quiet_cpu: float = 0.05) -> float:
    """Seconds until the processes in `pids` are quiet (below `quiet_cpu` cores for two seconds in a row) and a
    sample of the bare workflows reports it ran `signal_after` activities: parked."""
    import random

    from bench.procs import cpu_seconds

    t0 = time.perf_counter()
    quiet = 0
    while time.perf_counter() - t0 < timeout:
        c0 = sum(cpu_seconds(p) for p in pids)
        await asyncio.sleep(1.0)
        quiet = quiet + 1 if sum(cpu_seconds(p) for p in pids) - c0 < quiet_cpu else 0
        if quiet >= 2:
            sample = random.sample(ids, min(20, len(ids)))
            done = await asyncio.gather(*(client.get_workflow_handle(i).query("progress") for i in sample))
            if all(d >= signal_after for d in done):
                return time.perf_counter() - t0 - 2
            quiet = 0
    raise TimeoutError(f"{len(ids)} bare workflows did not all park within {timeout:.0f}s")
