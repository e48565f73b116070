"""Starting and signalling StoreDay (`storeday:{store}:{date}`, signal-with-start): the Square webhook and the
POS batch endpoint."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy

from canonical.pos import PosTransaction, StoreDayInput
from runtime.settings import Settings
from workflows import search_attributes as sa
from workflows.priorities import priority_for

STORE_DAY_WORKFLOW = "StoreDay"


def store_legal_entity(settings: Settings, store_id: str) -> str:
    """The legal entity whose ledger a POS store's days post to: the configured Square store of that location
    (RETAILFLOW_STORES, `square_location_id`, or a store whose channel is the store id), else the default entity."""
    for store in settings.store_directory():
        if store.vendor == "square" and store_id in (store.square_location_id, store.channel):
            return store.legal_entity
    return settings.finance_legal_entity


def store_day_input(settings: Settings, store_id: str, business_date) -> StoreDayInput:
    return StoreDayInput(
        store_id=store_id, business_date=business_date, location=settings.store_locations.get(store_id),
        accounts=settings.pos_accounts, legal_entity=store_legal_entity(settings, store_id),
        late_window_hours=settings.pos_late_window_hours,
        adjustment_delay_seconds=settings.pos_adjustment_delay_seconds,
        activity_task_queues=settings.activity_task_queues)


async def signal_store_day(client: Client, settings: Settings, transactions: list[PosTransaction]) -> str:
    """Signal-with-start `storeday:{store}:{date}` with transactions of that one store day. A store day that has
    finished (its late window is over) or was cancelled refuses them: WorkflowAlreadyStartedError."""
    first = transactions[0]
    wf_id = first.workflow_id
    if any(t.workflow_id != wf_id for t in transactions):
        raise ValueError("signal_store_day takes the transactions of one store day")
    await client.start_workflow(
        STORE_DAY_WORKFLOW, store_day_input(settings, first.store_id, first.business_date),
        id=wf_id, task_queue=settings.queue_for("pos"), start_signal="transactions", start_signal_args=[transactions],
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=TypedSearchAttributes([SearchAttributePair(sa.STORE_ID, first.store_id),
                                                 SearchAttributePair(sa.NEEDS_ATTENTION, False)]),
        static_summary=f"Store {first.store_id}: POS day {first.business_date.isoformat()}",
        priority=priority_for("pos", first.store_id, settings.fairness_weights),
    )
    return wf_id
