"""POS store days: Square webhook intake, POS offline batches, store-day status, close and analyst actions.

`POST /webhooks/square` goes through the shared webhook intake (`api/intake/pipeline.py::receive`, source
`api/intake/square.py`): body limit, 503 when Temporal is down, a quarantined copy on our own faults; the source is
in `api.intake.registry.SOURCES` under `square`, so quarantined Square deliveries can be replayed like the others.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Literal

import structlog
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.pos import group_by_store_day
from adapters.pos.fulfillment import EmbeddedStoreFulfillment, TransitionRefused, UnknownStoreFulfillment
from api.auth import Analyst, StoreReader, StoreStaff, Viewer
from api.deps import ClientDep, EngineDep, SettingsDep
from api.intake import pipeline
from api.intake.pipeline import Fault
from api.intake.registry import SOURCES
from api.intake.square import signal_store_events, signal_transactions
from api.masking import for_principal
from canonical.access import SCOPED_ROLES
from canonical.money import DecimalAmount
from canonical.ops import AnalystRequest, Reason
from canonical.pos import CloseRequest, PosTransaction, StoreDaySummary, store_day_workflow_id
from canonical.sourcing import StoreFulfillment, StoreFulfillmentEvent, StoreFulfillmentState
from starters import TemporalUnavailable

log = structlog.get_logger(__name__)

router = APIRouter(tags=["pos"])


@router.post("/webhooks/square", tags=["webhooks"], summary="Square webhook (payment.*, refund.*, order.*)",
             responses={202: {"description": "Accepted: the transaction was signalled to its store day"},
                        200: {"description": "Duplicate delivery, or an event that carries no money"},
                        401: {"description": "Missing or invalid x-square-hmacsha256-signature; quarantined"},
                        409: {"description": "The store day is finished or cancelled; quarantined"},
                        422: {"description": "Payload does not map; quarantined"}})
async def square_webhook(request: Request, engine: EngineDep, settings: SettingsDep) -> JSONResponse:
    return await pipeline.receive(SOURCES["square"], request, engine, settings)


class PosBatch(BaseModel):
    transactions: list[PosTransaction] = Field(min_length=1, max_length=5000)


class PosBatchResult(BaseModel):
    accepted: int
    store_days: dict[str, int] = Field(description="Workflow id → transactions signalled to it")
    refused: dict[str, str] = Field(default_factory=dict, description="Store days that are finished or cancelled")


@router.post("/pos/batches", status_code=202, response_model=PosBatchResult,
             responses={409: {"description": "Every store day of the batch is finished or cancelled"}})
async def pos_batch(batch: PosBatch, request: Request, settings: SettingsDep,
                    principal: Analyst) -> PosBatchResult | JSONResponse:
    """A POS's batch (offline replay, end-of-day export): each store day's transactions are signalled to it; the
    store day drops the ones it has already counted."""
    store_days, refused = {}, {}
    for wf_id, txns in sorted(group_by_store_day(batch.transactions).items()):
        try:
            await signal_transactions(request.app.state.temporal.get, settings, txns)
            store_days[wf_id] = len(txns)
        except WorkflowAlreadyStartedError:
            refused[wf_id] = "the store day is finished or cancelled"
        except TemporalUnavailable as exc:
            return JSONResponse({"detail": f"Temporal is unavailable: {exc}", "store_days": store_days},
                                status_code=503, headers={"Retry-After": "5"})
    if not store_days:
        return JSONResponse({"detail": "every store day of the batch is finished or cancelled",
                             "refused": refused}, status_code=409)
    return PosBatchResult(accepted=sum(store_days.values()), store_days=store_days, refused=refused)


class StoreDayResponse(BaseModel):
    run_status: str
    store_day: StoreDaySummary


async def _describe(client, wf_id: str):
    handle = client.get_workflow_handle(wf_id)
    try:
        desc = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(404, f"no store day {wf_id}") from None
        raise HTTPException(503, f"Temporal is unavailable: {exc.message}") from None
    return handle, desc


@router.get("/storedays/{store_id}/{business_date}", response_model=StoreDayResponse,
            responses={404: {"description": "No such store day"}})
async def get_store_day(store_id: str, business_date: date, principal: Viewer,
                        client: ClientDep) -> StoreDayResponse:
    handle, desc = await _describe(client, store_day_workflow_id(store_id, business_date))
    try:
        view = await handle.query("status", result_type=StoreDaySummary)
    except Exception as exc:  # no worker polling right now
        raise HTTPException(503, f"the store day is {desc.status.name if desc.status else 'unknown'} but its status "
                                 f"cannot be queried now: {exc}") from None
    return for_principal(principal, StoreDayResponse(run_status=desc.status.name if desc.status else "UNKNOWN",
                                                     store_day=view))


@router.post("/storedays/{store_id}/{business_date}/close", status_code=202,
             responses={404: {"description": "No such store day"}, 409: {"description": "Not running"}})
async def close_store_day(store_id: str, business_date: date, body: CloseBody, principal: Analyst,
                          client: ClientDep) -> dict:
    """Close the day: its journal is posted once (a second close changes nothing). `counted_cash` books cash
    over/short. The actor recorded is the authenticated principal."""
    wf_id = store_day_workflow_id(store_id, business_date)
    handle, desc = await _describe(client, wf_id)
    if desc.status is None or desc.status.name != "RUNNING":
        raise HTTPException(409, f"store day {wf_id} is {desc.status.name if desc.status else 'unknown'}")
    await handle.signal("close", CloseRequest(counted_cash=body.counted_cash, actor=principal.name,
                                              reason=body.reason))
    return {"workflow_id": wf_id, "close_requested": True}


class CloseBody(BaseModel):
    """What `close` takes; the actor recorded is the authenticated principal (an `actor` here is ignored)."""

    counted_cash: DecimalAmount | None = Field(default=None, ge=0, description="Cash counted in the drawer(s)")
    reason: str | None = Field(default=None, max_length=2000)


class ActionBody(BaseModel):
    """The actor recorded is the authenticated principal; an `actor` in the body is ignored."""

    reason: Reason


@router.post("/storedays/{store_id}/{business_date}/actions/{action}", status_code=202,
             responses={404: {"description": "No such store day"}, 409: {"description": "Action not valid now"}})
async def store_day_action(store_id: str, business_date: date, action: Literal["retry", "skip", "cancel"],
                           body: ActionBody, principal: Analyst, client: ClientDep) -> dict:
    wf_id = store_day_workflow_id(store_id, business_date)
    handle = client.get_workflow_handle(wf_id)
    try:
        view = await handle.execute_update("act", AnalystRequest(action=action, actor=principal.name, reason=body.reason),
                                           result_type=StoreDaySummary)
    except WorkflowUpdateFailedError as exc:
        raise HTTPException(409, getattr(exc.cause, "message", None) or str(exc.cause or exc)) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            await _describe(client, wf_id)  # 404 if it never existed
            raise HTTPException(409, f"store day {wf_id} is not running; nothing to {action}") from None
        raise HTTPException(503, f"Temporal is unavailable: {exc.message}") from None
    return {"workflow_id": wf_id, "action": action, "accepted": True, "status": view.status}


# -- ship-from-store and click-and-collect at the embedded POS (issue 20, item 3; docs/fulfillment.md) --------------
STAFF_ACTIONS: dict[str, StoreFulfillmentState] = {
    "accepted": StoreFulfillmentState.RESERVED, "picked": StoreFulfillmentState.PREPARED,
    "collected": StoreFulfillmentState.COMPLETED, "shipped": StoreFulfillmentState.COMPLETED,
    "refused": StoreFulfillmentState.CANCELED}


class StoreActionBody(BaseModel):
    """What the store's staff say with an action; the actor recorded is the authenticated principal."""

    reason: str | None = Field(default=None, max_length=2000, description="`refused`: why the store cannot do it")
    carrier: str | None = Field(default=None, max_length=64, description="`shipped`: the parcel's carrier")
    tracking_number: str | None = Field(default=None, max_length=128, description="`shipped`: its tracking number")


