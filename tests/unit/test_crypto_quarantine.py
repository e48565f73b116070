"""Quarantined bodies are sealed at rest in the platform database (adapters/platform/intake_store.py): the table
holds ciphertext, the store and the API hand analysts the plaintext, and rows from before sealing still read."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select, update

from adapters import sql as db
from adapters.crypto import Keyring, is_sealed, new_key
from adapters.platform.intake_store import IntakeStore
from api.app import create_app
from runtime.settings import Settings
from tests.auth import headers, make_key
from tests.conftest import fixture_bytes

BODY = fixture_bytes("shopify", "webhook_orders_create_sample_v2024.json")
PERSONAL = [b"jon@example.com", b"Steve Shipper", b"123 Shipping Street", b"555-555-SHIP"]


def raw_bodies(engine) -> list[bytes]:
    with engine.connect() as conn:
        return [bytes(b) for b in conn.execute(select(db.quarantine.c.body)).scalars()]


def test_the_table_holds_ciphertext_and_the_store_plaintext(engine):
    assert all(p in BODY for p in PERSONAL)  # the fixture does carry them
    key = new_key()
    store = IntakeStore(engine, keyring=Keyring([("q1", key)]))
    qid = store.quarantine(source="shopify", topic="orders/create", delivery_id="wh-1", headers={}, body=BODY,
                           reason="mapping", status_code=422)
    [raw] = raw_bodies(engine)
    assert is_sealed(raw) and not any(p in raw for p in PERSONAL)
    assert store.get(qid)["body"] == BODY and store.list(resolved=None)[0]["body"] == BODY
    rotated = IntakeStore(engine, keyring=Keyring([("q2", new_key()), ("q1", key)]))
    assert rotated.get(qid)["body"] == BODY  # a rotated ring still opens what the old key sealed


def test_rows_from_before_sealing_still_read_and_moved_bodies_fail(engine):
    key = new_key()
    ring = Keyring([("q1", key)])
    plain = IntakeStore(engine)  # a store without keys writes as given: the rows of the old code
    old = plain.quarantine(source="shopify", topic=None, delivery_id="wh-old", headers={}, body=BODY, reason="r",
                           status_code=422)
    store = IntakeStore(engine, keyring=ring)
    assert store.get(old)["body"] == BODY
    new = store.quarantine(source="shopify", topic=None, delivery_id="wh-new", headers={}, body=b"{}", reason="r",
                           status_code=422)
    with engine.begin() as conn:  # copy the sealed body onto another delivery's row
        sealed = conn.execute(select(db.quarantine.c.body).where(db.quarantine.c.id == new)).scalar_one()
        conn.execute(update(db.quarantine).where(db.quarantine.c.id == old).values(body=sealed))
    moved = store.get(old)  # refused, and said so: the listing still answers
    assert moved["body"] is None and "another context" in moved["body_error"]
    with pytest.raises(ValueError, match="needs the keyring"):
        plain.get(new)


def test_a_body_sealed_under_a_removed_key_is_reported_not_a_500(engine):
    old_key = f"gone:{base64.b64encode(new_key()).decode()}"
    IntakeStore(engine, keyring=Keyring.from_spec(old_key)).quarantine(
        source="shopify", topic="orders/create", delivery_id="wh-gone", headers={}, body=BODY, reason="mapping",
        status_code=422)
    settings = Settings(_env_file=None, codec_keys=f"now:{base64.b64encode(new_key()).decode()}")
    http = TestClient(create_app(settings, engine=engine), raise_server_exceptions=False)
    analyst = headers(make_key(engine, "analyst"))
    listed = http.get("/ops/quarantine", headers=analyst)
    assert listed.status_code == 200, listed.text
    [item] = listed.json()
    assert item["body_preview"].startswith("unreadable:") and "gone" in item["body_preview"], item
    assert http.get(f"/ops/quarantine/{item['id']}", headers=analyst).status_code == 200
    replay = http.post(f"/ops/quarantine/{item['id']}/replay", headers=analyst)
    assert replay.status_code == 409 and "RETAILFLOW_CODEC_KEYS" in replay.json()["detail"], replay.text


def test_the_api_seals_quarantined_deliveries_and_shows_analysts_the_body(engine):
    spec = f"api1:{base64.b64encode(new_key()).decode()}"
    settings = Settings(_env_file=None, codec_keys=spec, shopify_webhook_secret=SecretStr("s3cret"))
    app = create_app(settings, engine=engine)
    http = TestClient(app)
    resp = http.post("/webhooks/shopify", content=BODY, headers={
        "Content-Type": "application/json", "X-Shopify-Topic": "orders/create", "X-Shopify-Webhook-Id": "wh-x",
        "X-Shopify-Hmac-Sha256": "forged"})
    assert resp.status_code == 401
    [raw] = raw_bodies(engine)
    assert is_sealed(raw) and not any(p in raw for p in PERSONAL)
    analyst = http.get("/ops/quarantine", params={"resolved": "false"}, headers=headers(make_key(engine, "analyst")))
    assert analyst.status_code == 200, analyst.text
    preview = analyst.json()[0]["body_preview"]
    assert preview and "jon@example.com" in preview  # the kept prefix, opened for an analyst
