"""`retailflow ops needs-attention` against a real API on loopback, and the CLI's one-line API errors (README
"For support analysts", "Command line"): a refused connection, a timeout, 401, 403 and other 4xx are one line on
stderr with the fix, exit status 2, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from typer.testing import CliRunner

from adapters.platform.projection import StatusProjection
from api.app import create_app
from canonical.ops import RunStatusUpdate
from retailflow.cli import ApiCallError, api_request, app, needs_attention_table, parse_age
from runtime.settings import Settings
from tests.auth import make_key

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "retailflow")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def api(engine):
    """The API app served by uvicorn on a free loopback port, for the time of the test; its base URL."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(Settings(_env_file=None), engine=engine), host="127.0.0.1",
                                           port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the API did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _park(engine, workflow_id: str, *, kind="order", channel="shopify", reason: str, action: str | None,
          ago: timedelta) -> None:
    when = datetime.now(UTC) - ago
    StatusProjection(engine).record(RunStatusUpdate(
        workflow_id=workflow_id, kind=kind, channel=channel, external_id=workflow_id.rsplit(":", 1)[-1],
        status="needs_attention", needs_attention=True, reason=f"{reason}. {action}" if action else reason,
        suggested_action=action, version=3, started_at=when - timedelta(minutes=1), changed_at=when))


def _run(*args: str, base: str, key: str | None):
    env = {"RETAILFLOW_API_BASE_URL": base, "RETAILFLOW_API_KEY": key, "RETAILFLOW_LOG_JSON": "true"}
    return CliRunner().invoke(app, list(args), env=env)


MAP = "Map the channel SKU to an ERP item (retailflow catalog map-sku, or catalog import), then send `retry`."


def test_needs_attention_lists_parked_runs_oldest_first_with_age_and_counts_by_reason(engine, api):
    _park(engine, "order:shopify:1001", reason="resolve_skus: unknown SKU shopify/SKU2006-35", action=MAP,
          ago=timedelta(minutes=5))
    _park(engine, "order:shopify:1000", reason="resolve_skus: unknown SKU shopify/SKU9", action=MAP,
          ago=timedelta(hours=3, minutes=7))
    _park(engine, "order:amazon-eu:2000", channel="amazon-eu", reason="reserve_stock: out of stock FURN-X",
          action=None, ago=timedelta(days=2, hours=1))
    StatusProjection(engine).record(RunStatusUpdate(  # a healthy run is not listed
        workflow_id="order:shopify:3000", kind="order", channel="shopify", status="released", needs_attention=False,
        version=1, started_at=datetime.now(UTC), changed_at=datetime.now(UTC)))
    key = make_key(engine, "viewer")

    result = _run("ops", "needs-attention", base=api, key=key)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:5] == ["WORKFLOW", "ID", "KIND", "CHANNEL/STORE", "PARKED"]
    rows = lines[1:4]
    assert [r.split()[0] for r in rows] == ["order:amazon-eu:2000", "order:shopify:1000", "order:shopify:1001"]
    assert rows[0].split()[1:3] == ["order", "amazon-eu"] and " 2d01h " in rows[0]
    assert " 3h07m " in rows[1] and rows[1].endswith("resolve_skus: unknown SKU shopify/SKU9")  # action cut off
    assert " 5m0" in rows[2] and "SKU2006-35" in rows[2] and "Map the channel" not in result.stdout
    assert "order:shopify:3000" not in result.stdout
    summary = lines[lines.index("3 parked run(s): by reason") + 1:]
    assert [s.split() for s in summary] == [["2", "resolve_skus"], ["1", "reserve_stock"]]

    older = _run("ops", "needs-attention", "--older-than", "1h", base=api, key=key)
    assert older.exit_code == 0, older.output
    assert "order:shopify:1001" not in older.stdout and "order:shopify:1000" in older.stdout
    assert "2 parked run(s)" in older.stdout
    store = _run("ops", "needs-attention", "--channel", "amazon-eu", base=api, key=key)
    assert [ln.split()[0] for ln in store.stdout.splitlines()[1:2]] == ["order:amazon-eu:2000"]
    assert "1 parked run(s)" in store.stdout
    none = _run("ops", "needs-attention", "--channel", "amazon-eu", "--older-than", "3d", base=api, key=key)
    assert none.exit_code == 0 and none.stdout.strip() == "no parked runs on amazon-eu parked longer than 3d"


