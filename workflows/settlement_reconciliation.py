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
  A settlement already posted (the same file again, by hand or by a schedule) stays `posted`: the run stages
  (a no-op), reports it with reason "already posted" and ends; no exception is re-added, nothing is parked or put
  in suspense a second time (ALREADY_POSTED_PATCH; the store refuses to reopen a posted settlement as well).
- Steps, parking, the analyst's signals and the `act` update are the Runbook's (workflows/runbook.py): here every
  failure parks (`fail_fast=False`), nothing is undone, and the status projection is awaited where it is written.

SettlementFetch (started by a Temporal Schedule per provider): lists the provider's reports and starts a
SettlementReconciliation per settlement it has not reconciled yet (the id reuse policy refuses a second run of a
settlement that completed; one that failed or was cancelled may run again).
"""

from __future__ import annotations

from datetime import timedelta
from typing import cast

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

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
    from canonical.finance import (
        FINANCE_ERROR_TYPES,
        FetchSettlementsInput,
        FetchSettlementsResult,
        ReconciliationResult,
        SettlementInput,
        SettlementStatus,
        SettlementView,
    )
    from canonical.ops import RunStatusUpdate
    from workflows import search_attributes as sa
    from workflows.runbook import (
        CancelRequested,
        Runbook,
        RunbookConfig,
        RunbookState,
        StepOptions,
        analyst_update,
        step_retry_policy,
    )

STEP_TIMEOUT = timedelta(minutes=10)
STAGE_TIMEOUT = timedelta(hours=1)  # a 1,000,000-line report; it heartbeats every batch
STAGE_HEARTBEAT = timedelta(minutes=2)
STAGE = StepOptions(start_to_close=STAGE_TIMEOUT, heartbeat=STAGE_HEARTBEAT)
AFTER_POSTING = StepOptions(cancellable=False)  # a pending cancel no longer stops these
TERMINAL = frozenset({SettlementStatus.POSTED, SettlementStatus.CANCELLED, SettlementStatus.FAILED})
ALREADY_POSTED_PATCH = "settlement-already-posted"
"""Runs stage before they report `received`, and a settlement already posted ends there. Deprecated
(workflow.deprecate_patch; docs/deployment.md "Safe deploys"): the code before it is gone, the call goes next release."""
ALREADY_POSTED = "already posted"


@workflow.defn(name="SettlementReconciliation")
class SettlementReconciliation(Runbook):
    # Everything parks here (an unrecoverable failure too): nothing is undone, the journal is posted once.
    RUNBOOK = RunbookConfig(
        kind="settlement", noun="settlement", parking_errors=FINANCE_ERROR_TYPES,
        needs_attention=SettlementStatus.NEEDS_ATTENTION, closed=TERMINAL | {SettlementStatus.POSTING},
        committed_action="Fix the cause, then send `retry`; or `cancel`.",
        resume_refused="a settlement has nothing to resume with corrections; fix the data and `retry`",
        fail_fast=False, details_skippable=False, step_timeout=STEP_TIMEOUT, await_projection=True,
    )

    @workflow.init
    def __init__(self, inp: SettlementInput) -> None:
        self._inp = inp
        self._wf_id = workflow.info().workflow_id
        self.rb = RunbookState(status=SettlementStatus.RECEIVED, retry_policy=step_retry_policy(inp.step_max_attempts))
        self._key: str | None = None
        self._line_count: int | None = None
        self._matched: int | None = None
        self._unmatched: int | None = None
        self._exceptions: int | None = None
        self._difference = None
        self._erp_journal_id: str | None = None
        self._version = 0

    @workflow.run
    async def run(self, inp: SettlementInput) -> ReconciliationResult:
        workflow.upsert_search_attributes([
            sa.CHANNEL.value_set(inp.effective_channel), sa.SETTLEMENT_ID.value_set(inp.settlement_id),
            sa.NEEDS_ATTENTION.value_set(False)])
        workflow.deprecate_patch(ALREADY_POSTED_PATCH)  # deprecated: every run stages first
        try:
            result = await self._reconcile(inp)
        except CancelRequested as cancel:
            self.rb.reason = cancel.action.reason or f"cancelled by {cancel.action.actor}"
            result = None
            if self._key is not None:
                result = await self._step("report", SettlementActivities.report_settlement,
                                          ReportInput(settlement_key=self._key, channel=inp.effective_channel,
                                                      status=SettlementStatus.CANCELLED.value),
                                          "Record the cancelled reconciliation", opts=AFTER_POSTING)
            await self._status(SettlementStatus.CANCELLED, self.rb.reason)
            await self._wind_up()
            if result is None:
                raise ApplicationError(f"settlement {inp.settlement_id} cancelled before it was staged: "
                                       f"{self.rb.reason}", type="SettlementCancelled", non_retryable=True) from None
            return result
        await self._wind_up()
        return cast(ReconciliationResult, result)  # set by the stage and match steps above

    async def _reconcile(self, inp: SettlementInput) -> ReconciliationResult:
        channel = inp.effective_channel
        staged = await self._step(
            "stage", SettlementActivities.stage_settlement,
            StageInput(provider=inp.provider, source=inp.source, expected_settlement_id=inp.settlement_id),
            f"Stage {inp.provider} settlement {inp.settlement_id}", opts=STAGE)
        self._key = staged.settlement_key
        self._line_count = staged.line_count
        if staged.already_posted:
            return await self._already_posted(channel)
        await self._status(SettlementStatus.RECEIVED)
        await self._status(SettlementStatus.STAGED)
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
            await self._status(SettlementStatus.MATCHED)
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
                             ResolveInput(settlement_key=self._key, actor=self.rb.last_actor,
                                          reason=self.rb.last_reason), "Mark the exceptions as posted to suspense")
            mode = "suspense"
            break
        await self._status(SettlementStatus.POSTING)
        journal = await self._step("build_journal", SettlementActivities.build_settlement_journal,
                                   BuildJournalInput(settlement_key=self._key, channel=channel, mode=mode),
                                   "Build the summarized journal" + (" (open items to suspense)"
                                                                     if mode == "suspense" else ""))
        posted = await self._step("post_journal", SettlementActivities.post_settlement_journal, ref,
                                  f"Post journal {journal.external_ref} ({journal.total_debit}) to the ERP",
                                  opts=AFTER_POSTING)
        self._erp_journal_id = posted.erp_journal_id
        result = await self._step("report", SettlementActivities.report_settlement,
                                  ReportInput(settlement_key=self._key, channel=channel,
                                              status=SettlementStatus.POSTED.value),
                                  "Report the reconciliation", opts=AFTER_POSTING)
        await self._status(SettlementStatus.POSTED)
        return result.model_copy(update={"journal_posted_now": posted.posted_now})

    async def _already_posted(self, channel: str) -> ReconciliationResult:
        """The settlement's journal is posted: report it as it stands (`journal_posted_now` false) and stay posted."""
        assert self._key is not None
        result = await self._step("report", SettlementActivities.report_settlement,
                                  ReportInput(settlement_key=self._key, channel=channel,
                                              status=SettlementStatus.POSTED.value),
                                  "Report the settlement: already posted", opts=AFTER_POSTING)
        self._erp_journal_id = result.erp_journal_id
        self._matched, self._unmatched = result.matched_count, result.unmatched_settlement_count
        await self._status(SettlementStatus.POSTED, ALREADY_POSTED)
        return result.model_copy(update={"journal_posted_now": False})

    # -- status (the steps and parking are the Runbook's) --------------------------------------------------------
    async def _status(self, status: SettlementStatus, reason: str | None = None) -> None:
        """Set the status and wait for its projection (this workflow always has, so its history keeps its shape)."""
        self._set_status(status, reason)
        await self._drain_projection()

    def _set_status(self, status: SettlementStatus, reason: str | None = None) -> None:
        was_parked = self.rb.status == SettlementStatus.NEEDS_ATTENTION
        self.rb.status = status
        self.rb.reason = reason
        parked = status == SettlementStatus.NEEDS_ATTENTION
        workflow.upsert_search_attributes([sa.NEEDS_ATTENTION.value_set(parked)])
        workflow.set_current_details(self._details())
        if status in (SettlementStatus.RECEIVED, SettlementStatus.NEEDS_ATTENTION) or status in TERMINAL \
                or was_parked:
            self._version += 1
            self._queue_projection(RunStatusUpdate(
                workflow_id=self._wf_id, kind="settlement", channel=self._inp.provider,
                external_id=self._inp.settlement_id, status=status.value, needs_attention=parked, reason=reason,
                suggested_action=self.rb.action_hint if parked else None, erp_ref=self._erp_journal_id,
                version=self._version, started_at=workflow.info().start_time, changed_at=workflow.now()))

    def _may_cancel(self) -> bool:
        return self.rb.status not in (SettlementStatus.POSTING, *TERMINAL)

    def _details(self) -> str:
        parts = [f"**Settlement** {self._inp.provider} {self._inp.settlement_id}: **{self.rb.status.value}**"]
        if self.rb.reason:
            parts.append(f"**Reason:** {self.rb.reason}")
        if self._line_count is not None:
            parts.append(f"**Lines:** {self._line_count}; matched {self._matched}, unmatched {self._unmatched}")
        if self._erp_journal_id:
            parts.append(f"**ERP journal:** {self._erp_journal_id}")
        return "\n\n".join(parts)

    # -- update, query (the analyst's signals are the Runbook's) -------------------------------------------------
    act = analyst_update(SettlementView)

    @workflow.query
    def status(self) -> SettlementView:
        return SettlementView(
            workflow_id=self._wf_id, provider=self._inp.provider, settlement_id=self._inp.settlement_id,
            status=self.rb.status, step=self.rb.current_step, reason=self.rb.reason, line_count=self._line_count,
            matched_count=self._matched, unmatched_count=self._unmatched, exception_count=self._exceptions,
            difference=self._difference, erp_journal_id=self._erp_journal_id,
            steps=[f"{r.started_at.isoformat()} {r.name}: {r.detail}" for r in self.rb.steps[-50:]])


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
