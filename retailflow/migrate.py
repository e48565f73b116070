"""Schema migrations of the platform database (Alembic, scripts in `retailflow/migrations/`).

`retailflow db upgrade` calls `upgrade_database`: it applies every revision up to `head` in one transaction
(PostgreSQL and SQLite both have transactional DDL, so a failed upgrade leaves the schema as it was). A
database created earlier by `retailflow db init` (tables, no `alembic_version`) is adopted: stamped at head
when it matches today's models, at the baseline revision when it has exactly the baseline's tables, then
upgraded. See docs/deployment.md, "Adding a migration".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BASELINE_REVISION = "0001"
# the tables the baseline revision creates (what `retailflow db init` made before migrations existed)
BASELINE_TABLES = frozenset({
    "erp_items", "erp_sku_xref", "erp_stock", "erp_reservations", "erp_sales_orders", "erp_deliveries",
    "erp_invoices", "wms_requests", "tax_rates", "tax_transactions", "channel_updates", "run_status",
    "webhook_deliveries", "quarantine", "erp_credit_notes", "erp_restocks", "channel_refunds",
    "tax_adjustments", "wms_return_expectations",
})


# pg_advisory_xact_lock key of `upgrade_database` (any constant: "retailflow migrations")
MIGRATION_LOCK_KEY = 0x7265_7461_696C


class MigrationError(RuntimeError):
    """The database is in a state `upgrade_database` will not guess about."""


@dataclass(frozen=True)
class UpgradeResult:
    before: str | None
    after: str | None
    adopted: bool


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config for the packaged scripts (no alembic.ini needed, so it works from an installed wheel)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def schema_differences(connection) -> list:
    """What `alembic revision --autogenerate` would write: the live models against this database."""
    from alembic.autogenerate import compare_metadata

    from adapters.sql import metadata

    return compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), metadata)


def _adopt(conn, cfg: Config) -> bool:
    """A database without `alembic_version`: empty (nothing to do), made by `retailflow db init` with today's
    models (stamp head), or by an older `db init` with the baseline tables only (stamp the baseline)."""
    tables = set(inspect(conn).get_table_names())
    if not tables:
        return False
    if not schema_differences(conn):
        command.stamp(cfg, "head")
        return True
    if tables & BASELINE_TABLES == BASELINE_TABLES and tables <= BASELINE_TABLES | {"alembic_version"}:
        command.stamp(cfg, BASELINE_REVISION)
        return True
    raise MigrationError(
        "the database has tables but no alembic_version, and they match neither the current models nor the "
        f"baseline revision {BASELINE_REVISION}: compare it with `alembic check` and stamp it by hand")


def upgrade_database(url: str, revision: str = "head") -> UpgradeResult:
    """Apply the migrations up to `revision` on the database at `url`, adopting a `db init` database."""
    from adapters.sql import make_engine

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                # workers and API replicas starting together upgrade one at a time; the others then find head
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            before = current_revision(conn)
            adopted = _adopt(conn, cfg) if before is None else False
            command.upgrade(cfg, revision)
            after = current_revision(conn)
        if revision == "head":
            from adapters.sql import seed_tax_rates

            seed_tax_rates(engine)  # reference data of the embedded tax engine; adds only missing rows
        return UpgradeResult(before=before, after=after, adopted=adopted)
    finally:
        engine.dispose()
