"""Starting PricePublication (`price:{change_set_id}`): the API's `POST /prices/changes` and the CLI's
`retailflow prices import` (through the API). The same change set id twice is one run (a duplicate start is
refused by Temporal: WorkflowAlreadyStartedError)."""

from __future__ import annotations

from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy

from canonical.pricing import PriceChangeSet, PricePublicationInput
from runtime.settings import Settings
from workflows import search_attributes as sa

PRICE_PUBLICATION_WORKFLOW = "PricePublication"


def price_publication_input(settings: Settings, change_set: PriceChangeSet) -> PricePublicationInput:
    return PricePublicationInput(
        change_set=change_set, approver_roles=list(settings.pricing_approver_roles),
        second_approval_depth=settings.pricing_second_approval_depth,
        approval_timeout_hours=settings.pricing_approval_timeout_hours,
        activity_task_queues=settings.activity_task_queues)


async def start_price_publication(client: Client, settings: Settings, change_set: PriceChangeSet) -> WorkflowHandle:
    lines = len(change_set.lines)
    return await client.start_workflow(
        PRICE_PUBLICATION_WORKFLOW, price_publication_input(settings, change_set), id=change_set.workflow_id,
        task_queue=settings.queue_for("pricing"), id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=TypedSearchAttributes([SearchAttributePair(sa.NEEDS_ATTENTION, False),
                                                 SearchAttributePair(sa.SKUS, change_set.items)]),
        static_summary=f"Price change {change_set.change_set_id}: {lines} line(s) on "
                       f"{', '.join(change_set.channels)}, requested by {change_set.requested_by}",
    )
