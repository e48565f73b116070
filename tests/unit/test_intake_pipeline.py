"""The webhook intake pipeline (api/intake/) without a Temporal server: the app with a fake Temporal client, and
the pipeline itself, on a scratch database. One test per fault kind, and the happy path's dedupe."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from pydantic import SecretStr
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from adapters.marketplace import shopify
from adapters.platform.intake_store import IntakeStore
from adapters.wms.local import SIGNATURE_HEADER, sign
from api.app import create_app
from api.intake import pipeline
from api.intake.registry import SOURCES
from runtime.observability import CorrelationInterceptor
from runtime.settings import Settings
from tests.auth import headers as auth_headers
from tests.auth import make_key
from tests.conftest import fixture_bytes

SECRET = "pipeline-test-secret"


class FakeHandle:
    def __init__(self, client: FakeClient, wf_id: str) -> None:
        self.client, self.wf_id = client, wf_id

    async def describe(self):
        if self.client.unavailable:
            raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")
        if self.wf_id in self.client.closed:
            return SimpleNamespace(status=WorkflowExecutionStatus.COMPLETED)
        if self.wf_id not in self.client.running:
            raise RPCError("not found", RPCStatusCode.NOT_FOUND, b"")
        return SimpleNamespace(status=WorkflowExecutionStatus.RUNNING)

    async def signal(self, name, arg):
        self.client.signals.append((self.wf_id, name, arg))


class FakeClient:
    """Just enough of temporalio's Client for intake: start_workflow, get_workflow_handle, config."""

    def __init__(self) -> None:
        self.starts: list[tuple[str, str]] = []
        self.signals: list[tuple[str, str, object]] = []
        self.running: set[str] = set()
        self.closed: set[str] = set()  # ran and closed
        self.unavailable = False
        self.broken: Exception | None = None

    def config(self) -> dict:
        return {"interceptors": [CorrelationInterceptor()]}

    async def start_workflow(self, workflow, arg, *, id, **kwargs):
        if self.broken is not None:
            raise self.broken
        if self.unavailable:
            raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")
        if kwargs.get("start_signal"):  # signal-with-start: signals a running run, else starts one with it
            self.signals.append((id, kwargs["start_signal"], *kwargs.get("start_signal_args", [])))
            if id in self.running:
                return
        if id in self.running:
            raise WorkflowAlreadyStartedError(id, workflow)
        self.running.add(id)
        self.starts.append((workflow, id))

    def get_workflow_handle(self, wf_id: str) -> FakeHandle:
        return FakeHandle(self, wf_id)


@pytest.fixture
def settings() -> Settings:
    return Settings(shopify_webhook_secret=SecretStr(SECRET))


@pytest.fixture
def fake() -> FakeClient:
    return FakeClient()


@pytest.fixture
def http(engine, settings, fake) -> TestClient:
    return TestClient(create_app(settings, engine=engine, client=fake),
                      headers=auth_headers(make_key(engine, "analyst")))


def order_body(order_id: str = "820982911946154508") -> bytes:
    body = json.loads(fixture_bytes("shopify", "webhook_orders_create_sample_v2024.json"))
    body["id"] = int(order_id)
    return json.dumps(body).encode()


def shopify_headers(body: bytes, *, topic: str = "orders/create", webhook_id: str = "wh-1") -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Shopify-Topic": topic, "X-Shopify-Webhook-Id": webhook_id,
            "X-Shopify-Hmac-Sha256": shopify.compute_hmac(body, SECRET)}


def quarantined(engine) -> list[dict]:
    from runtime.codec import keyring_from_settings  # the app's keys (bodies are sealed at rest)

    return IntakeStore(engine, keyring=keyring_from_settings(Settings())).list(resolved=None)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_registry_names_every_source_once():
    assert set(SOURCES) == {"shopify", "wms-local", "square", "shipstation", "shipbob"}
    assert all(name == source.name for name, source in SOURCES.items())


def test_new_delivery_starts_once_and_a_duplicate_does_not_start_again(http, engine, fake):
    body = order_body()
    first = http.post("/webhooks/shopify", content=body, headers=shopify_headers(body))
    assert first.status_code == 202, first.text
    wf_id = first.json()["workflow_id"]
    assert first.json() == {"workflow_id": wf_id, "duplicate": False}
    dupes = metric("retailflow_webhook_duplicates_total", source="shopify")
    again = http.post("/webhooks/shopify", content=body, headers=shopify_headers(body))
    assert again.status_code == 200 and again.json() == {"workflow_id": wf_id, "duplicate": True}
    assert fake.starts == [("OrderFulfillment", wf_id)]  # no second start
    assert metric("retailflow_webhook_duplicates_total", source="shopify") == dupes + 1
    # the same order under another delivery id reaches Temporal, which says it is running already
    other = http.post("/webhooks/shopify", content=body, headers=shopify_headers(body, webhook_id="wh-2"))
    assert other.status_code == 200 and other.json() == {"workflow_id": wf_id, "duplicate": True}
    assert len(fake.starts) == 1 and quarantined(engine) == []


