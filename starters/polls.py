"""Starting the marketplace order polls (`poll:{channel}`): the worker starts each enabled poll once."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.amazon import POLL_WORKFLOW, AmazonPollInput
from runtime.settings import Settings


async def start_amazon_poll(client: Client, settings: Settings) -> str:
    """Start the poll once (`poll:{channel}`); an already running poll is left alone."""
    wf_id = f"poll:{settings.amazon_channel}"
    try:
        await client.start_workflow(
            POLL_WORKFLOW, AmazonPollInput(channel=settings.amazon_channel,
                                           interval_seconds=settings.amazon_poll_interval_seconds,
                                           lookback_hours=settings.amazon_poll_lookback_hours),
            id=wf_id, task_queue=settings.queue_for("orders"), id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"Poll Amazon orders every {settings.amazon_poll_interval_seconds}s")
    except WorkflowAlreadyStartedError:
        pass
    return wf_id
