"""The peak simulation's pure parts (sandbox/peak.py): profiles, the figures it computes from the records, the
report, and the sandboxes' fixed quota it throttles with (sandbox/faults.py). The run itself:
tests/integration/test_simulate_peak.py."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import History, HistoryEvent

from sandbox import DEFAULT_PORTS
from sandbox.faults import FaultInjector
from sandbox.peak import (
    CHANNEL_QUEUES,
    PROFILES,
    Invariants,
    OrderTimes,
    PeakProfile,
    PeakReport,
    PeakStack,
    Sent,
    backlog_series,
    drain_seconds,
    histogram_quantiles,
    load_profile,
    milestones_from_history,
    percentile,
    render_markdown,
)
from workflows.runbook import queue_of


def test_built_in_profiles_and_a_toml_file(tmp_path):
    ci = PROFILES["ci"]
    assert [p.burst for p in ci.phases] == [False, True, False]
    assert ci.phases[1].shopify_per_second == 10 * ci.phases[0].shopify_per_second  # 10× the steady rate
    assert ci.expected_orders()["shopify"] == 96
    path = tmp_path / "mine.toml"
    path.write_text('erp_quota_per_second = 10\n[[phases]]\nname = "quiet"\nseconds = 5\nshopify_per_second = 1\n')
    mine = load_profile(str(path))
    assert (mine.name, mine.erp_quota_per_second, mine.load_seconds) == ("mine", 10, 5)
    with pytest.raises(ValueError, match="unknown profile"):
        load_profile("nope")
    with pytest.raises(ValueError, match="at most one phase is the burst"):
        PeakProfile(name="x", phases=[{"name": "a", "seconds": 1, "burst": True},
                                      {"name": "b", "seconds": 1, "burst": True}])


def test_histogram_quantiles_interpolate_inside_the_bucket_as_prometheus_does():
    text = "\n".join([
        'retailflow_inventory_publication_seconds_bucket{channel="shopify",le="0.5"} 50.0',
        'retailflow_inventory_publication_seconds_bucket{channel="shopify",le="1.0"} 90.0',
        'retailflow_inventory_publication_seconds_bucket{channel="shopify",le="2.0"} 100.0',
        'retailflow_inventory_publication_seconds_bucket{channel="shopify",le="+Inf"} 100.0',
        'retailflow_inventory_publication_seconds_count{channel="shopify"} 100.0'])
    q = histogram_quantiles(text, "retailflow_inventory_publication_seconds", "channel")["shopify"]
    assert q["count"] == 100 and q["p50"] == 0.5
    assert q["p95"] == pytest.approx(1.5)  # halfway through the (1, 2] bucket
    assert q["p99"] == pytest.approx(1.9)


def test_percentile_backlog_and_drain():
    assert percentile([3.0, 1.0, 2.0, 4.0], 0.5) == 2.0 and percentile([3.0, 1.0, 2.0, 4.0], 0.99) == 4.0
    assert math.isnan(percentile([], 0.5))
    t0 = 1000.0
    orders = [OrderTimes(f"o{n}", "shopify", "burst", sent=t0 + n, released=t0 + n + (5 if n < 3 else 1))
              for n in range(6)]
    orders.append(OrderTimes("parked", "shopify", "burst", sent=t0 + 1, parked=t0 + 2))
    series = dict(backlog_series(orders, t0, t0 + 12, step=1.0))
    assert series[0.0] == 1 and series[1.0] == 3 and series[4.0] == 4  # o0..o4 sent, none released yet
    assert series[12.0] == 0
    assert drain_seconds(list(series.items()), burst_end=5.0, level=0) == 2.0  # the last (o2) released at 7


def _event(kind: EventType.ValueType, at: datetime, event_id: int) -> HistoryEvent:
    e = HistoryEvent(event_id=event_id, event_type=kind)
    e.event_time.FromDatetime(at)
    return e


def test_milestones_are_read_from_the_history_events():
    t = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    started = _event(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, t, 1)
    booked = _event(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, t + timedelta(seconds=1), 5)
    booked.activity_task_scheduled_event_attributes.activity_type.name = "create_sales_order"
    done = _event(EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, t + timedelta(seconds=2), 7)
    done.activity_task_completed_event_attributes.scheduled_event_id = 5
    release = _event(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, t + timedelta(seconds=3), 9)
    release.activity_task_scheduled_event_attributes.activity_type.name = "release_to_wms"
    released = _event(EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, t + timedelta(seconds=4), 11)
    released.activity_task_completed_event_attributes.scheduled_event_id = 9
    parked = _event(EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES, t + timedelta(seconds=6), 12)
    parked.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields[
        "NeedsAttention"].data = b"true"
    history = History(events=[started, booked, done, release, released, parked])
    times = milestones_from_history(history, Sent("order:shopify:1", "shopify", "burst", t.timestamp() - 1))
    base = t.timestamp()
    assert (times.started, times.booked, times.released, times.parked) == (base, base + 2, base + 4, base + 6)
    assert times.confirmed is None and times.handled == base + 4


def _report(**overrides) -> PeakReport:
    profile = PROFILES["ci"]
    t0 = 1000.0
    orders = [OrderTimes(f"order:shopify:{n}", "shopify", profile.phases[n % 3].name, sent=t0 + n,
                         started=t0 + n + 0.1, booked=t0 + n + 0.5, released=t0 + n + 1, completed=t0 + n + 5,
                         status="COMPLETED") for n in range(30)]
    orders += [OrderTimes(f"order:amazon:{n}", "amazon", profile.phases[n % 3].name, sent=t0 + n,
                          started=t0 + n + 2, released=t0 + n + 3, status="COMPLETED") for n in range(9)]
    values = dict(profile=profile, started_at=datetime(2026, 12, 3, tzinfo=UTC), machine="2 cores, linux",
                  orders=orders, t0=t0, series=backlog_series(orders, t0, t0 + 40), burst=(20.0, 40.0),
                  inventory={"shopify": {"count": 4, "p50": 0.2, "p95": 0.9, "p99": 1.0}},
                  shipment_confirmation={}, publications={"failed": 2},
                  breakers=[{"queue": "retailflow-amazon", "trips": 0, "state": "closed"},
                            {"queue": "retailflow-shopify", "trips": 1, "state": "closed"}],
                  faults={"erpnext": {"quota": 12}, "shopify": {"outage": 7}}, invariants=Invariants(),
                  max_overcommit=0, hot_item={"wanted": 30, "delivered": 30, "short_orders": 0}, intake_refused=0,
                  wall_seconds=99.0, erp_requests={"GET /api/resource/{doctype}": 390},
                  erp_load=[(t0, 0), (t0 + 5, 100), (t0 + 10, 150)])
    values.update(overrides)
    return PeakReport(**values)


def test_the_report_states_the_profile_the_figures_and_the_invariants():
    text = render_markdown(_report())
    assert "| burst 10× (burst) | 20 | 4 | 0.3 | 5 |" in text
    assert "12 of 390 requests answered 429 (10.0 ERPNext requests per order; the busiest 5 s at 20.0" in text
    assert "| Shopify, all | 30 | 1.00 s | 1.00 s | 1.00 s | 1.00 s |" in text
    assert "Amazon's p95 is 1.00× its quiet figure (within the 2× goal)" in text
    assert "retailflow-amazon: 0 trip(s), now closed; retailflow-shopify: 1 trip(s), now closed" in text
    assert "| … to Amazon (its own queue, retailflow-amazon) | 0 |" in text
    confirmed = _report().orders  # fresh OrderTimes: the warehouse shipped each, the channel confirmed it
    for n, o in enumerate(confirmed):
        o.shipped_signal, o.confirmed = 1000.0 + n, 1000.0 + n + (2.0 if o.channel == "amazon" else 0.5)
    text = render_markdown(_report(orders=confirmed))
    assert "| … to Shopify (its own queue, retailflow-shopify) | 30 | 0.50 s | 0.50 s | 0.50 s | 0.50 s |" in text
    assert "| … to Amazon (its own queue, retailflow-amazon) | 9 | 2.00 s | 2.00 s | 2.00 s | 2.00 s |" in text
    assert "| lost (sent, neither completed nor parked visibly) | **0** |" in text
    assert "shopify p50 0.20 s / p95 0.90 s / p99 1.00 s (4 publications)" in text
    bad = render_markdown(_report(invariants=Invariants(lost=["order:shopify:1: RUNNING (not parked)"])))
    assert "| lost (sent, neither completed nor parked visibly) | **1** |" in bad
    assert "lost: order:shopify:1: RUNNING (not parked)" in bad
    parked = [OrderTimes(f"order:shopify:p{n}", "shopify", "burst 10×", sent=1000.0, status="RUNNING",
                         needs_attention=True, reason=f"not enough stock: SUN-AVIATOR short by {n}") for n in (1, 2)]
    text = render_markdown(_report(orders=_report().orders + parked))
    assert "| parked, by reason | 2 × not enough stock: SUN-AVIATOR short by N |" in text
    assert "the worker takes 8 workflow tasks at once" in text


def test_a_fixed_quota_refuses_beyond_its_rate_with_the_wait_until_the_next_token():
    injector = FaultInjector()
    injector.set("*", {"quota_per_second": 10, "quota_burst": 3})
    decisions = [injector.decide("GET", "/api/resource/{doctype}") for _ in range(5)]
    assert [d.status for d in decisions] == [None, None, None, 429, 429]
    assert 0 < decisions[3].retry_after <= 0.1 and decisions[3].reason == "quota"
    time.sleep(0.12)  # a token back
    assert injector.decide("GET", "/api/resource/{doctype}").status is None
    assert injector.outcomes == {"quota": 2}
    assert injector.requests == {"GET /api/resource/{doctype}": 6}
    injector.reset()
    assert injector.outcomes == {} and injector.requests == {}


def test_each_marketplace_has_its_own_partner_queue_with_a_worker_and_a_breaker(tmp_path):
    """One marketplace's breaker must not hold the other's confirmations: the run's settings route each channel's
    steps to its own partner queue, and every routed queue is a partner queue (a worker, a rate, a breaker)."""
    ports = {name: 10000 + n for n, name in enumerate([*DEFAULT_PORTS, "api", "temporal", "metrics", "sdk_metrics"])}
    settings = PeakStack(PROFILES["ci"], tmp_path, ports=ports).settings()
    routes = settings.activity_task_queues
    assert queue_of(routes, "confirm_shipment", "shopify") == CHANNEL_QUEUES["shopify"] == "retailflow-shopify"
    assert queue_of(routes, "confirm_shipment", "amazon") == CHANNEL_QUEUES["amazon"] == "retailflow-amazon"
    assert queue_of(routes, "notify_channel_cancelled", "amazon") == "retailflow-amazon"
    assert queue_of(routes, "create_sales_order", "amazon") == queue_of(routes, "create_sales_order", "shopify") \
        == "retailflow-erp"
    assert set(settings.partner_activity_rate_limits) == {"retailflow-erp", "retailflow-shopify", "retailflow-amazon"}
    assert settings.unserved_activity_queues() == []