def test_bad_json_answers_422_and_keeps_a_copy(http, engine, fake):
    body = b'{"id": 1, "line_items": ['
    before = metric("retailflow_quarantined_total", source="shopify", status_code="422")
    resp = http.post("/webhooks/shopify", content=body, headers=shopify_headers(body, webhook_id="wh-bad"))
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"].startswith("payload does not map (orders/create)")
    [row] = quarantined(engine)
    assert row["id"] == resp.json()["quarantine_id"] and row["body"] == body and row["status_code"] == 422
    assert (row["source"], row["topic"], row["delivery_id"]) == ("shopify", "orders/create", "wh-bad")
    assert row["headers"]["x-shopify-hmac-sha256"]  # kept, so a replay can verify it again
    assert fake.starts == [] and IntakeStore(engine).seen("shopify", "wh-bad") is None
    assert metric("retailflow_quarantined_total", source="shopify", status_code="422") == before + 1


def test_bad_signature_answers_401_and_keeps_a_copy(http, engine, fake):
    body = order_body()
    headers = {**shopify_headers(body), "X-Shopify-Hmac-Sha256": "not-it"}
    resp = http.post("/webhooks/shopify", content=body, headers=headers)
    assert resp.status_code == 401
    [row] = quarantined(engine)
    assert resp.json() == {"detail": "missing or invalid X-Shopify-Hmac-Sha256 signature", "quarantine_id": row["id"]}
    assert row["status_code"] == 401 and fake.starts == []


async def test_mapping_error_is_quarantined_by_the_pipeline(engine, settings, fake):
    """A WMS shipment event without its shipment, straight through the pipeline (no HTTP)."""
    body = json.dumps({"event_id": "ev-1", "external_ref": "order:shopify:1"}).encode()

    async def get():
        return fake

    outcome = await pipeline.take(SOURCES["wms-local"], engine, get, settings, body,
                                  {SIGNATURE_HEADER: sign(body, settings.local_wms_webhook_secret.get_secret_value())})
    assert outcome.status_code == 422 and outcome.body["detail"].startswith("shipment event does not map")
    [row] = quarantined(engine)
    assert outcome.body["quarantine_id"] == row["id"]
    assert (row["source"], row["topic"], row["delivery_id"], row["reason"]) == (
        "wms-local", "shipment", None, outcome.body["detail"])
    replayed = await pipeline.take(SOURCES["wms-local"], engine, get, settings, body, dict(row["headers"]),
                                   replay=True)
    assert replayed.status_code == 422 and replayed.body["quarantine_id"] is None  # a replay keeps nothing new
    assert len(quarantined(engine)) == 1


def test_no_running_workflow_is_quarantined_and_replays_once_it_runs(http, engine, fake):
    shipment = {"shipment_id": "s-1", "carrier": "UPS", "tracking_number": "1Z1", "shipped_at": "2026-01-01T00:00:00Z",
                "lines": [{"line_id": "1", "channel_sku": "SKU", "quantity": 1}]}
    body = json.dumps({"event_id": "ev-2", "external_ref": "order:shopify:2", "shipment": shipment}).encode()
    headers = {SIGNATURE_HEADER: sign(body, "retailflow-dev-wms-secret")}
    fake.closed.add("order:shopify:2")  # it ran and closed: nothing will take the shipment
    resp = http.post("/webhooks/wms/local", content=body, headers=headers)
    assert resp.status_code == 409, resp.text
    [row] = quarantined(engine)
    assert (row["topic"], row["delivery_id"], row["status_code"]) == ("shipment", "ev-2", 409)
    fake.closed.discard("order:shopify:2")
    fake.running.add("order:shopify:2")
    replay = http.post(f"/ops/quarantine/{row['id']}/replay")
    assert replay.status_code == 200 and replay.json()["resolved"] is True
    assert [s[:2] for s in fake.signals] == [("order:shopify:2", "shipment")]
    assert http.post("/webhooks/wms/local", content=body, headers=headers).json() == {
        "workflow_id": "order:shopify:2", "duplicate": True}
    assert http.post(f"/ops/quarantine/{row['id']}/replay").status_code == 409  # resolved already


