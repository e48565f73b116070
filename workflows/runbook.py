"""The machinery every retailflow workflow shares, so that each reads as its business story only.

- `_step` runs one activity. A business fault (an `ApplicationError` whose type is in `_PARKING_ERRORS`) or a
  transient fault that outlasts its retry budget *parks* the run: status `needs_attention`, the reason and
  what to do, `NeedsAttention=true`; it then waits for an analyst's `retry`, `skip` (only where the step may be
  skipped) or `cancel`. An unrecoverable (non-retryable, non-business) failure raises `StepFailed`, so the
  workflow compensates — unless it is past its point of no return (goods shipped, money refunded), then it
  parks too, because nothing can be undone.
- Undo steps are registered *before* their step runs (a step that timed out may still have happened) and run
  in reverse by `_run_undo`, each retried and recorded; one that fails is recorded and the rest still run.
- `_record`/`_finish` keep the step list the status query returns; `_write_projection` writes the platform's
  status projection as a best-effort local activity.

A subclass sets, in its `@workflow.init`: `_status`, `_reason`, `_steps`, `_undo`, `_compensated`,
`_pending_action`, `_cancel`, `_retry_policy`, `_projection_tasks` (and calls `_init_runbook()`), and defines
`_set_status`, `_committed` and the class attributes below.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

with workflow.unsafe.imports_passed_through():
    from activities.ops import OpsActivities
    from canonical.fulfillment import AnalystAction, StepRecord, StepState
    from canonical.ops import RunStatusUpdate

ACTIVITY_TIMEOUT = timedelta(seconds=60)
# Undo steps are retried until they succeed or their 30 minutes are up; a business refusal is recorded.
COMPENSATION_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=60),
                                 maximum_attempts=0)
COMPENSATION_TIMEOUT = timedelta(minutes=30)


class CancelRequested(Exception):
    def __init__(self, action: AnalystAction) -> None:
        super().__init__(action.reason or "cancelled")
        self.action = action


class StepFailed(Exception):
    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step
        self.message = message


@dataclass
class Undo:
    name: str
    activity: Any
    arg: Any
    summary: str


def failure_message(err: ActivityError) -> str:
    cause = err.cause
    return str(cause.message if isinstance(cause, ApplicationError) else cause or err)


class Runbook:
    _KIND: ClassVar[str] = "run"
    _PARKING_ERRORS: ClassVar[frozenset[str]] = frozenset()
    _NEEDS_ATTENTION: ClassVar[Any]  # the subclass's status enum member for a parked run
    # Said when a step fails unrecoverably after the point of no return, and when a cancel comes too late.
    _COMMITTED_ACTION: ClassVar[str] = "Nothing can be undone now; fix the cause, then send `retry`."
    _CANCEL_TOO_LATE: ClassVar[str] = "it is too late to undo"

    _last_actor: str = "unknown"
    _parked_skippable: bool = False
    _action_hint: str | None = None

    def _init_runbook(self, activity_task_queues: dict[str, str] | None = None) -> None:
        self._activity_queues = dict(activity_task_queues or {})  # activity name → partner task queue
        self._busy = False  # an activity of the main line is running
        self._amending = False  # an update handler is changing the documents the main line works on

    # -- the analyst's signals (usable from the Web UI's Signal dialog; the API uses each workflow's `act` update) --
    @workflow.signal
    def retry(self, action: AnalystAction | None = None) -> None:
        self._pending_action = ("retry", action or AnalystAction())

    @workflow.signal
    def skip(self, action: AnalystAction | None = None) -> None:
        self._pending_action = ("skip", action or AnalystAction())

    @workflow.signal
    def cancel(self, action: AnalystAction | None = None) -> None:
        if self._cancel is None:
            self._cancel = action or AnalystAction()

    # -- hooks -----------------------------------------------------------------------------------------
    def _committed(self) -> bool:
        """Past the point of no return (goods shipped, money refunded): nothing is undone any more."""
        return False

    def _set_status(self, status: Any, reason: str | None = None) -> None:
        """Each workflow records its own status (search attributes, details, projection): required."""
        raise NotImplementedError(f"{type(self).__name__} must define _set_status")

    def _on_analyst_action(self, kind: str, who: AnalystAction) -> str:
        """Called when a parked run accepts `kind`; returns `retry` or `skip`."""
        return kind

    # -- steps, parking and compensation ----------------------------------------------------------------
    async def _step(self, name: str, activity: Any, arg: Any, summary: str, *, skippable: bool = False) -> Any:
        """Run one activity; `arg` may be a callable building the input on each attempt (so corrections an
        analyst supplies apply on retry). Parks on business faults; returns None when the step was skipped."""
        while True:
            self._check_cancel()
            if self._amending:  # an update is changing the documents this step works on
                await workflow.wait_condition(lambda: not self._amending)
            record = self._record(name, StepState.RUNNING, summary)
            self._busy = True
            try:
                result = await workflow.execute_activity_method(
                    activity, arg() if callable(arg) else arg, start_to_close_timeout=ACTIVITY_TIMEOUT,
                    retry_policy=self._retry_policy, summary=summary, task_queue=self._queue_of(activity),
                )
            except ActivityError as err:
                self._busy = False
                cause = err.cause
                message = failure_message(err)
                business = isinstance(cause, ApplicationError) and cause.type in self._PARKING_ERRORS
                non_retryable = err.retry_state == RetryState.NON_RETRYABLE_FAILURE
                if not business and non_retryable and not self._committed():
                    self._finish(record, StepState.FAILED, message)
                    raise StepFailed(name, message) from None
                details = cause.details[0] if isinstance(cause, ApplicationError) and cause.details else {}
                if business:
                    action = details.get("action") if isinstance(details, dict) else None
                    skippable = skippable or bool(isinstance(details, dict) and details.get("skippable"))
                    reason = f"{name}: {message}"
                elif non_retryable:
                    action = self._COMMITTED_ACTION
                    reason = f"{name}: {message}"
                else:
                    action = "The system kept failing; send `retry` once it is reachable again, or `cancel`."
                    reason = f"{name}: still failing after {self._retry_policy.maximum_attempts} attempts: {message}"
                self._finish(record, StepState.PARKED, reason)
                if await self._park(reason, action, skippable) == "retry":
                    continue
                self._record(name, StepState.SKIPPED, f"skipped by {self._last_actor}")
                return None
            self._busy = False
            self._finish(record, StepState.DONE, None)
            return result

    async def _park(self, reason: str, action: str | None, skippable: bool) -> str:
        previous = self._status
        self._parked_skippable = skippable
        self._action_hint = action
        self._reason = f"{reason}. {action}" if action else reason
        self._set_status(self._NEEDS_ATTENTION, self._reason)
        workflow.logger.warning("%s parked: %s", self._KIND, self._reason)
        while True:
            self._pending_action = None
            await workflow.wait_condition(lambda: self._pending_action is not None or self._cancel is not None)
            if self._cancel is not None:
                self._check_cancel()  # raises unless past the point of no return (then the cancel is refused)
            if self._pending_action is None:
                continue
            kind, who = self._pending_action
            self._last_actor = who.actor
            if kind == "skip" and not skippable:
                self._record("skip_refused", StepState.FAILED,
                             f"{who.actor} asked to skip, but this step cannot be skipped")
                continue
            self._record(f"analyst_{kind}", StepState.DONE, f"{who.actor}: {who.reason or kind}")
            kind = self._on_analyst_action(kind, who)
            self._pending_action = None
            self._parked_skippable = False
            self._action_hint = None
            self._reason = None
            self._set_status(previous)
            return kind

    def _queue_of(self, activity: Any) -> str | None:
        """The partner task queue configured for this activity (rate-limited by the server), else None: the run's
        own queue. Replays are unaffected: the queue is not part of what Temporal checks for determinism."""
        if not self._activity_queues:
            return None
        defn = getattr(activity, "__temporal_activity_definition", None)
        return self._activity_queues.get(defn.name if defn else getattr(activity, "__name__", ""))

    def _register(self, name: str, activity: Any, arg: Any, summary: str) -> None:
        """Register an undo step, before the step it undoes runs."""
        if all(u.name != name for u in self._undo):
            self._undo.append(Undo(name, activity, arg, summary))

    async def _run_undo(self, undo: list[Undo]) -> None:
        """Run undo steps in the order given, each retried; a refusal is recorded and the rest still run."""
        for step in undo:
            record = self._record(f"undo_{step.name}", StepState.RUNNING, step.summary)
            try:
                await workflow.execute_activity_method(
                    step.activity, step.arg, start_to_close_timeout=ACTIVITY_TIMEOUT,
                    schedule_to_close_timeout=COMPENSATION_TIMEOUT, retry_policy=COMPENSATION_RETRY,
                    summary=f"Undo: {step.summary}", task_queue=self._queue_of(step.activity),
                )
                self._finish(record, StepState.COMPENSATED, None)
                self._compensated.append(step.name)
            except ActivityError as err:
                message = failure_message(err)
                self._finish(record, StepState.FAILED, f"undo failed: {message}")
                workflow.logger.error("compensation %s failed: %s", step.name, message)

    def _check_cancel(self) -> None:
        if self._cancel is None:
            return
        action = self._cancel
        if self._committed():
            self._record("cancel_refused", StepState.FAILED,
                         f"{action.actor} asked to cancel, but {self._CANCEL_TOO_LATE}")
            self._cancel = None
            return
        raise CancelRequested(action)

    # -- bookkeeping ------------------------------------------------------------------------------------
    def _record(self, name: str, state: StepState, detail: str | None) -> int:
        self._steps.append(StepRecord(name=name, state=state, started_at=workflow.now(),
                                      finished_at=None if state in (StepState.RUNNING, StepState.WAITING)
                                      else workflow.now(), detail=detail))
        return len(self._steps) - 1

    def _finish(self, index: int, state: StepState, detail: str | None) -> None:
        step = self._steps[index]
        self._steps[index] = step.model_copy(update={
            "state": state, "finished_at": workflow.now(), "detail": detail if detail is not None else step.detail})

    def _queue_projection(self, upd: RunStatusUpdate) -> None:
        self._projection_tasks.append(asyncio.ensure_future(self._write_projection(upd)))

    async def _write_projection(self, upd: RunStatusUpdate) -> None:
        """Best effort: the projection is for listing; a failure to write it never fails the run."""
        try:
            await workflow.execute_local_activity_method(
                OpsActivities.record_run_status, upd, start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(milliseconds=200)),
                summary=f"Status: {upd.status}",
            )
        except ActivityError as err:
            workflow.logger.warning("status projection not written (%s): %s", upd.status, err.cause)

    async def _drain_projection(self) -> None:
        if self._projection_tasks:
            await asyncio.gather(*self._projection_tasks)
            self._projection_tasks.clear()
