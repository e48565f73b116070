"""Square's replay window: a correctly signed notification whose own `created_at` is older than Square keeps
retrying (up to 72 hours after the event, https://developer.squareup.com/docs/webhooks-api/delivery-sla) is a
replay — a captured request sent again under a new event id — so it is quarantined (409), not counted. The
tolerance is RETAILFLOW_SQUARE_WEBHOOK_MAX_AGE_SECONDS (default 72 h + 5 min; 0 turns it off); an analyst's
replay of the quarantined copy is deliberate and not held to it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from adapters.platform.intake_store import IntakeStore
from adapters.pos import square
from api.app import create_app
from runtime.settings import Settings
from tests.auth import headers, make_key
from tests.conftest import fixture_bytes
from tests.fuzz.temporal_fake import FakeTemporal

KEY, URL = "square-window-key", "https://retail.example/webhooks/square"


def notification(created_at: datetime) -> bytes:
    """A COMPLETED payment notification (the published fixture), a new event id, created at `created_at`."""
    payload = json.loads(fixture_bytes("square", "webhook_payment.updated_example.json"))
    payload["event_id"] = str(uuid.uuid4())
    payload["created_at"] = created_at.isoformat().replace("+00:00", "Z")
    payload["data"]["object"]["payment"]["id"] = f"P-{uuid.uuid4().hex[:10]}"
    return json.dumps(payload).encode()


def signed(body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", square.SIGNATURE_HEADER: square.signature(KEY, URL, body)}


def client(engine, **overrides) -> tuple[TestClient, FakeTemporal]:
    fake = FakeTemporal()
    settings = Settings(square_webhook_signature_key=SecretStr(KEY), square_notification_url=URL, **overrides)
    return TestClient(create_app(settings, engine=engine, client=fake)), fake


def test_the_default_window_is_squares_retry_span_plus_five_minutes():
    assert Settings().square_webhook_max_age_seconds == 72 * 3600 + 300


def test_a_notification_older_than_the_window_is_quarantined_and_not_counted(engine):
    http, fake = client(engine)
    now = datetime.now(UTC)
    fresh = http.post("/webhooks/square", content=(body := notification(now)), headers=signed(body))
    assert fresh.status_code == 202, fresh.text
    inside = http.post("/webhooks/square", content=(body := notification(now - timedelta(hours=71))),
                       headers=signed(body))
    assert inside.status_code == 202, inside.text  # Square still retries this one: taken
    counted = len(fake.starts) + len(fake.signals)
    stale_body = notification(now - timedelta(hours=73))
    stale = http.post("/webhooks/square", content=stale_body, headers=signed(stale_body))
    assert stale.status_code == 409, stale.text
    assert "replay window" in stale.json()["detail"] and "RETAILFLOW_SQUARE_WEBHOOK_MAX_AGE_SECONDS" in \
        stale.json()["detail"]
    assert len(fake.starts) + len(fake.signals) == counted  # nothing signalled to the store day
    row = IntakeStore(engine, keyring=http.app.state.keyring).get(stale.json()["quarantine_id"])
    assert row is not None and bytes(row["body"]) == stale_body and row["status_code"] == 409
    assert row["delivery_id"] == json.loads(stale_body)["event_id"]
    assert row["headers"][square.SIGNATURE_HEADER]  # kept, so the copy can be replayed and verified again


def test_the_window_is_configurable_and_zero_turns_it_off(engine, monkeypatch):
    monkeypatch.setenv("RETAILFLOW_SQUARE_WEBHOOK_MAX_AGE_SECONDS", "60")
    assert Settings().square_webhook_max_age_seconds == 60
    http, _ = client(engine, square_webhook_max_age_seconds=60)
    body = notification(datetime.now(UTC) - timedelta(minutes=2))
    assert http.post("/webhooks/square", content=body, headers=signed(body)).status_code == 409
    http, _ = client(engine, square_webhook_max_age_seconds=0)
    body = notification(datetime(2020, 2, 6, 21, 27, tzinfo=UTC))  # the fixture's own date: no window at all
    assert http.post("/webhooks/square", content=body, headers=signed(body)).status_code == 202


@pytest.mark.parametrize("created_at", ["yesterday", "0001-01-01T00:00:00+01:00", "2024-01-01T10:00:00", 17])
def test_a_created_at_that_is_no_time_is_refused_with_422(engine, created_at):
    http, _ = client(engine)
    payload = json.loads(notification(datetime.now(UTC)))
    payload["created_at"] = created_at
    body = json.dumps(payload).encode()
    answer = http.post("/webhooks/square", content=body, headers=signed(body))
    assert answer.status_code == 422 and "created_at" in answer.json()["detail"], answer.text


def test_an_analysts_replay_of_the_stale_copy_is_not_held_to_the_window(engine):
    http, fake = client(engine)
    body = notification(datetime.now(UTC) - timedelta(days=5))
    stale = http.post("/webhooks/square", content=body, headers=signed(body))
    assert stale.status_code == 409 and fake.signals == []
    qid = stale.json()["quarantine_id"]
    replay = http.post(f"/ops/quarantine/{qid}/replay", headers=headers(make_key(engine, "analyst")))
    assert replay.status_code == 200, replay.text
    assert replay.json()["status_code"] == 202 and replay.json()["resolved"] is True
    assert len(fake.signals) == 1  # counted once, by the analyst's decision
