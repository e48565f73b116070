"""Settlements: the reconciliation's status, result, journal and exceptions (from the platform database, so it
answers while Temporal is down), analyst actions (validated `act` update) and the audit trail."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from adapters.settlements.store import SettlementStore
from api.audit import AuditEntry, audit_answer, fetch_audit
from api.auth import Finance
from api.deps import ClientDep, EngineDep
from api.masking import for_principal
from canonical.finance import ReconciliationException, SettlementView, settlement_key
from canonical.money import minor_units
from canonical.ops import AnalystRequest, Reason

router = APIRouter(tags=["settlements"])


class SettlementOut(BaseModel):
    workflow_id: str
    provider: str
    settlement_id: str
    status: str
    currency: str
    deposit_total: str
    lines_total: str
    line_count: int
    period_start: Any = None
    period_end: Any = None
    deposit_date: Any = None
    result: dict | None = Field(default=None, description="The last ReconciliationResult recorded")
    journal: dict | None = Field(default=None, description="The summarized journal and its ERP id, once built")
    exceptions: list[ReconciliationException]
    exception_count: int
    workflow: SettlementView | None = Field(default=None, description="Live status from the workflow, if reachable")


class ActionBody(BaseModel):
    """The actor recorded is the authenticated principal; an `actor` in the body is ignored."""

    reason: Reason


def _wf_id(provider: str, settlement_id: str) -> str:
    return f"settlement:{settlement_key(provider, settlement_id)}"


def _amount(minor: int, currency: str) -> str:
    from decimal import Decimal

    return str(Decimal(int(minor)).scaleb(-minor_units(currency)))


@router.get("/settlements/{provider}/{settlement_id}", response_model=SettlementOut)
async def get_settlement(provider: str, settlement_id: str, engine: EngineDep, request: Request, principal: Finance,
                         exceptions_limit: int = Query(default=100, ge=0, le=5000),
                         exceptions_offset: int = Query(default=0, ge=0, le=2**31 - 1)) -> SettlementOut:
    key = settlement_key(provider, settlement_id)
    found = SettlementStore(engine).detail(key, exceptions_offset=exceptions_offset,
                                           exceptions_limit=exceptions_limit)
    if found is None:
        raise HTTPException(404, f"no settlement {settlement_id} from {provider} (not staged yet?)")
    head, journal = found["header"], found["journal"]
    cur = head["currency"]
    view = None
    try:
        client = await request.app.state.temporal.get()
        view = await client.get_workflow_handle(_wf_id(provider, settlement_id)).query(
            "status", result_type=SettlementView)
    except Exception:  # not running here, closed long ago, or Temporal down: the database still answers
        view = None
    return for_principal(principal, SettlementOut(
        workflow_id=_wf_id(provider, settlement_id), provider=provider, settlement_id=settlement_id,
        status=head["status"], currency=cur, deposit_total=_amount(head["deposit_minor"], cur),
        lines_total=_amount(head["lines_minor"], cur), line_count=head["line_count"],
        period_start=head["period_start"], period_end=head["period_end"], deposit_date=head["deposit_date"],
        result=head["result"],
        journal=None if journal is None else {
            "external_ref": journal["external_ref"], "erp_journal_id": journal["erp_journal_id"],
            "posted_at": journal["posted_at"], "suspense_amount": _amount(journal["suspense_minor"], cur),
            "entry": journal["journal"]},
        exceptions=found["exceptions"], exception_count=found["exception_count"], workflow=view))


@router.post("/settlements/{provider}/{settlement_id}/actions/{action}", status_code=202)
async def settlement_action(provider: str, settlement_id: str, action: Literal["retry", "skip", "cancel"],
                            body: ActionBody, principal: Finance, client: ClientDep) -> SettlementView:
    """`retry` re-matches after the data was fixed, `skip` posts the open items to suspense, `cancel` ends it
    without posting. Refused (409, no trace) when it does not apply."""
    wf_id = _wf_id(provider, settlement_id)
    request = AnalystRequest(action=action, actor=principal.name, reason=body.reason)
    try:
        return await client.get_workflow_handle(wf_id).execute_update("act", request, result_type=SettlementView)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        raise HTTPException(409, getattr(cause, "message", None) or str(cause or exc)) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(409, f"no running settlement reconciliation {wf_id}; nothing to {action}") from None
        raise HTTPException(503, f"Temporal is unavailable: {exc.message}") from None


@router.get("/settlements/{provider}/{settlement_id}/audit", response_model=list[AuditEntry],
            responses={200: {"content": {"text/csv": {}}}})
async def settlement_audit(provider: str, settlement_id: str, principal: Finance, client: ClientDep,
                           format: Literal["json", "csv"] = "json"):
    """The reconciliation's audit trail (every step, analyst action with actor and reason), from its history."""
    entries = await fetch_audit(client, _wf_id(provider, settlement_id))
    return audit_answer(entries, format, principal)
