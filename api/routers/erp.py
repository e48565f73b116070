"""Read-only views of the embedded ERP, so anyone can see an order was booked once."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from fastapi import APIRouter, Query
from pydantic import BaseModel, model_validator

from adapters.platform.views import EmbeddedViews
from api.auth import Viewer
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
