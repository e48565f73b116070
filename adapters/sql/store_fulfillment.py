"""The POS store-fulfillment table (adapters/pos/fulfillment.py): one row per fulfillment request to a store
(ship-from-store or click-and-collect), keyed by the release reference `<order>/<node>/<n>`.

The embedded POS keeps the request and its state here (its staff confirm the pick and the pick-up through
`/pos/stores/{store}/fulfillments/{ref}/…`); the Square adapter keeps the Square order id it created for the
reference (`external_id`), so that an `order.fulfillment.updated` webhook finds its order without a call to Square.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Index, Integer, String, Table, Text

from adapters.sql.base import UtcDateTime, metadata, utcnow

pos_store_fulfillments = Table(
    "pos_store_fulfillments",
    metadata,
    Column("ref", String(255), primary_key=True),
    Column("provider", String(16), nullable=False),  # embedded | square
    Column("store_id", String(64), nullable=False),
    Column("location", String(64), nullable=False),
    Column("order_ref", String(255), nullable=False),
    Column("kind", String(16), nullable=False),  # SHIPMENT | PICKUP
    # PROPOSED | RESERVED | PREPARED | COMPLETED | CANCELED | FAILED (Square's fulfillment states)
    Column("state", String(16), nullable=False),
    Column("lines", JSON, nullable=False),
    Column("recipient", String(255)),
    Column("external_id", String(128), unique=True),
    Column("fulfillment_uid", String(128)),
    Column("version", Integer, nullable=False, default=1),
    Column("prepared_by", String(255)),
    Column("prepared_at", UtcDateTime()),
    Column("completed_by", String(255)),
    Column("completed_at", UtcDateTime()),
    Column("cancelled_at", UtcDateTime()),
    Column("reason", Text),
    Column("carrier", String(64)),
    Column("tracking_number", String(128)),
    Column("created_at", UtcDateTime(), nullable=False, default=utcnow),
    Column("updated_at", UtcDateTime(), nullable=False, default=utcnow),
    Index("ix_pos_store_fulfillments_store_state", "store_id", "state"),
)
