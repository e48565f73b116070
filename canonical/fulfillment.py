"""Facts the order-to-fulfillment workflow passes between its steps (ids and facts, never vendor blobs)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field, field_validator, model_validator

from canonical.money import Money
from canonical.order import CanonicalModel, Order, OrderStatus, Shipment, TaxQuote


class ResolvedLine(CanonicalModel):
    line_id: str
    channel_sku: str
    item_code: str
    quantity: int = Field(gt=0)


class ReservedLine(CanonicalModel):
    item_code: str
    location: str
    quantity: int
    backordered: int = 0


class Reservation(CanonicalModel):
    key: str
    lines: list[ReservedLine]


class SalesOrderRef(CanonicalModel):
    erp_sales_order_id: str
    external_ref: str


class WmsReleaseRef(CanonicalModel):
    release_id: str
    external_ref: str


class InvoiceRef(CanonicalModel):
    invoice_id: str
    external_ref: str
    total: Money


class AnalystAction(CanonicalModel):
    """Who asked for a retry/skip/cancel and why; recorded in the workflow history."""

    actor: str = "unknown"
    reason: str | None = None


class LineCancel(CanonicalModel):
    line_id: str = Field(min_length=1)
    quantity: int = Field(gt=0, description="Units of the line to cancel")


class LineCancelRequest(CanonicalModel):
    """Cancel some units of an order before shipment: the ERP order, reservation, tax and WMS release shrink."""

    actor: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=2000)
    lines: list[LineCancel] = Field(min_length=1)

    @field_validator("actor", "reason")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v

    @model_validator(mode="after")
    def _unique(self) -> LineCancelRequest:
        ids = [line.line_id for line in self.lines]
        if len(set(ids)) != len(ids):
            raise ValueError("each line may appear once")
        return self


class StepState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    PARKED = "parked"
    SKIPPED = "skipped"
    COMPENSATED = "compensated"
    WAITING = "waiting"


class StepRecord(CanonicalModel):
    name: str
    state: StepState
    started_at: datetime
    finished_at: datetime | None = None
    detail: str | None = None


class OrderFulfillmentInput(CanonicalModel):
    order: Order
    sla_hours: int = Field(default=48, gt=0, description="Time to first full shipment before the order is marked late")
    allow_backorder: bool = False
    step_max_attempts: int = Field(
        default=20, ge=1, description="Attempts per step for transient faults before the run parks"
    )
    activity_task_queues: dict[str, str] = Field(
        default_factory=dict, description="Activity name → task queue of a partner worker (RETAILFLOW_ACTIVITY_TASK_QUEUES)")
    split_fulfillment: bool = Field(
        default=False, description="Source the order over the fulfillment network (the channel has a sourcing policy "
        "and is in RETAILFLOW_SPLIT_FULFILLMENT_CHANNELS): reserve and release per node (docs/fulfillment.md)")
    supplier_poll_seconds: int = Field(
        default=900, ge=1, description="How often a drop-ship supplier's answers (855, 856, 810) are read "
        "(RETAILFLOW_SUPPLIER_POLL_SECONDS), fixed per run when it starts")


class OrderView(CanonicalModel):
    workflow_id: str
    status: OrderStatus
    reason: str | None = None
    late: bool = False
    erp_sales_order_id: str | None = None
    wms_release_id: str | None = None
    invoice_id: str | None = None
    tax_transaction_code: str | None = None
    shipments: list[Shipment] = Field(default_factory=list)
    ordered_quantities: dict[str, int] = Field(default_factory=dict, description="Line id → units on the order now")
    shipped_quantities: dict[str, int] = Field(default_factory=dict)
    steps: list[StepRecord] = Field(default_factory=list)
    compensations: list[str] = Field(default_factory=list, description="Undo steps that ran, in order")


class OrderResult(CanonicalModel):
    workflow_id: str
    status: OrderStatus
    erp_sales_order_id: str | None = None
    invoice_id: str | None = None
    tax: TaxQuote | None = None
