"""The platform database's engine and shared column types: one SQLAlchemy 2 metadata, filled by the table
modules of each owner next to it (adapters/sql/<owner>.py).

SQLite (the embedded default) and PostgreSQL are both supported. Nothing connects at import time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    MetaData,
    Numeric,
    TypeDecorator,
    create_engine,
    event,
)

metadata = MetaData()

MONEY = Numeric(18, 4)


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
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
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