class StoreFulfillmentView(StoreFulfillment):
    """A store fulfillment request as the staff's list shows it."""

    recipient_name: str | None = Field(default=None, description=(
        "Who collects the pick-up (or whom the parcel is for): shown to the store's own staff, analysts and "
        "admins, masked for viewers and finance. No e-mail, phone or address is shown: the request holds none"))


@router.get("/pos/stores/{store_id}/fulfillments", response_model=list[StoreFulfillmentView],
            responses={403: {"description": "A store principal of other stores, or a role that may not read"}})
async def store_fulfillments(store_id: str, principal: StoreReader, engine: EngineDep) -> list:
    """The store's open fulfillment requests (to pick, to hand over or to ship), oldest first, with the name of
    who collects each one. A `store` principal lists its own stores only."""
    pending = await asyncio.to_thread(EmbeddedStoreFulfillment(engine).pending_for_staff, store_id)
    views = [StoreFulfillmentView(**view.model_dump(), recipient_name=name) for view, name in pending]
    if principal.role in SCOPED_ROLES:  # its own store (require_store): the name it hands the parcel over to
        return views
    return for_principal(principal, views)


@router.post("/pos/stores/{store_id}/fulfillments/{ref:path}/{action}", status_code=202, response_model=None,
             responses={403: {"description": "A store principal of other stores, or another store's reference"},
                        404: {"description": "The store has no such fulfillment"},
                        409: {"description": "Not valid in its state (or the order is no longer running)"}})
