"""The fault tier's shared Temporal dev server (SQLite persistence, headless, loopback): every test but the one
that restarts Temporal runs on it, each on its own task queue and platform database."""

from __future__ import annotations

import pytest

from tests.faults.harness import TemporalServer


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory):
    server = TemporalServer(tmp_path_factory.mktemp("temporal")).start()
    try:
        yield server
    finally:
        server.stop()
