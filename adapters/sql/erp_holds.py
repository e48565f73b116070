"""Table of the ERPNext adapter's reservation holds (adapters/erp/holds.py): stock an order has taken from an
ERPNext bin before its sales order is submitted (from then on ERPNext's own `reserved_qty` holds it)."""

from __future__ import annotations

from sqlalchemy import Column, Integer, String, Table

from adapters.sql.base import UtcDateTime, metadata, utcnow

erp_reservation_holds = Table(
    "erp_reservation_holds",
    metadata,
    Column("reservation_key", String(255), primary_key=True),  # the order's external reference (po_no)
    Column("item_code", String(128), primary_key=True),
    Column("warehouse", String(255), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False, default=utcnow),
)
