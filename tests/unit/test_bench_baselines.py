"""The issue-22 bench pieces that run without servers: the PostgreSQL-vs-SQLite and minimal-handler report rows,
the bench database's naming (and, with RETAILFLOW_TEST_DATABASE_URL, its create/drop), and the minimal intake
handler's HMAC check."""

from __future__ import annotations

import json
import os

import pytest
from fastapi.testclient import TestClient

from bench import analysis, minimal_api, pgdb, report
from bench.fixtures import canonical_order, external_id, shopify_body, webhook_headers
from tests.unit.test_bench_report import _batch, _load, _results, _summary

SECRET = "bench-test-secret"


# -- report rows ----------------------------------------------------------------------------------------------
def _with_new_rows(platform_db: dict) -> dict:
    results = _results()
    results["platform_db"] = platform_db
    results["intake"][0]["minimal"] = {**_load(80.0, 300.0), "api_cpu_ms_per_request": 2.0,
                                       "workflows_in_queue": 1020}
    return results


def _measured_db() -> dict:
    return {"mode": "in-memory", "database": "bench_42",
            "rounds": {"sqlite": [_batch(8.0, 100, 100), _batch(10.0, 90, 90)],
                       "postgresql": [_batch(9.5, 100, 120)]},
            "sqlite": _batch(10.0, 90, 90), "postgresql": _batch(9.5, 100, 120)}


def test_postgresql_row_is_the_ratio_to_sqlite_against_its_goal():
    figs = {f.name: f for f in report.figures(_with_new_rows(_measured_db()))}
    pg = figs[report.PLATFORM_DB_FIGURE]
    assert pg.value == 9.5 and pg.baseline == 10.0 and pg.ratio == pytest.approx(0.95)
    assert pg.goal == 0.9 and pg.verdict == "meets goal" and pg.mode == "in-memory"
    slow = _measured_db()
    slow["postgresql"] = _batch(8.5, 100, 120)
    assert {f.name: f for f in report.figures(_with_new_rows(slow))}[report.PLATFORM_DB_FIGURE].verdict == \
        "below goal"


def test_postgresql_row_and_section_render_with_rounds():
    results = _with_new_rows(_measured_db())
    analysis.annotate(results)
    text = report.render(json.loads(json.dumps(results)))
    row = _summary(text)[f"{report.PLATFORM_DB_FIGURE}/in-memory"]
    assert "9.5 orders/s" in row and "10.0 orders/s" in row and "| 0.95 |" in row and "≥ 0.9" in row
    assert "## 1b. Orders on a PostgreSQL platform database" in text
    assert "| in-memory | SQLite | 2 | 100 | 10.0 | 10.0 | 90.0 | 90.0 | 0 |" in text
    assert "| in-memory | PostgreSQL | 1 | 100 | 10.5 | 9.5 | 100.0 | 120.0 | 0 |" in text


def test_postgresql_row_says_skipped_without_a_url():
    results = _with_new_rows({"skipped": "no PostgreSQL URL"})
    pg = {f.name: f for f in report.figures(results)}[report.PLATFORM_DB_FIGURE]
    assert pg.ratio is None and pg.verdict == "skipped: no PostgreSQL URL"
    analysis.annotate(results)
    text = report.render(results)
    row = _summary(text)[f"{report.PLATFORM_DB_FIGURE}/in-memory"]
    assert "skipped: no PostgreSQL URL" in row and "| — |" in row
    assert "Skipped in this run: no PostgreSQL URL." in text
    assert f"**{report.PLATFORM_DB_FIGURE}** (in-memory): not measured in this run" in text
    # a skipped goal is not a met one
    assert "Every ratio with a goal meets it" not in text


def test_minimal_handler_rows_pair_req_s_and_p99():
    figs = {f.name: f for f in report.figures(_with_new_rows(_measured_db()))}
    rate, p99 = figs[report.MINIMAL_FIGURE], figs[report.MINIMAL_P99_FIGURE]
    # the webhook: 50 req/s, p99 400 ms; the minimal handler: 80 req/s, p99 300 ms
    assert rate.ratio == pytest.approx(50 / 80) and rate.goal == 0.85 and rate.verdict == "below goal"
    assert "p50 133.3 vs 100.0 ms" in rate.baseline_name
    assert p99.ratio == pytest.approx(400 / 300) and p99.goal == 1.5 and p99.verdict == "meets goal"
    assert p99.goal_text == "≤ 1.5"
    results = _with_new_rows(_measured_db())
    results["intake"][0]["minimal"]["p99_ms"] = 200.0
    assert {f.name: f for f in report.figures(results)}[report.MINIMAL_P99_FIGURE].verdict == "above goal"


