"""Pure figure arithmetic used by the benchmarks and the report (no timing, no I/O)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


def percentile(values: Sequence[float], pct: float) -> float:
    """The `pct`-th percentile (0..100) by linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile must be within 0..100, not {pct}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low, high = math.floor(rank), math.ceil(rank)
    if low == high:
        return float(ordered[low])
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def rate(count: int, seconds: float) -> float:
    if seconds <= 0:
        raise ValueError(f"elapsed time must be positive, not {seconds}")
    return count / seconds


def ratio(measured: float, baseline: float) -> float | None:
    """measured / baseline; None when there is no meaningful baseline."""
    if baseline <= 0 or math.isnan(baseline) or math.isnan(measured):
        return None
    return measured / baseline


@dataclass
class Figure:
    """One reported figure: the platform's value next to its baseline, with the goal on their ratio."""

    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    goal: float | None = None  # minimum acceptable value / baseline
    mode: str = ""  # which Temporal server mode it was measured on
    better: str = "higher"  # "higher" (throughput) or "lower" (latency, memory, publishes): how to read the ratio
    notes: list[str] = field(default_factory=list)
    skipped: str = ""  # why it was not measured in this run (the row is still reported, saying so)

    @property
    def ratio(self) -> float | None:
        return None if self.baseline is None or self.skipped else ratio(self.value, self.baseline)

    @property
    def goal_text(self) -> str:
        if self.goal is None:
            return "—"
        return f"{'≤' if self.better == 'lower' else '≥'} {self.goal}"

    @property
    def verdict(self) -> str:
        if self.skipped:
            return f"skipped: {self.skipped}"
        r = self.ratio
        if self.goal is None or r is None:
            return "—"
        if self.better == "lower":
            return "meets goal" if r <= self.goal else "above goal"
        return "meets goal" if r >= self.goal else "below goal"


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    if value != 0 and abs(value) < 10 ** -digits:
        return f"{value:.{digits + 2}f}"
    return f"{value:,.{digits}f}"


def latency_summary(latencies_s: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds."""
    return {"p50_ms": percentile(latencies_s, 50) * 1000, "p95_ms": percentile(latencies_s, 95) * 1000,
            "p99_ms": percentile(latencies_s, 99) * 1000, "max_ms": max(latencies_s) * 1000}


def scaling_efficiency(rates_by_workers: dict[int, float]) -> dict[int, float]:
    """Throughput with n workers relative to n × the single-worker throughput (1.0 = linear)."""
    if 1 not in rates_by_workers or rates_by_workers[1] <= 0:
        raise ValueError("scaling needs a positive 1-worker throughput")
    one = rates_by_workers[1]
    return {n: r / (n * one) for n, r in sorted(rates_by_workers.items())}


def coverage_lags(sent: Sequence[float], covered: Sequence[tuple[float, int]]) -> tuple[list[float], int]:
    """Lag of each event from when it was sent to the first later moment that covers it.

    `sent[k - 1]` is when event k was sent; `covered` are (time, n) pairs meaning "by this time events 1..n were
    reflected" (a publication of quantity n, an activity that applied up to n). Returns the lags of the covered
    events and how many events nothing covered. Coverage is cumulative, so a pair only counts for events it
    covers that were sent before it."""
    lags: list[float] = []
    pairs = sorted(covered)
    uncovered = 0
    for k, t_sent in enumerate(sent, start=1):
        hit = next((t for t, n in pairs if n >= k and t >= t_sent), None)
        if hit is None:
            uncovered += 1
        else:
            lags.append(hit - t_sent)
    return lags, uncovered


def growth_exponent(small: tuple[int, float], large: tuple[int, float]) -> float:
    """b in seconds ∝ size^b from two (size, seconds) points: 1.0 is linear, 2.0 quadratic."""
    (n1, t1), (n2, t2) = small, large
    if n1 <= 0 or n2 <= n1 or t1 <= 0 or t2 <= 0:
        raise ValueError("growth needs two positive points of increasing size")
    return math.log(t2 / t1) / math.log(n2 / n1)


def per_unit_growth(small: tuple[int, float], large: tuple[int, float]) -> float:
    """Seconds per unit at the large size ÷ at the small size (1.0: linear; above: super-linear)."""
    (n1, t1), (n2, t2) = small, large
    return (t2 / n2) / (t1 / n1)


def windows_rate(count: int, seconds: float, window: float) -> float:
    """Occurrences per window of `window` seconds over a span of `seconds`."""
    if window <= 0:
        raise ValueError("the window must be positive")
    return count / (seconds / window) if seconds > 0 else float("nan")
