"""Starting OrderFulfillment (`order:{channel}:{external_order_id}`): webhooks, the order polls, the bench."""

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

from canonical.fulfillment import AnalystAction, OrderFulfillmentInput
from canonical.order import Order
from runtime.settings import Settings
from starters import TemporalUnavailable
from starters.bursts import log as burst_log
from starters.bursts import meter_for
from workflows import search_attributes as sa
from workflows.priorities import priority_for

ORDER_WORKFLOW = "OrderFulfillment"


def channel_allows_backorder(settings: Settings, channel: str) -> bool:
    """The channel's backorder policy (RETAILFLOW_INVENTORY_CHANNELS), else RETAILFLOW_ALLOW_BACKORDER."""
    policy = settings.inventory_channels.get(channel)
    return settings.allow_backorder if policy is None or policy.backorder is None else policy.backorder


async def start_order(client: Client, settings: Settings, order: Order, *,
                      cancel: AnalystAction | None = None) -> tuple[str, bool]:
    """Start the order's workflow; (workflow id, duplicate?). The id is the business key.

    With `cancel` (the channel cancelled the order before it arrived) the run starts with its `cancel` signal
    (signal-with-start), so the cancel wins before the first step; a run already open gets the signal."""
    wf_id = order.workflow_id
    items = sum(line.quantity for line in order.lines)
    summary = (f"{order.channel} order {order.order_number or order.external_order_id}: {items} item(s), "
               f"{order.computed_total}")
    details = "\n".join(f"- {line.quantity} × {line.channel_sku} {line.name or ''} @ {line.unit_price}"
                        for line in order.lines)
    kind = "orders"
    if not meter_for(settings.order_burst_per_minute, settings.order_burst_allowance).take(order.channel):
        kind = "orders_burst"
        burst_log.info("order.burst_priority", channel=order.channel, workflow_id=wf_id,
                       per_minute=settings.order_burst_per_minute)
    try:
        await client.start_workflow(
            ORDER_WORKFLOW,
            OrderFulfillmentInput(order=order, sla_hours=settings.order_sla_hours,
                                  allow_backorder=channel_allows_backorder(settings, order.channel),
                                  activity_task_queues=settings.activity_task_queues,
                                  split_fulfillment=order.channel in settings.split_fulfillment_channels,
                                  supplier_poll_seconds=settings.supplier_poll_seconds),
            id=wf_id, task_queue=settings.queue_for("orders"),
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes([
                SearchAttributePair(sa.CHANNEL, order.channel),
                SearchAttributePair(sa.EXTERNAL_ORDER_ID, order.external_order_id),
                SearchAttributePair(sa.ORDER_STATUS, "received"),
                SearchAttributePair(sa.NEEDS_ATTENTION, False),
                SearchAttributePair(sa.SKUS, sorted({line.channel_sku for line in order.lines})),
            ]),
            static_summary=summary, static_details=f"Order lines:\n{details}",
            # order intake runs first on shared queues; within it, each store gets its share (fairness); a store's
            # orders above its burst rate run one level lower, behind the other stores' (starters/bursts.py)
            priority=priority_for(kind, order.channel, settings.fairness_weights),
            # signal-with-start takes the running run (USE_EXISTING); a plain start fails on it (a duplicate)
            **({"start_signal": "cancel", "start_signal_args": [cancel],
                "id_conflict_policy": WorkflowIDConflictPolicy.USE_EXISTING} if cancel is not None
               else {"id_conflict_policy": WorkflowIDConflictPolicy.FAIL}),
        )
        return wf_id, False
    except WorkflowAlreadyStartedError:
        return wf_id, True
    except RPCError as exc:
        if exc.status == RPCStatusCode.ALREADY_EXISTS:
            return wf_id, True
        raise TemporalUnavailable(str(exc)) from exc
