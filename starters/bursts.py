"""A store's order burst, measured where orders start: the orders above its fair rate start one priority lower.

Why (docs/operations.md, "A second store during a burst"): Temporal's fairness keys order what waits in a task
queue's shared backlog, but a running workflow's next task goes to the *sticky* queue of the worker that has it
cached, where priority is honoured and fairness keys are not (measured on the dev server:
tests/integration/test_priority_fairness.py, the sticky-queue test).
During a flash sale of one shop, a second shop's orders then wait behind the burst's tasks at every step. So the
burst itself is demoted: a token bucket per store (the fairness key, the channel) refills at
`RETAILFLOW_ORDER_BURST_PER_MINUTE` and holds `RETAILFLOW_ORDER_BURST_ALLOWANCE` orders; an order that finds its
store's bucket empty starts at `workflows.priorities.ORDERS_BURST` (3) instead of `ORDERS` (1): still ahead of
settlements, drift checks and reporting, behind the other stores' orders, returns and inventory publication. Nothing
is refused or delayed when the workers keep up: priority only orders a backlog.

The bucket is per process (each API replica and each worker running an order poll meters the orders it starts), so
with N replicas behind a balancer a store's full-priority rate is about N × the setting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

from runtime.observability import ORDERS_BURST_DEMOTED

log = structlog.get_logger("retailflow.starters.bursts")


class BurstMeter:
    """Token buckets per store: `take(key)` is False when the store is above its rate (the order is demoted)."""

    def __init__(self, per_minute: float, allowance: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0  # tokens per second; 0: metering off
        self.allowance = float(max(allowance, 1))
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> bool:
        if self.rate <= 0:
            return True
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (self.allowance, now))
            tokens = min(self.allowance, tokens + (now - at) * self.rate)
            ok = tokens >= 1.0
            self._buckets[key] = (tokens - 1.0 if ok else tokens, now)
            if len(self._buckets) > 10_000:  # stores seen once long ago: drop the full buckets
                self._buckets = {k: v for k, v in self._buckets.items()
                                 if v[0] + (now - v[1]) * self.rate < self.allowance}
        if not ok:
            ORDERS_BURST_DEMOTED.labels(channel=key).inc()
        return ok


_METERS: dict[tuple[float, int], BurstMeter] = {}
_METERS_LOCK = threading.Lock()


def meter_for(per_minute: float, allowance: int) -> BurstMeter:
    """The process's meter for these settings (one per process, shared by every start)."""
    with _METERS_LOCK:
        meter = _METERS.get((per_minute, allowance))
        if meter is None:
            meter = _METERS[(per_minute, allowance)] = BurstMeter(per_minute, allowance)
        return meter
