"""Alembic migrations of the platform database, on SQLite and (RETAILFLOW_TEST_DATABASE_URL) PostgreSQL.

The comparison is against the *live* `adapters.sql.metadata`: a table or column added to the models without a
new revision makes `test_migrations_match_models` fail (docs/deployment.md, "Adding a migration").
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import make_url

from adapters import sql as db
from adapters.sql import DEFAULT_TAX_RATES
from retailflow.migrate import (
    BASELINE_REVISION,
    BASELINE_TABLES,
    MigrationError,
    current_revision,
    head_revision,
    schema_differences,
    upgrade_database,
)


def _pg_url() -> str | None:
    return os.environ.get("RETAILFLOW_TEST_DATABASE_URL")


@pytest.fixture(params=[
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.skipif(
        not _pg_url(), reason="RETAILFLOW_TEST_DATABASE_URL not set (CI sets it)")),
])
def empty_db_url(request, tmp_path) -> Iterator[str]:
    """The URL of an empty database: a new SQLite file, or a new PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
        return
    base = make_url(_pg_url())
    name = f"mig_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _tables(url: str) -> set[str]:
    eng = create_engine(url)
    try:
        with eng.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        eng.dispose()


def _summary(diffs: list) -> list[tuple[str, str]]:
    """(operation, object name) of each difference, e.g. ("add_table", "inventory_levels")."""
    out = []
    for diff in diffs:
        op = diff[0] if isinstance(diff, tuple) else diff[0][0]  # column modifications come as a list
        obj = diff[1] if isinstance(diff, tuple) else ".".join(str(p) for p in diff[0][2:4])
        out.append((op, getattr(obj, "name", str(obj))))
    return out


def _differences(url: str) -> tuple[str | None, list]:
    eng = create_engine(url)
    try:
        with eng.connect() as conn:
            return current_revision(conn), schema_differences(conn)
    finally:
        eng.dispose()


def test_migrations_match_models(empty_db_url):
    result = upgrade_database(empty_db_url)
    assert (result.before, result.after, result.adopted) == (None, head_revision(), False)
    revision, diffs = _differences(empty_db_url)
    assert revision == head_revision()
    assert _summary(diffs) == [], (
        "the tables in adapters/sql differ from the migrations: add a revision (docs/deployment.md, 'Adding a migration')")
    assert _tables(empty_db_url) == set(db.metadata.tables) | {"alembic_version"}
    # reference data: the embedded tax engine's rates, once, even when upgrade runs again
    assert upgrade_database(empty_db_url).before == head_revision()
    eng = create_engine(empty_db_url)
    try:
        with eng.connect() as conn:
            assert len(conn.execute(select(db.tax_rates)).all()) == len(DEFAULT_TAX_RATES)
    finally:
        eng.dispose()


