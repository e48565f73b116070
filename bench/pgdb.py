"""A PostgreSQL database of the bench's own: `bench_<pid>` created on the server a URL names, dropped at the end.

The URL given (`--postgres-url`, RETAILFLOW_BENCH_POSTGRES_URL, or RETAILFLOW_TEST_DATABASE_URL through
`make bench`) only says which server and role to use; its database is the maintenance connection that runs
CREATE DATABASE / DROP DATABASE. The bench never writes to that database itself."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PREFIX = "bench_"


def database_name(pid: int | None = None) -> str:
    """`bench_<pid>`: one per bench process, so two runs on one server never share tables."""
    pid = os.getpid() if pid is None else pid
    if pid <= 0:
        raise ValueError(f"a process id is positive, not {pid}")
    return f"{PREFIX}{pid}"


def _checked(name: str) -> str:
    # the name goes into DDL (CREATE/DROP DATABASE take no bind parameters): only the bench's own pattern
    if not re.fullmatch(rf"{PREFIX}\d+", name):
        raise ValueError(f"{name!r} is not a bench database name ({PREFIX}<pid>)")
    return name


def database_url(server_url: str, name: str) -> str:
    """`server_url` with its database replaced by `name` (driver, role, host, port and query kept)."""
    url = make_url(server_url)
    if not url.drivername.startswith("postgresql"):
        raise ValueError(f"not a PostgreSQL URL: {url.drivername}")
    return url.set(database=_checked(name)).render_as_string(hide_password=False)


def _admin(server_url: str):
    return create_engine(make_url(server_url), isolation_level="AUTOCOMMIT", pool_size=1, max_overflow=0)


def create_database(server_url: str, name: str) -> str:
    """CREATE DATABASE `name` (a left-over one of the same name, from a killed run of a reused pid, is dropped
    first); the new database's URL."""
    name = _checked(name)
    engine = _admin(server_url)
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return database_url(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    """DROP DATABASE `name` WITH (FORCE): connections a stopped worker left behind do not keep it."""
    name = _checked(name)
    engine = _admin(server_url)
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


def exists(server_url: str, name: str) -> bool:
    engine = _admin(server_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first() is not None
    finally:
        engine.dispose()


@contextlib.contextmanager
def bench_database(server_url: str, pid: int | None = None) -> Iterator[str]:
    """A fresh `bench_<pid>` database for the block; dropped afterwards, whatever happened in it."""
    name = database_name(pid)
    url = create_database(server_url, name)
    try:
        yield url
    finally:
        drop_database(server_url, name)
