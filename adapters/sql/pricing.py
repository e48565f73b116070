"""The pricing adapters' tables (adapters/pricing/): the price book (every accepted price change line, with its
status through approval, publication and revert), the projection of what each channel shows now and why, and
the embedded channel / POS price list (the price port of channels that have no vendor API).

Amounts are exact decimal text (the currency's minor unit), never floats."""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table, Text, UniqueConstraint

from adapters.sql.base import UtcDateTime, metadata, utcnow

price_changes = Table(  # the price book: one row per line of an accepted change set
    "price_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("change_set_id", String(100), nullable=False),
    Column("line", Integer, nullable=False),
    Column("item_code", String(128), nullable=False),
    Column("channel", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", String(40), nullable=False),
    Column("compare_at", String(40)),
    Column("effective_from", UtcDateTime(), nullable=False),
    Column("effective_to", UtcDateTime()),
    Column("kind", String(16), nullable=False),
    Column("promotion_id", String(100)),
    # pending (awaiting approval) | approved | live | ended | rejected | cancelled | invalid
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("requested_by", String(200), nullable=False),
    Column("approved_by", String(500)),
    Column("created_at", UtcDateTime(), nullable=False, default=utcnow),
    Column("updated_at", UtcDateTime(), nullable=False, default=utcnow),
    UniqueConstraint("change_set_id", "line", name="uq_price_changes_line"),
    Index("ix_price_changes_item_channel", "item_code", "channel"),
)

channel_prices_shown = Table(  # what each channel shows now for each of its SKUs, and why (GET /prices/{sku})
    "channel_prices_shown",
    metadata,
    Column("channel", String(64), primary_key=True),
    Column("channel_sku", String(128), primary_key=True),
    Column("item_code", String(128), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", String(40), nullable=False),
    Column("compare_at", String(40)),
    Column("change_set_id", String(100), nullable=False),
    Column("line", Integer, nullable=False),
    Column("action", String(16), nullable=False),  # publish | revert
    Column("reason", Text, nullable=False),
    Column("approved_by", String(500)),
    Column("verified_at", UtcDateTime(), nullable=False),
    Index("ix_channel_prices_shown_item", "item_code"),
)

pos_prices = Table(  # the embedded channel / POS price list: the price port of channels without a vendor API
    "pos_prices",
    metadata,
    Column("channel", String(64), primary_key=True),
    Column("sku", String(128), primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("amount", String(40), nullable=False),
    Column("compare_at", String(40)),
    Column("updated_at", UtcDateTime(), nullable=False, default=utcnow),
)
