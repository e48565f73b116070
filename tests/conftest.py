from __future__ import annotations

import base64
import os
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
# One random set of payload-codec keys for the whole test run, inherited by every process a test starts (worker,
# API, CLI), as a deployment gives all its processes the same RETAILFLOW_CODEC_KEYS (runtime/codec.py).
os.environ.setdefault("RETAILFLOW_CODEC_KEYS", f"test{os.getpid()}:{base64.b64encode(os.urandom(32)).decode()}")
FIXTURES = ROOT / "tests" / "fixtures"
BIN = Path(sys.executable).parent


def fixture_bytes(*parts: str) -> bytes:
    return FIXTURES.joinpath(*parts).read_bytes()


def _pg_url() -> str | None:
    return os.environ.get("RETAILFLOW_TEST_DATABASE_URL")


def _db_params() -> list:
    params = [pytest.param("sqlite", id="sqlite")]
    url = _pg_url()
    params.append(pytest.param("postgresql", id="postgresql", marks=pytest.mark.skipif(
        not url, reason="RETAILFLOW_TEST_DATABASE_URL not set (CI sets it)")))
    return params


@pytest.fixture(params=_db_params())
def engine(request, tmp_path):
    """A fresh platform database: SQLite in a temp dir, or a fresh schema in the test PostgreSQL."""
    from adapters.sql import create_schema, make_engine

    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'retailflow.db'}")
        create_schema(eng)
        yield eng
        eng.dispose()
        return
    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = make_engine(_pg_url())
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    from sqlalchemy import create_engine

    eng = create_engine(_pg_url(), connect_args={"options": f"-csearch_path={schema}"}, pool_size=20, max_overflow=20)
    create_schema(eng)
    yield eng
    eng.dispose()
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()
