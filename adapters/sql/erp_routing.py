"""Tables of the ERP router (adapters/erp/routing.py, adapters/erp/route_store.py; issue 21, part 2):

- `erp_routes`: the route of each business key per process, pinned the first time the key is posted, so a
  cut-over (a change of the routing file) takes effect for new keys only and a running order finishes on the ERP
  it started with;
- `erp_shadow_failures`: a shadow posting that failed (the order went on; the parity check reports it);
- `erp_parity_results`: the latest parity verdict per business key, with both documents side by side.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Index, Integer, String, Table, Text

from adapters.sql.base import UtcDateTime, metadata, utcnow

erp_routes = Table(
    "erp_routes",
    metadata,
    Column("process", String(32), primary_key=True),
    Column("business_key", String(255), primary_key=True),
    Column("record_erp", String(64), nullable=False),
    Column("shadow_erp", String(64)),  # dual-run: the ERP that gets the shadow documents
    Column("scope", String(255), nullable=False),  # the store / legal entity the route was chosen for
    Column("pinned_at", UtcDateTime(), nullable=False, default=utcnow),
    Index("ix_erp_routes_pinned_at", "pinned_at"),
)

erp_shadow_failures = Table(
    "erp_shadow_failures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("process", String(32), nullable=False),
    Column("business_key", String(255), nullable=False),
    Column("operation", String(64), nullable=False),
    Column("shadow_erp", String(64), nullable=False),
    Column("error", Text, nullable=False),
    Column("failed_at", UtcDateTime(), nullable=False, default=utcnow),
    Index("ix_erp_shadow_failures_key", "process", "business_key"),
)

erp_parity_results = Table(
    "erp_parity_results",
    metadata,
    Column("process", String(32), primary_key=True),
    Column("business_key", String(255), primary_key=True),
    Column("day", String(10), nullable=False),  # the UTC day the key was first posted (the report's grouping)
    Column("status", String(16), nullable=False),  # equal | different | accepted
    Column("differences", JSON, nullable=False),  # [{field, record, shadow}]
    Column("record_document", JSON),  # the system of record's document (canonical.erp_routing.ParityDocument)
    Column("shadow_document", JSON),
    Column("shadow_failures", JSON, nullable=False),  # the recorded shadow failures of the key, newest first
    Column("run_id", String(255)),  # the ParityCheck run that wrote it
    Column("note", Text),  # who accepted a difference, and why
    Column("checked_at", UtcDateTime(), nullable=False, default=utcnow),
    Index("ix_erp_parity_results_day", "process", "day"),
)
