"""Starting ReturnToRefund (`return:{channel}:{return_id}`): return webhooks, the returns API."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from canonical.returns import RefundPolicy, ReturnRequest, ReturnToRefundInput
from runtime.settings import Settings
from starters import TemporalUnavailable
from workflows import search_attributes as sa
from workflows.priorities import priority_for

RETURN_WORKFLOW = "ReturnToRefund"


def policy_for(settings: Settings, channel: str) -> RefundPolicy:
    return (RefundPolicy.BEFORE_RECEIPT if channel in settings.refund_before_receipt_channels
            else RefundPolicy.ON_RECEIPT)


async def start_return(client: Client, settings: Settings, request: ReturnRequest, *, goods_returned: bool = True,
                       channel_already_refunded: bool = False) -> tuple[str, bool]:
    """Start the return's workflow; (workflow id, duplicate?). The id is the business key."""
    wf_id = request.workflow_id
    units = sum(line.quantity for line in request.lines)
    kind = "return" if goods_returned else "refund without return"
    try:
        await client.start_workflow(
            RETURN_WORKFLOW,
            ReturnToRefundInput(request=request, policy=policy_for(settings, request.channel),
                                return_window_days=settings.return_window_days,
                                receipt_timeout_days=settings.return_receipt_timeout_days,
                                goods_returned=goods_returned, channel_already_refunded=channel_already_refunded,
                                activity_task_queues=settings.activity_task_queues),
            id=wf_id, task_queue=settings.queue_for("returns"),
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE, id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=TypedSearchAttributes([
                SearchAttributePair(sa.CHANNEL, request.channel),
                SearchAttributePair(sa.EXTERNAL_ORDER_ID, request.external_order_id),
                SearchAttributePair(sa.ORDER_STATUS, "requested"),
                SearchAttributePair(sa.NEEDS_ATTENTION, False),
            ]),
            priority=priority_for("returns", request.channel, settings.fairness_weights),
            static_summary=f"{request.channel} {kind} {request.return_id} of order {request.external_order_id}: "
                           f"{units} unit(s)",
            static_details="\n".join(f"- line {line.line_id}: {line.quantity} ({line.reason.value})"
                                     for line in request.lines),
        )
        return wf_id, False
    except WorkflowAlreadyStartedError:
        return wf_id, True
    except RPCError as exc:
        if exc.status == RPCStatusCode.ALREADY_EXISTS:
            return wf_id, True
        raise TemporalUnavailable(str(exc)) from exc