def test_minimal_handler_rows_render_in_the_summary_and_intake_table():
    results = _with_new_rows(_measured_db())
    analysis.annotate(results)
    text = report.render(results)
    summary = _summary(text)
    assert "| 0.62 |" in summary[f"{report.MINIMAL_FIGURE}/sqlite"]
    p99 = summary[f"{report.MINIMAL_P99_FIGURE}/sqlite"]
    assert "| 1.33 |" in p99 and "≤ 1.5" in p99 and "meets goal" in p99
    assert "| sqlite | minimal handler → 202 (`bench.minimal_api`) | 1000 | 32 | 80.0 | 100.0 | 200.0 | 300.0 |" in text
    assert "The minimal handler's process spent 2.0 ms." in text
    assert f"**{report.MINIMAL_P99_FIGURE}** (sqlite): 1.33 against a goal of ≤ 1.5: meets goal." in text


def test_results_without_the_new_rows_still_render():
    text = report.render(_results())  # a run from before issue 22 (or --only settlement)
    assert report.PLATFORM_DB_FIGURE not in text and report.MINIMAL_FIGURE not in text


# -- the bench's PostgreSQL database --------------------------------------------------------------------------
def test_database_name_is_bench_and_the_pid():
    assert pgdb.database_name(1234) == "bench_1234"
    assert pgdb.database_name() == f"bench_{os.getpid()}"
    with pytest.raises(ValueError):
        pgdb.database_name(0)


def test_database_url_replaces_only_the_database():
    url = pgdb.database_url("postgresql+psycopg://postgres:pw@127.0.0.1:5432/test?connect_timeout=5", "bench_7")
    assert url == "postgresql+psycopg://postgres:pw@127.0.0.1:5432/bench_7?connect_timeout=5"
    assert pgdb.database_url("postgresql+psycopg://postgres@db", "bench_7") == "postgresql+psycopg://postgres@db/bench_7"


@pytest.mark.parametrize("name", ["test", "bench_", "bench_1; DROP DATABASE test", 'bench_1"', "postgres"])
def test_only_bench_names_reach_the_ddl(name):
    with pytest.raises(ValueError):
        pgdb.database_url("postgresql+psycopg://postgres@127.0.0.1/test", name)
    with pytest.raises(ValueError):
        pgdb.drop_database("postgresql+psycopg://postgres@127.0.0.1/test", name)


def test_a_sqlite_url_is_refused():
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        pgdb.database_url("sqlite:///x.db", "bench_1")


PG = os.environ.get("RETAILFLOW_TEST_DATABASE_URL")


@pytest.mark.skipif(not PG, reason="RETAILFLOW_TEST_DATABASE_URL not set (CI sets it)")
def test_bench_database_is_created_fresh_and_dropped_even_on_failure():
    from sqlalchemy import create_engine, text

    pid = 2_000_000_000 + os.getpid() % 1000  # no live process's pid: cannot clash with a running bench
    name = pgdb.database_name(pid)
    with pytest.raises(RuntimeError, match="inside"), pgdb.bench_database(PG, pid) as url:
        assert url.endswith(f"/{name}") and pgdb.exists(PG, name)
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x int)"))
            assert conn.execute(text("SELECT current_database()")).scalar_one() == name
        # a connection still open when the block ends (a worker that did not close its pool) does not keep it
        held = engine.connect()
        raise RuntimeError("inside")
    held.close()
    engine.dispose()
    assert not pgdb.exists(PG, name)
    # a left-over database of the same name (a killed run) is replaced by an empty one
    with pgdb.bench_database(PG, pid) as url:
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x int)"))
        engine.dispose()
        again = pgdb.create_database(PG, name)
        engine = create_engine(again)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT to_regclass('t')")).scalar_one() is None
        engine.dispose()
    assert not pgdb.exists(PG, name)


