"""The Runbook: the one parking machine every retailflow workflow that parks uses, so that each reads as its
business story only (OrderFulfillment, ReturnToRefund, StoreDay, SettlementReconciliation, InventoryDrift).

- `_step` runs one activity (`StepOptions`: timeout, heartbeat, retry policy, cancellation, task queue). A business
  fault (an `ApplicationError` whose type is in `RunbookConfig.parking_errors`) or a transient fault that outlasts
  its retry budget *parks* the run: status `needs_attention`, the reason and what to do, `NeedsAttention=true`; it
  then waits for an analyst's `retry`, `skip` (only where the step may be skipped) or `cancel`. An unrecoverable
  (non-retryable, non-business) failure raises `StepFailed`, so the workflow compensates — unless it is past its
  point of no return (goods shipped, money refunded), or the workflow parks on everything (`fail_fast=False`).
- Undo steps are registered *before* their step runs (a step that timed out may still have happened) and run
  in reverse by `_run_undo`, each retried and recorded; one that fails is recorded and the rest still run.
- The analyst's `retry`/`skip`/`cancel` signals live here; the validated `act` update (what the API sends) is
  made once by `analyst_update(View)`, which a workflow assigns as its `act` (the view type is what it returns).
- All of the machinery's state is ONE `RunbookState` (`self.rb`); what differs per workflow is ONE
  `RunbookConfig` (the class attribute `RUNBOOK`) and a few hooks: `_set_status` (required), `status` (the query
  `act` returns), `_committed`, `_cancel_refusal`, `_may_cancel`, `_on_analyst_action`, `_accept_resume`,
  `_validate_resume`.
- Handlers that await (e.g. OrderFulfillment.cancel_lines) hold `rb.handler_lock`; the main line stays out of
  their way through `rb.busy`/`rb.amending`. Every run ends with `_wind_up()`: the status projection is written
  and every handler has finished (`workflow.all_handlers_finished`) before the run returns.

Activities are found by name without SDK internals: a step's activity is routed to
`rb.activity_queues[f"{activity.__name__}@{rb.channel}"]`, else `rb.activity_queues[activity.__name__]`, when the
run was given partner task queues (`queue_of`), so an activity a Runbook workflow
runs must be registered under its method's name (`@activity.defn(name="reserve_stock") def reserve_stock`), as every
one in activities/ is (only the order poll's differ, and the poll does not park; tests/unit/test_architecture.py
checks it); `StepOptions.task_queue` names a queue explicitly.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.ops import OpsActivities
    from canonical.fulfillment import AnalystAction, StepRecord, StepState
    from canonical.ops import AnalystRequest, RunStatusUpdate

ACTIVITY_TIMEOUT = timedelta(seconds=60)
# Undo steps are retried until they succeed or their 30 minutes are up; a business refusal is recorded.
COMPENSATION_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=60),
                                 maximum_attempts=0)
COMPENSATION_TIMEOUT = timedelta(minutes=30)
PROJECTION_TIMEOUT = timedelta(seconds=10)
PROJECTION_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(milliseconds=200))


def step_retry_policy(max_attempts: int) -> RetryPolicy:
    """The retry budget of a main-line step: exponential from 1s to 60s, `max_attempts` attempts."""
    return RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                       maximum_interval=timedelta(seconds=60), maximum_attempts=max_attempts)


class CancelRequested(Exception):
    def __init__(self, action: AnalystAction) -> None:
        super().__init__(action.reason or "cancelled")
        self.action = action


class StepFailed(Exception):
    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step
        self.message = message


@dataclass(frozen=True)
class StepOptions:
    """How one activity runs. `None` means: the run's default (config timeout, the run's retry policy, the partner
    task queue configured for the activity or else the run's own queue)."""

    start_to_close: timedelta | None = None
    schedule_to_close: timedelta | None = None
    heartbeat: timedelta | None = None
    retry_policy: RetryPolicy | None = None
    cancellation: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL
    task_queue: str | None = None
    cancellable: bool = True  # an analyst's pending `cancel` stops the run before this step starts