def test_the_table_pages_through_more_runs_than_one_answer_holds():
    now = datetime(2026, 1, 2, tzinfo=UTC)
    runs = [{"workflow_id": f"order:shopify:{i}", "kind": "order", "channel": "shopify", "reason": None,
             "suggested_action": None, "parked_since": (now - timedelta(seconds=i)).isoformat()} for i in range(3)]
    text = needs_attention_table(runs, now)
    assert [ln.split()[0] for ln in text.splitlines()[1:4]] == ["order:shopify:2", "order:shopify:1", "order:shopify:0"]
    assert parse_age("90") == timedelta(minutes=90) and parse_age("2h") == timedelta(hours=2)
    assert parse_age("1d") == timedelta(days=1) and parse_age("30s") == timedelta(seconds=30)


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_api_down_is_one_line_with_the_fix():
    base = f"http://127.0.0.1:{_free_port()}"  # nothing listens
    line = _one_line_error(_run("ops", "needs-attention", base=base, key="rfk_x"))
    assert line == f"error: cannot reach the API at {base}: is it up? `make run` (or set RETAILFLOW_API_BASE_URL)"


def test_a_refused_key_and_a_missing_key_are_one_line_with_the_fix(engine, api):
    line = _one_line_error(_run("ops", "needs-attention", base=api, key="rfk_not_a_key"))
    assert "the API refused the key" in line and "set RETAILFLOW_API_KEY to an analyst or admin key" in line
    assert "`retailflow keys create`" in line
    line = _one_line_error(_run("ops", "needs-attention", base=api, key=None))
    assert "the API wants a key: export RETAILFLOW_API_KEY=" in line


def test_403_and_other_4xx_name_the_route_and_the_apis_words(engine, api):
    viewer = make_key(engine, "viewer")
    settings = Settings(_env_file=None, api_base_url=api, api_key=viewer)
    with pytest.raises(ApiCallError) as refused:
        api_request(settings, "POST", "/ops/quarantine/1/replay")
    text = str(refused.value)
    assert text.startswith("the API refused the key for POST /ops/quarantine/1/replay (")
    assert "analyst" in text and "\n" not in text and "`retailflow keys create`" in text
    with pytest.raises(ApiCallError, match=r"^the API answered 404 to GET /ops/quarantine/7: no quarantined "):
        api_request(settings, "GET", "/ops/quarantine/7")
    with pytest.raises(ApiCallError, match="answered 422 to GET /ops/needs-attention"):
        api_request(settings, "GET", "/ops/needs-attention", params={"limit": 0})


def test_an_api_that_never_answers_is_a_timeout_line():
    with socket.socket() as listener:  # accepts the connection, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        base = f"http://127.0.0.1:{listener.getsockname()[1]}"
        settings = Settings(_env_file=None, api_base_url=base, api_key="rfk_x")
        with pytest.raises(ApiCallError) as slow:
            api_request(settings, "GET", "/ops/needs-attention", timeout=0.5)
    assert str(slow.value).startswith(f"the API at {base} did not answer within 0.5s: is it up? `make run`")


@pytest.mark.parametrize("args", [["shopify", "send", "tests/fixtures/shopify/webhook_orders_create_sample_v2024.json"],
                                  ["returns", "status", "shopify", "R1"]])
def test_commands_that_call_the_api_their_own_way_end_in_one_line_too(args):
    """The console script (main) turns an unreachable API into one line for every command, not only those
    that go through api_request."""
    port = _free_port()
    done = subprocess.run([CLI, *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT), "RETAILFLOW_API_PORT": str(port),
                               "RETAILFLOW_API_HOST": "127.0.0.1", "RETAILFLOW_LOG_JSON": "true"})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (f"error: cannot reach the API at http://127.0.0.1:{port}: "
                                                     "is it up? `make run`")
