"""The embedded ERP's tables (adapters/erp/local.py): items, SKU cross-reference, stock, reservations, sales orders, deliveries, invoices, credit notes, restocks, journals."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from adapters.sql.base import MONEY, UtcDateTime, metadata, utcnow

items = Table(
    "erp_items",
    metadata,
    Column("item_code", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("unit_price", MONEY, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False, default=utcnow),
)

sku_xref = Table(
    "erp_sku_xref",
    metadata,
    Column("channel", String(64), primary_key=True),
    Column("channel_sku", String(128), primary_key=True),
    Column("item_code", String(64), ForeignKey("erp_items.item_code"), nullable=False),
)

stock = Table(
    "erp_stock",
    metadata,
    Column("item_code", String(64), ForeignKey("erp_items.item_code"), primary_key=True),
    Column("location", String(64), primary_key=True),
    Column("on_hand", Integer, nullable=False, default=0),
    Column("reserved", Integer, nullable=False, default=0),
    Column("updated_at", UtcDateTime(), nullable=False, default=utcnow),
)

reservations = Table(
    "erp_reservations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("reservation_key", String(255), nullable=False),
    Column("item_code", String(64), nullable=False),
    Column("location", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("backordered", Integer, nullable=False, default=0),
    Column("consumed", Integer, nullable=False, default=0),
    Column("status", String(16), nullable=False, default="open"),  # open | released | consumed
    Column("created_at", UtcDateTime(), nullable=False, default=utcnow),
    UniqueConstraint("reservation_key", "item_code", "location", name="uq_reservation_line"),
)

sales_orders = Table(
    "erp_sales_orders",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("external_ref", String(255), nullable=False, unique=True),
    Column("channel", String(64), nullable=False),
    Column("external_order_id", String(128), nullable=False),
    Column("customer", String(255)),
    Column("currency", String(3), nullable=False),
    Column("net_total", MONEY, nullable=False),
    Column("tax_total", MONEY, nullable=False),
    Column("grand_total", MONEY, nullable=False),
    Column("lines", JSON, nullable=False),
    Column("status", String(16), nullable=False, default="open"),  # open | cancelled | invoiced
    Column("created_at", UtcDateTime(), nullable=False, default=utcnow),
    Column("cancelled_at", UtcDateTime()),
)

deliveries = Table(
    "erp_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("external_ref", String(255), nullable=False),
    Column("shipment_id", String(128), nullable=False),
    Column("lines", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False, default=utcnow),
    UniqueConstraint("external_ref", "shipment_id", name="uq_delivery"),
)

invoices = Table(
    "erp_invoices",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("external_ref", String(255), nullable=False, unique=True),
    Column("sales_order_id", String(32), ForeignKey("erp_sales_orders.id"), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("net_total", MONEY, nullable=False),
    Column("tax_total", MONEY, nullable=False),
    Column("grand_total", MONEY, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False, default=utcnow),
)

credit_notes = Table(
    "erp_credit_notes",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("external_ref", String(255), nullable=False, unique=True),
    Column("order_external_ref", String(255), nullable=False, index=True),
    Column("currency", String(3), nullable=False),
    Column("net_total", MONEY, nullable=False),
    Column("tax_total", MONEY, nullable=False),
    Column("grand_total", MONEY, nullable=False),
    Column("lines", JSON, nullable=False),  # line_id, item_code, quantity, net, tax
    Column("status", String(16), nullable=False, default="open"),  # open | cancelled
    Column("created_at", UtcDateTime(), nullable=False, default=utcnow),
    Column("cancelled_at", UtcDateTime()),
)

restocks = Table(
    "erp_restocks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("receipt_key", String(255), nullable=False),
    Column("item_code", String(64), nullable=False),
    Column("location", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False, default=utcnow),
    UniqueConstraint("receipt_key", "item_code", name="uq_restock_line"),
)

erp_journals = Table(
    "erp_journals",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("external_ref", String(255), nullable=False, unique=True),
    Column("posting_date", String(10), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("description", Text),
    Column("total_debit", MONEY, nullable=False),
    Column("total_credit", MONEY, nullable=False),
    Column("lines", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False, default=utcnow),
)

supplier_invoices = Table(  # payables: a drop-ship supplier's invoice, once matched to its PO (canonical/supplier.py)
    "supplier_invoices",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("supplier_id", String(64), nullable=False),
    Column("invoice_number", String(64), nullable=False),
    Column("po_number", String(64)),
    Column("currency", String(3), nullable=False),
    Column("total", MONEY, nullable=False),
    Column("lines", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False, default=utcnow),
    UniqueConstraint("supplier_id", "invoice_number", name="uq_supplier_invoices_number"),
)