UNDO_OPTIONS = StepOptions(start_to_close=ACTIVITY_TIMEOUT, schedule_to_close=COMPENSATION_TIMEOUT,
                           retry_policy=COMPENSATION_RETRY)


@dataclass
class Undo:
    name: str
    activity: Any
    arg: Any
    summary: str


@dataclass(frozen=True)
class RunbookConfig:
    """What differs between the workflows that park (set once per workflow class as `RUNBOOK`)."""

    kind: str  # the run kind in logs ("order")
    noun: str  # how the API's messages name the run ("the order is ...")
    parking_errors: frozenset[str]  # ApplicationError types that park (business faults)
    needs_attention: Any  # the workflow's status member for a parked run
    closed: frozenset  # statuses in which no analyst action applies any more
    committed_action: str = "Nothing can be undone now; fix the cause, then send `retry`."  # parking, no undo
    cancel_too_late: str = "it is too late to undo"  # recorded when a cancel comes past the point of no return
    cancel_refused: str = "it is too late to cancel"  # `act(cancel)` refused past the point of no return
    resume_refused: str | None = "there is no data to correct; fix the cause, then retry"  # None: resume applies
    fail_fast: bool = True  # an unrecoverable failure raises StepFailed (else it parks, like a business fault)
    details_skippable: bool = True  # a business fault's details may make the parked step skippable
    step_timeout: timedelta = ACTIVITY_TIMEOUT  # start-to-close of a step unless its StepOptions say otherwise
    await_projection: bool = False  # wait for the status projection when parking/resuming (SettlementReconciliation)


@dataclass
class RunbookState:
    """All of the Runbook's state for one run (`self.rb`)."""

    status: Any  # the workflow's status (its StrEnum member, or a plain string)
    retry_policy: RetryPolicy  # the retry budget of a main-line step
    activity_queues: dict[str, str] = field(default_factory=dict)  # activity name (or name@channel) → queue
    channel: str | None = None  # the run's channel (the order's, the return's): picks `name@channel` routes
    reason: str | None = None  # why the run is where it is (while parked: the reason and what to do)
    action_hint: str | None = None  # what an analyst should do about the parked step
    parked_skippable: bool = False  # the parked step may be skipped
    current_step: str | None = None  # the step running (or last run)
    steps: list[StepRecord] = field(default_factory=list)  # the step list the status query returns
    undo: list[Undo] = field(default_factory=list)  # registered undo steps, in registration order
    compensated: list[str] = field(default_factory=list)  # undo steps that ran
    pending: tuple[str, AnalystAction] | None = None  # an analyst's retry/skip/resume/... not yet taken
    cancel: AnalystAction | None = None  # an analyst's cancel not yet taken
    last_actor: str = "unknown"  # who took the last analyst action
    last_reason: str | None = None  # why
    busy: bool = False  # an activity of the main line is running
    amending: bool = False  # an update handler is changing the documents the main line works on
    handler_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # held by update handlers that await
    projection_tasks: list[asyncio.Future] = field(default_factory=list)  # status projections being written


def queue_of(routes: dict[str, str], activity: str, channel: str | None) -> str | None:
    """The task queue `routes` (RETAILFLOW_ACTIVITY_TASK_QUEUES, as the run got it) give `activity` in a run of
    `channel`: `activity@channel` first, then `activity`; None: no route (the run's own queue)."""
    if not routes:
        return None
    return (routes.get(f"{activity}@{channel}") if channel else None) or routes.get(activity)


def failure_message(err: ActivityError) -> str:
    cause = err.cause
    return str(cause.message if isinstance(cause, ApplicationError) else cause or err)


def status_text(status: Any) -> str:
    return str(getattr(status, "value", status))


def analyst_update(view: type) -> Any:
    """The validated form of retry/skip/cancel/resume the API sends (`act`, returning the workflow's `view`; a
    refused request leaves no trace in the history). Assign it in the workflow class: `act = analyst_update(View)`."""

    def act(self: Runbook, request: AnalystRequest) -> Any:
        return self._act(request)

    def validate(self: Runbook, request: AnalystRequest) -> None:
        self._validate_act(request)

    act.__annotations__ = {"request": AnalystRequest, "return": view}
    validate.__annotations__ = {"request": AnalystRequest, "return": None}
    update = workflow.update(name="act")(act)
    update.validator(validate)
    return update