def test_a_shipment_before_its_order_is_held_and_delivered_when_the_order_starts(http, engine, fake):
    payload = json.loads(order_body())
    wf_id = f"order:shopify:{payload['id']}"
    shipment = {"shipment_id": "s-early", "carrier": "UPS", "tracking_number": "1Z9", "shipped_at": "2026-01-01T00:00:00Z",
                "lines": [{"line_id": "1", "channel_sku": "SKU", "quantity": 1}]}
    body = json.dumps({"event_id": "ev-early", "external_ref": wf_id, "shipment": shipment}).encode()
    resp = http.post("/webhooks/wms/local", content=body, headers={SIGNATURE_HEADER: sign(body, "retailflow-dev-wms-secret")})
    assert resp.status_code == 202 and resp.json()["held"] is True, resp.text  # not bounced: the order may follow
    [row] = quarantined(engine)
    assert row["status_code"] == 202 and not row["resolved"] and fake.signals == []
    order = order_body()
    assert http.post("/webhooks/shopify", content=order, headers=shopify_headers(order)).status_code == 202
    assert [(w, n) for w, n, _ in fake.signals] == [(wf_id, "shipment")]  # delivered as the order started
    assert fake.signals[0][2]["shipment_id"] == "s-early"
    [row] = quarantined(engine)
    assert row["resolved"] and IntakeStore(engine).held_events(wf_id) == []


def test_temporal_unavailable_answers_503_and_records_nothing(http, engine, fake):
    """The sender's delivery is fine: 503 + Retry-After so it delivers again; nothing is remembered or kept."""
    fake.unavailable = True
    body = order_body()
    resp = http.post("/webhooks/shopify", content=body, headers=shopify_headers(body))
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "5"
    assert resp.json()["detail"].startswith("Temporal is unavailable")
    assert quarantined(engine) == [] and IntakeStore(engine).seen("shopify", "wh-1") is None
    fake.unavailable = False
    again = http.post("/webhooks/shopify", content=body, headers=shopify_headers(body))
    assert again.status_code == 202 and again.json()["duplicate"] is False


def test_internal_error_answers_503_and_keeps_a_copy(http, engine, fake):
    fake.broken = RuntimeError("boom")
    body = order_body()
    resp = http.post("/webhooks/shopify", content=body, headers=shopify_headers(body))
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "30"
    [row] = quarantined(engine)
    assert resp.json() == {"detail": "internal error; the delivery was kept and can be replayed",
                           "quarantine_id": row["id"]}
    assert row["reason"] == "internal error: RuntimeError: boom" and row["body"] == body
    fake.broken = None
    replay = http.post(f"/ops/quarantine/{row['id']}/replay")
    assert replay.status_code == 200 and replay.json()["status_code"] == 202 and replay.json()["resolved"]


def test_cancel_before_the_order_is_kept_and_answers_202(http, engine, fake):
    body = json.dumps({"id": 4242, "cancel_reason": "customer"}).encode()
    resp = http.post("/webhooks/shopify", content=body,
                     headers=shopify_headers(body, topic="orders/cancelled", webhook_id="wh-c"))
    assert resp.status_code == 202, resp.text
    [row] = quarantined(engine)
    assert resp.json() == {"workflow_id": "order:shopify:4242", "duplicate": False, "signalled": False,
                           "held": True, "quarantine_id": row["id"]}
    assert row["reason"] == "no running workflow order:shopify:4242 to cancel: held for the order's arrival"
    assert IntakeStore(engine).held_cancel("order:shopify:4242")["reason"] == "customer"
    assert IntakeStore(engine).seen("shopify", "wh-c") is None  # not taken: a redelivery is tried again


def test_unhandled_topic_is_remembered_and_ignored(http, engine, fake):
    body = b'{"id": 1}'
    headers = shopify_headers(body, topic="products/update", webhook_id="wh-p")
    resp = http.post("/webhooks/shopify", content=body, headers=headers)
    assert resp.status_code == 200
    assert resp.json() == {"ignored": True, "detail": "topic 'products/update' is not handled", "duplicate": False}
    assert IntakeStore(engine).seen("shopify", "wh-p") == ""
    assert http.post("/webhooks/shopify", content=body, headers=headers).json() == {"workflow_id": None,
                                                                                 "duplicate": True}


def test_body_over_the_limit_answers_413(engine, fake):
    app = create_app(Settings(shopify_webhook_secret=SecretStr(SECRET), max_webhook_bytes=10), engine=engine,
                     client=fake)
    body = order_body()
    resp = TestClient(app).post("/webhooks/shopify", content=body, headers=shopify_headers(body))
    assert resp.status_code == 413 and quarantined(engine) == []


