"""Inventory intake and read side: stock event batches from WMS/ERP/POS feeds, the ledger and ATS per channel."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel
from temporalio.service import RPCError

from activities.inventory import group_by_sku
from adapters.inventory.backorders import BackorderBook
from adapters.inventory.ledger import InventoryLedger
from adapters.platform.views import EmbeddedViews
from api.auth import Analyst, Viewer
from api.deps import ClientDep, EngineDep, SettingsDep
from canonical.inventory import Availability, BackorderWait, InventoryEventBatch, StockLevel
from starters.inventory import start_inventory_sync

router = APIRouter(prefix="/inventory", tags=["inventory"])


class EventsAccepted(BaseModel):
    accepted: int
    workflows: list[str]


class InventoryView(BaseModel):
    sku: str
    levels: list[StockLevel]
    availability: list[Availability]


def _ledger(engine, settings) -> InventoryLedger:
    return InventoryLedger(engine, policies=settings.inventory_channels, default_backorder=settings.allow_backorder,
                           store_buffers=settings.inventory_store_buffers)


@router.post("/events", status_code=202, response_model=EventsAccepted)
async def post_events(batch: InventoryEventBatch, principal: Analyst, settings: SettingsDep,
                      client: ClientDep) -> EventsAccepted:
    """A batch of canonical stock events (WMS/ERP feeds). Each SKU's events go to its `inventory:{sku}` workflow
    (signal-with-start), which applies them to the ledger once each (by `source_event_id`) and publishes the
    new availability to every channel. 422 on a malformed event; nothing is accepted then."""
    workflows = []
    try:
        for sku, events in sorted(group_by_sku(batch.events).items()):
            workflows.append(await start_inventory_sync(client, sku=sku, events=events, task_queue=settings.queue_for("inventory"),
                                                        events_per_run=settings.inventory_sync_events_per_run))
    except RPCError as exc:
        raise HTTPException(503, f"Temporal is unavailable: {exc.message}; accepted so far: {workflows}") from None
    return EventsAccepted(accepted=len(batch.events), workflows=workflows)


@router.get("/{sku}", response_model=InventoryView)
def get_inventory(sku: str, engine: EngineDep, settings: SettingsDep, principal: Viewer) -> InventoryView:
    """The ledger per location (on-hand, reserved, allocated, in transit, damaged, last count) and ATS per channel."""
    ledger = _ledger(engine, settings)
    levels = ledger.levels(sku)
    if not levels:
        raise HTTPException(404, f"the ledger has no stock for {sku!r}")
    return InventoryView(sku=sku, levels=levels, availability=ledger.availability(sku))


@router.get("/{sku}/movements")
def get_movements(sku: str, engine: EngineDep, settings: SettingsDep, principal: Viewer, location: str | None = None,
                  limit: int = Query(default=200, ge=1, le=5000)) -> list[dict]:
    """The SKU's append-only movements, oldest first (each with its source event id and what it changed)."""
    return _ledger(engine, settings).movements(sku, location)[-limit:]


@router.get("/{sku}/publications")
def get_publications(sku: str, engine: EngineDep, principal: Viewer, channel: str | None = None,
                     limit: int = Query(default=100, ge=1, le=1000)) -> list[dict]:
    """What the embedded marketplace was told each channel may sell of the SKU, newest first."""
    return EmbeddedViews(engine).publications(sku, channel=channel, limit=limit)


@router.get("/{sku}/backorders", response_model=list[BackorderWait])
def get_backorders(sku: str, engine: EngineDep, principal: Viewer, location: str | None = None) -> list[BackorderWait]:
    """The backordered order lines waiting for the item (the line's own, or a component of its kit), oldest first:
    the orders InventorySync tells (`stock_received`) when it is received. With `location`, only those a receipt
    there may release (one of their nodes is there)."""
    return BackorderBook(engine).waiting_for(sku, location)
