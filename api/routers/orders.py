"""Order status and analyst actions (retry, skip, cancel)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Body, HTTPException
from pydantic import BaseModel
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from api.deps import ClientDep
from canonical.fulfillment import AnalystAction, OrderView, StepRecord
from canonical.order import OrderStatus, Shipment, order_workflow_id

router = APIRouter(prefix="/orders", tags=["orders"])

SHIPPED_STATES = {OrderStatus.PARTIALLY_SHIPPED, OrderStatus.SHIPPED, OrderStatus.INVOICED, OrderStatus.COMPLETED}


class OrderStatusResponse(BaseModel):
    status: OrderStatus
    workflow_id: str
    run_status: str
    erp_sales_order_id: str | None
    reason: str | None
    late: bool
    invoice_id: str | None
    shipped_quantities: dict[str, int]
    shipments: list[Shipment]
    compensations: list[str]
    steps: list[StepRecord]


class ActionResponse(BaseModel):
    workflow_id: str
    action: str
    accepted: bool


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
async def get_order(channel: str, external_order_id: str, client: ClientDep) -> OrderStatusResponse:
    run_status, view = await _describe_and_query(client, order_workflow_id(channel, external_order_id))
    return OrderStatusResponse(
        status=view.status, workflow_id=view.workflow_id, run_status=run_status,
        erp_sales_order_id=view.erp_sales_order_id, reason=view.reason, late=view.late, invoice_id=view.invoice_id,
        shipped_quantities=view.shipped_quantities, shipments=view.shipments, compensations=view.compensations,
        steps=view.steps,
    )


@router.post("/{channel}/{external_order_id}/actions/{action}", status_code=202, response_model=ActionResponse,
             responses={404: {"description": "No such order"}, 409: {"description": "Action not valid now"}})
async def order_action(
    channel: str, external_order_id: str, action: Literal["retry", "skip", "cancel"], client: ClientDep,
    body: AnalystAction | None = Body(default=None),
) -> ActionResponse:
    wf_id = order_workflow_id(channel, external_order_id)
    run_status, view = await _describe_and_query(client, wf_id)
    if run_status != WorkflowExecutionStatus.RUNNING.name:
        raise HTTPException(409, f"order {wf_id} is no longer running ({view.status.value})")
    if action in ("retry", "skip") and view.status != OrderStatus.NEEDS_ATTENTION:
        raise HTTPException(409, f"order {wf_id} is {view.status.value}, not needs_attention; nothing to {action}")
    if action == "cancel" and view.status in SHIPPED_STATES:
        raise HTTPException(409, f"order {wf_id} has shipped ({view.status.value}); handle it as a return")
    await client.get_workflow_handle(wf_id).signal(action, body or AnalystAction(actor="api"))
    return ActionResponse(workflow_id=wf_id, action=action, accepted=True)
