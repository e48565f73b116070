"""The platform database's engine and shared column types: one SQLAlchemy 2 metadata, filled by the table
modules of each owner next to it (adapters/sql/<owner>.py).

SQLite (the embedded default) and PostgreSQL are both supported. Nothing connects at import time.

Money (`MONEY`, `ExactMoney`) is exact on both: NUMERIC(18, 4) on PostgreSQL; on SQLite, whose NUMERIC is a
binary float, a BIGINT count of 1/10000 units (10982462.59 is stored as 109824625900), so SUM, comparisons and
additions in SQL stay exact integer arithmetic. Code reads and writes Decimal; only raw SQL sees the units.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    DateTime,
    Engine,
    MetaData,
    Numeric,
    TypeDecorator,
    create_engine,
    event,
)
from sqlalchemy.sql import operators
from sqlalchemy.types import Integer, TypeEngine

metadata = MetaData()

MONEY_SCALE = 4  # decimals kept: NUMERIC(18, 4)
MONEY_UNIT = Decimal(1).scaleb(-MONEY_SCALE)  # 0.0001, the unit SQLite counts
MONEY_LIMIT = Decimal(10) ** (18 - MONEY_SCALE)  # |amount| < 10^14: what NUMERIC(18, 4) holds


def money_decimal(value: object) -> Decimal:
    """The exact Decimal of an amount to store: Decimal, int or decimal text; never a float. More than four
    decimals or beyond NUMERIC(18, 4) is a ValueError: the database never rounds an amount silently."""
    if isinstance(value, float | bool):
        raise TypeError(f"{value!r} is a {type(value).__name__}; money is stored from Decimal only")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, str):
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{value[:40]!r} is not a decimal amount") from None
    else:
        raise TypeError(f"{type(value).__name__} is not an amount")
    if not amount.is_finite() or amount.copy_abs() >= MONEY_LIMIT:
        raise ValueError(f"amount {amount} does not fit NUMERIC(18, {MONEY_SCALE}) (|amount| < 10^14)")
    if amount.quantize(MONEY_UNIT) != amount:
        raise ValueError(f"amount {amount} has more than {MONEY_SCALE} decimals; round it before storing")
    return amount


def money_to_units(value: object) -> int:
    """An amount as its exact count of 1/10000 units (SQLite's representation)."""
    return int(money_decimal(value).scaleb(MONEY_SCALE))


def money_from_units(units: int) -> Decimal:
    return Decimal(units).scaleb(-MONEY_SCALE)


class ExactMoney(TypeDecorator):
    """An exact amount: NUMERIC(18, 4) on PostgreSQL, a BIGINT count of 1/10000 units on SQLite (whose NUMERIC
    stores binary floats). Reads give Decimal with four decimals on both.

    SQL over the column stays exact: comparisons, `+`/`-` of amounts and `func.sum`/`coalesce` (they keep the
    column's type, so literals are bound as units and results converted back); `*` by a Python int is allowed
    (the int is bound as itself). Division and multiplication by a fraction are refused: on SQLite they would be
    integer or float arithmetic on units; do them in Python with Decimal.
    """

    impl = Numeric(18, MONEY_SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(18, MONEY_SCALE))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if dialect.name == "sqlite":
            return money_to_units(value)
        return money_decimal(value)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if dialect.name == "sqlite":
            if isinstance(value, int) and not isinstance(value, bool):
                return money_from_units(value)
            raise ValueError(
                f"money column holds {value!r} ({type(value).__name__}), not integer 1/10000 units: a database "
                "from before migration 0006 (run `retailflow db upgrade`), or SQL that divided or averaged money")
        return value if isinstance(value, Decimal) else money_decimal(value)

    def coerce_compared_value(self, op, value):
        if op is operators.mul and isinstance(value, int) and not isinstance(value, bool):
            return Integer()
        if op in (operators.mul, operators.truediv, operators.floordiv, operators.mod):
            raise TypeError("multiply money only by an int in SQL, never divide it there (SQLite stores 1/10000 "
                            "units): compute with Decimal in Python")
        return self


MONEY = ExactMoney()


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on both databases (SQLite forgets the zone; put it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError("naive datetime: the platform stores UTC-aware datetimes only")
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if isinstance(value, datetime):
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value


_WRITER = "retailflow_sqlite_writer"


def make_engine(url: str, *, echo: bool = False) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=30000")
            # WAL is a property of the database file: set it once. Switching needs the file to itself, so a
            # connection opened while another replica migrates a new database may be refused (SQLITE_BUSY without
            # the busy handler); that is fine when the other one has switched it already.
            # the busy handler does not cover the switch, so wait for the other one here (bounded: 30 s)
            deadline = time.monotonic() + 30
            while str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() not in ("wal", "memory"):
                try:
                    cur.execute("PRAGMA journal_mode=WAL")
                    break  # switched (or the file cannot be WAL: SQLite keeps its mode and says so)
                except sqlite3.OperationalError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):
            # Writers (`engine.begin()`) take SQLite's write lock up front — its equivalent of row locks, so a
            # read-then-write transaction never loses a race or fails to upgrade. Reads (`engine.connect()`) begin
            # deferred: a WAL snapshot that never queues behind writers nor holds them up (docs/benchmarks.md).
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITER) else "BEGIN")

        connect = engine.connect

        @contextlib.contextmanager
        def begin() -> Iterator[Connection]:
            with connect() as conn:
                conn.execution_options(**{_WRITER: True})
                with conn.begin():
                    yield conn

        engine.begin = begin  # type: ignore[method-assign]

        # let SQLAlchemy's "begin" event issue BEGIN itself
        @event.listens_for(engine, "connect")
        def _no_autobegin(dbapi_conn, _record):
            dbapi_conn.isolation_level = None

        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"
