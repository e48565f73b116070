"""Order status and analyst actions (retry, skip, cancel)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from adapters.platform.projection import StatusProjection
from api.audit import AuditEntry, audit_answer, fetch_audit
from api.auth import Analyst, Viewer
from api.deps import ClientDep, EngineDep
from api.masking import for_principal
from canonical.fulfillment import LineCancel, LineCancelRequest, OrderView, StepRecord
from canonical.ops import AnalystRequest, OrderCorrections, Reason
from canonical.order import OrderStatus, Shipment, order_workflow_id

router = APIRouter(prefix="/orders", tags=["orders"])

class OrderStatusResponse(BaseModel):
    status: OrderStatus
    workflow_id: str
    run_status: str
    erp_sales_order_id: str | None
    reason: str | None
    late: bool
    invoice_id: str | None
    ordered_quantities: dict[str, int]
    shipped_quantities: dict[str, int]
    shipments: list[Shipment]
    compensations: list[str]
    steps: list[StepRecord]


class ActionResponse(BaseModel):
    workflow_id: str
    action: str
    accepted: bool
    status: OrderStatus


class ActionBody(BaseModel):
    """The actor recorded is the authenticated principal; an `actor` in the body is ignored."""

    reason: Reason = Field(description="Why (recorded in the workflow history)")
    corrections: OrderCorrections | None = Field(default=None, description="For `resume`: the corrected data")


class OrderSummary(BaseModel):
    workflow_id: str
    channel: str | None
    external_order_id: str | None
    order_number: str | None
    status: str
    needs_attention: bool
    reason: str | None
    suggested_action: str | None
    erp_sales_order_id: str | None
    late: bool
    started_at: datetime
    updated_at: datetime


class OrderPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[OrderSummary]


def summary_of(row: dict) -> OrderSummary:
    return OrderSummary(workflow_id=row["workflow_id"], channel=row["channel"], external_order_id=row["external_id"],
                        order_number=row["reference"], status=row["status"], needs_attention=row["needs_attention"],
                        reason=row["reason"], suggested_action=row["suggested_action"],
                        erp_sales_order_id=row["erp_ref"], late=row["late"], started_at=row["started_at"],
                        updated_at=row["updated_at"])


@router.get("", response_model=OrderPage, summary="List orders from the status projection")
def list_orders(engine: EngineDep, principal: Viewer, status: OrderStatus | None = None, channel: str | None = None,
                needs_attention: bool | None = None, limit: int = Query(default=50, ge=1, le=500),
                offset: int = Query(default=0, ge=0, le=2**31 - 1)) -> OrderPage:
    rows, total = StatusProjection(engine).list(kind="order", status=status.value if status else None,
                                                channel=channel, needs_attention=needs_attention, limit=limit,
                                                offset=offset)
    page = OrderPage(total=total, limit=limit, offset=offset, items=[summary_of(r) for r in rows])
    return for_principal(principal, page)


async def _describe_and_query(client, workflow_id: str) -> tuple[str, OrderView]:
    handle = client.get_workflow_handle(workflow_id)
    try:
        desc = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(404, f"no order workflow {workflow_id}") from None
        raise HTTPException(503, f"Temporal is unavailable: {exc.message}") from None
    try:
        view = await handle.query("status", result_type=OrderView)
    except Exception as exc:  # no worker polling, or the run failed before its first task
        raise HTTPException(503, f"order {workflow_id} is {desc.status.name if desc.status else 'unknown'} "
                                 f"but its status cannot be queried now: {exc}") from None
    return (desc.status.name if desc.status else "UNKNOWN"), view


@router.get("/{channel}/{external_order_id}", response_model=OrderStatusResponse)
async def get_order(channel: str, external_order_id: str, principal: Viewer,
                    client: ClientDep) -> OrderStatusResponse:
    run_status, view = await _describe_and_query(client, order_workflow_id(channel, external_order_id))
    return for_principal(principal, OrderStatusResponse(
        status=view.status, workflow_id=view.workflow_id, run_status=run_status,
        erp_sales_order_id=view.erp_sales_order_id, reason=view.reason, late=view.late, invoice_id=view.invoice_id,
        ordered_quantities=view.ordered_quantities, shipped_quantities=view.shipped_quantities, shipments=view.shipments, compensations=view.compensations,
        steps=view.steps,
    ))


@router.post("/{channel}/{external_order_id}/actions/{action}", status_code=202, response_model=ActionResponse,
             responses={404: {"description": "No such order"}, 409: {"description": "Action not valid now"}})
async def order_action(
    channel: str, external_order_id: str, action: Literal["retry", "skip", "cancel", "resume"], body: ActionBody,
    principal: Analyst, client: ClientDep,
) -> ActionResponse:
    """Send an analyst action as a validated Temporal update: the workflow itself refuses what does not apply
    (409), and what it accepts is recorded in its history with the actor and reason."""
    wf_id = order_workflow_id(channel, external_order_id)
    handle = client.get_workflow_handle(wf_id)
    request = AnalystRequest(action=action, actor=principal.name, reason=body.reason, corrections=body.corrections)
    try:
        view = await handle.execute_update("act", request, result_type=OrderView)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        raise HTTPException(409, getattr(cause, "message", None) or str(cause or exc)) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            # closed runs reject updates as "not found": say which it is
            run_status, closed = await _describe_and_query(client, wf_id)
            raise HTTPException(409, f"order {wf_id} is {closed.status.value} ({run_status.lower()}); "
                                     f"nothing to {action}") from None
        raise HTTPException(503, f"Temporal is unavailable: {exc.message}") from None
    return ActionResponse(workflow_id=wf_id, action=action, accepted=True, status=view.status)


class LineCancelBody(BaseModel):
    """The actor recorded is the authenticated principal; an `actor` in the body is ignored."""

    reason: Reason = Field(description="Why (recorded in the workflow history)")
    lines: list[LineCancel] = Field(min_length=1, description="Order line ids and the units of each to cancel")


class LineCancelResponse(BaseModel):
    workflow_id: str
    status: OrderStatus
    lines: dict[str, int] = Field(description="What is left to ship: order line id → units")
    tax_transaction_code: str | None


@router.post("/{channel}/{external_order_id}/lines/cancel", response_model=LineCancelResponse,
             responses={404: {"description": "No such order"},
                        409: {"description": "The change does not apply now (shipped, unknown line, all units)"}})
async def cancel_order_lines(channel: str, external_order_id: str, body: LineCancelBody,
                             principal: Analyst, client: ClientDep) -> LineCancelResponse:
    """Cancel units of some lines before shipment. The order workflow amends the warehouse release, re-prices
    tax, amends the ERP sales order and gives the reserved stock back, and records who asked and why."""
    wf_id = order_workflow_id(channel, external_order_id)
    request = LineCancelRequest(actor=principal.name, reason=body.reason, lines=body.lines)
    try:
        view = await client.get_workflow_handle(wf_id).execute_update("cancel_lines", request, result_type=OrderView)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        raise HTTPException(409, getattr(cause, "message", None) or str(cause or exc)) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            run_status, closed = await _describe_and_query(client, wf_id)
            raise HTTPException(409, f"order {wf_id} is {closed.status.value} ({run_status.lower()}); "
                                     "its lines cannot change") from None
        raise HTTPException(503, f"Temporal is unavailable: {exc.message}") from None
    return LineCancelResponse(workflow_id=wf_id, status=view.status, lines=view.ordered_quantities,
                              tax_transaction_code=view.tax_transaction_code)


@router.get("/{channel}/{external_order_id}/audit", response_model=list[AuditEntry],
            responses={200: {"content": {"text/csv": {}}}})
async def order_audit(channel: str, external_order_id: str, principal: Viewer, client: ClientDep,
                      format: Literal["json", "csv"] = "json"):
    """The business audit trail of the order, from its workflow history (personal data masked below analyst)."""
    entries = await fetch_audit(client, order_workflow_id(channel, external_order_id))
    return audit_answer(entries, format, principal)
