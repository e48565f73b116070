"""PricePublication (id `price:{change_set_id}`): one price change set from request to every channel.

validate (against the channels' currencies and the price book: no overlapping windows) → wait for approval (the
`approve` / `reject` updates, from a principal whose role may approve and who is not the requester; a discount
deeper than `second_approval_depth` needs a second, different approver) → a durable timer until each line's
effective time → publish the line to its channel with each of the channel's own SKUs → read it back (verify) →
record what the channel shows (the price book's projection) → at the line's end date, the revert: the price the
channel showed before (or the line's `compare_at`), published, verified and recorded the same way.

- A channel that refuses (ChannelRejected, VendorRejected) or shows another price on read-back (PriceNotApplied)
  parks the run through the Runbook: `needs_attention`, NeedsAttention=true, waiting for `retry`, `skip` (that
  channel keeps its price) or `cancel` (only before anything is published). The API sends them as `act`.
- Who approved, who rejected, every step with its time: in the history (the updates carry the authenticated
  principal, each step's summary names the approvers) and in the `status` query's steps.
- Unapproved after `approval_timeout_hours`, the change set ends (`cancelled`) and its lines leave the book.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.pricing import (
        PricingActivities,
        PublishLineInput,
        RecordShownInput,
        StatusInput,
        ValidateInput,
    )
    from canonical.fulfillment import StepState
    from canonical.ops import RunStatusUpdate
    from canonical.pricing import (
        PRICING_ERROR_TYPES,
        Approval,
        ApprovalDecision,
        PricePublicationInput,
        PricePublicationView,
        PriceStatus,
        PublishedLine,
    )
    from workflows import search_attributes as sa
    from workflows.runbook import (
        CancelRequested,
        Runbook,
        RunbookConfig,
        RunbookState,
        analyst_update,
        step_retry_policy,
    )

CLOSED = frozenset({PriceStatus.COMPLETED, PriceStatus.REJECTED, PriceStatus.INVALID, PriceStatus.CANCELLED})


@workflow.defn(name="PricePublication")
class PricePublication(Runbook):
    RUNBOOK = RunbookConfig(
        kind="price", noun="price change", parking_errors=PRICING_ERROR_TYPES,
        needs_attention=PriceStatus.NEEDS_ATTENTION, closed=CLOSED,
        committed_action="Check the channel, then send `retry`, or `skip` this channel.",
        cancel_too_late="prices are published already (publish a new change set to change them)",
        cancel_refused="prices are published already; publish a new change set to change them",
        resume_refused="a price change has no data to correct; fix the channel and `retry`, or `skip`",
        fail_fast=False,  # nothing to compensate: every fault parks for an analyst
    )

    @workflow.init
    def __init__(self, inp: PricePublicationInput) -> None:
        self._inp = inp
        self._cs = inp.change_set
        self._wf_id = workflow.info().workflow_id
        self.rb = RunbookState(status=PriceStatus.VALIDATING, retry_policy=step_retry_policy(inp.step_max_attempts),
                               activity_queues=dict(inp.activity_task_queues))
        self._approvals: list[Approval] = []
        self._decision: str | None = None  # "approved" | "rejected"
        self._depth = Decimal(0)
        self._needed = 1
        self._published: list[PublishedLine] = []
        self._before: dict[int, PublishedLine] = {}  # line → what its publication found (the revert's target)
        self._projection_version = 0

    # -- the run ---------------------------------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: PricePublicationInput) -> PricePublicationView:
        workflow.upsert_search_attributes([sa.NEEDS_ATTENTION.value_set(False), sa.SKUS.value_set(self._cs.items)])
        self._set_status(PriceStatus.VALIDATING)
        try:
            if not await self._validate():
                return await self._end(PriceStatus.INVALID, self.rb.reason, book="invalid")
            self._set_status(PriceStatus.AWAITING_APPROVAL,
                             f"needs {self._needed} approval(s) (deepest discount {self._depth * 100:.2f} %)")
            try:
                await workflow.wait_condition(
                    lambda: self._decision is not None or self.rb.cancel is not None,
                    timeout=timedelta(hours=inp.approval_timeout_hours), timeout_summary="Waiting for approval")
            except TimeoutError:
                return await self._end(PriceStatus.CANCELLED,
                                       f"not approved within {inp.approval_timeout_hours} hour(s)", book="cancelled")
            self._check_cancel()
            if self._decision == "rejected":
                who = self._approvals[-1]
                return await self._end(PriceStatus.REJECTED, f"rejected by {who.actor}: {who.reason or 'no reason'}",
                                       book="rejected")
            await self._step("record_approval", PricingActivities.record_price_status,
                             StatusInput(change_set_id=self._cs.change_set_id, status="approved",
                                         approved_by=self._approvers()),
                             f"Approved by {self._approvers()}")
            for at, action, line_no in self._timeline():
                await self._wait_until(at, action, line_no)
                await self._publish(line_no, action)
            self._set_status(PriceStatus.COMPLETED, self._summary())
            await self._wind_up()
            return self.status()
        except CancelRequested as cancel:
            by = cancel.action
            return await self._end(PriceStatus.CANCELLED, by.reason or f"cancelled by {by.actor}", book="cancelled")
        except asyncio.CancelledError:  # a Temporal cancel: the lines leave the book, then the run ends cancelled
            await self._end(PriceStatus.CANCELLED, "cancelled through Temporal", book="cancelled")
            raise

    async def _validate(self) -> bool:
        """The book's rules (currencies, overlaps); False when the set is invalid (the reason is recorded)."""
        record = self._record("validate", StepState.RUNNING, f"Validate {len(self._cs.lines)} line(s)")
        try:
            result = await self._execute(PricingActivities.validate_price_changes,
                                         ValidateInput(change_set=self._cs), "Validate the change set")
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == "InvalidPriceChange":
                self._finish(record, StepState.FAILED, cause.message)
                self.rb.reason = cause.message
                return False
            self._finish(record, StepState.FAILED, str(cause or err))
            # anything else (the book unreachable for the whole retry budget): park, like any step
            result = await self._step("validate", PricingActivities.validate_price_changes,
                                      ValidateInput(change_set=self._cs), "Validate the change set")
            if result is None:
                self.rb.reason = "validation skipped by an analyst: nothing is published unvalidated"
                return False
        else:
            self._finish(record, StepState.DONE, f"deepest discount {result.discount_depth * 100:.2f} %")
        self._depth = result.discount_depth
        self._needed = 2 if self._depth > self._inp.second_approval_depth else 1
        return True

    def _timeline(self) -> list[tuple[datetime, str, int]]:
        events = []
        for i, ln in enumerate(self._cs.lines):
            events.append((ln.effective_from, "publish", i))
            if ln.effective_to is not None:
                events.append((ln.effective_to, "revert", i))
        # at one instant the reverts go first: an ending price makes room for the one starting
        return sorted(events, key=lambda e: (e[0], e[1] != "revert", e[2]))

    async def _wait_until(self, at: datetime, action: str, line_no: int) -> None:
        delay = at - workflow.now()
        if delay <= timedelta(0):
            return
        ln = self._cs.lines[line_no]
        waiting = PriceStatus.LIVE if self._published else PriceStatus.SCHEDULED
        self._set_status(waiting, f"next: {action} {ln.item_code} on {ln.channel} at {at.isoformat()}")
        try:
            await workflow.wait_condition(lambda: self.rb.cancel is not None, timeout=delay,
                                          timeout_summary=f"Until {at.isoformat()}: {action} {ln.item_code} on "
                                                          f"{ln.channel}")
        except TimeoutError:
            pass
        self._check_cancel()

    async def _publish(self, line_no: int, action: str) -> None:
        ln = self._cs.lines[line_no]
        approvers = self._approvers()
        amount: Decimal | None
        if action == "publish":
            amount, compare_at = ln.amount, ln.compare_at
            self._set_status(PriceStatus.PUBLISHING, f"publishing {ln.item_code} on {ln.channel}")
        else:
            before = self._before.get(line_no)
            if before is None:  # the publication was skipped by an analyst: the channel kept its price
                self._record(f"revert_{line_no}", StepState.SKIPPED,
                             f"{ln.item_code} on {ln.channel}: never published, nothing to revert")
                return
            amount = before.previous if before.previous is not None else ln.compare_at
            compare_at = before.previous_compare_at if before.previous is not None else None
            if amount is None:
                self._record(f"revert_{line_no}", StepState.FAILED,
                             f"{ln.item_code} on {ln.channel}: no price to revert to")
                return
            self._set_status(PriceStatus.REVERTING, f"reverting {ln.item_code} on {ln.channel} to {amount}")
        verb = "Publish" if action == "publish" else "Revert"
        name = f"{action}_{line_no}"
        published = await self._step(
            name, PricingActivities.publish_price_line,
            PublishLineInput(change_set_id=self._cs.change_set_id, line_no=line_no, line=ln, action=action,
                             amount=amount, compare_at=compare_at, actor=approvers),
            f"{verb} {ln.item_code} on {ln.channel}: {amount} {ln.currency} (approved by {approvers})")
        if published is None:
            self._record(name, StepState.SKIPPED, f"{ln.channel} keeps its price for {ln.item_code}")
            return
        verified = await self._step(
            f"verify_{name}", PricingActivities.verify_price_line, published,
            f"Read back {ln.item_code} on {ln.channel}: expect {amount} {ln.currency}")
        if verified is None:
            return
        verified = verified.model_copy(update={"at": workflow.now()})  # the history's time, not the worker's clock
        if action == "publish":
            self._before[line_no] = verified
        await self._step(
            f"record_{name}", PricingActivities.record_price_shown,
            RecordShownInput(change_set_id=self._cs.change_set_id, published=verified,
                             reason=f"{self._cs.reason} ({verb.lower()}, requested by {self._cs.requested_by})",
                             approved_by=approvers),
            f"Record: {ln.channel} shows {amount} {ln.currency} for {ln.item_code}")
        await self._step(
            f"book_{name}", PricingActivities.record_price_status,
            StatusInput(change_set_id=self._cs.change_set_id, status="live" if action == "publish" else "ended",
                        lines=[line_no]),
            f"Price book: line {line_no} {'live' if action == 'publish' else 'ended'}")
        self._published.append(verified)

    async def _end(self, status: PriceStatus, reason: str | None, *, book: str) -> PricePublicationView:
        """A run that publishes nothing: its lines leave the book's active windows."""
        try:
            await self._execute(PricingActivities.record_price_status,
                                StatusInput(change_set_id=self._cs.change_set_id, status=book),
                                f"Price book: {book}")
        except ActivityError as err:  # the run still ends; the lines stay pending until a new run or an admin
            workflow.logger.error("price book not updated for %s: %s", self._wf_id, err.cause)
        self._set_status(status, reason)
        await self._wind_up()
        return self.status()

    def _approvers(self) -> str:
        return ", ".join(a.actor for a in self._approvals if a.decision == "approve") or "nobody"

    def _summary(self) -> str:
        published = sum(1 for p in self._published if p.action == "publish")
        reverted = sum(1 for p in self._published if p.action == "revert")
        return f"{published} line(s) published, {reverted} reverted"

    # -- approval ------------------------------------------------------------------------------------------------
    def _check_decision(self, decision: ApprovalDecision, kind: str) -> None:
        if self.rb.status != PriceStatus.AWAITING_APPROVAL or self._decision is not None:
            raise ValueError(f"the price change is {self.rb.status.value}; nothing to {kind}")
        if decision.role not in self._inp.approver_roles:
            raise ValueError(f"role {decision.role!r} may not {kind} price changes (one of: "
                             f"{', '.join(self._inp.approver_roles)})")
        if decision.actor == self._cs.requested_by:
            raise ValueError(f"{decision.actor} requested this change and cannot {kind} it")
        if kind == "approve" and any(a.actor == decision.actor for a in self._approvals):
            raise ValueError(f"{decision.actor} approved already; a second approval must come from someone else")

    @workflow.update
    def approve(self, decision: ApprovalDecision) -> PricePublicationView:
        self._approvals.append(Approval(actor=decision.actor, role=decision.role, decision="approve",
                                        reason=decision.reason, at=workflow.now()))
        self._record("approve", StepState.DONE, f"{decision.actor} ({decision.role}): {decision.reason or 'approved'}")
        if len(self._approvals) >= self._needed:
            self._decision = "approved"
        else:
            self._set_status(PriceStatus.AWAITING_APPROVAL,
                             f"approved by {decision.actor}; a discount of {self._depth * 100:.2f} % needs a second, "
                             "different approver")
        return self.status()

    @approve.validator
    def _validate_approve(self, decision: ApprovalDecision) -> None:
        self._check_decision(decision, "approve")

    @workflow.update
    def reject(self, decision: ApprovalDecision) -> PricePublicationView:
        self._approvals.append(Approval(actor=decision.actor, role=decision.role, decision="reject",
                                        reason=decision.reason, at=workflow.now()))
        self._record("reject", StepState.DONE, f"{decision.actor} ({decision.role}): {decision.reason or 'rejected'}")
        self._decision = "rejected"
        return self.status()

    @reject.validator
    def _validate_reject(self, decision: ApprovalDecision) -> None:
        self._check_decision(decision, "reject")

    act = analyst_update(PricePublicationView)

    # -- runbook hooks, status ------------------------------------------------------------------------------------
    def _committed(self) -> bool:
        return bool(self._published)

    def _set_status(self, status: PriceStatus, reason: str | None = None) -> None:
        self.rb.status = status
        if status != PriceStatus.NEEDS_ATTENTION:
            self.rb.reason = reason
        workflow.upsert_search_attributes([sa.NEEDS_ATTENTION.value_set(status == PriceStatus.NEEDS_ATTENTION)])
        workflow.set_current_details(self._details())
        self._projection_version += 1
        self._queue_projection(RunStatusUpdate(
            workflow_id=self._wf_id, kind="price", channel=",".join(self._cs.channels)[:64] or None,
            external_id=self._cs.change_set_id, reference=",".join(self._cs.items)[:255] or None,
            status=status.value, needs_attention=status == PriceStatus.NEEDS_ATTENTION, reason=self.rb.reason,
            suggested_action=self.rb.action_hint, version=self._projection_version,
            started_at=workflow.info().start_time, changed_at=workflow.now()))

    def _details(self) -> str:
        parts = [f"**Status:** {self.rb.status.value}"]
        if self.rb.reason:
            parts.append(f"**Reason:** {self.rb.reason}")
        parts.append(f"**Change set:** {self._cs.change_set_id}, {len(self._cs.lines)} line(s), requested by "
                     f"{self._cs.requested_by}: {self._cs.reason}")
        parts.append(f"**Approvals:** {len([a for a in self._approvals if a.decision == 'approve'])} of "
                     f"{self._needed} ({self._approvers()})")
        if self._published:
            parts.append(f"**Published:** {self._summary()}")
        return "\n\n".join(parts)

    @workflow.query
    def status(self) -> PricePublicationView:
        return PricePublicationView(
            workflow_id=self._wf_id, change_set_id=self._cs.change_set_id, status=self.rb.status,
            reason=self.rb.reason, requested_by=self._cs.requested_by, approvals=list(self._approvals),
            approvals_needed=self._needed, discount_depth=self._depth, published=list(self._published),
            steps=list(self.rb.steps[-100:]))
