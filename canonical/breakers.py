"""A partner's circuit breaker (workflows/partner_breaker.py): what the workers report and what it answers."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from canonical.order import CanonicalModel

BreakerState = Literal["closed", "open", "half_open"]


class BreakerInput(CanonicalModel):
    """One breaker per partner task queue (`breaker:{queue}`)."""

    queue: str = Field(min_length=1)
    normal_rate: float | None = Field(default=None, description="The queue's activities/second when closed "
                                      "(RETAILFLOW_PARTNER_ACTIVITY_RATE_LIMITS); None: no limit")
    failure_threshold: int = Field(default=5, ge=1, description="Transient failures in a row that open it")
    open_seconds: float = Field(default=30.0, gt=0, description="How long it stays open before a probe")
    probe_rate: float = Field(default=0.2, gt=0, description="Activities/second let through while half-open")
    state: BreakerState = "closed"
    consecutive_failures: int = 0
    trips: int = 0


class BreakerReport(CanonicalModel):
    """What the workers saw of the partner's activities since their last report."""

    failures: int = Field(default=0, ge=0)
    successes: int = Field(default=0, ge=0)
    last_error: str | None = None
    last_success_after_failure: bool = False
    vendor_rate: float | None = Field(default=None, gt=0, description="The lowest rate (requests/second) the "
                                      "vendor said it allows (x-amzn-RateLimit-Limit)")
    near_limit: bool = Field(default=False, description="The vendor's bucket was at least 80 % full")
    rate_limited: int = Field(default=0, ge=0, description="Answers 429 (the vendor is up and asks to wait): not "
                              "failures, but the queue is dispatching faster than the vendor's quota")


class BreakerView(CanonicalModel):
    queue: str
    state: BreakerState
    consecutive_failures: int
    trips: int
    since: datetime | None = None
    last_error: str | None = None
    rate: float | None = None  # the queue's dispatch rate the breaker set last (None: the workers' own)