def test_shipstation_route_token_and_faults(engine, fake):
    app = create_app(Settings(shipstation_webhook_token=SecretStr("tok")), engine=engine, client=fake)
    http = TestClient(app)
    body = b'{"resource_url": "x", "resource_type": "ORDER_NOTIFY"}'
    wrong = http.post("/webhooks/shipstation", params={"token": "nope"}, content=body)
    assert wrong.status_code == 401 and wrong.json() == {"detail": "missing or wrong token"}
    assert quarantined(engine) == []  # a wrong token is not a delivery: nothing kept
    ignored = http.post("/webhooks/shipstation", params={"token": "tok"}, content=body)
    assert ignored.status_code == 200
    assert ignored.json() == {"ignored": True, "detail": "resource_type 'ORDER_NOTIFY' is not handled"}
    bad = http.post("/webhooks/shipstation", params={"token": "tok"}, content=b'{"nope": 1}')
    assert bad.status_code == 422
    [row] = quarantined(engine)
    assert bad.json() == {"detail": "not a ShipStation webhook body: resource_url must be a non-empty string, got "
                                    "NoneType", "quarantine_id": row["id"]}
    assert (row["source"], row["topic"], row["status_code"]) == ("shipstation", None, 422)


def test_a_delivery_older_than_the_replay_window_is_quarantined_not_processed(http, engine, fake):
    """A captured, correctly signed order sent again weeks later under a new webhook id must not start a run."""
    from datetime import UTC, datetime, timedelta

    body = order_body("820982911946154777")
    old = (datetime.now(UTC) - timedelta(days=21)).isoformat().replace("+00:00", "Z")
    stale = http.post("/webhooks/shopify", content=body,
                      headers={**shopify_headers(body, webhook_id="wh-replayed"), "X-Shopify-Triggered-At": old})
    assert stale.status_code == 409, stale.text
    assert "replay window" in stale.json()["detail"] and fake.starts == []
    [row] = quarantined(engine)
    assert (row["delivery_id"], row["status_code"]) == ("wh-replayed", 409)
    assert row["headers"]["x-shopify-triggered-at"] == old
    # a fresh delivery of the same order is taken; a garbled timestamp is refused with 400
    now = datetime.now(UTC).isoformat()
    fresh = http.post("/webhooks/shopify", content=body,
                      headers={**shopify_headers(body, webhook_id="wh-fresh"), "X-Shopify-Triggered-At": now})
    assert fresh.status_code == 202 and len(fake.starts) == 1
    garbled = http.post("/webhooks/shopify", content=body,
                        headers={**shopify_headers(body, webhook_id="wh-x"), "X-Shopify-Triggered-At": "yesterday"})
    assert garbled.status_code == 400 and "ISO 8601" in garbled.json()["detail"]


async def test_an_analysts_replay_of_the_stale_copy_is_not_held_to_the_window(engine, settings, fake):
    from datetime import UTC, datetime, timedelta

    body = order_body("820982911946154888")
    old = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    headers = {**shopify_headers(body, webhook_id="wh-late"), "X-Shopify-Triggered-At": old}

    async def client():
        return fake

    first = await pipeline.take(SOURCES["shopify"], engine, client, settings, body, headers)
    assert first.status_code == 409 and fake.starts == []
    again = await pipeline.take(SOURCES["shopify"], engine, client, settings, body, headers, replay=True)
    assert again.status_code == 202 and len(fake.starts) == 1


def test_a_cancel_that_overtakes_its_order_wins_when_the_order_arrives(http, engine, fake):
    """orders/cancelled before orders/create: the cancel is held (and a copy quarantined); the create then starts
    the run with its `cancel` signal, so it is cancelled before its first step and never ships."""
    body = order_body("820982911946154999")
    early = http.post("/webhooks/shopify", content=body,
                      headers=shopify_headers(body, topic="orders/cancelled", webhook_id="wh-cancel"))
    assert early.status_code == 202 and early.json()["signalled"] is False and early.json()["held"] is True
    wf_id = early.json()["workflow_id"]
    assert fake.starts == [] and [r["delivery_id"] for r in quarantined(engine)] == ["wh-cancel"]
    create = http.post("/webhooks/shopify", content=body, headers=shopify_headers(body, webhook_id="wh-create"))
    assert create.status_code == 202 and create.json()["cancelled_on_arrival"] is True
    assert fake.starts == [("OrderFulfillment", wf_id)]
    [(signalled_id, name, action)] = fake.signals
    assert (signalled_id, name, action.actor) == (wf_id, "cancel", "channel:shopify")
    [row] = quarantined(engine)
    assert row["resolved"] is True and "the cancel won" in row["replay_result"]
    # the held cancel was used once: a later delivery of the order under another id is a plain duplicate
    again = http.post("/webhooks/shopify", content=body, headers=shopify_headers(body, webhook_id="wh-create-2"))
    assert again.status_code == 200 and again.json()["duplicate"] is True and len(fake.signals) == 1


