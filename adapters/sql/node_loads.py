"""Fulfillment node loads (issue 20, item 1: "a capacity per day"): one row per release sent to a node, on the
shipping day it leaves (the node's local day, the next one after its cut-off). `plan_sourcing` counts a node's rows
for its current shipping day against `capacity_per_day`; a withdrawn release gives its place back."""

from __future__ import annotations

from sqlalchemy import Column, Date, Index, String, Table

from adapters.sql.base import UtcDateTime, metadata, utcnow

fulfillment_node_loads = Table(
    "fulfillment_node_loads",
    metadata,
    Column("release_ref", String(255), primary_key=True),  # `<order>/<node>/<n>`: once per release
    Column("node_id", String(64), nullable=False),
    Column("ship_day", Date, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False, default=utcnow),
    Index("ix_fulfillment_node_loads_node_day", "node_id", "ship_day"),
)
