"""Returns: create one, read its status, record a warehouse receipt, analyst actions; and the embedded ERP's
credit notes (read-only), so anyone can see a return was credited once."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, model_validator
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from adapters.platform.intake_store import IntakeStore
from adapters.platform.views import EmbeddedViews
from api.audit import AuditEntry, audit_answer, fetch_audit
from api.auth import Analyst, Viewer
from api.deps import ClientDep, EngineDep, SettingsDep
from api.masking import for_principal
from canonical.money import quantize
from canonical.ops import AnalystRequest, Reason
from canonical.returns import Receipt, ReturnRequest, ReturnView
from starters import TemporalUnavailable, deliver_held, signal_workflow
from starters.returns import start_return

router = APIRouter(tags=["returns"])


class StartResponse(BaseModel):
    workflow_id: str
    duplicate: bool


class ReturnStatusResponse(ReturnView):
    run_status: str


class ActionBody(BaseModel):
    """The actor recorded is the authenticated principal; an `actor` in the body is ignored."""

    reason: Reason


class CreditNoteOut(BaseModel):
    id: str
    external_ref: str
    order_external_ref: str
    status: str
    currency: str
    net_total: Decimal
    tax_total: Decimal
    grand_total: Decimal
    lines: list[dict]
    created_at: datetime

    @model_validator(mode="after")
    def _minor_units(self) -> CreditNoteOut:
        for name in ("net_total", "tax_total", "grand_total"):
            setattr(self, name, quantize(getattr(self, name), self.currency))
        return self


def _wf_id(channel: str, return_id: str) -> str:
    return f"return:{channel}:{return_id}"


@router.post("/returns", status_code=202, response_model=StartResponse,
             responses={200: {"description": "The return already exists"}})
async def create_return(request: ReturnRequest, principal: Analyst, settings: SettingsDep,
                        client: ClientDep, engine: EngineDep, http_request: Request) -> StartResponse:
    """Start ReturnToRefund for a canonical return request (id `return:{channel}:{return_id}`); a warehouse receipt
    that arrived before it is delivered to it."""
    try:
        wf_id, duplicate = await start_return(client, settings, request)
        store = IntakeStore(engine, keyring=getattr(http_request.app.state, "keyring", None))
        await deliver_held(client, store, wf_id)
    except TemporalUnavailable as exc:
        raise HTTPException(503, f"Temporal is unavailable: {exc}") from None
    return StartResponse(workflow_id=wf_id, duplicate=duplicate)


@router.get("/returns/{channel}/{return_id}", response_model=ReturnStatusResponse)
async def get_return(channel: str, return_id: str, principal: Viewer, client: ClientDep) -> ReturnStatusResponse:
    handle = client.get_workflow_handle(_wf_id(channel, return_id))
    try:
        desc = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(404, f"no return {return_id} from {channel}") from None
        raise HTTPException(503, f"Temporal is unavailable: {exc.message}") from None
    try:
        view = await handle.query("status", result_type=ReturnView)
    except Exception as exc:
        raise HTTPException(503, f"the return's status cannot be queried now: {exc}") from None
    return for_principal(principal, ReturnStatusResponse(**view.model_dump(),
                                                         run_status=desc.status.name if desc.status else "UNKNOWN"))


@router.post("/returns/{channel}/{return_id}/receipts", status_code=202, response_model=StartResponse,
             responses={409: {"description": "No running return"}})
async def record_receipt(channel: str, return_id: str, receipt: Receipt, principal: Analyst,
                         client: ClientDep) -> StartResponse:
    """Record what the warehouse received (as the WMS's `return.received` event does); receipts add up and a
    receipt id delivered twice counts once."""
    wf_id = _wf_id(channel, return_id)
    try:
        ok = await signal_workflow(client, wf_id, "receipt", receipt)
    except TemporalUnavailable as exc:
        raise HTTPException(503, f"Temporal is unavailable: {exc}") from None
    if not ok:
        raise HTTPException(409, f"no running return {wf_id}")
    return StartResponse(workflow_id=wf_id, duplicate=False)


@router.post("/returns/{channel}/{return_id}/actions/{action}", status_code=202, response_model=StartResponse)
async def return_action(channel: str, return_id: str, action: Literal["retry", "skip", "cancel"], body: ActionBody,
                        principal: Analyst, client: ClientDep) -> StartResponse:
    """Send an analyst action as a validated Temporal update: the return itself refuses what does not apply (409)
    and records what it accepts, with the actor and reason, in its history."""
    wf_id = _wf_id(channel, return_id)
    request = AnalystRequest(action=action, actor=principal.name, reason=body.reason)
    try:
        await client.get_workflow_handle(wf_id).execute_update("act", request, result_type=ReturnView)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        raise HTTPException(409, getattr(cause, "message", None) or str(cause or exc)) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(409, f"no running return {wf_id}; nothing to {action}") from None
        raise HTTPException(503, f"Temporal is unavailable: {exc.message}") from None
    return StartResponse(workflow_id=wf_id, duplicate=False)


@router.get("/returns/{channel}/{return_id}/audit", response_model=list[AuditEntry],
            responses={200: {"content": {"text/csv": {}}}})
async def return_audit(channel: str, return_id: str, principal: Viewer, client: ClientDep,
                       format: Literal["json", "csv"] = "json"):
    """The business audit trail of the return, from its workflow history (personal data masked below analyst)."""
    entries = await fetch_audit(client, _wf_id(channel, return_id))
    return audit_answer(entries, format, principal)


@router.get("/erp/credit-notes", response_model=list[CreditNoteOut], tags=["erp"])
def list_credit_notes(engine: EngineDep, principal: Viewer, external_ref: str | None = None,
                      order_external_ref: str | None = None,
                      limit: int = Query(default=100, ge=1, le=1000)) -> list[CreditNoteOut]:
    rows = EmbeddedViews(engine).credit_notes(external_ref=external_ref, order_external_ref=order_external_ref,
                                              limit=limit)
    return for_principal(principal, [CreditNoteOut.model_validate(r) for r in rows])
