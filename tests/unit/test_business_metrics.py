"""The business SLO metrics (runtime/observability.py, docs/operations.md) move where the business moves: a webhook
that starts an order, an ERP booking, a shipment confirmed to the channel, an availability publication, parked
runs, unmatched settlement lines, the quarantine and its replays, a partner's breaker."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import temporalio.converter
import temporalio.workflow
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from temporalio.testing import ActivityEnvironment
from temporalio.worker import ExecuteActivityInput

from activities.inventory import PublishInput
from activities.orders import ShipmentConfirmInput
from adapters import sql as db
from adapters.platform.projection import StatusProjection, reason_label
from adapters.wms.local import SIGNATURE_HEADER, sign
from api.app import create_app
from canonical.ops import RunStatusUpdate
from canonical.order import Shipment, ShipmentLine
from runtime import observability as obs
from tests.auth import headers as auth_headers
from tests.auth import make_key
from tests.unit.test_intake_pipeline import FakeClient, order_body, shopify_headers

CONVERTER = temporalio.converter.default().payload_converter


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def http(engine, fake):
    from pydantic import SecretStr

    from runtime.settings import Settings
    from tests.unit.test_intake_pipeline import SECRET

    return TestClient(create_app(Settings(shopify_webhook_secret=SecretStr(SECRET)), engine=engine, client=fake),
                      headers=auth_headers(make_key(engine, "analyst")))


@pytest.fixture
def fake() -> FakeClient:
    return FakeClient()


# -- intake: order ingestion lag, quarantine, replays ----------------------------------------------------------
def test_a_new_order_webhook_observes_its_ingestion_lag_and_a_duplicate_does_not(http, fake):
    count = "retailflow_order_ingestion_seconds_count"
    before = metric(count, channel="shopify")
    body = order_body("820982911946150001")
    assert http.post("/webhooks/shopify", content=body, headers=shopify_headers(body, webhook_id="m-1")
                     ).status_code == 202
    assert metric(count, channel="shopify") == before + 1
    assert metric("retailflow_order_ingestion_seconds_sum", channel="shopify") > 0
    # the same delivery again, and the same order under another delivery id: nothing new started, nothing observed
    http.post("/webhooks/shopify", content=body, headers=shopify_headers(body, webhook_id="m-1"))
    http.post("/webhooks/shopify", content=body, headers=shopify_headers(body, webhook_id="m-2"))
    assert metric(count, channel="shopify") == before + 1 and len(fake.starts) == 1


def test_a_signal_or_a_held_event_is_no_ingestion():
    before = metric("retailflow_order_ingestion_seconds_count", channel="shopify")
    signalled = SimpleNamespace(status_code=202, body={"workflow_id": "order:shopify:9", "duplicate": False,
                                                       "signalled": True})
    obs.observe_intake("shopify", signalled, 0.2)
    held = SimpleNamespace(status_code=202, body={"workflow_id": "order:shopify:9", "duplicate": False,
                                                  "signalled": False, "held": True, "quarantine_id": 4})
    obs.observe_intake("shopify", held, 0.2)
    shipment = SimpleNamespace(status_code=202, body={"workflow_id": "order:shopify:9", "duplicate": False})
    obs.observe_intake("wms-local", shipment, 0.2)  # the warehouse signals orders, it never starts one
    started = SimpleNamespace(status_code=202, body={"workflow_id": "order:shopify:9", "duplicate": False})
    obs.observe_intake("shopify", started, 0.2)
    assert metric("retailflow_order_ingestion_seconds_count", channel="shopify") == before + 1


def test_quarantine_open_and_replays_follow_the_quarantine(http, engine, fake):
    shipment = {"shipment_id": "s-9", "shipped_at": "2026-01-01T00:00:00Z",
                "lines": [{"line_id": "1", "channel_sku": "SKU", "quantity": 1}]}
    body = json.dumps({"event_id": "ev-m9", "external_ref": "order:shopify:9", "shipment": shipment}).encode()
    headers = {SIGNATURE_HEADER: sign(body, "retailflow-dev-wms-secret")}
    resolved = metric("retailflow_quarantine_replays_total", source="wms-local", outcome="resolved")
    failed = metric("retailflow_quarantine_replays_total", source="wms-local", outcome="failed")
    qid = http.post("/webhooks/wms/local", content=body, headers=headers).json()["quarantine_id"]  # 409: no run
    obs.refresh_platform_gauges(engine)  # what /metrics runs on each scrape
    assert metric("retailflow_quarantine_open", source="wms-local") == 1
    assert http.post(f"/ops/quarantine/{qid}/replay").json()["resolved"] is False  # still no run
    assert metric("retailflow_quarantine_replays_total", source="wms-local", outcome="failed") == failed + 1
    fake.running.add("order:shopify:9")
    assert http.post(f"/ops/quarantine/{qid}/replay").json()["resolved"] is True
    assert metric("retailflow_quarantine_replays_total", source="wms-local", outcome="resolved") == resolved + 1
    obs.refresh_platform_gauges(engine)  # what /metrics runs on each scrape
    assert metric("retailflow_quarantine_open", source="wms-local") == 0  # resolved: the gauge goes back to 0


# -- the database gauges: parked runs by reason and age, unmatched settlement lines ---------------------------------
def _park(projection: StatusProjection, wf_id: str, reason: str, at: datetime, kind: str = "order") -> None:
    projection.record(RunStatusUpdate(workflow_id=wf_id, kind=kind, channel="shopify", status="needs_attention",
                                      needs_attention=True, reason=reason, version=1, started_at=at, changed_at=at))


def test_reason_label_is_the_step_that_parked_or_other():
    assert reason_label("resolve_skus: unknown SKU X. Map it, then retry") == "resolve_skus"
    assert reason_label("short_pick: the warehouse picked short: 1 × A") == "short_pick"
    assert reason_label("2 stock difference(s) beyond 5 unit(s): A@MAIN") == "other"
    assert reason_label(None) == "other" and reason_label("Resolve: x") == "other"


def test_parked_runs_by_reason_and_oldest_age(engine):
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    projection = StatusProjection(engine)
    _park(projection, "order:shopify:1", "resolve_skus: unknown SKU A", now - timedelta(hours=5))
    _park(projection, "order:shopify:2", "resolve_skus: unknown SKU B", now - timedelta(hours=1))
    _park(projection, "order:shopify:3", "create_sales_order: customer blocked", now - timedelta(minutes=10))
    _park(projection, "settlement:amazon:1", "1 unmatched line(s)", now - timedelta(hours=2), kind="settlement")
    obs.refresh_platform_gauges(engine, now)
    assert metric("retailflow_parked_runs", kind="order") == 3
    assert metric("retailflow_parked_runs_by_reason", kind="order", reason="resolve_skus") == 2
    assert metric("retailflow_parked_runs_by_reason", kind="order", reason="create_sales_order") == 1
    assert metric("retailflow_parked_runs_by_reason", kind="settlement", reason="other") == 1
    assert metric("retailflow_parked_run_oldest_age_seconds", kind="order", reason="resolve_skus") == 5 * 3600
    assert metric("retailflow_parked_run_oldest_age_seconds", kind="order", reason="create_sales_order") == 600
    # the run is resumed: its group drops to 0 rather than keeping its last value
    projection.record(RunStatusUpdate(workflow_id="order:shopify:3", kind="order", channel="shopify",
                                      status="booked", needs_attention=False, version=2, started_at=now,
                                      changed_at=now))
    obs.refresh_platform_gauges(engine, now)
    assert metric("retailflow_parked_runs_by_reason", kind="order", reason="create_sales_order") == 0
    assert metric("retailflow_parked_run_oldest_age_seconds", kind="order", reason="create_sales_order") == 0
    assert metric("retailflow_parked_runs", kind="order") == 2


def _settlement(conn, key: str, provider: str, status: str) -> None:
    conn.execute(db.settlements.insert().values(settlement_key=key, provider=provider, settlement_id=key,
                                                currency="USD", deposit_minor=0, status=status))


def test_unmatched_settlement_lines_count_open_exceptions_of_live_settlements(engine):
    with engine.begin() as conn:
        _settlement(conn, "amazon:1", "amazon", "needs_attention")
        _settlement(conn, "amazon:2", "amazon", "cancelled")
        _settlement(conn, "shopify_payments:1", "shopify_payments", "posted")
        ex = db.settlement_exceptions.insert()
        conn.execute(ex.values(settlement_key="amazon:1", kind="unmatched", cause="no order", line_count=3))
        conn.execute(ex.values(settlement_key="amazon:1", kind="unmatched", cause="no order", line_count=2))
        conn.execute(ex.values(settlement_key="amazon:1", kind="unclassified", cause="no account", line_count=1))
        conn.execute(ex.values(settlement_key="amazon:2", kind="unmatched", cause="cancelled", line_count=7))
        conn.execute(ex.values(settlement_key="shopify_payments:1", kind="unmatched", cause="x", line_count=4,
                               resolution="suspense", resolved_by="ana"))
    obs.refresh_platform_gauges(engine)
    assert metric("retailflow_settlement_unmatched_lines", provider="amazon", kind="unmatched") == 5
    assert metric("retailflow_settlement_unmatched_lines", provider="amazon", kind="unclassified") == 1
    assert metric("retailflow_settlement_unmatched_lines", provider="shopify_payments", kind="unmatched") == 0


# -- milestones observed at the activity boundary (the worker's CorrelationInterceptor) --------------------------
class _Next:
    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail

    async def execute_activity(self, input):
        if self.fail is not None:
            raise self.fail
        return "ok"


async def _run(activity_type: str, arg, *, workflow_id: str = "order:shopify:77", headers=None,
               scheduled: datetime | None = None, fail: Exception | None = None):
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, activity_type=activity_type, workflow_id=workflow_id,
                                   scheduled_time=scheduled or datetime.now(UTC))

    async def call():
        inbound = obs._ActivityInbound(_Next(fail))
        return await inbound.execute_activity(ExecuteActivityInput(fn=lambda: None, args=[arg], executor=None,
                                                                   headers=headers or {}))

    return await env.run(call)


async def test_erp_booking_is_timed_from_the_workflow_start_in_the_activity_header():
    from adapters.marketplace import shopify

    order = shopify.map_order(json.loads(order_body("820982911946150077")))
    arg = SimpleNamespace(external_ref=order.workflow_id, order=order)  # what the booking gets (SalesOrderInput)
    started = datetime.now(UTC) - timedelta(seconds=120)
    before = metric("retailflow_order_erp_booking_seconds_count", channel="shopify")
    total = metric("retailflow_order_erp_booking_seconds_sum", channel="shopify")
    header = {obs.WORKFLOW_STARTED_HEADER: CONVERTER.to_payload(started.timestamp())}
    assert await _run("create_sales_order", arg, headers=header) == "ok"
    assert metric("retailflow_order_erp_booking_seconds_count", channel="shopify") == before + 1
    assert 119 < metric("retailflow_order_erp_booking_seconds_sum", channel="shopify") - total < 180
    # a failed booking is no booking
    with pytest.raises(RuntimeError):
        await _run("create_sales_order", arg, headers=header, fail=RuntimeError("ERP down"))
    assert metric("retailflow_order_erp_booking_seconds_count", channel="shopify") == before + 1


async def test_shipment_confirmation_is_timed_from_shipped_at():
    shipped = datetime.now(UTC) - timedelta(minutes=30)
    arg = ShipmentConfirmInput(channel="amazon", external_order_id="111-1", shipment=Shipment(
        shipment_id="sh-1", shipped_at=shipped, lines=[ShipmentLine(line_id="1", channel_sku="A", quantity=1)]))
    before = metric("retailflow_shipment_confirmation_seconds_count", channel="amazon")
    total = metric("retailflow_shipment_confirmation_seconds_sum", channel="amazon")
    await _run("confirm_shipment", arg, workflow_id="order:amazon:111-1")
    assert metric("retailflow_shipment_confirmation_seconds_count", channel="amazon") == before + 1
    assert 1799 < metric("retailflow_shipment_confirmation_seconds_sum", channel="amazon") - total < 1900


async def test_inventory_publication_per_channel_from_first_scheduling_and_failures_counted():
    arg = PublishInput(channel="amazon", sku="SKU-1", quantity=4, key="inventory:SKU-1:amazon:1")
    before = metric("retailflow_inventory_publication_seconds_count", channel="amazon")
    total = metric("retailflow_inventory_publication_seconds_sum", channel="amazon")
    failed = metric("retailflow_inventory_publications_total", channel="amazon", outcome="failed")
    with pytest.raises(RuntimeError):
        await _run("publish_availability", arg, workflow_id="inventory:SKU-1", fail=RuntimeError("429"))
    assert metric("retailflow_inventory_publications_total", channel="amazon", outcome="failed") == failed + 1
    await _run("publish_availability", arg, workflow_id="inventory:SKU-1",
               scheduled=datetime.now(UTC) - timedelta(seconds=45))  # the retry that got through, 45 s later
    assert metric("retailflow_inventory_publication_seconds_count", channel="amazon") == before + 1
    assert 44 < metric("retailflow_inventory_publication_seconds_sum", channel="amazon") - total < 100
    assert metric("retailflow_inventory_publications_total", channel="amazon", outcome="published") >= 1


def test_the_workflow_side_adds_its_start_time_only_to_the_booking(monkeypatch):
    started = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    monkeypatch.setattr(temporalio.workflow, "info", lambda: SimpleNamespace(start_time=started))
    monkeypatch.setattr(temporalio.workflow, "payload_converter", lambda: CONVERTER)
    sent: list = []
    outbound = obs._WorkflowOutbound(SimpleNamespace(start_activity=lambda inp: sent.append(inp)))

    def start(activity: str):
        outbound.start_activity(SimpleNamespace(activity=activity, headers={}))  # what start_activity reads
        return sent[-1].headers

    headers = start("create_sales_order")
    assert obs._workflow_started(SimpleNamespace(headers=headers), CONVERTER) == started
    assert obs.WORKFLOW_STARTED_HEADER not in start("reserve_stock")  # no other activity's history grows


# -- the partner breaker ---------------------------------------------------------------------------------------
def test_partner_breaker_state_gauge():
    for state, value in (("open", 1.0), ("half_open", 0.5), ("closed", 0.0)):
        obs.set_partner_breaker_state("erpnext", state)
        assert metric("retailflow_partner_breaker_state", partner="erpnext") == value
    with pytest.raises(ValueError):
        obs.set_partner_breaker_state("erpnext", "ajar")
