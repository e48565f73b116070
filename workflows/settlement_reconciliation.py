"""SettlementReconciliation (id `settlement:{provider}:{settlement_id}`): stage the report → match its lines to the
platform's orders and refunds → classify fees by the account map → check the lines add up to the deposit →
post one summarized, balanced journal to the ERP → report.

- Lines never pass through the workflow: the report is staged in the platform database and each step gets the
  settlement key; only counts and totals come back.
- Unmatched lines, amount differences, unclassified amount types and a total difference park the run: status
  `needs_attention`, `NeedsAttention=true`, the exceptions stored in the database and summarised in the reason.
  `retry` re-matches (after the data was fixed), `skip` posts what is open to the suspense account, `cancel` ends it
  without posting. The API sends them as the validated `act` update.
- Re-running a settlement posts nothing new: the journal's external reference is `settlement:{provider}:{id}`.

SettlementFetch (started by a Temporal Schedule per provider): lists the provider's reports and starts a
SettlementReconciliation per settlement it has not reconciled yet (the id reuse policy refuses a second run of a
settlement that completed; one that failed or was cancelled may run again).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.finance import (
        BuildJournalInput,
        FetchInput,
        ReportInput,
        ResolveInput,
        SettlementActivities,
        SettlementRef,
        StageInput,
    )
    from activities.ops import OpsActivities
    from canonical.finance import (
        FINANCE_ERROR_TYPES,
        FetchSettlementsInput,
        FetchSettlementsResult,
        ReconciliationResult,
        SettlementInput,
        SettlementStatus,
        SettlementView,
    )
    from canonical.fulfillment import AnalystAction
    from canonical.ops import AnalystRequest, RunStatusUpdate
    from workflows import search_attributes as sa

STEP_TIMEOUT = timedelta(minutes=10)
STAGE_TIMEOUT = timedelta(hours=1)  # a 1,000,000-line report; it heartbeats every batch
STAGE_HEARTBEAT = timedelta(minutes=2)
TERMINAL = frozenset({SettlementStatus.POSTED, SettlementStatus.CANCELLED, SettlementStatus.FAILED})


class _Cancelled(Exception):
    def __init__(self, action: AnalystAction) -> None:
        super().__init__(action.reason or "cancelled")
        self.action = action


def _message(err: ActivityError) -> str:
    cause = err.cause
    return str(cause.message if isinstance(cause, ApplicationError) else cause or err)


@workflow.defn(name="SettlementReconciliation")
class SettlementReconciliation:
    @workflow.init
    def __init__(self, inp: SettlementInput) -> None:
        self._inp = inp
        self._wf_id = workflow.info().workflow_id
        self._status = SettlementStatus.RECEIVED
        self._reason: str | None = None
        self._action_hint: str | None = None
        self._step_name: str | None = None
        self._steps: list[str] = []
        self._pending: tuple[str, AnalystAction] | None = None
        self._cancel: AnalystAction | None = None
        self._parked_skippable = False
        self._key: str | None = None
        self._line_count: int | None = None
        self._matched: int | None = None
        self._unmatched: int | None = None
        self._exceptions: int | None = None
        self._difference = None
        self._erp_journal_id: str | None = None
        self._version = 0
        self._retry = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                                  maximum_interval=timedelta(seconds=60), maximum_attempts=inp.step_max_attempts)

    @workflow.run
    async def run(self, inp: SettlementInput) -> ReconciliationResult:
        workflow.upsert_search_attributes([
            sa.CHANNEL.value_set(inp.effective_channel), sa.SETTLEMENT_ID.value_set(inp.settlement_id),
            sa.NEEDS_ATTENTION.value_set(False)])
        await self._set_status(SettlementStatus.RECEIVED)
        try:
            return await self._reconcile(inp)
        except _Cancelled as cancel:
            self._reason = cancel.action.reason or f"cancelled by {cancel.action.actor}"
            result = None
            if self._key is not None:
                result = await self._step("report", SettlementActivities.report_settlement,
                                          ReportInput(settlement_key=self._key, channel=inp.effective_channel,
                                                      status=SettlementStatus.CANCELLED.value),
                                          "Record the cancelled reconciliation", cancellable=False)
            await self._set_status(SettlementStatus.CANCELLED, self._reason)
            if result is None:
                raise ApplicationError(f"settlement {inp.settlement_id} cancelled before it was staged: "
                                       f"{self._reason}", type="SettlementCancelled", non_retryable=True) from None
            return result

    async def _reconcile(self, inp: SettlementInput) -> ReconciliationResult:
        channel = inp.effective_channel
        staged = await self._step(
            "stage", SettlementActivities.stage_settlement,
            StageInput(provider=inp.provider, source=inp.source, expected_settlement_id=inp.settlement_id),
            f"Stage {inp.provider} settlement {inp.settlement_id}", timeout=STAGE_TIMEOUT, heartbeat=STAGE_HEARTBEAT)
        self._key = staged.settlement_key
        self._line_count = staged.line_count
        await self._set_status(SettlementStatus.STAGED)
        ref = SettlementRef(settlement_key=self._key, channel=channel)
        mode = "strict"
        while True:
            match = await self._step("match", SettlementActivities.match_settlement, ref,
                                     f"Match {staged.line_count} line(s) to {channel} orders and refunds")
            classified = await self._step("classify", SettlementActivities.classify_settlement, ref,
                                          "Classify fees by the account map")
            totals = await self._step("check_totals", SettlementActivities.check_settlement_totals, ref,
                                      f"Check the lines add up to the deposit of {staged.deposit_total}")
            self._matched, self._unmatched = match.matched_count, match.unmatched_count
            self._exceptions = match.exception_count + classified.unclassified_count + (
                0 if totals.difference.is_zero else 1)
            self._difference = totals.difference
            await self._set_status(SettlementStatus.MATCHED)
            if not self._exceptions:
                break
            report = await self._step("report", SettlementActivities.report_settlement,
                                      ReportInput(settlement_key=self._key, channel=channel,
                                                  status=SettlementStatus.NEEDS_ATTENTION.value),
                                      f"Record {self._exceptions} exception(s) for the analyst")
            reason = _summary(report, match.unmatched_count, classified.unclassified_count, totals.difference)
            decision = await self._park(reason, "Fix the data (orders, credit notes, account map) and send `retry`; "
                                        "or `skip` to post what is open to the suspense account; or `cancel`.",
                                        skippable=True)
            if decision == "retry":
                continue
            await self._step("resolve", SettlementActivities.resolve_settlement_exceptions,
                             ResolveInput(settlement_key=self._key, actor=self._last_actor,
                                          reason=self._last_reason), "Mark the exceptions as posted to suspense")
            mode = "suspense"
            break
        await self._set_status(SettlementStatus.POSTING)
        journal = await self._step("build_journal", SettlementActivities.build_settlement_journal,
                                   BuildJournalInput(settlement_key=self._key, channel=channel, mode=mode),
                                   "Build the summarized journal" + (" (open items to suspense)"
                                                                     if mode == "suspense" else ""))
        posted = await self._step("post_journal", SettlementActivities.post_settlement_journal, ref,
                                  f"Post journal {journal.external_ref} ({journal.total_debit}) to the ERP",
                                  cancellable=False)
        self._erp_journal_id = posted.erp_journal_id
        result = await self._step("report", SettlementActivities.report_settlement,
                                  ReportInput(settlement_key=self._key, channel=channel,
                                              status=SettlementStatus.POSTED.value),
                                  "Report the reconciliation", cancellable=False)
        await self._set_status(SettlementStatus.POSTED)
        return result.model_copy(update={"journal_posted_now": posted.posted_now})

    # -- steps and parking -------------------------------------------------------------------------------------
    _last_actor: str = "unknown"
    _last_reason: str | None = None

    async def _step(self, name: str, activity: Any, arg: Any, summary: str, *, timeout: timedelta = STEP_TIMEOUT,
                    heartbeat: timedelta | None = None, cancellable: bool = True) -> Any:
        while True:
            if cancellable and self._cancel is not None:
                raise _Cancelled(self._cancel)
            self._step_name = name
            self._steps.append(f"{workflow.now().isoformat()} {name}: {summary}")
            try:
                return await workflow.execute_activity_method(
                    activity, arg, start_to_close_timeout=timeout, heartbeat_timeout=heartbeat,
                    retry_policy=self._retry, summary=summary)
            except ActivityError as err:
                cause = err.cause
                message = _message(err)
                details = cause.details[0] if isinstance(cause, ApplicationError) and cause.details else {}
                if isinstance(cause, ApplicationError) and cause.type in FINANCE_ERROR_TYPES:
                    action = details.get("action") if isinstance(details, dict) else None
                    reason = f"{name}: {message}"
                elif err.retry_state == RetryState.NON_RETRYABLE_FAILURE:
                    action = "Fix the cause, then send `retry`; or `cancel`."
                    reason = f"{name}: {message}"
                else:
                    action = "The system kept failing; send `retry` once it is reachable again, or `cancel`."
                    reason = f"{name}: still failing after {self._retry.maximum_attempts} attempts: {message}"
                self._steps.append(f"{workflow.now().isoformat()} {name}: parked: {message}")
                await self._park(reason, action, skippable=False)

    async def _park(self, reason: str, action: str | None, *, skippable: bool) -> str:
        previous = self._status
        self._parked_skippable = skippable
        self._action_hint = action
        await self._set_status(SettlementStatus.NEEDS_ATTENTION, f"{reason}. {action}" if action else reason)
        workflow.logger.warning("settlement parked: %s", reason)
        while True:
            self._pending = None
            await workflow.wait_condition(lambda: self._pending is not None or self._cancel is not None)
            if self._cancel is not None:
                raise _Cancelled(self._cancel)
            kind, who = self._pending
            if kind == "skip" and not skippable:
                self._steps.append(f"{workflow.now().isoformat()} skip refused: {who.actor} (step cannot be skipped)")
                continue
            self._last_actor, self._last_reason = who.actor, who.reason
            self._steps.append(f"{workflow.now().isoformat()} analyst {kind}: {who.actor}: {who.reason or kind}")
            self._pending = None
            self._parked_skippable = False
            self._action_hint = None
            await self._set_status(previous, None)
            return kind

    async def _set_status(self, status: SettlementStatus, reason: str | None = None) -> None:
        was_parked = self._status == SettlementStatus.NEEDS_ATTENTION
        self._status = status
        self._reason = reason
        parked = status == SettlementStatus.NEEDS_ATTENTION
        workflow.upsert_search_attributes([sa.NEEDS_ATTENTION.value_set(parked)])
        workflow.set_current_details(self._details())
        if status in (SettlementStatus.RECEIVED, SettlementStatus.NEEDS_ATTENTION) or status in TERMINAL \
                or was_parked:
            self._version += 1
            upd = RunStatusUpdate(
                workflow_id=self._wf_id, kind="settlement", channel=self._inp.provider,
                external_id=self._inp.settlement_id, status=status.value, needs_attention=parked, reason=reason,
                suggested_action=self._action_hint if parked else None, erp_ref=self._erp_journal_id,
                version=self._version, started_at=workflow.info().start_time, changed_at=workflow.now())
            try:
                await workflow.execute_local_activity_method(
                    OpsActivities.record_run_status, upd, start_to_close_timeout=timedelta(seconds=10),
                    retry_policy=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(milliseconds=200)),
                    summary=f"Status: {status.value}")
            except ActivityError as err:  # best effort: the projection is for listing
                workflow.logger.warning("status projection not written (%s): %s", status.value, err.cause)

    def _details(self) -> str:
        parts = [f"**Settlement** {self._inp.provider} {self._inp.settlement_id}: **{self._status.value}**"]
        if self._reason:
            parts.append(f"**Reason:** {self._reason}")
        if self._line_count is not None:
            parts.append(f"**Lines:** {self._line_count}; matched {self._matched}, unmatched {self._unmatched}")
        if self._erp_journal_id:
            parts.append(f"**ERP journal:** {self._erp_journal_id}")
        return "\n\n".join(parts)

    # -- signals, update, query ---------------------------------------------------------------------------------
    @workflow.signal
    def retry(self, action: AnalystAction | None = None) -> None:
        self._pending = ("retry", action or AnalystAction())

    @workflow.signal
    def skip(self, action: AnalystAction | None = None) -> None:
        self._pending = ("skip", action or AnalystAction())

    @workflow.signal
    def cancel(self, action: AnalystAction | None = None) -> None:
        if self._cancel is None and self._status not in (SettlementStatus.POSTING, *TERMINAL):
            self._cancel = action or AnalystAction()

    @workflow.update
    def act(self, request: AnalystRequest) -> SettlementView:
        """The validated form of retry/skip/cancel used by the API (refused requests leave no trace)."""
        who = AnalystAction(actor=request.actor, reason=request.reason)
        if request.action == "cancel":
            self.cancel(who)
        else:
            self._pending = (request.action, who)
        return self.status()

    @act.validator
    def _validate_act(self, request: AnalystRequest) -> None:
        if request.action == "resume":
            raise ValueError("a settlement has nothing to resume with corrections; fix the data and `retry`")
        if self._status in TERMINAL or self._status == SettlementStatus.POSTING:
            raise ValueError(f"the settlement is {self._status.value}; nothing to {request.action}")
        if request.action == "cancel":
            return
        if self._status != SettlementStatus.NEEDS_ATTENTION:
            raise ValueError(f"the settlement is {self._status.value}, not needs_attention; nothing to "
                             f"{request.action}")
        if request.action == "skip" and not self._parked_skippable:
            raise ValueError("the parked step cannot be skipped; fix the cause and retry, or cancel")

    @workflow.query
    def status(self) -> SettlementView:
        return SettlementView(
            workflow_id=self._wf_id, provider=self._inp.provider, settlement_id=self._inp.settlement_id,
            status=self._status, step=self._step_name, reason=self._reason, line_count=self._line_count,
            matched_count=self._matched, unmatched_count=self._unmatched, exception_count=self._exceptions,
            difference=self._difference, erp_journal_id=self._erp_journal_id, steps=list(self._steps[-50:]))


def _summary(report: ReconciliationResult, unmatched: int, unclassified: int, difference) -> str:
    parts = []
    if unmatched:
        parts.append(f"{unmatched} unmatched line(s) ({report.unmatched_settlement_amount})")
    if unclassified:
        parts.append(f"{unclassified} unclassified amount type(s)")
    if not difference.is_zero:
        parts.append(f"lines differ from the deposit by {difference}")
    listed = [e.cause for e in report.exceptions if e.kind.value != "unmatched_platform"][:3]
    more = report.exception_count - len(listed)
    tail = f"; e.g. {'; '.join(listed)}" + (f" (+{more} more: GET /settlements/{report.provider}/"
                                            f"{report.settlement_id})" if more > 0 else "") if listed else ""
    return f"{', '.join(parts) or 'exceptions'}{tail}"


@workflow.defn(name="SettlementFetch")
class SettlementFetch:
    """Run by a Schedule: start a reconciliation for every report of the provider not reconciled yet."""

    @workflow.run
    async def run(self, inp: FetchSettlementsInput) -> FetchSettlementsResult:
        reports = await workflow.execute_activity_method(
            SettlementActivities.list_settlement_reports, FetchInput(provider=inp.provider),
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=60), maximum_attempts=10),
            summary=f"List {inp.provider} settlement reports")
        result = FetchSettlementsResult()
        for report in reports:
            if report.error or not report.settlement_id:
                result.unreadable.append(f"{report.report_id}: {report.error}")
                continue
            child = SettlementInput(provider=inp.provider, settlement_id=report.settlement_id,
                                    source=report.report_id, channel=inp.channel)
            try:
                await workflow.start_child_workflow(
                    SettlementReconciliation.run, child, id=child.workflow_id,
                    id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                    parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                    static_summary=f"Reconcile {inp.provider} settlement {report.settlement_id} "
                                   f"({report.total} {report.currency})")
                result.started.append(child.workflow_id)
            except WorkflowAlreadyStartedError:
                result.already_running_or_done.append(child.workflow_id)
        return result
