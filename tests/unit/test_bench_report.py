"""The benchmark's arithmetic and report writer (no timings, no servers): percentiles, rates, ratios and their
verdicts, lag coverage, growth, profile summaries, and every figure of the report next to its baseline."""

from __future__ import annotations

import json

import pytest

from bench import analysis, report
from bench.profile import label, share, summarize_collapsed
from bench.stats import (
    Figure,
    coverage_lags,
    fmt,
    growth_exponent,
    latency_summary,
    per_unit_growth,
    percentile,
    rate,
    ratio,
    scaling_efficiency,
    windows_rate,
)


# -- stats ------------------------------------------------------------------------------------------------------
def test_percentile_interpolates_between_closest_ranks():
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 3.0
    assert percentile(values, 100) == 5.0
    assert percentile(values, 25) == 2.0
    assert percentile([1.0, 2.0], 99) == pytest.approx(1.99)
    assert percentile([7.0], 99) == 7.0


@pytest.mark.parametrize("bad", [-1, 100.5])
def test_percentile_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        percentile([1.0], bad)
    with pytest.raises(ValueError):
        percentile([], 50)


def test_rate_ratio_and_verdict():
    assert rate(200, 4.0) == 50.0
    with pytest.raises(ValueError):
        rate(1, 0)
    assert ratio(8.5, 10.0) == pytest.approx(0.85)
    assert ratio(1.0, 0.0) is None
    assert ratio(float("nan"), 1.0) is None
    assert Figure("orders", 8.5, "orders/s", 10.0, goal=0.85).verdict == "meets goal"
    assert Figure("orders", 8.4, "orders/s", 10.0, goal=0.85).verdict == "below goal"
    assert Figure("orders", 8.4, "orders/s").verdict == "—"
    assert Figure("orders", 8.4, "orders/s", None, goal=0.85).ratio is None
    # a lower-is-better figure meets its goal at or below it
    assert Figure("p99", 90.0, "ms", 100.0, goal=1.0, better="lower").verdict == "meets goal"
    assert Figure("p99", 120.0, "ms", 100.0, goal=1.0, better="lower").verdict == "above goal"