def test_a_non_ascii_warehouse_signature_is_a_401_not_a_500(http, engine):
    """The warehouse signature used to be compared as text: a header outside ASCII raised TypeError (500)."""
    from adapters.wms.local import verify

    body = b'{"external_ref": "order:shopify:1"}'
    assert verify(body, "s\u00efgn\u00e9", "secret") is False
    resp = http.post("/webhooks/wms/local", content=body, headers={SIGNATURE_HEADER: "s\u00efgn\u00e9".encode("latin-1")})
    assert resp.status_code == 401, resp.text


def test_a_bad_signature_keeps_only_a_bounded_prefix(http, engine, settings):
    """25 unsigned 2 MB requests used to grow the database by 55 MB: each was quarantined whole."""
    body = b'{"id": 1, "note": "' + b"x" * 100_000 + b'"}'
    resp = http.post("/webhooks/shopify", content=body,
                     headers={**shopify_headers(body, webhook_id="wh-big"), "X-Shopify-Hmac-Sha256": "not-it"})
    assert resp.status_code == 401
    [row] = quarantined(engine)
    keep = settings.quarantine_unsigned_bytes
    assert row["body"] == body[:keep] and f"first {keep} of {len(body)} bytes kept" in row["reason"]


def test_a_platform_database_outage_during_intake_is_503_with_retry_after(settings, fake):
    """The error path used to write to the database that was down, and answered 500: the sender would not
    retry. Nothing can be kept, so the answer asks it to retry (loopback; nothing listens on port 9)."""
    from adapters.sql import make_engine

    down = make_engine("postgresql+psycopg://postgres@127.0.0.1:9/nothing?connect_timeout=2")
    http = TestClient(create_app(settings, engine=down, client=fake), raise_server_exceptions=False)
    body = order_body("820982911946155000")
    resp = http.post("/webhooks/shopify", content=body, headers=shopify_headers(body, webhook_id="wh-db-down"))
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "30", resp.text
    assert "nothing was recorded" in resp.json()["detail"] and fake.starts == []


def test_refused_signatures_are_capped_as_they_arrive(engine, fake):
    settings = Settings(shopify_webhook_secret=SecretStr(SECRET), quarantine_unsigned_max_rows=3)
    http = TestClient(create_app(settings, engine=engine, client=fake))
    body = order_body()
    for i in range(5):
        resp = http.post("/webhooks/shopify", content=body,
                         headers={**shopify_headers(body, webhook_id=f"wh-u{i}"), "X-Shopify-Hmac-Sha256": "no"})
        assert resp.status_code == 401
    assert [r["delivery_id"] for r in quarantined(engine)] == ["wh-u4", "wh-u3", "wh-u2"]


def test_a_webhook_in_another_api_version_is_processed_and_counted(http, fake):
    """X-Shopify-API-Version is checked against the configured Admin API version: a mismatch is still processed
    (the documented JSON maps the same) but counted, so the app's webhook version can be fixed."""
    def mismatches(received: str) -> float:
        return REGISTRY.get_sample_value("retailflow_shopify_webhook_version_mismatch_total",
                                         {"received": received, "configured": "2026-10"}) or 0.0

    before = mismatches("2025-07")
    body = order_body("820982911946154999")
    old_version = http.post("/webhooks/shopify", content=body, headers={
        **shopify_headers(body, webhook_id="wh-v1"), "X-Shopify-API-Version": "2025-07"})
    assert old_version.status_code == 202 and len(fake.starts) == 1
    assert mismatches("2025-07") == before + 1
    body = order_body("820982911946155000")
    same = http.post("/webhooks/shopify", content=body, headers={
        **shopify_headers(body, webhook_id="wh-v2"), "X-Shopify-API-Version": "2026-10"})
    assert same.status_code == 202 and mismatches("2025-07") == before + 1
    assert REGISTRY.get_sample_value("retailflow_shopify_webhook_version_mismatch_total",
                                     {"received": "2026-10", "configured": "2026-10"}) is None
