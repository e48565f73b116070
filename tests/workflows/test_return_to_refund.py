"""ReturnToRefund on the time-skipping server with stand-in activities: each path, parking, and each
compensation (made to run by failing a later step)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.worker import Worker

from activities.returns import (
    AuthorizeReturnInput,
    CreditNoteInput,
    ExpectReturnInput,
    NotReceivedInput,
    RefundInput,
    RestockInput,
    ReturnKeyInput,
    TaxRefundInput,
)
from canonical.fulfillment import AnalystAction
from canonical.money import Money
from canonical.ops import AnalystRequest
from canonical.returns import (
    AuthorizedLine,
    AuthorizedReturn,
    Condition,
    CreditNote,
    Receipt,
    ReceiptLine,
    RefundPolicy,
    ReturnLine,
    ReturnRequest,
    ReturnStatus,
    ReturnToRefundInput,
)
from tests.workflows.standins import StandIns
from workflows.return_to_refund import ReturnToRefund

NOW = datetime(2026, 11, 1, tzinfo=UTC)


class Fake(StandIns):
    """Stand-in activities: record every call; `fail` maps an activity name to (error type, times)."""

    def all(self) -> list:
        fake = self

        @activity.defn(name="authorize_return")
        async def authorize_return(inp: AuthorizeReturnInput) -> AuthorizedReturn:
            fake.hit("authorize_return", inp)
            return AuthorizedReturn(order_external_ref=inp.request.order_workflow_id, erp_sales_order_id="SO-1",
                                    currency="USD", lines=[AuthorizedLine(
                                        line_id=line.line_id, item_code=f"ITEM-{line.line_id}", quantity=line.quantity,
                                        ordered_quantity=3, line_net=Money.of("30.00", "USD"),
                                        line_tax=Money.of("3.00", "USD")) for line in inp.request.lines])

        @activity.defn(name="expect_return")
        async def expect_return(inp: ExpectReturnInput) -> str:
            fake.hit("expect_return", inp)
            return "RMA-1"

        @activity.defn(name="cancel_expected_return")
        async def cancel_expected_return(inp: ReturnKeyInput) -> bool:
            fake.hit("cancel_expected_return", inp)
            return True

        @activity.defn(name="create_credit_note")
        async def create_credit_note(inp: CreditNoteInput) -> CreditNote:
            fake.hit("create_credit_note", inp)
            return inp.note.model_copy(update={"credit_note_id": "CN-1"})

        @activity.defn(name="cancel_credit_note")
        async def cancel_credit_note(inp: ReturnKeyInput) -> bool:
            fake.hit("cancel_credit_note", inp)
            return True

        @activity.defn(name="refund_through_channel")
        async def refund_through_channel(inp: RefundInput) -> None:
            fake.hit("refund_through_channel", inp)

        @activity.defn(name="refund_tax")
        async def refund_tax(inp: TaxRefundInput) -> None:
            fake.hit("refund_tax", inp)

        @activity.defn(name="void_tax_refund")
        async def void_tax_refund(inp: ReturnKeyInput) -> bool:
            fake.hit("void_tax_refund", inp)
            return True

        @activity.defn(name="restock_returned")
        async def restock_returned(inp: RestockInput) -> int:
            fake.hit("restock_returned", inp)
            return sum(d.quantity for d in inp.lines)

        @activity.defn(name="notify_return_not_received")
        async def notify_return_not_received(inp: NotReceivedInput) -> None:
            fake.hit("notify_return_not_received", inp)

        record_run_status = fake.record_run_status()

        return [authorize_return, expect_return, cancel_expected_return, create_credit_note, cancel_credit_note,
                refund_through_channel, refund_tax, void_tax_refund, restock_returned, notify_return_not_received,
                record_run_status]


def _input(policy: RefundPolicy = RefundPolicy.ON_RECEIPT, qty: int = 2, **kw) -> ReturnToRefundInput:
    rid = uuid.uuid4().hex[:8]
    return ReturnToRefundInput(request=ReturnRequest(
        channel="shopify", return_id=rid, external_order_id="1001", requested_at=NOW,
        lines=[ReturnLine(line_id="L1", quantity=qty, reason="damaged")]), policy=policy, **kw)


def _receipt(rid: str, receipt_id: str, qty: int, condition: Condition = Condition.RESELLABLE) -> Receipt:
    return Receipt(receipt_id=receipt_id, return_id=rid, received_at=NOW,
                   lines=[ReceiptLine(line_id="L1", quantity=qty, condition=condition)])


async def _run(ts_env, fake: Fake, inp: ReturnToRefundInput, during=None):
    tq = f"rt-{uuid.uuid4()}"
    async with Worker(ts_env.client, task_queue=tq, workflows=[ReturnToRefund], activities=fake.all()):
        handle = await ts_env.client.start_workflow(ReturnToRefund.run, inp, id=inp.request.workflow_id,
                                                    task_queue=tq, static_summary="test return")
        if during is not None:
            await during(handle)
        try:
            result = await handle.result()
        except WorkflowFailureError as err:
            result = err
        return result, await handle.query(ReturnToRefund.status)  # queried while the worker still runs


async def _until(handle, status: ReturnStatus, timeout: float = 15):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        view = await handle.query(ReturnToRefund.status)
        if view.status == status:
            return view
        await asyncio.sleep(0.1)
    raise AssertionError(f"never reached {status}; last {view.status} {view.reason}")


async def test_refund_on_receipt_partial_receipts_add_up_and_only_resellable_units_restock(ts_env):
    fake, inp = Fake(), _input()
    rid = inp.request.return_id

    async def during(handle):
        await handle.signal(ReturnToRefund.receipt, _receipt(rid, "R1", 1))
        await handle.signal(ReturnToRefund.receipt, _receipt(rid, "R1", 1))  # delivered twice
        await handle.signal(ReturnToRefund.receipt, _receipt(rid, "R2", 1, Condition.DAMAGED))

    view, _ = await _run(ts_env, fake, inp, during)
    assert view.status == ReturnStatus.COMPLETED, view.reason
    assert view.received_quantities == {"L1": 2}
    counts = fake.count()
    assert counts["create_credit_note"] == counts["refund_through_channel"] == counts["refund_tax"] == 1
    assert counts["restock_returned"] == 1 and counts["cancel_credit_note"] == 0
    refund = next(a for n, a in fake.calls if n == "refund_through_channel").refund
    # 2 of 3 units of a 30.00 + 3.00 tax line
    assert refund.total == Money.of("22.00", "USD") and refund.refund_key == inp.request.workflow_id
    restock = next(a for n, a in fake.calls if n == "restock_returned")
    assert [(d.quantity, d.disposition.value) for d in restock.lines] == [(1, "restock")]
    assert restock.receipt_key.endswith(":R1")
    assert [d.disposition.value for d in view.dispositions] == ["restock", "refurbish"]
    assert fake.names().index("refund_through_channel") < fake.names().index("restock_returned")


async def test_refund_before_receipt_pays_authorized_units_then_closes_on_timer(ts_env):
    fake, inp = Fake(), _input(RefundPolicy.BEFORE_RECEIPT, receipt_timeout_days=5)
    rid = inp.request.return_id

    async def during(handle):
        await _until(handle, ReturnStatus.REFUNDED)
        assert "restock_returned" not in fake.names()
        await handle.signal(ReturnToRefund.receipt, _receipt(rid, "R1", 1))

    view, _ = await _run(ts_env, fake, inp, during)
    assert view.status == ReturnStatus.COMPLETED, view.reason
    refund = next(a for n, a in fake.calls if n == "refund_through_channel").refund
    assert [line.quantity for line in refund.lines] == [2]
    assert fake.count()["refund_through_channel"] == 1 and fake.count()["restock_returned"] == 1
    assert view.received_quantities == {"L1": 1}


async def test_nothing_received_closes_return_and_tells_channel(ts_env):
    fake, inp = Fake(), _input(receipt_timeout_days=3)
    view, _ = await _run(ts_env, fake, inp)
    assert view.status == ReturnStatus.NOT_RECEIVED
    counts = fake.count()
    assert counts["notify_return_not_received"] == 1 and counts["cancel_expected_return"] == 1
    assert counts["create_credit_note"] == 0 and counts["refund_through_channel"] == 0


@pytest.mark.parametrize("failing, undone", [
    ("refund_through_channel", ["cancel_credit_note", "cancel_expected_return"]),
    ("create_credit_note", ["cancel_credit_note", "cancel_expected_return"]),
    ("expect_return", ["cancel_expected_return"]),
])
async def test_unrecoverable_failure_before_payment_compensates_in_reverse(ts_env, failing, undone):
    fake, inp = Fake({failing: ("Boom", 1)}), _input(RefundPolicy.BEFORE_RECEIPT)
    result, view = await _run(ts_env, fake, inp)
    assert isinstance(result, WorkflowFailureError)
    assert "compensation ran" in str(result.cause)
    names = fake.names()
    assert [n for n in names if n.startswith("cancel_")] == undone
    assert all(Counter(names)[u] == 1 for u in undone)
    assert view.status == ReturnStatus.FAILED and view.compensations == undone
    assert "refund_through_channel" not in names or failing == "refund_through_channel"


async def test_business_fault_parks_then_retry_completes(ts_env):
    fake, inp = Fake({"authorize_return": ("ReturnNotAllowed", 1)}), _input()
    rid = inp.request.return_id

    async def during(handle):
        view = await _until(handle, ReturnStatus.NEEDS_ATTENTION)
        assert "authorize" in view.reason and "fix it" in view.reason
        await handle.signal(ReturnToRefund.skip, AnalystAction(actor="a@x", reason="try skip"))
        await handle.signal(ReturnToRefund.retry, AnalystAction(actor="a@x", reason="fixed"))
        await handle.signal(ReturnToRefund.receipt, _receipt(rid, "R1", 2))

    view, _ = await _run(ts_env, fake, inp, during)
    assert view.status == ReturnStatus.COMPLETED
    assert fake.count()["authorize_return"] == 2
    assert any(s.name == "skip_refused" for s in view.steps)


async def test_cancel_while_parked_undoes_and_ends_cancelled(ts_env):
    fake, inp = Fake({"create_credit_note": ("ReturnNotAllowed", 1)}), _input(RefundPolicy.BEFORE_RECEIPT)

    async def during(handle):
        await _until(handle, ReturnStatus.NEEDS_ATTENTION)
        await handle.signal(ReturnToRefund.cancel, AnalystAction(actor="a@x", reason="customer kept it"))

    view, _ = await _run(ts_env, fake, inp, during)
    assert view.status == ReturnStatus.CANCELLED and view.reason == "customer kept it"
    assert [n for n in fake.names() if n.startswith("cancel_")] == ["cancel_credit_note", "cancel_expected_return"]
    assert "refund_through_channel" not in fake.names()


async def test_after_payment_a_failure_parks_cancel_is_refused_nothing_undone(ts_env):
    fake, inp = Fake({"refund_tax": ("Boom", 1)}), _input(RefundPolicy.BEFORE_RECEIPT)
    rid = inp.request.return_id

    async def during(handle):
        await _until(handle, ReturnStatus.NEEDS_ATTENTION)
        await handle.signal(ReturnToRefund.cancel, AnalystAction(actor="a@x", reason="undo please"))
        await asyncio.sleep(0.3)
        await handle.signal(ReturnToRefund.retry, AnalystAction(actor="a@x", reason="tax engine fixed"))
        await handle.signal(ReturnToRefund.receipt, _receipt(rid, "R1", 2))

    view, _ = await _run(ts_env, fake, inp, during)
    assert view.status == ReturnStatus.COMPLETED
    counts = fake.count()
    assert counts["refund_through_channel"] == 1 and counts["refund_tax"] == 2
    assert counts["cancel_credit_note"] == 0 and counts["cancel_expected_return"] == 0
    assert any(s.name == "cancel_refused" for s in view.steps)


async def test_refund_without_return_books_credit_and_tax_only(ts_env):
    fake = Fake()
    inp = _input(goods_returned=False, channel_already_refunded=True)
    view, _ = await _run(ts_env, fake, inp)
    assert view.status == ReturnStatus.COMPLETED
    counts = fake.count()
    assert counts["create_credit_note"] == 1 and counts["refund_tax"] == 1
    for absent in ("expect_return", "refund_through_channel", "restock_returned", "notify_return_not_received"):
        assert counts[absent] == 0


async def test_more_received_than_authorized_is_not_credited_and_partial_closes_on_timer(ts_env):
    fake, inp = Fake(), _input(qty=2, receipt_timeout_days=2)
    rid = inp.request.return_id

    async def during(handle):
        await handle.signal(ReturnToRefund.receipt, _receipt(rid, "R1", 1))

    view, _ = await _run(ts_env, fake, inp, during)
    assert view.status == ReturnStatus.COMPLETED and view.received_quantities == {"L1": 1}
    refund = next(a for n, a in fake.calls if n == "refund_through_channel").refund
    assert [line.quantity for line in refund.lines] == [1] and refund.total == Money.of("11.00", "USD")

    fake, inp = Fake(), _input(qty=1)
    rid = inp.request.return_id

    async def excess(handle):
        await handle.signal(ReturnToRefund.receipt, _receipt(rid, "R1", 5))

    view, _ = await _run(ts_env, fake, inp, excess)
    assert view.received_quantities == {"L1": 1} and any(s.name == "receipt_excess" for s in view.steps)
    refund = next(a for n, a in fake.calls if n == "refund_through_channel").refund
    assert refund.total == Money.of("11.00", "USD")
    restock = next(a for n, a in fake.calls if n == "restock_returned")
    assert sum(d.quantity for d in restock.lines) == 1


async def test_validated_actions_refuse_what_does_not_apply_and_record_what_they_accept(ts_env):
    from temporalio.client import WorkflowUpdateFailedError


    fake, inp = Fake({"authorize_return": ("ReturnNotAllowed", 1), "refund_tax": ("Boom", 1)}), _input(
        RefundPolicy.BEFORE_RECEIPT)
    rid = inp.request.return_id

    async def refused(handle, action: str, why: str) -> None:
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await handle.execute_update(ReturnToRefund.act, AnalystRequest(action=action, actor="a@x", reason="r"))
        assert why in str(err.value.cause)

    async def during(handle):
        await _until(handle, ReturnStatus.NEEDS_ATTENTION)
        await refused(handle, "skip", "cannot be skipped")
        await refused(handle, "resume", "no data to correct")
        await handle.execute_update(ReturnToRefund.act, AnalystRequest(action="retry", actor="a@x", reason="fixed"))
        await _until(handle, ReturnStatus.NEEDS_ATTENTION)  # now the tax refund, after the money went back
        await refused(handle, "cancel", "refund has been paid")
        await handle.execute_update(ReturnToRefund.act, AnalystRequest(action="retry", actor="b@x", reason="tax ok"))
        await _until(handle, ReturnStatus.REFUNDED)
        await refused(handle, "retry", "not needs_attention")
        await handle.signal(ReturnToRefund.receipt, _receipt(rid, "R1", 2))

    view, _ = await _run(ts_env, fake, inp, during)
    assert view.status == ReturnStatus.COMPLETED
    assert [s.detail for s in view.steps if s.name == "analyst_retry"] == ["a@x: fixed", "b@x: tax ok"]
    assert not any(s.name in ("skip_refused", "cancel_refused") for s in view.steps)  # refusals leave no trace


@pytest.mark.parametrize(("amount", "tax", "adjustment", "net_total", "tax_total", "over"), [
    ("5.00", "0.50", None, "5.00", "0.50", None),      # a price adjustment: what the channel refunded
    ("40.00", "9.00", None, "30.00", "3.00", "16.00"),  # more than the line was charged for: capped, flagged
    ("5.00", "0.50", "11.00", "15.00", "1.50", None),   # plus goodwill 11.00, tax included at the line's 10 %
    (None, None, "99.00", "30.00", "3.00", "66.00"),    # a lump sum larger than the line: capped and flagged too
])
async def test_amounts_refunded_without_units_are_credited_as_refunded_never_beyond_what_was_paid(
        ts_env, amount, tax, adjustment, net_total, tax_total, over):
    rid = uuid.uuid4().hex[:8]
    line = ReturnLine(line_id="L1", quantity=0, amount=Money.of(amount, "USD") if amount else None,
                      tax=Money.of(tax, "USD") if tax else None)
    inp = ReturnToRefundInput(request=ReturnRequest(
        channel="shopify", return_id=rid, external_order_id="1001", requested_at=NOW, lines=[line],
        adjustment=Money.of(adjustment, "USD") if adjustment else None), goods_returned=False,
        channel_already_refunded=True)
    fake = Fake()

    async def acknowledge(handle):
        # the channel paid more than can be credited: finance must book the rest, so the run waits for them
        view = await _until(handle, ReturnStatus.NEEDS_ATTENTION)
        assert f"refunded {over} USD more than is left to credit" in view.reason
        await handle.execute_update(ReturnToRefund.act, AnalystRequest(
            action="skip", actor="finance@x", reason="booked as goodwill expense"))

    view, _ = await _run(ts_env, fake, inp, acknowledge if over else None)
    assert view.status == ReturnStatus.COMPLETED
    note = next(a for n, a in fake.calls if n == "create_credit_note").note
    assert (note.net_total, note.tax_total) == (Money.of(net_total, "USD"), Money.of(tax_total, "USD"))
    assert note.lines[0].quantity == 0
    flagged = [s for s in view.steps if s.name == "over_refund"]
    if over:
        assert [(s.state, s.detail) for s in flagged] == [("skipped", "acknowledged (skip) by finance@x")]
        assert [s.detail for s in view.steps if s.name == "analyst_skip"] == ["finance@x: booked as goodwill expense"]
    else:
        assert flagged == []


def test_a_line_with_no_units_and_no_amount_is_refused():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="nothing to refund"):
        ReturnRequest(channel="shopify", return_id="r", external_order_id="1", requested_at=NOW,
                      lines=[ReturnLine(line_id="L1", quantity=0)])
