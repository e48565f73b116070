"""PartnerBreaker (`breaker:{queue}`): the circuit breaker of one partner task queue (docs/operations.md,
"Partner circuit breakers").

The workers report what they see of the partner's activities (`report` signals: transient failures — 5xx,
timeouts, refused connections — and successes; business answers are the partner working and do not count). After
`failure_threshold` failures in a row the breaker **opens**: the queue's dispatch rate is set to 0 on the Temporal
server, so no activity of that partner is attempted (none burns its retries, none fails; every order waiting on
it shows a pending activity in the Web UI) while the rest of the platform runs. After `open_seconds` it goes
**half-open**: the queue is let through at `probe_rate` — the real waiting activities are the probe. A success
closes it (the normal rate again); a failure opens it again. A 429 is not a failure (the vendor is up and asks to
wait): sustained 429s cut the queue's rate and quiet reports raise it back step by step (additive increase,
multiplicative decrease), so a vendor throttling at a quota it does not announce is met at about that quota. State: the `state` query, the workflow's current
details in the Web UI, `retailflow_partner_breaker_state{partner}`, `GET /ops/breakers`."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

from canonical.breakers import BreakerInput, BreakerReport, BreakerState, BreakerView

with workflow.unsafe.imports_passed_through():
    from activities.breakers import BreakerActivities

REPORTS_PER_RUN = 500  # continue-as-new after this many reports (the history stays small)
QUICK = timedelta(seconds=30)
CUT_EVERY = timedelta(seconds=2)  # 429s cut the queue's rate at most this often (the cut needs time to show)
CUT_SHARE = 0.05  # a cut needs at least this share of the attempts since the last cut refused with 429
CUT_FACTOR = 0.7  # what a cut keeps of the rate (multiplicative decrease)
RAISE_STEP = 0.05  # each report without a 429 gives back this share of the normal rate (additive increase)


@workflow.defn(name="PartnerBreaker")
class PartnerBreaker:
    def __init__(self) -> None:
        self._reports: list[BreakerReport] = []
        self._seen = 0
        self._state: BreakerState = "closed"
        self._failures = 0
        self._trips = 0
        self._since: datetime | None = None
        self._last_error: str | None = None
        self._rate: float | None = None  # the rate this breaker last set on the queue
        self._vendor_rate: float | None = None
        self._near_limit = False
        self._limited = 0  # 429s in the reports just taken
        self._throttle: float | None = None  # the rate the vendor's 429s allow (AIMD), None: not throttled
        self._last_cut: datetime | None = None
        self._window = [0, 0]  # 429s and successes since the last cut

    @workflow.signal
    def report(self, report: BreakerReport) -> None:
        self._reports.append(report)

    @workflow.query
    def state(self) -> BreakerView:
        return BreakerView(queue=self._inp.queue, state=self._state, consecutive_failures=self._failures,
                           trips=self._trips, since=self._since, last_error=self._last_error, rate=self._rate)

    def _closed_rate(self) -> float | None:
        """Closed: the configured rate, lowered to what the vendor says it allows, halved while its bucket is
        nearly full (slow down before it refuses)."""
        rate = self._inp.normal_rate
        if self._vendor_rate is not None:
            rate = self._vendor_rate if rate is None else min(rate, self._vendor_rate)
        if self._throttle is not None:
            rate = self._throttle if rate is None else min(rate, self._throttle)
        if self._near_limit and rate is not None:
            rate = max(rate / 2, self._inp.probe_rate)
        return rate

    def _adapt(self, successes: int) -> None:
        """A vendor that answers 429 without saying its quota (a throttling ERP): cut the queue's rate to
        CUT_FACTOR of itself (at most every CUT_EVERY, and only when at least CUT_SHARE of the attempts since the
        last cut were refused: a stray 429 of a burst is not a quota) while 429s come; give back RAISE_STEP of the
        normal rate per quiet report, until the normal rate again. The activities wait in the queue instead of
        burning their attempts on refusals."""
        inp = self._inp
        self._window[0] += self._limited
        self._window[1] += successes
        if self._limited:
            now = workflow.now()
            limited, ok = self._window
            if (self._last_cut is None or now - self._last_cut >= CUT_EVERY) and limited >= CUT_SHARE * (limited + ok):
                base = self._rate or inp.normal_rate or max(float(successes), 1.0)
                self._throttle = max(base * CUT_FACTOR, inp.probe_rate)
                self._last_cut = now
                self._window = [0, 0]
        elif successes and self._throttle is not None:
            ceiling = inp.normal_rate
            self._throttle += max((ceiling or self._throttle) * RAISE_STEP, 0.1)
            if ceiling is not None and self._throttle >= ceiling:
                self._throttle = None

    async def _set_rate(self, rate: float | None, reason: str) -> None:
        await workflow.execute_activity_method(BreakerActivities.set_partner_queue_rate,
                                               args=[self._inp.queue, rate, reason], start_to_close_timeout=QUICK)
        self._rate = rate

    async def _enter(self, state: BreakerState) -> None:
        inp = self._inp
        rate = {"open": 0.0, "half_open": inp.probe_rate, "closed": self._closed_rate()}[state]
        reason = f"breaker {state}: {self._failures} transient failure(s) in a row; last: {self._last_error or '-'}"
        await self._set_rate(rate, reason)
        await workflow.execute_activity_method(BreakerActivities.observe_breaker_state, args=[inp.queue, state],
                                               start_to_close_timeout=QUICK)
        since = workflow.now()
        self._state, self._since = state, since  # what the query says once the queue and metric agree
        if state == "open":
            self._trips += 1
        workflow.set_current_details(
            f"**{state.replace('_', '-')}** since {since.isoformat(timespec='seconds')} — queue `{inp.queue}`, "
            f"{self._trips} trip(s); last error: {self._last_error or '-'}")
        workflow.logger.info("partner breaker %s", state)

    def _take(self) -> tuple[int, int]:
        failures = successes = limited = 0
        near = False
        for r in self._reports:
            failures += r.failures
            successes += r.successes
            limited += r.rate_limited
            near = near or r.near_limit
            if r.last_error:
                self._last_error = r.last_error
            if r.vendor_rate is not None:
                self._vendor_rate = r.vendor_rate  # the vendor's latest word
        self._near_limit = near
        self._limited = limited
        self._seen += len(self._reports)
        self._reports.clear()
        return failures, successes

    @workflow.run
    async def run(self, inp: BreakerInput) -> None:
        self._inp = inp
        self._state, self._failures, self._trips = inp.state, inp.consecutive_failures, inp.trips
        if self._state != "closed":  # carried over a continue-as-new: make the queue's rate match again
            await self._enter(self._state)
        while self._seen < REPORTS_PER_RUN:
            if self._state == "open":
                await workflow.sleep(timedelta(seconds=inp.open_seconds))
                self._take()  # what failed while open was queued work timing out, not a probe
                await self._enter("half_open")
                continue
            await workflow.wait_condition(lambda: bool(self._reports))
            failures, successes = self._take()
            if self._state == "half_open":
                if successes and not failures:
                    self._failures = 0
                    await self._enter("closed")
                elif failures:
                    self._failures += failures
                    await self._enter("open")
                continue
            if successes and not failures:
                self._failures = 0
            elif failures:
                self._failures = (0 if successes else self._failures) + failures
                if self._failures >= inp.failure_threshold:
                    await self._enter("open")
                    continue
            self._adapt(successes)
            wanted = self._closed_rate()
            if wanted != self._rate and not (wanted is not None and self._rate is not None
                                             and abs(wanted - self._rate) < 0.1 * self._rate):
                await self._set_rate(wanted, f"back-pressure: vendor allows {self._vendor_rate or '-'}/s"
                                             f"{', bucket nearly full' if self._near_limit else ''}"
                                             f"{f', answering 429 (throttled to {self._throttle:.2f}/s)' if self._throttle else ''}")
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(inp.model_copy(update={"state": self._state, "consecutive_failures": self._failures,
                                                        "trips": self._trips}))
