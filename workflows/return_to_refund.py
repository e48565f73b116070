"""ReturnToRefund (id `return:{channel}:{return_id}`): authorize against the original order → tell the WMS to
expect the goods → wait for receipts (partial receipts add up; a timer closes the return as not received and
tells the channel) → disposition per line → ERP credit note → refund through the channel → tax refund →
restock what is resellable → completed.

A channel policy decides refund-before-receipt (credit note, refund and tax run before waiting, for what was
authorized) or refund-on-receipt (for what was received). Business faults park the run for `retry`, `skip` or
`cancel`, exactly as OrderFulfillment does. Until the refund is paid, `cancel` or an unrecoverable failure
undoes what was done in reverse (cancel the credit note, withdraw the WMS announcement); once money has gone
back to the customer nothing is undone and a failure parks.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.returns import (
        AuthorizeReturnInput,
        CreditNoteInput,
        ExpectReturnInput,
        NotReceivedInput,
        RefundInput,
        RestockInput,
        ReturnActivities,
        ReturnKeyInput,
        TaxRefundInput,
    )
    from canonical.errors import BUSINESS_ERROR_TYPES
    from canonical.fulfillment import StepState
    from canonical.money import Money, sum_money
    from canonical.ops import RunStatusUpdate
    from canonical.returns import (
        DISPOSITION_BY_CONDITION,
        RETURN_ERROR_TYPES,
        AuthorizedReturn,
        CreditNote,
        CreditNoteLine,
        Disposition,
        DispositionLine,
        Receipt,
        Refund,
        RefundLine,
        RefundPolicy,
        ReturnStatus,
        ReturnToRefundInput,
        ReturnView,
        allocate_refund,
    )
    from workflows import search_attributes as sa
    from workflows.runbook import (
        CancelRequested,
        Runbook,
        RunbookConfig,
        RunbookState,
        StepFailed,
        analyst_update,
        step_retry_policy,
    )

# Parks a run whose channel refund went beyond what could be credited (added after runs were in flight).
# Deprecated (workflow.deprecate_patch; docs/deployment.md "Safe deploys"): the call goes next release.
OVER_REFUND_PATCH = "flag-over-refund-v1"
FINAL = frozenset({ReturnStatus.COMPLETED, ReturnStatus.CANCELLED, ReturnStatus.FAILED, ReturnStatus.NOT_RECEIVED})


@workflow.defn(name="ReturnToRefund")
class ReturnToRefund(Runbook):
    RUNBOOK = RunbookConfig(
        kind="return", noun="return", parking_errors=BUSINESS_ERROR_TYPES | RETURN_ERROR_TYPES,
        needs_attention=ReturnStatus.NEEDS_ATTENTION, closed=FINAL | {ReturnStatus.CANCELLING},
        committed_action="The refund has been paid, so nothing is undone; fix the cause, then send `retry`.",
        cancel_too_late="the refund has been paid",
        cancel_refused="the refund has been paid; the return cannot be cancelled",
        resume_refused="a return has no data to correct; fix the cause, then retry",
    )

    @workflow.init
    def __init__(self, inp: ReturnToRefundInput) -> None:
        self._input = inp
        self._req = inp.request
        self._wf_id = workflow.info().workflow_id
        self.rb = RunbookState(status=ReturnStatus.REQUESTED, retry_policy=step_retry_policy(inp.step_max_attempts),
                               activity_queues=dict(inp.activity_task_queues), channel=inp.request.channel)
        self._auth: AuthorizedReturn | None = None
        self._pending_receipts: list[Receipt] = []
        self._seen_receipts: set[str] = set()
        self._received: dict[str, int] = {line.line_id: 0 for line in inp.request.lines}
        self._dispositions: list[DispositionLine] = []
        self._credit_note: CreditNote | None = None
        self._refund: Refund | None = None
        self._paid = False
        self._projection_version = 0

    # -- the run -------------------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: ReturnToRefundInput) -> ReturnView:
        workflow.upsert_search_attributes([
            sa.CHANNEL.value_set(self._req.channel),
            sa.EXTERNAL_ORDER_ID.value_set(self._req.external_order_id),
            sa.ORDER_STATUS.value_set(self.rb.status.value),
            sa.NEEDS_ATTENTION.value_set(False),
        ])
        self._set_status(ReturnStatus.REQUESTED)
        try:
            await self._process(inp)
        except asyncio.CancelledError:
            await self._compensate()
            self._set_status(ReturnStatus.CANCELLED, "cancelled through Temporal")
            await self._wind_up()
            raise
        except CancelRequested as cancel:
            await self._compensate()
            self._set_status(ReturnStatus.CANCELLED, cancel.action.reason or f"cancelled by {cancel.action.actor}")
        except StepFailed as failure:
            await self._compensate()
            self._set_status(ReturnStatus.FAILED, f"{failure.step} failed: {failure.message}")
            await self._wind_up()
            raise ApplicationError(
                f"return {self._req.return_id} failed at {failure.step}: {failure.message}; "
                f"compensation ran: {', '.join(self.rb.compensated) or 'nothing to undo'}",
                type="ReturnFailed", non_retryable=True,
            ) from None
        await self._wind_up()
        return self.status()

    async def _process(self, inp: ReturnToRefundInput) -> None:
        req, key = self._req, self._wf_id
        units = sum(line.quantity for line in req.lines)
        self._auth = await self._step(
            "authorize", ReturnActivities.authorize_return,
            AuthorizeReturnInput(workflow_id=key, request=req, return_window_days=inp.return_window_days),
            f"Authorize return {req.return_id} of {units} unit(s) against order {req.external_order_id}")
        self._set_status(ReturnStatus.AUTHORIZED)
        if not inp.goods_returned:  # a refund without a return: credit note and tax, stock untouched
            await self._settle({line.line_id: line.quantity for line in self._auth.lines}, "refunded")
            self._set_status(ReturnStatus.COMPLETED)
            return

        self._register("cancel_expected_return", ReturnActivities.cancel_expected_return, ReturnKeyInput(key=key),
                       "Withdraw the return announcement at the warehouse")
        await self._step("expect_return", ReturnActivities.expect_return,
                         ExpectReturnInput(external_ref=key, lines=self._auth.lines),
                         f"Tell the warehouse to expect {units} unit(s)")
        self._set_status(ReturnStatus.AWAITING_RECEIPT)

        if inp.policy == RefundPolicy.BEFORE_RECEIPT:
            await self._settle({line.line_id: line.quantity for line in self._auth.lines}, "authorized")

        processed = await self._await_receipts(inp)
        if not processed:
            await self._step("notify_not_received", ReturnActivities.notify_return_not_received,
                             NotReceivedInput(channel=req.channel, external_order_id=req.external_order_id,
                                              return_id=req.return_id),
                             f"Tell {req.channel} return {req.return_id} was not received", skippable=True)
            if not self._paid:
                await self._compensate(notify=False)
            self._set_status(ReturnStatus.NOT_RECEIVED,
                             f"nothing received within {inp.receipt_timeout_days} day(s)"
                             + ("; refunded before receipt" if self._paid else ""))
            return

        if inp.policy == RefundPolicy.ON_RECEIPT:
            await self._settle({lid: q for lid, q in self._received.items() if q > 0}, "received")

        for receipt in processed:
            lines = [d for d in self._dispositions_for(receipt) if d.disposition == Disposition.RESTOCK]
            if lines:
                await self._step("restock", ReturnActivities.restock_returned,
                                 RestockInput(receipt_key=f"{key}:{receipt.receipt_id}", lines=lines),
                                 f"Restock {sum(d.quantity for d in lines)} resellable unit(s) "
                                 f"from receipt {receipt.receipt_id}")
        self._set_status(ReturnStatus.COMPLETED)

    async def _await_receipts(self, inp: ReturnToRefundInput) -> list[Receipt]:
        deadline = workflow.now() + timedelta(days=inp.receipt_timeout_days)
        expected = {line.line_id: line.quantity for line in self._auth.lines} if self._auth else {}
        processed: list[Receipt] = []
        waiting = self._record("await_receipt", StepState.WAITING, "Waiting for the warehouse to receive the goods")
        while any(self._received.get(lid, 0) < q for lid, q in expected.items()):
            try:
                await workflow.wait_condition(
                    lambda: bool(self._pending_receipts) or self.rb.cancel is not None,
                    timeout=max(deadline - workflow.now(), timedelta(seconds=1)), timeout_summary="Return receipt window",
                )
            except TimeoutError:
                self._record("receipt_window_closed", StepState.DONE,
                             f"Receipt window of {inp.receipt_timeout_days} day(s) closed")
                break
            self._check_cancel()
            while self._pending_receipts:
                receipt = self._pending_receipts.pop(0)
                accepted = self._accept_receipt(receipt, expected)
                if accepted is not None:
                    processed.append(accepted)
            got = sum(self._received.values())
            self._set_status(ReturnStatus.RECEIVED if got >= sum(expected.values()) else ReturnStatus.PARTIALLY_RECEIVED)
        self._finish(waiting, StepState.DONE, f"{len(processed)} receipt(s), {sum(self._received.values())} unit(s)")
        return processed

    def _accept_receipt(self, receipt: Receipt, expected: dict[str, int]) -> Receipt | None:
        """Count what was expected; anything beyond what was authorized is recorded and not credited."""
        kept = []
        for rl in receipt.lines:
            room = expected.get(rl.line_id, 0) - self._received.get(rl.line_id, 0)
            take = min(room, rl.quantity)
            if take < rl.quantity:
                self._record("receipt_excess", StepState.DONE,
                             f"receipt {receipt.receipt_id}: {rl.quantity - take} unit(s) of line {rl.line_id} "
                             "were not expected and are not credited")
            if take > 0:
                self._received[rl.line_id] = self._received.get(rl.line_id, 0) + take
                kept.append(rl.model_copy(update={"quantity": take}))
        if not kept:
            return None
        accepted = receipt.model_copy(update={"lines": kept})
        self._dispositions.extend(self._dispositions_for(accepted))
        self._record("disposition", StepState.DONE, ", ".join(
            f"{d.quantity}× {d.item_code} → {d.disposition.value}" for d in self._dispositions_for(accepted)))
        return accepted

    def _dispositions_for(self, receipt: Receipt) -> list[DispositionLine]:
        items = {line.line_id: line.item_code for line in self._auth.lines} if self._auth else {}
        return [DispositionLine(line_id=rl.line_id, item_code=items[rl.line_id], quantity=rl.quantity,
                                disposition=DISPOSITION_BY_CONDITION[rl.condition]) for rl in receipt.lines]

    def _amounts(self, quantities: dict[str, int]) -> tuple[dict[str, tuple[Money, Money]], Money]:
        """What to credit per line and what the channel refunded beyond it: canonical.returns.allocate_refund."""
        assert self._auth is not None
        return allocate_refund(self._auth, self._req, quantities)

    async def _settle(self, quantities: dict[str, int], basis: str) -> None:
        """Credit note → refund through the channel → tax refund, for `quantities` per line."""
        assert self._auth is not None
        req, key, cur = self._req, self._wf_id, self._auth.currency
        by_line = {line.line_id: line for line in self._auth.lines}
        cn_lines, refund_lines = [], []
        amounts, uncredited = self._amounts(quantities)
        for line_id, qty in quantities.items():
            net, tax = amounts[line_id]
            cn_lines.append(CreditNoteLine(line_id=line_id, item_code=by_line[line_id].item_code, quantity=qty,
                                           net=net, tax=tax))
            refund_lines.append(RefundLine(line_id=line_id, quantity=qty, amount=net, tax=tax))
        note = CreditNote.build(key, self._auth.order_external_ref, cur, cn_lines)
        self._register("cancel_credit_note", ReturnActivities.cancel_credit_note, ReturnKeyInput(key=key),
                       "Cancel the ERP credit note")
        self._credit_note = await self._step("create_credit_note", ReturnActivities.create_credit_note,
                                             CreditNoteInput(note=note),
                                             f"Book ERP credit note {note.total} for the {basis} units")
        self._set_status(ReturnStatus.CREDITED)

        net_total = sum_money([r.amount for r in refund_lines], cur)
        fee = Money.of(net_total.amount * Decimal(self._input.restocking_fee_percent) / Decimal(100), cur)
        self._refund = Refund(refund_key=key, channel=req.channel, external_order_id=req.external_order_id,
                              currency=cur, lines=refund_lines, shipping=Money.zero(cur),
                              tax=sum_money([r.tax for r in refund_lines], cur), fees_kept=fee)
        if self._input.channel_already_refunded:
            self._record("refund", StepState.DONE, f"{req.channel} already refunded {self._refund.total}")
        else:
            await self._step("refund", ReturnActivities.refund_through_channel, RefundInput(refund=self._refund),
                             f"Refund {self._refund.total} through {req.channel}")
        self._paid = True
        self.rb.undo.clear()  # money is back with the customer: from here on failures park, nothing is undone
        self._set_status(ReturnStatus.REFUNDED)
        if not self._refund.tax.is_zero:
            await self._step("refund_tax", ReturnActivities.refund_tax,
                             TaxRefundInput(code=key, original_code=self._auth.order_external_ref,
                                            amount=self._refund.tax),
                             f"Give back tax {self._refund.tax}")
        if self._input.channel_already_refunded and uncredited.amount > 0:
            workflow.deprecate_patch(OVER_REFUND_PATCH)  # deprecated: every run parks on an over-refund
            await self._flag_over_refund(uncredited)

    async def _flag_over_refund(self, uncredited: Money) -> None:
        """The channel paid out more than was left to credit on the order (its lines were already credited, or
        a goodwill sum beyond what was paid): the credit note stops at what was paid, and finance must book the
        rest by hand. The run parks until an analyst acknowledges it (skip or retry); nothing is undone."""
        index = self._record("over_refund", StepState.PARKED,
                             f"{self._req.channel} refunded {uncredited} more than is left to credit")
        kind = await self._park(
            f"{self._req.channel} refunded {uncredited} more than is left to credit on order "
            f"{self._req.external_order_id} (earlier credit notes included); the credit note covers what was paid",
            "Book the difference by hand (a goodwill expense or a claim back from the channel), then skip to "
            "acknowledge", skippable=True)
        self._finish(index, StepState.SKIPPED, f"acknowledged ({kind}) by {self.rb.last_actor}")

    # -- compensation (the machinery is in workflows/runbook.py) ---------------------------------------
    def _committed(self) -> bool:
        return self._paid

    async def _compensate(self, *, notify: bool = True) -> None:
        if notify:
            self._set_status(ReturnStatus.CANCELLING, self.rb.reason)
        undo = list(reversed(self.rb.undo))
        self.rb.undo.clear()
        await self._run_undo(undo)

    # -- bookkeeping ------------------------------------------------------------------------------------
    def _set_status(self, status: ReturnStatus, reason: str | None = None) -> None:
        changed = status != self.rb.status or status == ReturnStatus.REQUESTED and not self._projection_version
        self.rb.status = status
        if status != ReturnStatus.NEEDS_ATTENTION:
            self.rb.reason = reason
        workflow.upsert_search_attributes([
            sa.ORDER_STATUS.value_set(status.value),
            sa.NEEDS_ATTENTION.value_set(status == ReturnStatus.NEEDS_ATTENTION),
        ])
        workflow.set_current_details(self._details())
        if changed:
            self._projection_version += 1
            upd = RunStatusUpdate(
                workflow_id=self._wf_id, kind="return", channel=self._req.channel, external_id=self._req.return_id,
                reference=self._req.external_order_id, status=status.value,
                needs_attention=status == ReturnStatus.NEEDS_ATTENTION, reason=self.rb.reason,
                suggested_action=self.rb.action_hint,
                erp_ref=self._credit_note.credit_note_id if self._credit_note else None, late=False,
                version=self._projection_version, started_at=workflow.info().start_time, changed_at=workflow.now())
            self._queue_projection(upd)

    def _details(self) -> str:
        parts = [f"**Return** {self._req.return_id} of order {self._req.external_order_id} "
                 f"({self._input.policy.value})", f"**Status:** {self.rb.status.value}"]
        if self.rb.reason:
            parts.append(f"**Reason:** {self.rb.reason}")
        expected = sum(line.quantity for line in self._req.lines)
        parts.append(f"**Received:** {sum(self._received.values())}/{expected} unit(s)")
        if self._credit_note:
            parts.append(f"**Credit note:** {self._credit_note.credit_note_id} ({self._credit_note.total})")
        if self._paid and self._refund:
            parts.append(f"**Refunded:** {self._refund.total}")
        return "\n\n".join(parts)

    # -- signals and queries ----------------------------------------------------------------------------
    act = analyst_update(ReturnView)

    @workflow.signal
    def receipt(self, receipt: Receipt) -> None:
        if receipt.receipt_id in self._seen_receipts or self.rb.status in FINAL:
            return
        self._seen_receipts.add(receipt.receipt_id)
        self._pending_receipts.append(receipt)

    @workflow.query
    def status(self) -> ReturnView:
        return ReturnView(
            workflow_id=self._wf_id, status=self.rb.status, reason=self.rb.reason, policy=self._input.policy,
            erp_sales_order_id=self._auth.erp_sales_order_id if self._auth else None,
            credit_note_id=self._credit_note.credit_note_id if self._credit_note else None,
            refund_total=self._refund.total if self._refund and self._paid else None,
            received_quantities=dict(self._received), dispositions=list(self._dispositions),
            steps=list(self.rb.steps), compensations=list(self.rb.compensated),
        )
