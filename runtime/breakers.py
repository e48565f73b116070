"""What the workers see of the partner queues' activities, reported to each queue's PartnerBreaker
(workflows/partner_breaker.py): the activity interceptor (runtime/observability.py) counts outcomes here, and the
worker's relay (`relay_breaker_reports`, every second) signals-with-start `breaker:{queue}` with what it counted.
Only the partner queues (RETAILFLOW_PARTNER_ACTIVITY_RATE_LIMITS) are watched; a transient failure is a vendor's
5xx, a timeout, a refused connection (VendorUnavailable); a 429 is counted apart (the vendor is up and asks to
wait: it slows the queue, it never opens the breaker)."""

from __future__ import annotations

import asyncio
import threading
from contextvars import ContextVar
from dataclasses import dataclass, field

import structlog
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from activities.breakers import set_key_rate
from adapters.http import RATE_OBSERVERS, RateSignal
from canonical.breakers import BreakerInput, BreakerReport
from runtime.settings import Settings
from workflows.priorities import priority_for

log = structlog.get_logger(__name__)
BREAKER_WORKFLOW = "PartnerBreaker"


def breaker_id(queue: str) -> str:
    return f"breaker:{queue}"


NEAR_LIMIT = 0.8  # a vendor bucket this full slows the queue before the vendor refuses
CURRENT_QUEUE: ContextVar[str | None] = ContextVar("retailflow_activity_task_queue", default=None)


@dataclass
class _Counts:
    failures: int = 0
    successes: int = 0
    last_error: str | None = None
    vendor_rate: float | None = None
    near_limit: bool = False
    rate_limited: int = 0


@dataclass
class BreakerReports:
    """Thread-safe counts per partner queue since the last relay."""

    queues: frozenset[str] = frozenset()
    _counts: dict[str, _Counts] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def watch(self, queues: set[str] | frozenset[str]) -> None:
        self.queues = frozenset(queues)

    def record(self, queue: str, *, ok: bool, transient: bool = False, error: str | None = None,
               rate_limited: bool = False) -> None:
        """One attempt's outcome: a success, a transient failure (counts toward opening), or a 429 (`rate_limited`:
        slows the queue, never opens it)."""
        if queue not in self.queues or (not ok and not transient and not rate_limited):
            return
        with self._lock:
            c = self._counts.setdefault(queue, _Counts())
            if rate_limited and not ok:
                c.rate_limited += 1
            elif ok:
                c.successes += 1
            else:
                c.failures += 1
                c.last_error = (error or "")[:300] or None

    def record_rate(self, queue: str | None, signal: RateSignal) -> None:
        """A vendor's rate-limit headers seen by an activity of `queue` (the interceptor's CURRENT_QUEUE)."""
        if queue not in self.queues:
            return
        with self._lock:
            c = self._counts.setdefault(queue, _Counts())
            if signal.limit_per_second is not None:
                c.vendor_rate = min(c.vendor_rate or signal.limit_per_second, signal.limit_per_second)
            if signal.used is not None and signal.used >= NEAR_LIMIT:
                c.near_limit = True

    def drain(self) -> dict[str, BreakerReport]:
        with self._lock:
            counts, self._counts = self._counts, {}
        return {q: BreakerReport(failures=c.failures, successes=c.successes, last_error=c.last_error,
                                 vendor_rate=c.vendor_rate, near_limit=c.near_limit, rate_limited=c.rate_limited)
                for q, c in counts.items()
                if c.failures or c.successes or c.vendor_rate or c.near_limit or c.rate_limited}


REPORTS = BreakerReports()  # the process's reporter (the interceptor records into it)


def _rate_observer(signal: RateSignal) -> None:
    REPORTS.record_rate(CURRENT_QUEUE.get(), signal)


if _rate_observer not in RATE_OBSERVERS:  # adapters/http.py tells every vendor answer's rate-limit headers
    RATE_OBSERVERS.append(_rate_observer)


def breaker_input(settings: Settings, queue: str) -> BreakerInput:
    return BreakerInput(queue=queue, normal_rate=settings.partner_activity_rate_limits.get(queue),
                        failure_threshold=settings.breaker_failure_threshold,
                        open_seconds=settings.breaker_open_seconds, probe_rate=settings.breaker_probe_rate)


async def send_reports(client: Client, settings: Settings, reports: dict[str, BreakerReport]) -> None:
    for queue, report in reports.items():
        await client.start_workflow(
            BREAKER_WORKFLOW, breaker_input(settings, queue), id=breaker_id(queue),
            task_queue=settings.queue_for("orders"), start_signal="report", start_signal_args=[report],
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            priority=priority_for("orders", queue),  # a breaker guards order flows: it runs with them
            static_summary=f"Circuit breaker of the partner queue {queue}")


async def relay_breaker_reports(client: Client, settings: Settings, *, stop: asyncio.Event,
                                reports: BreakerReports = REPORTS, interval: float = 1.0) -> None:
    """Signal each watched queue's breaker with what this worker saw, every `interval` seconds, until `stop`."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            pass
        pending = reports.drain()
        if not pending:
            continue
        try:
            await send_reports(client, settings, pending)
        except Exception as exc:  # Temporal away: the counts of this interval are dropped, the next ones go
            log.warning("breaker.report_failed", error=str(exc)[:200])


async def apply_partner_key_rates(client: Client, settings: Settings, *, attempts: int = 30,
                                  pause: float = 1.0) -> dict[str, float]:
    """Set each partner queue's per-shop rate (RETAILFLOW_PARTNER_FAIRNESS_KEY_RATE_LIMITS) on the Temporal server:
    every fairness key (an activity inherits its workflow's, the order's channel: the shop) is dispatched at most
    that fast, whatever the queue's own rate (the breaker's, which its updates leave this one alone). Idempotent;
    every worker sets it at start. Returns what was set."""
    applied: dict[str, float] = {}
    for queue, rate in sorted(settings.partner_fairness_key_rate_limits.items()):
        for attempt in range(attempts):
            try:
                await set_key_rate(client, queue, rate, f"per-shop quota: {rate}/s per fairness key")
                applied[queue] = rate
                break
            except Exception as exc:  # noqa: BLE001 - the server busy or starting: try again, then say so
                if attempt == attempts - 1:
                    log.warning("partner.key_rate_not_set", queue=queue, rate=rate, error=str(exc)[:200])
                else:
                    await asyncio.sleep(pause)
    if applied:
        log.info("partner.key_rates_set", rates=applied)
    return applied
