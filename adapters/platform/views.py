"""Read-only views of the embedded systems' tables for the API's read endpoints (the embedded ERP's sales orders
and credit notes, what the embedded marketplace was told a channel may sell), so the API holds no SQL. Writes stay
with the owning adapters (adapters/erp/local.py, adapters/marketplace/local.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from adapters import sql as db


class EmbeddedViews:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _rows(self, query) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings().all()]

    def sales_orders(self, *, external_ref: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The embedded ERP's sales orders, newest first."""
        t = db.sales_orders
        query = select(t).order_by(t.c.created_at.desc()).limit(limit)
        if external_ref:
            query = query.where(t.c.external_ref == external_ref)
        return self._rows(query)

    def credit_notes(self, *, external_ref: str | None = None, order_external_ref: str | None = None,
                     limit: int = 100) -> list[dict[str, Any]]:
        """The embedded ERP's credit notes, newest first."""
        t = db.credit_notes
        query = select(t).order_by(t.c.created_at.desc()).limit(limit)
        if external_ref:
            query = query.where(t.c.external_ref == external_ref)
        if order_external_ref:
            query = query.where(t.c.order_external_ref == order_external_ref)
        return self._rows(query)

    def publications(self, sku: str, *, channel: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """What the embedded marketplace was told each channel may sell of the SKU, newest first."""
        t = db.inventory_publications
        query = select(t.c.channel, t.c.quantity, t.c.published_at).where(t.c.item_code == sku)
        if channel:
            query = query.where(t.c.channel == channel)
        return self._rows(query.order_by(t.c.id.desc()).limit(limit))
