"""Starting the channel order polls (`poll:{channel}`, ChannelOrderPoll): the worker starts each enabled poll
once; an already running poll is left alone.

A run of the poll's earlier, vendor-named type (`AmazonOrderPoll`, before the poll became channel-generic)
at the same id is replaced: no worker serves that type any more, so it is terminated and the channel poll starts
with the lookback. Re-reading those hours is harmless — every start is keyed by the business id, so an order
seen before is a duplicate, never a second run."""

from __future__ import annotations

import structlog
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.order_poll import OrderPollInput
from workflows.priorities import priority_for

log = structlog.get_logger(__name__)

POLL_WORKFLOW = "ChannelOrderPoll"
LEGACY_POLL_WORKFLOWS = frozenset({"AmazonOrderPoll"})


async def _replace_legacy(client: Client, wf_id: str) -> None:
    handle = client.get_workflow_handle(wf_id)
    try:
        desc = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return
        raise
    if desc.status == WorkflowExecutionStatus.RUNNING and desc.workflow_type in LEGACY_POLL_WORKFLOWS:
        await handle.terminate(reason=f"replaced by {POLL_WORKFLOW}")
        log.info("poll.legacy_replaced", workflow_id=wf_id, workflow_type=desc.workflow_type)


async def start_order_poll(client: Client, *, channel: str, task_queue: str, interval_seconds: int,
                           lookback_hours: int) -> str:
    """Start `poll:{channel}` once; a running ChannelOrderPoll is left alone."""
    wf_id = f"poll:{channel}"
    await _replace_legacy(client, wf_id)
    try:
        await client.start_workflow(
            POLL_WORKFLOW, OrderPollInput(channel=channel, interval_seconds=interval_seconds,
                                          lookback_hours=lookback_hours),
            id=wf_id, task_queue=task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            priority=priority_for("orders", channel),  # the poll is order intake
            static_summary=f"Poll {channel} orders every {interval_seconds}s")
    except WorkflowAlreadyStartedError:
        pass
    return wf_id