class Runbook:
    """A small typed base: state in `rb`, configuration in `RUNBOOK`, the machinery below."""

    RUNBOOK: ClassVar[RunbookConfig]
    rb: RunbookState

    # -- the analyst's signals (usable from the Web UI's Signal dialog; the API uses the `act` update) ------------
    @workflow.signal
    def retry(self, action: AnalystAction | None = None) -> None:
        self.rb.pending = ("retry", action or AnalystAction())

    @workflow.signal
    def skip(self, action: AnalystAction | None = None) -> None:
        self.rb.pending = ("skip", action or AnalystAction())

    @workflow.signal
    def cancel(self, action: AnalystAction | None = None) -> None:
        if self.rb.cancel is None and self._may_cancel():
            self.rb.cancel = action or AnalystAction()

    def _act(self, request: AnalystRequest) -> Any:
        who = AnalystAction(actor=request.actor, reason=request.reason)
        if request.action == "cancel":
            self.cancel(who)
        elif request.action == "resume":
            self._accept_resume(request)
        else:
            self.rb.pending = (request.action, who)
        return self.status()

    def _validate_act(self, request: AnalystRequest) -> None:
        cfg, status = self.RUNBOOK, self.rb.status
        if status in cfg.closed:
            raise ValueError(f"the {cfg.noun} is {status_text(status)}; nothing to {request.action}")
        if request.action == "resume" and cfg.resume_refused is not None:
            raise ValueError(cfg.resume_refused)
        if request.action == "cancel":
            refusal = self._cancel_refusal()
            if refusal:
                raise ValueError(refusal)
            return
        if status != cfg.needs_attention:
            raise ValueError(f"the {cfg.noun} is {status_text(status)}, not needs_attention; nothing to "
                             f"{request.action}")
        if request.action == "skip" and not self.rb.parked_skippable:
            raise ValueError("the parked step cannot be skipped; fix the cause and retry, or cancel")
        if request.action == "resume":
            self._validate_resume(request)

    # -- hooks -----------------------------------------------------------------------------------------
    def status(self) -> Any:
        """The workflow's view (its `status` query), returned by `act`: required."""
        raise NotImplementedError(f"{type(self).__name__} must define status")

    def _set_status(self, status: Any, reason: str | None = None) -> None:
        """Each workflow records its own status (search attributes, details, projection): required."""
        raise NotImplementedError(f"{type(self).__name__} must define _set_status")

    def _committed(self) -> bool:
        """Past the point of no return (goods shipped, money refunded): nothing is undone any more."""
        return False

    def _cancel_refusal(self) -> str | None:
        """Why `act(cancel)` is refused now, or None."""
        return self.RUNBOOK.cancel_refused if self._committed() else None

    def _may_cancel(self) -> bool:
        """Whether the `cancel` signal is taken now (else it is ignored)."""
        return True

    def _on_analyst_action(self, kind: str, who: AnalystAction) -> str:
        """Called when a parked run accepts `kind`; returns what the parked step does (`retry`, `skip`, ...)."""
        return kind

    def _accept_resume(self, request: AnalystRequest) -> None:
        """`act(resume)`: only workflows whose `RUNBOOK.resume_refused` is None get here."""
        raise NotImplementedError(f"{type(self).__name__} has no resume")

    def _validate_resume(self, request: AnalystRequest) -> None:
        """Refuse a `resume` whose corrections do not apply (raise ValueError)."""

    # -- steps, parking and compensation ----------------------------------------------------------------
    async def _execute(self, activity: Any, arg: Any, summary: str, opts: StepOptions | None = None) -> Any:
        """Run one activity with `opts` (no parking, no bookkeeping)."""
        opts = opts or StepOptions()
        return await workflow.execute_activity_method(
            activity, arg, start_to_close_timeout=opts.start_to_close or self.RUNBOOK.step_timeout,
            schedule_to_close_timeout=opts.schedule_to_close, heartbeat_timeout=opts.heartbeat,
            retry_policy=opts.retry_policy or self.rb.retry_policy, cancellation_type=opts.cancellation,
            summary=summary, task_queue=opts.task_queue or self._queue_of(activity),
        )

    async def _step(self, name: str, activity: Any, arg: Any, summary: str, *, skippable: bool = False,
                    opts: StepOptions | None = None) -> Any:
        """Run one activity; `arg` may be a callable building the input on each attempt (so corrections an
        analyst supplies apply on retry). Parks on business faults; returns None when the step was skipped."""
        rb, cfg = self.rb, self.RUNBOOK
        opts = opts or StepOptions()
        policy = opts.retry_policy or rb.retry_policy
        while True:
            if opts.cancellable:
                self._check_cancel()
            if rb.amending:  # an update is changing the documents this step works on
                await workflow.wait_condition(lambda: not rb.amending)
            rb.current_step = name
            record = self._record(name, StepState.RUNNING, summary)
            rb.busy = True
            try:
                result = await self._execute(activity, arg() if callable(arg) else arg, summary, opts)
            except ActivityError as err:
                rb.busy = False
                cause = err.cause
                message = failure_message(err)
                business = isinstance(cause, ApplicationError) and cause.type in cfg.parking_errors
                non_retryable = err.retry_state == RetryState.NON_RETRYABLE_FAILURE
                if cfg.fail_fast and not business and non_retryable and not self._committed():
                    self._finish(record, StepState.FAILED, message)
                    raise StepFailed(name, message) from None
                details = cause.details[0] if isinstance(cause, ApplicationError) and cause.details else {}
                can_skip = skippable
                if business:
                    action = details.get("action") if isinstance(details, dict) else None
                    if cfg.details_skippable:
                        can_skip = skippable or bool(isinstance(details, dict) and details.get("skippable"))
                    reason = f"{name}: {message}"
                elif non_retryable:
                    action = cfg.committed_action
                    reason = f"{name}: {message}"
                else:
                    action = "The system kept failing; send `retry` once it is reachable again, or `cancel`."
                    reason = f"{name}: still failing after {policy.maximum_attempts} attempts: {message}"
                self._finish(record, StepState.PARKED, reason)
                if await self._park(reason, action, can_skip) == "retry":
                    continue
                self._record(name, StepState.SKIPPED, f"skipped by {rb.last_actor}")
                return None
            rb.busy = False
            self._finish(record, StepState.DONE, None)
            return result

    async def _park(self, reason: str, action: str | None, skippable: bool, *, cancel_decides: bool = False) -> str:
        """Park the run until an analyst decides; returns the decision (`retry`, `skip`, or a workflow's own such as
        `approve`). A `cancel` raises CancelRequested (refused past the point of no return) — or, with
        `cancel_decides`, is returned as the decision `cancel`."""
        rb, cfg = self.rb, self.RUNBOOK
        previous = rb.status
        rb.parked_skippable = skippable
        rb.action_hint = action
        rb.reason = f"{reason}. {action}" if action else reason
        self._set_status(cfg.needs_attention, rb.reason)
        if cfg.await_projection:
            await self._drain_projection()
        workflow.logger.warning("%s parked: %s", cfg.kind, rb.reason)
        while True:
            rb.pending = None
            if cancel_decides:
                rb.cancel = None  # like any decision, a cancel counts from the moment the run waits for one
            await workflow.wait_condition(lambda: rb.pending is not None or rb.cancel is not None)
            if rb.cancel is not None:
                if cancel_decides:
                    rb.pending, rb.cancel = ("cancel", rb.cancel), None
                else:
                    self._check_cancel()  # raises unless past the point of no return (then the cancel is refused)
            if rb.pending is None:
                continue
            kind, who = rb.pending
            if kind == "skip" and not skippable:
                self._record("skip_refused", StepState.FAILED,
                             f"{who.actor} asked to skip, but this step cannot be skipped")
                continue
            rb.last_actor, rb.last_reason = who.actor, who.reason
            self._record(f"analyst_{kind}", StepState.DONE, f"{who.actor}: {who.reason or kind}")
            kind = self._on_analyst_action(kind, who)
            rb.pending = None
            rb.parked_skippable = False
            rb.action_hint = None
            rb.reason = None
            self._set_status(previous)
            if cfg.await_projection:
                await self._drain_projection()
            return kind

    def _queue_of(self, activity: Any) -> str | None:
        """The partner task queue configured for this activity (rate-limited by the server), else None: the run's
        own queue. The run's channel's own route first (`confirm_shipment@<channel>`: each marketplace on its own
        queue, with its own breaker), then the activity's (`confirm_shipment`). A run started before a channel
        route existed has none in its input, so it is routed as before; and replays are unaffected either way:
        the queue is not part of what Temporal checks for determinism."""
        return queue_of(self.rb.activity_queues, getattr(activity, "__name__", ""), self.rb.channel)

    def _register(self, name: str, activity: Any, arg: Any, summary: str) -> None:
        """Register an undo step, before the step it undoes runs."""
        if all(u.name != name for u in self.rb.undo):
            self.rb.undo.append(Undo(name, activity, arg, summary))

    async def _run_undo(self, undo: list[Undo]) -> None:
        """Run undo steps in the order given, each retried; a refusal is recorded and the rest still run."""
        for step in undo:
            record = self._record(f"undo_{step.name}", StepState.RUNNING, step.summary)
            try:
                await self._execute(step.activity, step.arg, f"Undo: {step.summary}", UNDO_OPTIONS)
                self._finish(record, StepState.COMPENSATED, None)
                self.rb.compensated.append(step.name)
            except ActivityError as err:
                message = failure_message(err)
                self._finish(record, StepState.FAILED, f"undo failed: {message}")
                workflow.logger.error("compensation %s failed: %s", step.name, message)

    def _check_cancel(self) -> None:
        action = self.rb.cancel
        if action is None:
            return
        if self._committed():
            self._record("cancel_refused", StepState.FAILED,
                         f"{action.actor} asked to cancel, but {self.RUNBOOK.cancel_too_late}")
            self.rb.cancel = None
            return
        raise CancelRequested(action)

    # -- bookkeeping ------------------------------------------------------------------------------------
    def _record(self, name: str, state: StepState, detail: str | None) -> int:
        self.rb.steps.append(StepRecord(name=name, state=state, started_at=workflow.now(),
                                        finished_at=None if state in (StepState.RUNNING, StepState.WAITING)
                                        else workflow.now(), detail=detail))
        return len(self.rb.steps) - 1

    def _finish(self, index: int, state: StepState, detail: str | None) -> None:
        step = self.rb.steps[index]
        self.rb.steps[index] = step.model_copy(update={
            "state": state, "finished_at": workflow.now(), "detail": detail if detail is not None else step.detail})

    def _queue_projection(self, upd: RunStatusUpdate) -> None:
        self.rb.projection_tasks.append(asyncio.ensure_future(self._write_projection(upd)))

    async def _write_projection(self, upd: RunStatusUpdate) -> None:
        """Best effort: the projection is for listing; a failure to write it never fails the run."""
        try:
            await workflow.execute_local_activity_method(
                OpsActivities.record_run_status, upd, start_to_close_timeout=PROJECTION_TIMEOUT,
                retry_policy=PROJECTION_RETRY, summary=f"Status: {upd.status}",
            )
        except ActivityError as err:
            workflow.logger.warning("status projection not written (%s): %s", upd.status, err.cause)

    async def _drain_projection(self) -> None:
        if self.rb.projection_tasks:
            await asyncio.gather(*self.rb.projection_tasks)
            self.rb.projection_tasks.clear()

    async def _wind_up(self) -> None:
        """Before the run returns (or continues as new): the projection is written, every handler has finished."""
        await self._drain_projection()
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._drain_projection()