def test_latency_summary_in_ms_and_scaling_efficiency():
    lat = latency_summary([i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert lat["p50_ms"] == pytest.approx(50.5)
    assert lat["p95_ms"] == pytest.approx(95.05)
    assert lat["p99_ms"] == pytest.approx(99.01)
    assert lat["max_ms"] == pytest.approx(100.0)
    assert scaling_efficiency({1: 10.0, 2: 15.0, 4: 20.0}) == {1: 1.0, 2: 0.75, 4: 0.5}
    with pytest.raises(ValueError):
        scaling_efficiency({2: 10.0})


def test_fmt():
    assert fmt(None) == "—"
    assert fmt(1234.56) == "1,234.6"
    assert fmt(0.004, 1) == "0.004"
    assert fmt(0.853, 2) == "0.85"
    assert fmt(0) == "0.0"


def test_coverage_lags_take_the_first_covering_moment_after_the_send():
    sent = [10.0, 10.5, 11.0, 11.5]  # events 1..4
    # by 10.1 event 1 was reflected; by 12.0 events 1..3; by 13.0 all four
    covered = [(12.0, 3), (10.1, 1), (13.0, 4)]
    lags, uncovered = coverage_lags(sent, covered)
    assert lags == pytest.approx([0.1, 1.5, 1.0, 1.5]) and uncovered == 0
    # nothing covers event 4 yet: counted, not guessed
    lags, uncovered = coverage_lags(sent, [(12.0, 3)])
    assert lags == pytest.approx([2.0, 1.5, 1.0]) and uncovered == 1
    # a covering moment before the send cannot be the event's (clock skew guard)
    assert coverage_lags([5.0], [(4.0, 1)]) == ([], 1)


def test_growth_and_windows():
    assert growth_exponent((100_000, 10.0), (1_000_000, 100.0)) == pytest.approx(1.0)
    assert growth_exponent((100_000, 10.0), (1_000_000, 1000.0)) == pytest.approx(2.0)
    assert per_unit_growth((100_000, 10.0), (1_000_000, 120.0)) == pytest.approx(1.2)
    with pytest.raises(ValueError):
        growth_exponent((10, 1.0), (10, 2.0))
    assert windows_rate(6, 12.0, 2.0) == pytest.approx(1.0)  # 6 publishes over 6 windows
    assert windows_rate(3, 12.0, 4.0) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        windows_rate(1, 1.0, 0)


# -- profiles -------------------------------------------------------------------------------------------------
def test_profile_labels_and_summary_skip_idle_threads():
    root = "/repo"
    assert label("record (/repo/adapters/platform/projection.py:42)", root) == "adapters/platform/projection.py:record"
    assert label("do_execute (/x/.venv/lib/python3.11/site-packages/sqlalchemy/engine/default.py:9)") == \
        "sqlalchemy/engine/default.py:do_execute"
    text = "\n".join([
        "run (/repo/worker.py:1);record (/repo/adapters/platform/projection.py:42);execute (/repo/x.py:3) 6",
        "run (/repo/worker.py:1);record (/repo/adapters/platform/projection.py:42) 2",
        "run (/repo/worker.py:1);quote (/repo/adapters/tax/local.py:7) 2",
        "_bootstrap (/usr/lib/python3.11/threading.py:1);_worker (/usr/lib/python3.11/concurrent/futures/thread.py:81) 90",
        "",
        "garbage line",
    ])
    s = summarize_collapsed(text, root)
    assert s["busy_samples"] == 10 and s["idle_samples"] == 90
    assert dict(s["own"]) == {"x.py:execute": 6, "adapters/platform/projection.py:record": 2,
                              "adapters/tax/local.py:quote": 2}
    assert dict(s["total"])["adapters/platform/projection.py:record"] == 8  # counted once per stack
    assert share(s, "adapters/platform/projection.py:record") == pytest.approx(80.0)
    assert share(s, "adapters/tax/", key="own") == pytest.approx(20.0)


# -- the report -----------------------------------------------------------------------------------------------
def _batch(per_s: float, server: float, worker: float) -> dict:
    return {"n": 100, "seconds": 100 / per_s, "per_second": per_s, "failures": 0,
            "server_cpu_ms_per_wf": server, "worker_cpu_ms_per_wf": worker}


def _load(per_s: float, p99: float) -> dict:
    return {"per_second": per_s, "seconds": 5.0, "statuses": {"202": 1000}, "p50_ms": p99 / 3, "p95_ms": p99 / 1.5,
            "p99_ms": p99, "max_ms": p99 * 1.1}


def _profile(rate_key: str) -> dict:
    return {"tool": "py-spy", "seconds": 10.0, "busy_samples": 100, "idle_samples": 50, rate_key: 9.0,
            "own": [["sqlalchemy/engine/default.py:DefaultDialect.do_commit", 20],
                    ["retailflow/db.py:make_engine.<locals>._begin_immediate", 10]],
            "total": [["retailflow/db.py:make_engine.<locals>._begin_immediate", 30],
                      ["sqlalchemy/engine/default.py:DefaultDialect.do_commit", 20],
                      ["adapters/platform/intake_store.py:IntakeStore.record", 25],
                      ["temporalio/worker/workflow_sandbox/_runner.py:_Instance._create_instance", 12],
                      ["<frozen importlib._bootstrap_external>:SourceLoader.source_to_code", 7],
                      ["adapters/marketplace/amazon_settlement.py:parse_amazon_datetime", 15],
                      ["adapters/marketplace/amazon_settlement.py:AmazonSettlementReader.__iter__", 40],
                      ["adapters/marketplace/amazon_settlement.py:AmazonSettlementReader._line", 35]]}


def _settlement_row(lines: int, platform_s: float, parse_s: float) -> dict:
    return {"lines": lines, "orders_booked": lines // 4, "file_mb": lines / 6500, "generate_s": 1.0,
            "platform": {"seconds": platform_s, "status": "posted", "matched": lines, "unmatched": 0,
                         "rss_before_mb": 100.0, "rss_after_mb": 150.0, "peak_rss_mb": 180.0, "worker_cpu_s": 1.0,
                         "server_cpu_s": 0.1, "steps": {"stage_settlement": platform_s * 0.7,
                                                         "match_settlement": platform_s * 0.2}},
            "baseline": {"seconds": parse_s, "lines": lines, "peak_rss_mb": 90.0}}


def _results() -> dict:
    return {
        "quick": False, "runtime_s": 800, "date": "2026-01-01 00:00 UTC", "command": "make bench",
        "machine": {"cpu": "Test CPU", "cores": 2, "ram_gib": 8.0, "os": "Linux", "hostname": "bench-box"},
        "versions": {"python": "3.11", "temporalio": "1.35.0", "temporal CLI": "1.9.1"},
        "load": {"wall_s": 800.0, "cores": 2, "busy_core_s": 1400.0, "bench_core_s": 1000.0, "other_core_s": 400.0,
                 "loadavg_start": [1.5, 1.0, 0.5], "loadavg_end": [2.5, 2.0, 1.0]},
        "orders": [{"mode": "in-memory", "platform_db": "sqlite",
                    "shape": {"activities": 10, "local_activities": 5, "signal_after": 6, "payload_bytes": 700},
                    "events": {"platform": {"total": 90, "upsert_workflow_search_attributes": 10},
                               "baseline": {"total": 60}},
                    "history_bytes": {"platform": 27000, "baseline": 8000, "baseline_payload": 26500},
                    "rounds": {"platform": [_batch(9.0, 100, 100)], "baseline": [_batch(10.0, 90, 90)],
                               "baseline_payload": [_batch(9.5, 95, 92)]},
                    "platform": _batch(9.0, 100, 100), "baseline": _batch(10.0, 90, 90),
                    "baseline_payload": _batch(9.5, 95, 92)}],
        "intake": [{"mode": "sqlite", "n": 1000, "concurrency": 32, "webhook": _load(50.0, 400.0),
                    "start": _load(100.0, 200.0), "api_cpu_ms_per_request": 4.0,
                    "duplicates": {"sent": 1000, "statuses": {"200": 1000}, "workflows_in_queue": 1020,
                                   "expected": 1020, "per_second": 120.0, "p50_ms": 1.0, "p95_ms": 2.0,
                                   "p99_ms": 3.0, "max_ms": 4.0}}],
        "settlement": {"mode": "in-memory", "sizes": [_settlement_row(100_000, 5.0, 2.0),
                                                      _settlement_row(1_000_000, 55.0, 20.0)]},
        "inventory": {"mode": "in-memory",
                      "channels": {"shopify": {"publish_window_seconds": 2}, "amazon": {"share": "0.5",
                                                                                         "safety_stock": 2}},
                      "burst": {"skus": 20, "events_per_sku": 100, "batch": 10, "events": 2000,
                                "platform": {"seconds": 10.0, "per_second": 200.0, "worker_cpu_ms_per_event": 3.0,
                                             "server_cpu_ms_per_event": 1.0,
                                             "publishes_per_sku": {"amazon": 2.0, "shopify": 3.0}},
                                "baseline": {"seconds": 4.0, "per_second": 500.0, "wakeups_per_sku": 5.0}},
                      "paced": {"skus": 10, "rate_per_sku": 2.0, "seconds": 12, "events_per_sku": 24, "window_s": 2,
                                "events_per_sku_per_window": 4.0,
                                "platform": {"p50_ms": 1000.0, "p95_ms": 1900.0, "p99_ms": 2100.0, "max_ms": 2200.0,
                                             "uncovered": 0,
                                             "publishes_per_sku_per_window": {"amazon": 1.0, "shopify": 1.2}},
                                "baseline": {"p50_ms": 40.0, "p95_ms": 50.0, "p99_ms": 60.0, "max_ms": 70.0,
                                             "wakeups_per_sku_per_window": 4.0}},
                      "ledger_alone": {"events": 2000, "seconds": 2.0, "per_second": 1000.0,
                                       "one_transaction_per_event": {"seconds": 4.0, "per_second": 500.0}}},
        "scaling": {"mode": "in-memory", "n": 100, "platform": {"1": _batch(5.0, 100, 100), "2": _batch(6.0, 100, 100)},
                    "baseline": {"1": _batch(10.0, 50, 50), "2": _batch(11.0, 50, 50)}},
        "footprint": {"mode": "in-memory",
                      "baseline": {"idle": {"worker_rss_mb": 80.0, "server_rss_mb": 150.0, "worker_cpu_pct": 0.0,
                                            "server_cpu_pct": 1.0, "window_s": 3},
                                   "open": 1000, "parking_rate": 20.0, "cpu_ms_per_parked": 60.0,
                                   "worker_rss_mb": 120.0, "server_rss_mb": 250.0, "worker_cpu_pct": 0.0,
                                   "server_cpu_pct": 1.5, "window_s": 10},
                      "rows": [
                          {"open_orders": 0, "worker_rss_mb": 100.0, "server_rss_mb": 150.0, "worker_cpu_pct": 0.0,
                           "server_cpu_pct": 1.0, "window_s": 10},
                          {"open_orders": 1000, "parking_rate": 8.0, "cpu_ms_per_parked": 110.0,
                           "worker_rss_mb": 300.0, "server_rss_mb": 400.0, "worker_cpu_pct": 0.5,
                           "server_cpu_pct": 2.0, "window_s": 10},
                          {"open_orders": 10000, "skipped": "would take ~1125s"}]},
        "profile": {"worker": _profile("orders_per_second_while_sampled"),
                    "api": _profile("requests_per_second_while_sampled"),
                    "settlement": {**_profile("lines_per_second_while_sampled"), "lines": 100_000}},
        "notes": [],
    }


def _summary(text: str) -> dict[str, str]:
    return {line.split("|")[1].strip() + "/" + line.split("|")[2].strip(): line
            for line in text.split("## Summary", 1)[1].split("\n## ", 1)[0].splitlines()
            if line.startswith("| ") and not line.startswith("| figure")}


def test_figures_pair_every_measurement_with_its_baseline():
    figs = {(f.name, f.mode): f for f in report.figures(_results())}
    assert figs[("Order throughput (OrderFulfillment, embedded adapters)", "in-memory")].ratio == pytest.approx(0.9)
    assert figs[("Order throughput vs a bare workflow with the order's history", "in-memory")].ratio == \
        pytest.approx(9.0 / 9.5)
    intake = figs[("Intake: Shopify orders/create webhook → 202", "sqlite")]
    assert intake.ratio == pytest.approx(0.5) and intake.goal == 0.75 and intake.verdict == "below goal"
    assert figs[("Intake p99 latency to the 202", "sqlite")].ratio == pytest.approx(2.0)
    settle = figs[("Settlement reconciliation, 1,000,000 lines", "in-memory")]
    assert settle.value == pytest.approx(1_000_000 / 55.0) and settle.ratio == pytest.approx(20.0 / 55.0)
    assert figs[("Settlement peak RSS, 100,000 lines", "in-memory")].ratio == pytest.approx(2.0)
    growth = figs[("Settlement time per line, 1,000,000 vs 100,000 lines", "in-memory")]
    assert growth.value == pytest.approx(1.1) and growth.baseline == pytest.approx(1.0)
    assert figs[("Inventory events/s through InventorySync and the ledger", "in-memory")].ratio == pytest.approx(0.4)
    assert figs[("Inventory publication lag p95 (window 2 s)", "in-memory")].ratio == pytest.approx(38.0)
    assert figs[("Publishes per SKU per window (shopify)", "in-memory")].ratio == pytest.approx(0.3)
    # server RSS grows 250 MiB per 1,000 parked orders against 100 MiB for bare workflows
    assert figs[("Server RSS growth per 1,000 parked orders (at 1,000)", "in-memory")].value == pytest.approx(250.0)
    assert figs[("Server RSS growth per 1,000 parked orders (at 1,000)", "in-memory")].ratio == pytest.approx(2.5)
    assert figs[("Worker RSS with 1,000 parked orders", "in-memory")].ratio == pytest.approx(2.5)
    assert figs[("Scaling: 2 worker processes", "in-memory")].ratio == pytest.approx(6.0 / 11.0)


def test_report_has_machine_each_figure_baseline_ratio_and_verdict():
    results = _results()
    analysis.annotate(results)
    text = report.render(json.loads(json.dumps(results)))  # the report renders from saved JSON too
    assert "bench-box — Test CPU, 2 cores" in text and "temporalio 1.35.0" in text and "temporal CLI 1.9.1" in text
    summary = _summary(text)
    orders = summary["Order throughput (OrderFulfillment, embedded adapters)/in-memory"]
    assert "9.0 orders/s" in orders and "10.0 orders/s" in orders and "| 0.90 |" in orders
    assert "≥ 0.85" in orders and "meets goal" in orders
    intake = summary["Intake: Shopify orders/create webhook → 202/sqlite"]
    assert "| 0.50 |" in intake and "below goal" in intake
    assert "**Intake: Shopify orders/create webhook → 202** (sqlite): 0.50 against a goal of ≥ 0.75: below goal." in text
    assert "started no new workflows" in text and "1020 workflows for 1020 distinct orders" in text
    assert "| 2 | 6.0 | 0.60 | 11.0 | 0.55 |" in text  # scaling row: efficiency vs linear and ratio
    assert "not reached: would take ~1125s" in text
    assert "| OrderFulfillment | 1,000 | 300.0 | 400.0 |" in text
    assert "| 1,000,000 | 153.8 | 55.0 | 18,182 | 20.0 | 50,000 | 0.36 |" in text  # settlement row
    assert "time ∝ lines^1.04" in text
    assert "p95 is 1,900.0 ms for a 2 s window, within it" in text
    assert "## 7. Profiles of the slowest paths" in text and "`adapters/platform/intake_store.py:IntakeStore.record` | 25.0%" in text
    # another process kept half a core busy: the report says the machine was shared
    assert "other processes on the machine used 0.50" in text and "**Shared machine:**" in text
    assert "## Goals and what bounds the ratios" in text and "## 6. Scaling" in text
    assert "Scaling out on a Temporal cluster" in text


def test_findings_and_bounds_state_their_arithmetic():
    results = _results()
    analysis.annotate(results)
    found = "\n".join(results["findings"])
    # server CPU: platform 100, bare 90, bare with the order's history 95 → 5 ms is the Temporal features
    assert "costs 95.0 ms, so about 5.0 ms of the gap is those features" in found
    assert "10 upserts" in found
    # worker CPU: platform 100 against 92 for the bare workflow with the same history
    assert "≈ 8.0 ms per order is the embedded adapters' SQL" in found
    assert "applies 1,000.0 events/s, against 500.0 events/s one transaction per event" in found
    assert "(× 2.0, measured in this run)" in found
    assert "`IntakeStore.record` is 25.0% of the API's running samples (20.0% in SQLite's commit" in found
    assert "`AmazonSettlementReader._line` is 35.0% of the samples and `parse_amazon_datetime` 15.0%" in found
    assert "Staging takes 38.5 of the 55.0 s of a 1,000,000-line reconciliation" in found
    bounds = "\n".join(results["bounds"])
    # 2 cores minus the 0.5 other processes used; 200 ms per order → ≤ 7.5 orders/s; CPU ratio 180/200
    assert "share 1.5 free cores, so throughput is at most ≈ 7.5 orders/s (measured 9.0)" in bounds
    assert "follows the CPU ratio 0.90 (measured 0.90)" in bounds and "the platform is within it" in bounds
    assert "at 4.0 ms of API CPU per request one process tops out near 250 req/s" in bounds
    # inventory: 3 + 1 ms of CPU per event; the ledger alone (1,000/s) against the bare 500/s caps the ratio at 2.0
    assert "Inventory, in-memory: 0.40 against a goal of ≥ 0.5" in bounds and "at most ≈ 500 events/s" in bounds
    assert "the ratio could not pass 2.00" in bounds and "which leaves room for the goal" in bounds
    # settlement: 55 s against 20 s parse-only; 11 s of steps after a 38.5 s staging → 20 / 31 = 0.65 at best
    assert "Settlement, 1,000,000 lines: 0.36 against a goal of ≥ 0.6" in bounds
    assert "11.0 s of steps after staging, and staging itself takes 38.5 s" in bounds
    assert "the ratio would be 0.65" in bounds and "within 33.3 s, ≈ 21.7 s less than today" in bounds
    assert "time ∝ lines^1.04; RSS bounded: the worker peaks at 180 MiB" in bounds
    # footprint: 300 MiB against 120; idle 100 vs 80; 200 MiB of growth against 40; 1.3 × 120 − 100 = 56 MiB allowed
    assert "Worker RSS with 1,000 parked orders: 2.50× the bare worker's (goal ≤ 1.3)" in bounds
    assert "The parked runs add 200.0 MiB (204.8 KiB per cached order" in bounds and "against 40.0 MiB" in bounds
    assert "the goal would allow 56.0 MiB of growth" in bounds
    reasoning = "\n".join(results["scaling_reasoning"])
    assert "the best is 6.0 orders/s with 2 worker process(es)" in reasoning and "1: 1.00, 2: 0.60" in reasoning
    assert "2 cores cap this machine near 10.0 orders/s" in reasoning
    notes = "\n".join(results["footprint_notes"])
    assert "grows by 250.0 MiB (256.0 KiB per open order" in notes and "--parked 1000,10000" in notes


def test_duplicates_that_started_workflows_are_flagged():
    results = _results()
    results["intake"][0]["duplicates"]["workflows_in_queue"] = 1500
    assert "started UNEXPECTED new workflows" in report.render(results)


def test_quiet_machine_and_missing_scenarios_render():
    results = _results()
    results["load"]["other_core_s"] = 10.0
    for key in ("settlement", "inventory", "footprint", "scaling", "profile"):
        results.pop(key)
    analysis.annotate(results)
    text = report.render(results)
    assert "**Shared machine:**" not in text
    assert "## 3. Settlement" not in text and "## 1. Order throughput" in text


def test_what_if_runs_say_so():
    results = _results()
    results["experiments"] = ["sqlite-normal"]
    assert "**What-if run:** experiments `sqlite-normal`" in report.render(results)


def test_a_scaling_run_the_budget_skipped_says_so():
    results = _results()
    results["scaling"] = {"mode": "in-memory", "n": 60, "platform": {}, "baseline": {},
                          "skipped": ["1 workers: time budget", "2 workers: time budget"]}
    analysis.annotate(results)
    text = report.render(results)
    assert "## 6. Scaling" in text and "Not run this time" in text and "1 workers: time budget" in text
    assert "--only scaling" in text