def test_replicas_starting_together_upgrade_one_at_a_time(empty_db_url):
    """`retailflow worker` and `retailflow api` upgrade before they start; several replicas at once must not
    collide (PostgreSQL: an advisory lock; SQLite: the write lock): one migrates, the others find head."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: upgrade_database(empty_db_url), range(4)))
    assert sorted((r.before is None) for r in results) == [False, False, False, True]
    assert {r.after for r in results} == {head_revision()}
    assert _differences(empty_db_url) == (head_revision(), [])


def test_baseline_revision_creates_the_baseline_tables(empty_db_url):
    upgrade_database(empty_db_url, BASELINE_REVISION)
    assert _tables(empty_db_url) == BASELINE_TABLES | {"alembic_version"}


def test_schema_made_by_db_init_is_adopted(empty_db_url):
    engine = db.make_engine(empty_db_url)
    db.create_schema(engine)  # what `retailflow db init` (and the worker at start) did before migrations
    engine.dispose()
    result = upgrade_database(empty_db_url)
    assert result.adopted and result.before is None and result.after == head_revision()
    assert _differences(empty_db_url) == (head_revision(), [])


def test_unknown_schema_is_refused_and_left_alone(empty_db_url):
    eng = create_engine(empty_db_url)
    with eng.begin() as conn:
        conn.execute(text("CREATE TABLE erp_items (item_code VARCHAR(64) PRIMARY KEY)"))
    eng.dispose()
    with pytest.raises(MigrationError, match="match neither"):
        upgrade_database(empty_db_url)
    assert _tables(empty_db_url) == {"erp_items"}


def test_drift_is_detected(empty_db_url):
    """The guard itself: an index the models have and the database lacks is reported."""
    upgrade_database(empty_db_url)
    _, before = _differences(empty_db_url)
    eng = create_engine(empty_db_url)
    with eng.begin() as conn:
        conn.execute(text("DROP INDEX ix_wms_requests_due"))
    eng.dispose()
    _, after = _differences(empty_db_url)
    added = [d for d in _summary(after) if d not in _summary(before)]
    assert added == [("add_index", "ix_wms_requests_due")]


# -- 0006: exact money (adapters/sql/base.py, ExactMoney) ----------------------------------------------------------

_AT_0005 = [  # rows written by the code of revision 0005: SQLAlchemy's Numeric bound floats on SQLite
    ("INSERT INTO erp_items (item_code, name, unit_price, currency, updated_at) "
     "VALUES ('SKU-1', 'Widget', :big, 'USD', :now)"),
    "INSERT INTO erp_sku_xref (channel, channel_sku, item_code) VALUES ('shopify', 'W-1', 'SKU-1')",
    "INSERT INTO erp_stock (item_code, location, on_hand, reserved, updated_at) VALUES ('SKU-1', 'MAIN', 3, 0, :now)",
    ("INSERT INTO erp_sales_orders (id, external_ref, channel, external_order_id, currency, net_total, tax_total, "
     "grand_total, lines, status, created_at) "
     "VALUES ('SO-1', 'shopify:1', 'shopify', '1', 'USD', :big, :whole, :tenth, '[]', 'open', :now)"),
    ("INSERT INTO erp_invoices (id, external_ref, sales_order_id, currency, net_total, tax_total, grand_total, "
     "created_at) VALUES ('INV-1', 'shopify:1', 'SO-1', 'USD', :big, :whole, :tenth, :now)"),
    ("INSERT INTO erp_credit_notes (id, external_ref, order_external_ref, currency, net_total, tax_total, "
     "grand_total, lines, status, created_at) "
     "VALUES ('CN-1', 'refund:1', 'shopify:1', 'USD', :neg, :whole, :neg, '[]', 'open', :now)"),
    ("INSERT INTO erp_journals (id, external_ref, posting_date, currency, total_debit, total_credit, lines, "
     "created_at) VALUES ('JE-1', 'settlement:amazon:1', '2026-01-01', 'USD', :big, :big, '[]', :now)"),
    ("INSERT INTO tax_transactions (code, status, currency, total_tax, quote, created_at, updated_at) "
     "VALUES ('tx-1', 'committed', 'USD', :tenth, '{}', :now, :now)"),
    ("INSERT INTO tax_adjustments (code, original_code, currency, amount, status, created_at) "
     "VALUES ('adj-1', 'tx-1', 'USD', :tenth, 'committed', :now)"),
    ("INSERT INTO channel_refunds (refund_key, channel, external_order_id, line_id, quantity, amount, currency, "
     "created_at) VALUES ('r-1', 'shopify', '1', 'L1', 1, :neg, 'USD', :now)"),
]
_MONEY_READS = {  # (table, column) -> what the new type must read, exactly
    ("erp_items", "unit_price"): Decimal("10982462.5900"),
    ("erp_sales_orders", "net_total"): Decimal("10982462.5900"),
    ("erp_sales_orders", "tax_total"): Decimal("5.0000"),
    ("erp_sales_orders", "grand_total"): Decimal("0.1000"),
    ("erp_invoices", "net_total"): Decimal("10982462.5900"),
    ("erp_invoices", "grand_total"): Decimal("0.1000"),
    ("erp_credit_notes", "grand_total"): Decimal("-0.0300"),
    ("erp_journals", "total_debit"): Decimal("10982462.5900"),
    ("erp_journals", "total_credit"): Decimal("10982462.5900"),
    ("tax_transactions", "total_tax"): Decimal("0.1000"),
    ("tax_adjustments", "amount"): Decimal("0.1000"),
    ("channel_refunds", "amount"): Decimal("-0.0300"),
}


def _write_at_0005(url: str) -> None:
    from datetime import UTC, datetime

    sqlite = url.startswith("sqlite")
    values = {"big": Decimal("10982462.59"), "whole": Decimal("5.00"), "tenth": Decimal("0.1"),
              "neg": Decimal("-0.03"), "now": datetime(2026, 1, 1, tzinfo=UTC)}
    if sqlite:  # what SQLAlchemy's Numeric wrote on SQLite: floats (and NUMERIC affinity keeps 5.0 as INTEGER 5)
        values = {k: (float(v) if isinstance(v, Decimal) else v.strftime("%Y-%m-%d %H:%M:%S.%f"))
                  for k, v in values.items()}
    eng = create_engine(url)
    try:
        with eng.begin() as conn:
            for sql in _AT_0005:
                conn.execute(text(sql), values)
            if sqlite:
                assert conn.exec_driver_sql(
                    "SELECT typeof(total_debit), printf('%.10f', total_debit) FROM erp_journals").one() == (
                    "real", "10982462.5899999900")  # as the issue saw it
    finally:
        eng.dispose()


def _read_money(url: str) -> dict:
    eng = db.make_engine(url)
    try:
        with eng.connect() as conn:
            return {(t, c): conn.execute(select(db.metadata.tables[t].c[c])).scalar_one() for t, c in _MONEY_READS}
    finally:
        eng.dispose()


def test_0006_converts_stored_money_exactly(empty_db_url):
    """A database at 0005 with REAL money (SQLite) reads every amount back exactly after the upgrade; PostgreSQL's
    NUMERIC is untouched. Foreign keys, indexes and the schema end as the models say."""
    upgrade_database(empty_db_url, "0005")
    _write_at_0005(empty_db_url)
    result = upgrade_database(empty_db_url)
    assert (result.before, result.after) == ("0005", head_revision())
    got = _read_money(empty_db_url)
    assert got == _MONEY_READS
    assert {str(v) for k, v in got.items() if k[1] == "total_debit"} == {"10982462.5900"}
    assert _differences(empty_db_url) == (head_revision(), [])
    eng = create_engine(empty_db_url)
    try:
        with eng.connect() as conn:
            if empty_db_url.startswith("sqlite"):
                assert conn.exec_driver_sql(
                    "SELECT typeof(total_debit), total_debit FROM erp_journals").one() == ("integer", 109824625900)
                assert conn.exec_driver_sql("SELECT sum(grand_total) FROM erp_invoices").scalar() == 1000
                assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
            # the rows the money tables' children point at are still there
            assert conn.execute(text("SELECT count(*) FROM erp_invoices i JOIN erp_sales_orders s "
                                     "ON s.id = i.sales_order_id")).scalar() == 1
            assert conn.execute(text("SELECT count(*) FROM erp_sku_xref x JOIN erp_items i "
                                     "ON i.item_code = x.item_code")).scalar() == 1
    finally:
        eng.dispose()


def test_0006_downgrade_converts_back(empty_db_url):
    from alembic import command

    from retailflow.migrate import alembic_config

    upgrade_database(empty_db_url, "0005")
    _write_at_0005(empty_db_url)
    upgrade_database(empty_db_url)
    eng = db.make_engine(empty_db_url)
    try:
        with eng.begin() as conn:
            cfg = alembic_config(empty_db_url)
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0005")
        with eng.connect() as conn:
            assert current_revision(conn) == "0005"
            row = conn.execute(text("SELECT total_debit, total_credit FROM erp_journals")).one()
            if empty_db_url.startswith("sqlite"):
                assert row == (10982462.59, 10982462.59)  # REAL again, as revision 0005's code wrote it
                assert conn.exec_driver_sql("SELECT typeof(grand_total) FROM erp_invoices").scalar() == "real"
                assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
            else:
                assert row == (Decimal("10982462.5900"), Decimal("10982462.5900"))
    finally:
        eng.dispose()
    upgrade_database(empty_db_url)  # and up again
    assert _read_money(empty_db_url) == _MONEY_READS


def test_0006_refuses_what_it_cannot_convert():
    import importlib

    m = importlib.import_module("retailflow.migrations.versions.0006_exact_money")
    assert m.to_units(10982462.59) == 109824625900
    assert m.to_units(5) == 50000
    assert m.to_units("0.1") == 1000
    assert m.to_units(0.00005) == 0 and m.to_units(0.00015) == 2  # half-even on the decimal text
    assert m.to_units(None) is None
    for bad in ("abc", b"1", float("inf"), 1e15):
        with pytest.raises(ValueError):
            m.to_units(bad)
