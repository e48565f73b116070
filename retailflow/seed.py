"""Reference data the embedded stack starts with: the tax rate table."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Engine, select

from retailflow import db

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
        have = {(r.country, r.region) for r in conn.execute(select(db.tax_rates.c.country, db.tax_rates.c.region))}
        rows = [
            {"country": c, "region": r, "rate": Decimal(rate), "name": name}
            for c, r, rate, name in DEFAULT_TAX_RATES
            if (c, r) not in have
        ]
        if rows:
            conn.execute(db.tax_rates.insert(), rows)
