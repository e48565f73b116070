"""The inventory ledger's tables (adapters/inventory/ledger.py)."""

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

from adapters.sql.base import UtcDateTime, metadata, utcnow

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

inventory_shortfalls = Table(  # units a store sale took from open reservations (issue 17), one row per sale and order
    "inventory_shortfalls",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("cause_source", String(64), nullable=False),  # the sale's source (pos:AMS01, square …)
    Column("cause_event_id", String(255), nullable=False),  # the sale's source_event_id
    Column("reservation_key", String(255), nullable=False),  # the order workflow id
    Column("item_code", String(64), nullable=False),
    Column("location", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),  # units taken back from that reservation
    Column("store", String(64)),
    Column("occurred_at", UtcDateTime(), nullable=False),  # when the sale happened
    Column("created_at", UtcDateTime(), nullable=False, default=utcnow),
    Column("notified_at", UtcDateTime()),  # when the order was told (set by whoever tells it)
    UniqueConstraint("cause_event_id", "reservation_key", name="uq_inventory_shortfall"),
    Index("ix_inventory_shortfalls_reservation", "reservation_key"),
)

backorder_waits = Table(  # backordered order lines waiting for an item (issue 20): who to tell when it is received
    "backorder_waits",
    metadata,
    Column("order_key", String(255), primary_key=True),  # the order workflow id
    Column("line_id", String(64), primary_key=True),
    Column("item_code", String(64), primary_key=True),  # the line's item, or a component of its kit
    Column("channel", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),  # units of item_code the line needs
    Column("locations", JSON, nullable=False),  # where a receipt may place it (the policy's nodes); []: anywhere
    Column("since", UtcDateTime(), nullable=False, default=utcnow),  # when the line first waited for the item
    Index("ix_backorder_waits_item", "item_code"),
)
