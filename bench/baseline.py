"""The bare-Temporal baseline: a workflow with the same shape as an order — the same number of activities in
sequence, a signal it waits for partway (the shipment), and fire-and-forget local activities at the same
points (the status projection) — whose activities do nothing."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import SearchAttributeKey

ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")
NEEDS_ATTENTION = SearchAttributeKey.for_bool("NeedsAttention")


@dataclass
class BareInput:
    activities: int = 10
    signal_after: int = 6  # activities run before waiting for the `go` signal (an order waits after release)
    local_at: list[int] = field(default_factory=lambda: [0, 6, 7, 10])  # local activity fired after N activities
    payload: str = ""
    # the order's Temporal features, for the "bare, same history" contender: an OrderStatus/NeedsAttention upsert
    # after N activities (one entry per upsert) and a summary on every activity
    upsert_at: list[int] = field(default_factory=list)
    summaries: bool = False


@activity.defn(name="bench_noop")
def noop(payload: str) -> str:
    """Sync, like the platform's activities, so it runs on the same thread-pool executor."""
    return payload


@activity.defn(name="bench_local_noop")
def local_noop(payload: str) -> str:
    return payload


@workflow.defn(name="BenchBare")
class BareWorkflow:
    def __init__(self) -> None:
        self._go = False
        self._done = 0

    @workflow.query
    def progress(self) -> int:
        """Activities completed so far (the footprint bench checks the parked ones reached their signal)."""
        return self._done

    @workflow.signal
    def go(self, payload: str) -> None:
        self._go = True

    @workflow.run
    async def run(self, inp: BareInput) -> int:
        pending: list[asyncio.Future] = []

        def fire_locals(done: int) -> None:
            for _ in range(inp.local_at.count(done)):
                pending.append(asyncio.ensure_future(workflow.execute_local_activity(
                    local_noop, inp.payload, start_to_close_timeout=timedelta(seconds=10))))

        def upserts(done: int) -> None:
            for _ in range(inp.upsert_at.count(done)):
                workflow.upsert_search_attributes([ORDER_STATUS.value_set(f"step-{done}"),
                                                   NEEDS_ATTENTION.value_set(False)])

        upserts(0)
        fire_locals(0)
        for i in range(inp.activities):
            if i == inp.signal_after:
                await workflow.wait_condition(lambda: self._go)
            await workflow.execute_activity(noop, inp.payload, start_to_close_timeout=timedelta(seconds=60),
                                            summary=f"Bench no-op step {i + 1} of {inp.activities}, as an order's "
                                            "step summary" if inp.summaries else None)
            self._done = i + 1
            upserts(i + 1)
            fire_locals(i + 1)
        await asyncio.gather(*pending)
        return inp.activities + len(pending)
