"""The settlement store's tables: marketplace settlements, their lines, exceptions and journals."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from adapters.sql.base import UtcDateTime, metadata, utcnow

settlements = Table(
    "settlements",
    metadata,
    Column("settlement_key", String(200), primary_key=True),  # {provider}:{settlement_id}
    Column("provider", String(64), nullable=False),
    Column("settlement_id", String(128), nullable=False),
    Column("marketplace", String(128)),
    Column("currency", String(3), nullable=False),
    Column("period_start", UtcDateTime()),
    Column("period_end", UtcDateTime()),
    Column("deposit_date", UtcDateTime()),
    Column("deposit_minor", BigInteger, nullable=False),
    Column("lines_minor", BigInteger, nullable=False, default=0),
    Column("line_count", Integer, nullable=False, default=0),
    Column("source", Text),
    Column("status", String(32), nullable=False),  # staging | staged | needs_attention | posted | cancelled
    Column("workflow_id", String(255)),
    Column("result", JSON),
    Column("staged_at", UtcDateTime()),
    Column("updated_at", UtcDateTime(), nullable=False, default=utcnow),
)

settlement_lines = Table(
    "settlement_lines",
    metadata,
    Column("settlement_key", String(200), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("transaction_type", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # order | refund | fee | reserve | adjustment | payout | other
    Column("order_id", String(128)),
    Column("merchant_order_id", String(128)),
    Column("adjustment_id", String(128)),
    Column("shipment_id", String(128)),
    Column("marketplace", String(128)),
    Column("sku", String(128)),
    Column("quantity", Integer),
    Column("amount_type", String(128), nullable=False, default=""),
    Column("amount_description", String(255), nullable=False, default=""),
    Column("amount_minor", BigInteger, nullable=False),
    Column("buyer_amount", Boolean, nullable=False, default=False),  # what the buyer paid: matched to orders
    Column("posted_at", UtcDateTime()),
    Column("source_ref", String(128)),
    Index("ix_settlement_lines_order", "settlement_key", "order_id"),
)

settlement_exceptions = Table(
    "settlement_exceptions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("settlement_key", String(200), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("cause", Text, nullable=False),
    Column("txn_kind", String(16)),  # order | refund: which side of the order the exception is about
    Column("order_id", String(128)),
    Column("adjustment_id", String(128)),
    Column("amount_type", String(128)),
    Column("amount_description", String(255)),
    Column("line_count", Integer, nullable=False, default=0),
    Column("settlement_minor", BigInteger, nullable=False, default=0),
    Column("platform_minor", BigInteger),
    Column("difference_minor", BigInteger, nullable=False, default=0),
    Column("resolution", String(32)),  # None (open) | suspense
    Column("resolved_by", String(200)),
    Column("resolved_at", UtcDateTime()),
    Column("created_at", UtcDateTime(), nullable=False, default=utcnow),
    Index("ix_settlement_exceptions_order", "settlement_key", "order_id", "txn_kind"),
)

settlement_journals = Table(
    "settlement_journals",
    metadata,
    Column("settlement_key", String(200), primary_key=True),
    Column("external_ref", String(255), nullable=False, unique=True),
    Column("currency", String(3), nullable=False),
    Column("journal", JSON, nullable=False),  # the canonical JournalEntry
    Column("suspense_minor", BigInteger, nullable=False, default=0),
    Column("erp_journal_id", String(32)),
    Column("built_at", UtcDateTime(), nullable=False, default=utcnow),
    Column("posted_at", UtcDateTime()),
)
