"""`retailflow prices import FILE.csv` through the API (served on a free loopback port, with a recording stand-in
for Temporal's client): rows grouped into change sets by id and sent as the key's principal; a set overlapping an
accepted one is refused with the API's reason while the others start; a bad row stops the import before anything
is sent, naming the row."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime

import pytest
import uvicorn
from typer.testing import CliRunner

from adapters.pricing.book import PriceBook
from api.app import create_app
from canonical.pricing import PriceChange, PriceChangeSet
from retailflow.cli import app
from runtime.observability import CorrelationInterceptor
from runtime.settings import Settings
from tests.auth import make_key

HEADER = "change_set_id,item_code,channel,currency,amount,compare_at,effective_from,effective_to,kind,promotion_id,reason\n"


class RecordingClient:
    """What the API's starter calls: `start_workflow` (recorded) and `config` (already intercepted)."""

    def __init__(self) -> None:
        self.started: list[tuple[str, object]] = []

    def config(self) -> dict:
        return {"interceptors": [CorrelationInterceptor()]}

    async def start_workflow(self, workflow: str, arg: object, **kwargs: object) -> None:
        self.started.append((str(kwargs["id"]), arg))


@pytest.fixture
def api(engine):
    client = RecordingClient()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(Settings(_env_file=None), engine=engine, client=client),  # type: ignore[arg-type]
                                           host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the API did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", client
    server.should_exit = True
    thread.join(timeout=10)


def run(*args: str, base: str, key: str):
    from runtime.settings import get_settings

    env = {"RETAILFLOW_API_BASE_URL": base, "RETAILFLOW_API_KEY": key, "RETAILFLOW_LOG_JSON": "true"}
    get_settings.cache_clear()  # the CLI reads the environment given here, not settings an earlier test cached
    try:
        return CliRunner().invoke(app, list(args), env=env)
    finally:
        get_settings.cache_clear()


def test_import_starts_each_change_set_and_reports_the_refused_ones(api, engine, tmp_path):
    base, client = api
    PriceBook(engine).record_change_set(PriceChangeSet(
        change_set_id="TAKEN", reason="earlier", requested_by="key:x", lines=[PriceChange(
            item_code="CUP", channel="amazon", currency="USD", amount="9.00", compare_at="10.00",
            effective_from=datetime(2027, 3, 1, tzinfo=UTC), effective_to=datetime(2027, 3, 31, tzinfo=UTC),
            kind="promotion")]), "approved")
    csv = tmp_path / "prices.csv"
    csv.write_text(HEADER
                   + "SPRING,MUG,shopify,USD,15.00,20.00,2027-03-01T00:00:00Z,2027-03-08T00:00:00Z,promotion,SP,spring\n"
                   + "SPRING,MUG,amazon,USD,15.00,20.00,2027-03-01T00:00:00Z,2027-03-08T00:00:00Z,promotion,SP,\n"
                   + "NEWLIST,TEA,pos,USD,4.50,,2027-04-01T00:00:00Z,,price,,new list price\n"
                   + "CLASH,CUP,amazon,USD,8.00,10.00,2027-03-10T00:00:00Z,2027-03-12T00:00:00Z,promotion,,clash\n")
    result = run("prices", "import", str(csv), base=base, key=make_key(engine, "analyst", name="merch"))
    assert result.exit_code == 1, result.output
    assert "2 of 3 change set(s) started, 1 refused" in result.output
    assert "CLASH" in result.output and "409" in result.output and "TAKEN" in result.output
    started = dict(client.started)
    assert set(started) == {"price:SPRING", "price:NEWLIST"}
    spring = started["price:SPRING"].change_set  # type: ignore[attr-defined]
    assert [ln.channel for ln in spring.lines] == ["shopify", "amazon"] and spring.requested_by == "key:merch"
    assert spring.reason == "spring"


def test_a_bad_row_stops_the_import_before_anything_is_sent(api, engine, tmp_path):
    base, client = api
    csv = tmp_path / "bad.csv"
    csv.write_text(HEADER + "A,MUG,shopify,USD,-1.00,,2027-03-01T00:00:00Z,,price,,r\n")
    result = run("prices", "import", str(csv), base=base, key=make_key(engine, "analyst"))
    assert result.exit_code == 1 and "row 2" in result.output and "cannot be negative" in result.output
    assert client.started == []
    dry = tmp_path / "ok.csv"
    dry.write_text(HEADER + "A,MUG,shopify,USD,1.00,,2027-03-01T00:00:00Z,,price,,r\n")
    result = run("prices", "import", str(dry), "--dry-run", base=base, key=make_key(engine, "analyst"))
    assert result.exit_code == 0 and "1 change set(s), 1 line(s): valid" in result.output
