"""exact money on SQLite: every money column becomes a BIGINT count of 1/10000 units (adapters/sql/base.py)

SQLite's NUMERIC(18, 4) stores binary floats (a journal total of 10982462.59 reads 10982462.5899999900 in SQL),
so on SQLite each money column is rebuilt as BIGINT and each value converted exactly: its decimal text (the
shortest text of a REAL, which is what was written) times 10000, rounded half-even. PostgreSQL's NUMERIC is
exact already: a no-op there. The downgrade converts back to NUMERIC(18, 4).

SQLite cannot change a column's type in place, so each table is rebuilt; the ERP's parent tables (erp_items,
erp_sales_orders) are dropped and re-filled inside this transaction with foreign keys deferred, and re-filling
the parent satisfies its children again before commit.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:45:00

"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from alembic import op

revision: str = '0006'
down_revision: str | Sequence[str] | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# frozen: the money columns as of this revision (adapters/sql/*.py, MONEY)
MONEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "erp_items": ("unit_price",),
    "erp_sales_orders": ("net_total", "tax_total", "grand_total"),
    "erp_invoices": ("net_total", "tax_total", "grand_total"),
    "erp_credit_notes": ("net_total", "tax_total", "grand_total"),
    "erp_journals": ("total_debit", "total_credit"),
    "tax_transactions": ("total_tax",),
    "tax_adjustments": ("amount",),
    "channel_refunds": ("amount",),
}
NUMERIC = "NUMERIC(18, 4)"
UNITS = "BIGINT"
SCALE = 4
LIMIT = 10 ** 18  # |units| below 10^18: NUMERIC(18, 4), and inside SQLite's 64-bit integers
_BATCH = 5000


def to_units(value: object) -> int | None:
    """A stored SQLite value (REAL, INTEGER or TEXT under NUMERIC affinity) as exact 1/10000 units."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"not an amount: {value!r}")
    try:
        # repr(float) is the shortest decimal text that reads back as the same double: what was written
        amount = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not an amount: {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"not an amount: {value!r}")
    units = int(amount.scaleb(SCALE).to_integral_value(rounding=ROUND_HALF_EVEN))
    if abs(units) >= LIMIT:
        raise ValueError(f"amount {amount} does not fit NUMERIC(18, 4)")
    return units


def from_units(value: object) -> float | None:
    """Back to what SQLAlchemy's Numeric wrote on SQLite before this revision: a REAL."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"money column holds {value!r}, not integer units")
    return float(Decimal(value).scaleb(-SCALE))


def _retype(create_sql: str, table: str, columns: tuple[str, ...], old: str, new: str) -> str:
    for col in columns:
        pattern = re.compile(rf'(\(|,)(\s*"?{col}"?\s+){re.escape(old)}', re.IGNORECASE)
        create_sql, n = pattern.subn(lambda m: f"{m.group(1)}{m.group(2)}{new}", create_sql)
        if n != 1:
            raise RuntimeError(f"{table}.{col}: expected one column declared {old} in {create_sql!r}")
    return create_sql


def _rebuild(conn, table: str, columns: tuple[str, ...], old: str, new: str,
             convert: Callable[[object], object]) -> None:
    row = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).first()
    if row is None:
        return  # not created on this database
    create_sql = _retype(row[0], table, columns, old, new)
    indexes = [r[0] for r in conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", (table,))]
    names = [r[1] for r in conn.exec_driver_sql(f'PRAGMA table_info("{table}")')]
    quoted = ", ".join(f'"{n}"' for n in names)
    tmp = f"_money_{table}"
    conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{tmp}"')
    conn.exec_driver_sql(f'CREATE TABLE "{tmp}" AS SELECT rowid AS _rid, {quoted} FROM "{table}"')
    # drop, then re-create and re-fill: inserting the parent rows again is what satisfies the deferred
    # foreign keys of the children (a renamed copy would leave them counted as violated at commit)
    conn.exec_driver_sql(f'DROP TABLE "{table}"')
    conn.exec_driver_sql(create_sql)
    cols = ", ".join(f'"{c}"' for c in columns)
    last = None
    while True:
        where = "" if last is None else f"WHERE _rid > {int(last)} "
        rows = conn.exec_driver_sql(
            f'SELECT _rid, {cols} FROM "{tmp}" {where}ORDER BY _rid LIMIT {_BATCH}').all()
        if not rows:
            break
        sets = ", ".join(f'"{c}" = ?' for c in columns)
        conn.exec_driver_sql(f'UPDATE "{tmp}" SET {sets} WHERE _rid = ?',
                             [(*(convert(v) for v in r[1:]), r[0]) for r in rows])
        last = rows[-1][0]
    conn.exec_driver_sql(
        f'INSERT INTO "{table}" ({quoted}) SELECT {quoted} FROM "{tmp}" ORDER BY _rid')
    conn.exec_driver_sql(f'DROP TABLE "{tmp}"')
    for sql in indexes:
        conn.exec_driver_sql(sql)


def _convert_all(old: str, new: str, convert: Callable[[object], object]) -> None:
    conn = op.get_bind()
    if conn.dialect.name != "sqlite":
        return  # PostgreSQL's NUMERIC(18, 4) is exact
    conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")  # until this transaction commits
    for table, columns in MONEY_COLUMNS.items():
        _rebuild(conn, table, columns, old, new, convert)


def upgrade() -> None:
    _convert_all(NUMERIC, UNITS, to_units)


def downgrade() -> None:
    _convert_all(UNITS, NUMERIC, from_units)
