"""Read-only views of the embedded ERP, so anyone can see an order was booked once."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, model_validator

from adapters.erp.route_store import ErpRouteStore
from adapters.platform.views import EmbeddedViews
from api.auth import Principal, Role, Viewer, require
from api.deps import EngineDep
from api.masking import for_principal
from canonical.money import quantize

router = APIRouter(prefix="/erp", tags=["erp"])


class SalesOrderOut(BaseModel):
    id: str
    external_ref: str
    channel: str
    external_order_id: str
    status: str
    currency: str
    net_total: Decimal
    tax_total: Decimal
    grand_total: Decimal
    lines: list[dict]
    created_at: datetime

    @model_validator(mode="after")
    def _minor_units(self) -> SalesOrderOut:
        for name in ("net_total", "tax_total", "grand_total"):
            setattr(self, name, quantize(getattr(self, name), self.currency))
        return self


@router.get("/sales-orders", response_model=list[SalesOrderOut])
def list_sales_orders(engine: EngineDep, principal: Viewer, external_ref: str | None = None,
                      limit: int = Query(default=100, ge=1, le=1000)) -> list[SalesOrderOut]:
    rows = EmbeddedViews(engine).sales_orders(external_ref=external_ref, limit=limit)
    return for_principal(principal, [SalesOrderOut.model_validate(r) for r in rows])


# -- dual-run parity (docs/erp-migration.md): analysts park and decide, finance signs off the migration ----------
ParityReader = Annotated[Principal, Depends(require(Role.analyst, Role.finance, Role.admin))]


class ParityDay(BaseModel):
    process: str
    day: str
    equal: int
    different: int
    accepted: int


class ParityResultOut(BaseModel):
    process: str
    business_key: str
    day: str
    status: str
    differences: list[dict[str, Any]]
    record_document: dict[str, Any] | None
    shadow_document: dict[str, Any] | None
    shadow_failures: list[dict[str, Any]]
    run_id: str | None
    note: str | None
    checked_at: datetime


class ParityOut(BaseModel):
    process: str
    unchecked: int  # dual-run keys posted but not compared yet
    days: list[ParityDay]
    results: list[ParityResultOut]


@router.get("/parity", response_model=ParityOut)
def parity(engine: EngineDep, principal: ParityReader,
           process: Literal["orders", "invoices", "credit_notes", "journals", "stock"] = "orders",
           day: str | None = Query(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$"),
           status: Literal["equal", "different", "accepted"] | None = None,
           limit: int = Query(default=100, ge=1, le=1000), offset: int = Query(default=0, ge=0)) -> ParityOut:
    """The dual-run parity of a process: per day how many business keys are equal, different or accepted, and the
    verdicts (both documents side by side) — `status=different` lists what waits for an analyst."""
    store = ErpRouteStore(engine)
    rows = store.parity(process, day=day, status=status, limit=limit, offset=offset)
    return ParityOut(process=process, unchecked=store.unchecked(process),
                     days=[ParityDay.model_validate(d) for d in store.parity_by_day(process)],
                     results=[ParityResultOut.model_validate(r) for r in rows])
