"""Alembic migrations of the platform database, on SQLite and (RETAILFLOW_TEST_DATABASE_URL) PostgreSQL.

The comparison is against the *live* `adapters.sql.metadata`: a table or column added to the models without a
new revision makes `test_migrations_match_models` fail (docs/deployment.md, "Adding a migration").
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

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
