"""Inventory benchmark: stock events through `InventorySync` (the ledger, availability per channel, coalesced
publication) against a bare Temporal workflow of the same shape.

The baseline `BenchBareSync` is started and signalled exactly like `inventory:{sku}` (signal-with-start with the
same canonical `InventoryEvent` batches) and, per wake-up, runs the same two activities in sequence — apply the
batch, compute availability — as no-ops that return the worker's clock, so its "lag" is how long Temporal itself
takes from the signal to the applying activity. It publishes nothing: publication and its coalescing window are
the platform's own job.

Stock moves by receipts of one unit, so the on-hand after event k of a SKU is k and a publication of quantity q
to a share-1 channel covers every event up to k = q; that is how each event's publication lag is measured
(`bench.stats.coverage_lags`)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from canonical.inventory import InventoryEvent

# the channel policies the bench worker runs with: a short window so the lag and coalescing show in seconds
WINDOW_SECONDS = 2
LAG_CHANNEL = "shopify"  # share 1, no safety stock: quantity published == events applied
BENCH_CHANNELS = {
    "shopify": {"locations": ["MAIN"], "low_stock_threshold": 0, "publish_window_seconds": WINDOW_SECONDS},
    "amazon": {"locations": ["MAIN"], "share": "0.5", "safety_stock": 2, "low_stock_threshold": 0,
               "publish_window_seconds": WINDOW_SECONDS},
}


def channels_env() -> dict[str, str]:
    return {"RETAILFLOW_INVENTORY_CHANNELS": json.dumps(BENCH_CHANNELS)}


def event(sku: str, seq: int) -> InventoryEvent:
    """Event `seq` (1-based) of `sku`: a receipt of one unit, id `{sku}:{seq}`."""
    return InventoryEvent(source="wms", source_event_id=f"{sku}:{seq}", kind="receipt", sku=sku, location="MAIN",
                          quantity=1, occurred_at=datetime.now(UTC))


def seq_of(source_event_id: str) -> int:
    return int(source_event_id.rsplit(":", 1)[1])


# -- the baseline workflow ------------------------------------------------------------------------------------
@dataclass
class BareSyncInput:
    sku: str
    expected: int  # events to apply before the run ends


@dataclass
class BareSyncLog:
    applied: list[list[float]] = field(default_factory=list)  # [highest seq applied, worker clock when applied]
    wakeups: int = 0


@activity.defn(name="bench_apply_events_noop")
def apply_noop(events: list[InventoryEvent]) -> float:
    return time.time()


@activity.defn(name="bench_compute_noop")
def compute_noop(sku: str) -> float:
    return time.time()


@workflow.defn(name="BenchBareSync")
class BareSync:
    def __init__(self) -> None:
        self._pending: list[InventoryEvent] = []

    @workflow.signal
    def events(self, events: list[InventoryEvent]) -> None:
        self._pending.extend(events)

    @workflow.run
    async def run(self, inp: BareSyncInput) -> BareSyncLog:
        log = BareSyncLog()
        done = 0
        while done < inp.expected:
            await workflow.wait_condition(lambda: bool(self._pending))
            batch, self._pending = self._pending, []
            at = await workflow.execute_activity(apply_noop, batch, start_to_close_timeout=timedelta(seconds=60))
            await workflow.execute_activity(compute_noop, inp.sku, start_to_close_timeout=timedelta(seconds=60))
            done += len(batch)
            log.wakeups += 1
            log.applied.append([max(seq_of(e.source_event_id) for e in batch), at])
        return log


# -- load -----------------------------------------------------------------------------------------------------
async def send_burst(send, skus: list[str], per_sku: int, batch: int) -> float:
    """Every SKU's events in batches of `batch`, SKUs in parallel, each SKU's batches in order; returns the
    time the first batch was sent."""
    t0 = time.time()

    async def one(sku: str) -> None:
        for start in range(1, per_sku + 1, batch):
            await send(sku, [event(sku, s) for s in range(start, min(start + batch, per_sku + 1))])

    await asyncio.gather(*(one(s) for s in skus))
    return t0


async def send_paced(send, skus: list[str], rate_per_sku: float, seconds: float) -> dict[str, list[float]]:
    """One event per SKU every 1/rate seconds for `seconds`; returns each SKU's send times (index k-1 = event k)."""
    sent: dict[str, list[float]] = {s: [] for s in skus}
    n = int(rate_per_sku * seconds)
    t0 = time.monotonic()

    async def one(sku: str, offset: float) -> None:
        for k in range(1, n + 1):
            delay = t0 + offset + (k - 1) / rate_per_sku - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[sku].append(time.time())
            await send(sku, [event(sku, k)])

    # SKUs spread over the interval, so the load is even rather than in bursts
    await asyncio.gather(*(one(s, i / (rate_per_sku * len(skus))) for i, s in enumerate(skus)))
    return sent
