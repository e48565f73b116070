"""The embedded marketplace's tables (adapters/marketplace/local.py): status updates, refunds and published availability."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
)

from adapters.sql.base import MONEY, UtcDateTime, metadata, utcnow

channel_updates = Table(
    "channel_updates",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(255), nullable=False, unique=True),
    Column("channel", String(64), nullable=False),
    Column("external_order_id", String(128), nullable=False),
    Column("kind", String(32), nullable=False),  # shipment | cancelled | status
    Column("payload", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False, default=utcnow),
)

channel_refunds = Table(
    "channel_refunds",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("refund_key", String(255), nullable=False),
    Column("channel", String(64), nullable=False),
    Column("external_order_id", String(128), nullable=False),
    Column("line_id", String(128), nullable=False),  # "" for the refund's shipping / fees row
    Column("quantity", Integer, nullable=False),
    Column("amount", MONEY, nullable=False),  # net + tax paid back for this line
    Column("currency", String(3), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False, default=utcnow),
    UniqueConstraint("refund_key", "line_id", name="uq_channel_refund_line"),
)

inventory_publications = Table(  # what the embedded marketplace was told a channel may sell
    "inventory_publications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(255), unique=True),
    Column("channel", String(64), nullable=False),
    Column("item_code", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("published_at", UtcDateTime(), nullable=False, default=utcnow),
    Index("ix_inventory_publications_item", "item_code", "channel", "id"),
)
