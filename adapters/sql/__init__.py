"""The platform database: one SQLAlchemy metadata whose tables are owned by the adapters that use them, one
module per owner (`erp`, `wms`, `tax`, `marketplace`, `inventory`, `settlements`, `platform`). Alembic
(retailflow/migrations) is the only schema owner outside tests; `create_schema` is for tests and benchmarks.

SQLite (the embedded default) and PostgreSQL are both supported. Nothing connects at import time.
"""

from __future__ import annotations

from sqlalchemy import Engine

from adapters.sql.base import MONEY, ExactMoney, UtcDateTime, is_postgres, make_engine, metadata, utcnow
from adapters.sql.edi import edi_control_numbers, edi_interchanges
from adapters.sql.erp import (
    credit_notes,
    deliveries,
    erp_journals,
    invoices,
    items,
    reservations,
    restocks,
    sales_orders,
    sku_xref,
    stock,
    supplier_invoices,
)
from adapters.sql.erp_holds import erp_reservation_holds
from adapters.sql.erp_routing import erp_parity_results, erp_routes, erp_shadow_failures
from adapters.sql.inventory import (
    backorder_waits,
    inventory_counts,
    inventory_drift,
    inventory_levels,
    inventory_movements,
    inventory_outbox,
    inventory_shortfalls,
    inventory_snapshots,
)
from adapters.sql.marketplace import channel_refunds, channel_updates, inventory_publications, shopify_tokens
from adapters.sql.node_loads import fulfillment_node_loads
from adapters.sql.platform import (
    api_keys,
    early_cancels,
    early_events,
    quarantine,
    run_status,
    webhook_deliveries,
)
from adapters.sql.pricing import channel_prices_shown, pos_prices, price_changes
from adapters.sql.settlements import settlement_exceptions, settlement_journals, settlement_lines, settlements
from adapters.sql.store_fulfillment import pos_store_fulfillments
from adapters.sql.tax import DEFAULT_TAX_RATES, seed_tax_rates, tax_adjustments, tax_rates, tax_transactions
from adapters.sql.wms import wms_requests, wms_return_expectations


def create_schema(engine: Engine) -> None:
    """Every table and the reference data, without migrations: tests and benchmarks on a scratch database.
    Processes never call it; `retailflow db upgrade` (Alembic) owns the schema of a real database."""
    metadata.create_all(engine)
    seed_tax_rates(engine)


__all__ = [
    "DEFAULT_TAX_RATES", "MONEY", "backorder_waits", "ExactMoney", "UtcDateTime", "api_keys", "channel_refunds", "channel_updates", "create_schema",
    "credit_notes", "deliveries", "edi_control_numbers", "edi_interchanges", "early_cancels", "early_events", "erp_journals", "erp_parity_results", "erp_reservation_holds", "erp_routes",
    "erp_shadow_failures", "inventory_counts", "inventory_drift", "inventory_levels",
    "inventory_movements", "inventory_outbox", "inventory_publications", "inventory_shortfalls", "inventory_snapshots", "invoices", "shopify_tokens",
    "is_postgres", "items", "make_engine", "metadata", "quarantine", "reservations", "restocks", "run_status",
    "sales_orders", "seed_tax_rates", "settlement_exceptions", "settlement_journals", "settlement_lines",
    "settlements", "sku_xref", "stock", "supplier_invoices", "tax_adjustments", "tax_rates", "tax_transactions", "utcnow",
    "webhook_deliveries", "wms_requests", "wms_return_expectations",
    "channel_prices_shown", "pos_prices", "price_changes", "pos_store_fulfillments", "fulfillment_node_loads",
]