async def store_fulfillment_action(store_id: str, ref: str,
                                   action: Literal["accepted", "picked", "collected", "shipped", "refused"],
                                   principal: StoreStaff, engine: EngineDep, request: Request,
                                   body: StoreActionBody | None = None) -> dict | JSONResponse:
    """The store's staff: `accepted`, `picked` (PREPARED: ready for pick-up, or packed), `collected` (the customer
    took a click-and-collect order), `shipped` (a ship-from-store parcel left, with its tracking) or `refused`.
    The embedded POS's request moves first, then the order is told (signal `store_fulfillment`, the principal as
    the actor); the same action again tells the order again, which drops what it has seen. A `store` principal
    moves its own stores' requests only: another store's reference answers 403."""
    body = body or StoreActionBody()
    pos = EmbeddedStoreFulfillment(engine)
    current = await asyncio.to_thread(pos.fulfillment, ref)
    if current is not None and current.store_id != store_id and not principal.acts_for(current.store_id):
        raise HTTPException(403, f"fulfillment {ref} is another store's; {principal.name} acts for "
                                 f"{', '.join(sorted(principal.stores))} only")
    if current is None or current.store_id != store_id:
        raise HTTPException(404, f"store {store_id} has no fulfillment {ref}")
    kind = current.kind.value
    if (action == "collected" and kind != "PICKUP") or (action == "shipped" and kind != "SHIPMENT"):
        raise HTTPException(409, f"fulfillment {ref} is a {kind.lower()}: it is "
                                 f"{'shipped' if kind == 'SHIPMENT' else 'collected'}, not {action}")
    state = STAFF_ACTIONS[action]
    try:
        moved, changed = await asyncio.to_thread(
            pos.transition, store_id, ref, state, principal.name, reason=body.reason, carrier=body.carrier,
            tracking_number=body.tracking_number)
    except UnknownStoreFulfillment as exc:
        raise HTTPException(404, str(exc)) from None
    except TransitionRefused as exc:
        raise HTTPException(409, str(exc)) from None
    log.info("pos.store_fulfillment_action", store_id=store_id, ref=ref, action=action, actor=principal.name,
             role=principal.role.value, changed=changed)
    event = StoreFulfillmentEvent(event_id=f"embedded:{ref}:{state.value}", ref=ref, state=state,
                                  actor=principal.name, occurred_at=datetime.now(UTC), reason=body.reason,
                                  carrier=body.carrier, tracking_number=body.tracking_number)
    try:
        wf_id = await signal_store_events(request.app.state.temporal.get, [event])
    except Fault as exc:
        raise HTTPException(exc.status_code, str(exc)) from None
    except TemporalUnavailable as exc:
        return JSONResponse({"detail": f"Temporal is unavailable: {exc}; send the action again"}, status_code=503,
                            headers={"Retry-After": "5"})
    return {"workflow_id": wf_id, "ref": ref, "state": moved.state.value, "changed": changed, "actor": principal.name}
