"""The embedded marketplace's tables (adapters/marketplace/local.py): status updates, refunds and published availability;
and the Shopify shops' app tokens (adapters/marketplace/shopify_tokens.py)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Index,
    Integer,
    LargeBinary,
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

shopify_tokens = Table(  # each shop's app access (OAuth): the tokens sealed (AES-256-GCM, the codec's keyring)
    "shopify_tokens",
    metadata,
    Column("shop", String(255), primary_key=True),  # name.myshopify.com
    Column("grant", String(96), nullable=False),  # authorization_code | refresh_token | client_credentials | token-exchange
    Column("scopes", String(2000), nullable=False),
    Column("sealed", LargeBinary, nullable=False),  # {"access_token", "refresh_token"} sealed, AAD = the shop
    Column("obtained_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime()),
    Column("refresh_expires_at", UtcDateTime()),
    Column("installed_at", UtcDateTime(), nullable=False, default=utcnow),
)
