"""The embedded tax engine's tables (adapters/tax/local.py) and the rate table it starts with."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import (
    JSON,
    Column,
    Engine,
    Numeric,
    String,
    Table,
    select,
)

from adapters.sql.base import MONEY, UtcDateTime, metadata, utcnow

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


# Country-wide VAT/GST and US state base sales-tax rates (state level only; local rates not modelled).
DEFAULT_TAX_RATES: list[tuple[str, str, str, str]] = [
    ("US", "CA", "0.0725", "California sales tax"),
    ("US", "KY", "0.06", "Kentucky sales tax"),
    ("US", "NY", "0.04", "New York sales tax"),
    ("US", "NJ", "0.06625", "New Jersey sales tax"),
    ("US", "TX", "0.0625", "Texas sales tax"),
    ("US", "WA", "0.065", "Washington sales tax"),
    ("US", "FL", "0.06", "Florida sales tax"),
    ("US", "IL", "0.0625", "Illinois sales tax"),
    ("CA", "ON", "0.13", "Ontario HST"),
    ("CA", "QC", "0.14975", "Quebec GST+QST"),
    ("CA", "BC", "0.12", "British Columbia GST+PST"),
    ("CA", "", "0.05", "Canada GST"),
    ("GB", "", "0.20", "UK VAT"),
    ("DE", "", "0.19", "Germany VAT"),
    ("FR", "", "0.20", "France VAT"),
    ("NL", "", "0.21", "Netherlands VAT"),
    ("IE", "", "0.23", "Ireland VAT"),
    ("ES", "", "0.21", "Spain VAT"),
    ("IT", "", "0.22", "Italy VAT"),
    ("AU", "", "0.10", "Australia GST"),
]


def seed_tax_rates(engine: Engine) -> None:
    with engine.begin() as conn:
        have = {(r.country, r.region) for r in conn.execute(select(tax_rates.c.country, tax_rates.c.region))}
        rows = [
            {"country": c, "region": r, "rate": Decimal(rate), "name": name}
            for c, r, rate, name in DEFAULT_TAX_RATES
            if (c, r) not in have
        ]
        if rows:
            conn.execute(tax_rates.insert(), rows)
