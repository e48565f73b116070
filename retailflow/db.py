"""The platform database: one SQLAlchemy 2 metadata for the embedded adapters and the intake service.

SQLite (the embedded default) and PostgreSQL are both supported. Nothing connects at import time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
)

metadata = MetaData()

MONEY = Numeric(18, 4)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on both databases (SQLite forgets the zone; put it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError("naive datetime: the platform stores UTC-aware datetimes only")
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if isinstance(value, datetime):
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value


# --- embedded ERP -----------------------------------------------------------------------------------
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

# --- embedded WMS -----------------------------------------------------------------------------------
wms_requests = Table(
    "wms_requests",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("external_ref", String(255), nullable=False, unique=True),
    Column("lines", JSON, nullable=False),
    Column("ship_to", JSON),
    Column("status", String(16), nullable=False, default="released"),  # released | shipped | cancelled
    Column("ship_after", UtcDateTime(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False, default=utcnow),
    Column("shipped_at", UtcDateTime()),
    Column("cancelled_at", UtcDateTime()),
    Column("delivery_attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Index("ix_wms_requests_due", "status", "ship_after"),
)

# --- embedded tax engine ----------------------------------------------------------------------------
tax_rates = Table(
    "tax_rates",
    metadata,
    Column("country", String(2), primary_key=True),
    Column("region", String(16), primary_key=True),  # "" means the whole country
    Column("rate", Numeric(8, 6), nullable=False),
    Column("name", String(64), nullable=False),
)

tax_transactions = Table(
    "tax_transactions",
    metadata,
    Column("code", String(255), primary_key=True),
    Column("status", String(16), nullable=False),  # quoted | committed | voided
    Column("currency", String(3), nullable=False),
    Column("total_tax", MONEY, nullable=False),
    Column("quote", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False, default=utcnow),
    Column("updated_at", UtcDateTime(), nullable=False, default=utcnow),
)

# --- embedded marketplace (what the platform told each channel) --------------------------------------
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

# --- run status projection (for listing; search attributes are eventually consistent) -------------------
run_status = Table(
    "run_status",
    metadata,
    Column("workflow_id", String(255), primary_key=True),
    Column("kind", String(32), nullable=False),  # order | return | settlement | storeday ...
    Column("channel", String(64)),
    Column("external_id", String(128)),
    Column("reference", String(128)),  # the channel's human order number, e.g. #9999
    Column("status", String(32), nullable=False),
    Column("needs_attention", Boolean, nullable=False, default=False),
    Column("reason", Text),
    Column("suggested_action", Text),
    Column("erp_ref", String(64)),
    Column("late", Boolean, nullable=False, default=False),
    Column("version", Integer, nullable=False, default=0),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False, default=utcnow),
    Index("ix_run_status_list", "kind", "status", "channel"),
    Index("ix_run_status_attention", "needs_attention", "updated_at"),
)

# --- intake -------------------------------------------------------------------------------------------
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("delivery_id", String(255), primary_key=True),
    Column("topic", String(128)),
    Column("workflow_id", String(255)),
    Column("received_at", UtcDateTime(), nullable=False, default=utcnow),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("topic", String(128)),
    Column("delivery_id", String(255)),
    Column("headers", JSON, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("reason", Text, nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("received_at", UtcDateTime(), nullable=False, default=utcnow),
    Column("replayed_at", UtcDateTime()),
    Column("replay_result", Text),
    Column("resolved", Boolean, nullable=False, default=False),
)


# --- returns ----------------------------------------------------------------------------------------
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

tax_adjustments = Table(
    "tax_adjustments",
    metadata,
    Column("code", String(255), primary_key=True),
    Column("original_code", String(255), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", MONEY, nullable=False),  # tax given back (positive)
    Column("status", String(16), nullable=False, default="committed"),  # committed | voided
    Column("created_at", UtcDateTime(), nullable=False, default=utcnow),
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

# --- inventory ledger (see inventory/ledger.py; the embedded ERP reserves from it) ----------------------
inventory_levels = Table(
    "inventory_levels",
    metadata,
    Column("item_code", String(64), primary_key=True),
    Column("location", String(64), primary_key=True),
    Column("on_hand", Integer, nullable=False, default=0),
    Column("reserved", Integer, nullable=False, default=0),
    Column("allocated", Integer, nullable=False, default=0),
    Column("in_transit", Integer, nullable=False, default=0),  # inbound to this location
    Column("damaged", Integer, nullable=False, default=0),
    Column("updated_at", UtcDateTime(), nullable=False, default=utcnow),
)

inventory_movements = Table(  # append-only: every change of inventory_levels, one row per source event
    "inventory_movements",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source_event_id", String(255), nullable=False, unique=True),
    Column("source", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("item_code", String(64), nullable=False),
    Column("location", String(64), nullable=False),
    Column("counterpart_location", String(64)),
    Column("quantity", Integer, nullable=False),
    Column("raw_on_hand", Integer, nullable=False, default=0),  # the event's on-hand effect as reported
    Column("d_on_hand", Integer, nullable=False, default=0),  # what it changed (0 if a later count covers it)
    Column("d_reserved", Integer, nullable=False, default=0),
    Column("d_allocated", Integer, nullable=False, default=0),
    Column("d_damaged", Integer, nullable=False, default=0),
    Column("d_in_transit", Integer, nullable=False, default=0),  # applies at the transfer's destination
    Column("reference", String(255)),
    Column("occurred_at", UtcDateTime(), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False, default=utcnow),
    Index("ix_inventory_movements_item", "item_code", "location", "occurred_at"),
)

inventory_counts = Table(  # the latest cycle count per item and location
    "inventory_counts",
    metadata,
    Column("item_code", String(64), primary_key=True),
    Column("location", String(64), primary_key=True),
    Column("quantity", Integer, nullable=False),
    Column("counted_at", UtcDateTime(), nullable=False),
    Column("source_event_id", String(255), nullable=False),
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

inventory_snapshots = Table(  # stock snapshots from an ERP/WMS (or a CSV) to reconcile against
    "inventory_snapshots",
    metadata,
    Column("snapshot_id", String(128), primary_key=True),
    Column("item_code", String(64), primary_key=True),
    Column("location", String(64), primary_key=True),
    Column("on_hand", Integer, nullable=False),
    Column("taken_at", UtcDateTime(), nullable=False, default=utcnow),
)

inventory_drift = Table(  # differences found by drift reconciliation and what became of them
    "inventory_drift",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(255), nullable=False),
    Column("item_code", String(64), nullable=False),
    Column("location", String(64), nullable=False),
    Column("ledger_on_hand", Integer, nullable=False),
    Column("snapshot_on_hand", Integer, nullable=False),
    Column("difference", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # found | corrected | parked | skipped
    Column("created_at", UtcDateTime(), nullable=False, default=utcnow),
    Column("resolved_at", UtcDateTime()),
    UniqueConstraint("run_id", "item_code", "location", name="uq_inventory_drift_line"),
)

inventory_outbox = Table(  # SKUs whose availability changed since InventorySync last heard of them
    "inventory_outbox",
    metadata,
    Column("item_code", String(64), primary_key=True),
    Column("changed_at", UtcDateTime(), nullable=False, default=utcnow),
)


# --- finance: settlement staging (amounts in the currency's minor units: exact sums on every database) --------
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

# --- embedded ERP: general ledger journals (idempotent by external reference) ------------------------------
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


_WRITER = "retailflow_sqlite_writer"


def make_engine(url: str, *, echo: bool = False) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):
            # Writers (`engine.begin()`) take SQLite's write lock up front — its equivalent of row locks, so a
            # read-then-write transaction never loses a race or fails to upgrade. Reads (`engine.connect()`) begin
            # deferred: a WAL snapshot that never queues behind writers nor holds them up (docs/benchmarks.md).
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITER) else "BEGIN")

        connect = engine.connect

        @contextlib.contextmanager
        def begin() -> Iterator[Connection]:
            with connect() as conn:
                conn.execution_options(**{_WRITER: True})
                with conn.begin():
                    yield conn

        engine.begin = begin  # type: ignore[method-assign]

        # let SQLAlchemy's "begin" event issue BEGIN itself
        @event.listens_for(engine, "connect")
        def _no_autobegin(dbapi_conn, _record):
            dbapi_conn.isolation_level = None

        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20)


def create_schema(engine: Engine) -> None:
    metadata.create_all(engine)
    from retailflow.seed import seed_tax_rates

    seed_tax_rates(engine)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"
