"""Starting and signalling InventorySync (`inventory:{sku}`, signal-with-start): the inventory API, the CLI,
drift reconciliation (through the `request_inventory_sync` activity) and the worker's outbox relay, which tells
InventorySync about stock the ERP moved (reservations, deliveries, restocks) so channels see those too. And
InventoryDrift: one run per snapshot, or on a Schedule."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    WorkflowHandle,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from adapters.inventory.ledger import InventoryLedger
from canonical.inventory import DriftInput, InventoryEvent, InventorySyncInput, inventory_workflow_id
from workflows import search_attributes as sa
from workflows.priorities import priority_for

log = structlog.get_logger(__name__)

INVENTORY_SYNC_WORKFLOW = "InventorySync"


async def start_inventory_sync(client: Client, *, sku: str, task_queue: str, events: list[InventoryEvent] | None = None,
                               events_per_run: int = 500) -> str:
    """Signal-with-start `inventory:{sku}`: the events (or a refresh) reach the running sync, or start one."""
    wf_id = inventory_workflow_id(sku)
    signal, args = ("events", [events]) if events else ("refresh", [])
    await client.start_workflow(
        INVENTORY_SYNC_WORKFLOW, InventorySyncInput(sku=sku, events_per_run=events_per_run),
        id=wf_id, task_queue=task_queue, start_signal=signal, start_signal_args=args,
        search_attributes=TypedSearchAttributes([SearchAttributePair(sa.SKUS, [sku])]),
        static_summary=f"Availability of {sku} to every channel",
        priority=priority_for("inventory"),
    )
    return wf_id


async def relay_stock_changes(client: Client, ledger: InventoryLedger, *, task_queue: str, poll_seconds: float,
                              stop: asyncio.Event, events_per_run: int = 500) -> None:
    """The outbox relay (runs in the worker): SKUs whose stock the ERP moved get a `refresh` in InventorySync."""
    while not stop.is_set():
        try:
            changed = await asyncio.to_thread(ledger.changed_skus)
            for sku, changed_at in changed:
                await start_inventory_sync(client, sku=sku, task_queue=task_queue, events_per_run=events_per_run)
                await asyncio.to_thread(ledger.ack_changed, sku, changed_at)
        except Exception as exc:  # the database or Temporal is away: try again on the next tick
            log.warning("inventory.relay_failed", error=str(exc))
        try:
            await asyncio.wait_for(stop.wait(), timeout=poll_seconds)
        except TimeoutError:
            pass


DRIFT_WORKFLOW = "InventoryDrift"


def drift_schedule(drift: DriftInput, *, schedule_id: str, every: timedelta, task_queue: str) -> Schedule:
    """The Schedule that runs InventoryDrift every `every`, one reconciliation at a time."""
    return Schedule(
        action=ScheduleActionStartWorkflow(DRIFT_WORKFLOW, drift, id=f"{schedule_id}-run", task_queue=task_queue,
                                           priority=priority_for("drift"),
                                           static_summary=f"Reconcile the ledger with the {drift.source} stock"),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def start_drift(client: Client, drift: DriftInput, *, task_queue: str, label: str) -> WorkflowHandle:
    """Reconcile the ledger against one saved snapshot: `inventory-drift:{snapshot_id}`."""
    return await client.start_workflow(DRIFT_WORKFLOW, drift, id=f"inventory-drift:{drift.snapshot_id}",
                                       task_queue=task_queue, static_summary=f"Reconcile the ledger with {label}",
                                       priority=priority_for("drift"))