# -- the minimal intake handler -------------------------------------------------------------------------------
@pytest.fixture
def minimal():
    started: list[tuple] = []
    existing: set[str] = set()

    async def start(inp, wf_id: str) -> bool:
        if wf_id in existing:
            return False
        existing.add(wf_id)
        started.append((inp, wf_id))
        return True

    with TestClient(minimal_api.create_app(SECRET, start)) as client:
        yield client, started


def test_minimal_handler_starts_the_order_the_intake_starts(minimal):
    client, started = minimal
    ext = external_id(3, 1)
    body = shopify_body(ext)
    resp = client.post(minimal_api.PATH, content=body, headers=webhook_headers(body, SECRET, "wh-1"))
    assert resp.status_code == 202, resp.text
    (inp, wf_id), = started
    order = canonical_order(ext)
    assert wf_id == order.workflow_id == resp.json()["workflow_id"]
    assert inp.order == order  # the same canonical input as the bare start loop and the real intake
    again = client.post(minimal_api.PATH, content=body, headers=webhook_headers(body, SECRET, "wh-2"))
    assert again.status_code == 200 and again.json()["duplicate"] is True and len(started) == 1


@pytest.mark.parametrize("case", ["wrong secret", "other body", "missing", "not base64", "empty"])
def test_minimal_handler_refuses_a_bad_hmac_with_401(minimal, case):
    client, started = minimal
    body = shopify_body(external_id(3, 2))
    headers = webhook_headers(body, SECRET, "wh-3")
    if case == "wrong secret":
        headers = webhook_headers(body, "not-the-secret", "wh-3")
    elif case == "other body":
        headers = webhook_headers(shopify_body(external_id(3, 3)), SECRET, "wh-3")
    elif case == "missing":
        headers.pop("X-Shopify-Hmac-Sha256")
    elif case == "not base64":
        headers["X-Shopify-Hmac-Sha256"] = "%%%not-base64%%%"
    else:
        headers["X-Shopify-Hmac-Sha256"] = ""
    resp = client.post(minimal_api.PATH, content=body, headers=headers)
    assert resp.status_code == 401
    assert started == []


def test_minimal_handler_422s_a_signed_body_that_is_not_an_order(minimal):
    client, started = minimal
    for body in (b"{not json", b'{"id": 1}'):
        resp = client.post(minimal_api.PATH, content=body, headers=webhook_headers(body, SECRET, "wh-4"))
        assert resp.status_code == 422, (body, resp.text)
    assert started == []


def test_signature_check_is_shopifys():
    from adapters.marketplace.shopify import compute_hmac, verify_webhook

    body = shopify_body(external_id(3, 4))
    sig = compute_hmac(body, SECRET)
    assert minimal_api.signature_ok(body, sig, SECRET.encode()) is verify_webhook(body, sig, [SECRET]) is True
    assert minimal_api.signature_ok(body + b" ", sig, SECRET.encode()) is False
    assert minimal_api.signature_ok(body, f"  {sig}\n", SECRET.encode()) is True  # header whitespace, as the API


def test_minimal_comparison_takes_the_best_round_of_each():
    results = _with_new_rows(_measured_db())
    run = results["intake"][0]
    # rounds ABBA: the first intake round (the one the other rows use) was slowed, the second was not
    run["minimal_comparison"] = {"webhook": _load(70.0, 350.0),
                                 "rounds": {"webhook": [run["webhook"], _load(70.0, 350.0)],
                                            "minimal": [_load(75.0, 320.0), run["minimal"]]}}
    figs = {f.name: f for f in report.figures(results)}
    assert figs[report.MINIMAL_FIGURE].ratio == pytest.approx(70 / 80)
    assert figs[report.MINIMAL_P99_FIGURE].ratio == pytest.approx(350 / 300)
    # the bare-start row keeps the first intake round
    assert figs["Intake: Shopify orders/create webhook → 202"].value == 50.0
    text = report.render(results)
    assert "| sqlite | webhook → 202, round 2 | 1000 | 32 | 70.0 |" in text
    assert "| sqlite | minimal handler → 202 (`bench.minimal_api`), round 1 | 1000 | 32 | 75.0 |" in text
    assert "| sqlite | minimal handler → 202 (`bench.minimal_api`), round 2 | 1000 | 32 | 80.0 |" in text
