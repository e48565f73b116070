"""The embedded WMS's tables (adapters/wms/local.py): fulfillment requests and expected returns."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from adapters.sql.base import UtcDateTime, metadata, utcnow

wms_requests = Table(
    "wms_requests",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("external_ref", String(255), nullable=False, unique=True),
    Column("lines", JSON, nullable=False),
    Column("ship_to", JSON),
    # released | shipping (picked, being announced) | shipped | short_picked | cancelled
    Column("status", String(16), nullable=False, default="released"),
    Column("ship_after", UtcDateTime(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False, default=utcnow),
    Column("shipped_at", UtcDateTime()),
    Column("cancelled_at", UtcDateTime()),
    Column("delivery_attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    # the latest pick (issue 17): what was shipped and what was short, the shipment it went out as, the round
    Column("shipped_lines", JSON),
    Column("short_lines", JSON),
    Column("shipment_id", String(128)),
    Column("picked_at", UtcDateTime()),
    Column("pick_round", Integer, nullable=False, default=0, server_default="0"),
    Index("ix_wms_requests_due", "status", "ship_after"),
)

wms_return_expectations = Table(
    "wms_return_expectations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("external_ref", String(255), nullable=False, unique=True),
    Column("lines", JSON, nullable=False),
    Column("status", String(16), nullable=False, default="expected"),  # expected | cancelled
    Column("created_at", UtcDateTime(), nullable=False, default=utcnow),
)
