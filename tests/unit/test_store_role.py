"""The `store` role (canonical/access.py, api/auth.py `require_store`): a store's staff list and move their own
stores' fulfillment requests (`/pos/stores/{store}/fulfillments`) and nothing else; analysts and admins keep
every store. Its scope is an API key's `stores` (migration 0018, `retailflow keys create --role store --store …`)
or an OIDC token's store claim. SQLite and PostgreSQL (the `engine` fixture); Temporal is a recording stand-in."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from adapters.platform.api_keys import ApiKeyStore
from adapters.pos.fulfillment import EmbeddedStoreFulfillment, StoreFulfillmentBook
from adapters.sql import make_engine
from api.app import create_app
from api.auth import OidcVerifier, Role
from api.masking import MASK
from canonical.access import highest_role, store_ids
from canonical.sourcing import (
    StoreFulfillmentKind,
    StoreFulfillmentLine,
    StoreFulfillmentRequest,
    StoreFulfillmentState,
    release_reference,
)
from retailflow.cli import app as cli
from retailflow.migrate import current_revision, upgrade_database
from runtime.settings import Settings
from tests.auth import headers
from tests.unit.test_auth_oidc import AUD, ISS, _jwks, token
from tests.unit.test_migrations import empty_db_url  # noqa: F401  (the fixture: an empty SQLite / PostgreSQL)

PICKUP = release_reference("order:shopify:2001", "STORE-001", 1)
SHIPMENT = release_reference("order:shopify:2002", "STORE-001", 2)
OTHER = release_reference("order:shopify:2003", "STORE-002", 1)  # another store's pick-up


class _Temporal:
    def __init__(self) -> None:
        self.signals: list[tuple[str, str, Any]] = []

    async def get(self):
        return self

    def get_workflow_handle(self, wf_id: str):
        temporal = self

        class Handle:
            async def signal(self, name: str, arg: Any) -> None:
                temporal.signals.append((wf_id, name, arg))

        return Handle()


def _request(ref: str, store: str, kind: StoreFulfillmentKind, recipient: str | None) -> StoreFulfillmentRequest:
    return StoreFulfillmentRequest(ref=ref, store_id=store, location=store, order_ref=ref.split("/")[0], kind=kind,
                                   lines=[StoreFulfillmentLine(line_id="1", item_code="MUG", quantity=1)],
                                   recipient=recipient)


@pytest.fixture
def setup(engine):
    app = create_app(Settings(_env_file=None), engine=engine)
    temporal = _Temporal()
    app.state.temporal = temporal
    pos = EmbeddedStoreFulfillment(engine)
    pos.request_fulfillment(_request(PICKUP, "STORE-001", StoreFulfillmentKind.PICKUP, "Jana Novak"))
    pos.request_fulfillment(_request(SHIPMENT, "STORE-001", StoreFulfillmentKind.SHIPMENT, "Ole Berg"))
    pos.request_fulfillment(_request(OTHER, "STORE-002", StoreFulfillmentKind.PICKUP, "Ida Lund"))
    store = ApiKeyStore(engine)
    keys = {name: store.create(name, role, stores=stores)[1] for name, role, stores in (
        ("till-mitte", "store", ["STORE-001"]), ("till-both", "store", ["STORE-001", "STORE-002"]),
        ("kim", "analyst", None), ("vic", "viewer", None))}
    return TestClient(app, raise_server_exceptions=False), temporal, keys, engine


def test_a_store_key_moves_its_own_stores_request_and_is_the_actor(setup):
    http, temporal, keys, engine = setup
    resp = http.post(f"/pos/stores/STORE-001/fulfillments/{PICKUP}/picked", headers=headers(keys["till-mitte"]))
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"workflow_id": "order:shopify:2001", "ref": PICKUP, "state": "PREPARED", "changed": True,
                           "actor": "key:till-mitte"}
    assert http.post(f"/pos/stores/STORE-001/fulfillments/{PICKUP}/collected",
                     headers=headers(keys["till-mitte"])).status_code == 202
    # the order is told with the key as the actor; its history line reads "key:till-mitte: store STORE-001 …"
    # (workflows/order_fulfillment.py names the release's store node, the reference's middle part)
    assert [(wf, e.state, e.actor, e.ref.split("/")[1]) for wf, _, e in temporal.signals] == [
        ("order:shopify:2001", StoreFulfillmentState.PREPARED, "key:till-mitte", "STORE-001"),
        ("order:shopify:2001", StoreFulfillmentState.COMPLETED, "key:till-mitte", "STORE-001")]
    row = StoreFulfillmentBook(engine, "embedded").row(PICKUP)
    assert (row.store_id, row.state, row.prepared_by, row.completed_by) == (
        "STORE-001", "COMPLETED", "key:till-mitte", "key:till-mitte")


def test_another_stores_path_or_reference_is_403_and_nothing_moves(setup):
    http, temporal, keys, engine = setup
    till = headers(keys["till-mitte"])
    resp = http.get("/pos/stores/STORE-002/fulfillments", headers=till)
    assert resp.status_code == 403 and resp.json()["detail"] == (
        "key:till-mitte (store of STORE-001) may not act for store STORE-002")
    resp = http.post(f"/pos/stores/STORE-002/fulfillments/{OTHER}/picked", headers=till)
    assert resp.status_code == 403 and "may not act for store STORE-002" in resp.json()["detail"]
    # its own store's path with another store's reference
    resp = http.post(f"/pos/stores/STORE-001/fulfillments/{OTHER}/picked", headers=till)
    assert resp.status_code == 403, resp.text
    assert resp.json()["detail"] == (f"fulfillment {OTHER} is another store's; key:till-mitte acts for STORE-001 "
                                     "only")
    # an unknown reference at its own store is what it is for everyone: 404
    unknown = release_reference("order:shopify:9", "STORE-001", 1)
    assert http.post(f"/pos/stores/STORE-001/fulfillments/{unknown}/picked", headers=till).status_code == 404
    assert temporal.signals == []
    assert StoreFulfillmentBook(engine, "embedded").row(OTHER).state == "PROPOSED"
    # a key of both stores moves both; under the wrong store's path its other store's ref is not found (404)
    both = headers(keys["till-both"])
    assert http.post(f"/pos/stores/STORE-001/fulfillments/{OTHER}/picked", headers=both).status_code == 404
    assert http.post(f"/pos/stores/STORE-002/fulfillments/{OTHER}/picked", headers=both).status_code == 202
    assert [(f["ref"], f["state"]) for f in http.get("/pos/stores/STORE-002/fulfillments", headers=both).json()] \
        == [(OTHER, "PREPARED")]


def test_a_store_key_is_refused_everywhere_else(setup):
    http, temporal, keys, _ = setup
    till = headers(keys["till-mitte"])
    for method, path in (("GET", "/orders"), ("GET", "/orders/shopify/2001"), ("GET", "/ops/needs-attention"),
                         ("GET", "/ops/audit/order:shopify:2001"), ("GET", "/inventory/MUG"),
                         ("POST", "/orders/shopify/2001/actions/retry"), ("POST", "/pos/batches"),
                         ("GET", "/storedays/STORE-001/2026-12-06"),
                         ("POST", "/storedays/STORE-001/2026-12-06/actions/cancel"), ("POST", "/codec/decode"),
                         ("GET", "/codec/whoami")):
        resp = http.request(method, path, headers=till, json={})
        assert resp.status_code == 403, (method, path, resp.text)
        assert resp.json()["detail"].startswith("key:till-mitte (store of STORE-001) may only list and move its "
                                                "stores' fulfillments"), (method, path)
    assert temporal.signals == []


def test_analysts_keep_every_store_and_viewers_the_list(setup):
    http, temporal, keys, _ = setup
    kim, vic = headers(keys["kim"]), headers(keys["vic"])
    assert http.post(f"/pos/stores/STORE-002/fulfillments/{OTHER}/accepted", headers=kim).status_code == 202
    assert http.post(f"/pos/stores/STORE-001/fulfillments/{SHIPMENT}/picked", headers=kim).status_code == 202
    # an analyst under the wrong store's path: not found, as before the store role
    assert http.post(f"/pos/stores/STORE-001/fulfillments/{OTHER}/picked", headers=kim).status_code == 404
    assert [e.actor for _, _, e in temporal.signals] == ["key:kim", "key:kim"]
    assert http.get("/pos/stores/STORE-002/fulfillments", headers=vic).status_code == 200
    resp = http.post(f"/pos/stores/STORE-001/fulfillments/{PICKUP}/picked", headers=vic)
    assert resp.status_code == 403 and "it needs: store, analyst, admin" in resp.json()["detail"]


def test_the_list_shows_the_recipients_name_to_the_store_and_analysts_masked_below(setup):
    http, _, keys, _ = setup
    till = http.get("/pos/stores/STORE-001/fulfillments", headers=headers(keys["till-mitte"]))
    assert till.status_code == 200, till.text
    assert [(f["ref"], f["kind"], f["recipient_name"]) for f in till.json()] == [
        (PICKUP, "PICKUP", "Jana Novak"), (SHIPMENT, "SHIPMENT", "Ole Berg")]
    # a name and nothing else personal: the request holds no e-mail, phone or address
    assert set(till.json()[0]) == {"ref", "store_id", "kind", "state", "external_id", "lines", "recipient_name"}
    analyst = http.get("/pos/stores/STORE-001/fulfillments", headers=headers(keys["kim"])).json()
    assert [f["recipient_name"] for f in analyst] == ["Jana Novak", "Ole Berg"]
    viewer = http.get("/pos/stores/STORE-001/fulfillments", headers=headers(keys["vic"])).json()
    assert [(f["ref"], f["recipient_name"]) for f in viewer] == [(PICKUP, MASK), (SHIPMENT, MASK)]


def test_store_keys_need_their_stores_and_the_other_roles_take_none(engine):
    store = ApiKeyStore(engine)
    record, key = store.create("till-1", "store", stores=["STORE-002", "STORE-001", "STORE-002"])
    assert record.stores == ("STORE-001", "STORE-002")
    assert store.verify(key).stores == ("STORE-001", "STORE-002") and store.get("till-1").role is Role.store
    assert {r.name: r.stores for r in store.list()} == {"till-1": ("STORE-001", "STORE-002")}
    _, analyst = store.create("ana", "analyst")
    assert store.verify(analyst).stores == ()
    with pytest.raises(ValueError, match="needs the store id"):
        store.create("till-2", "store")
    with pytest.raises(ValueError, match="needs the store id"):
        store.create("till-3", "store", stores=[])
    with pytest.raises(ValueError, match="store ids are for store keys only"):
        store.create("vic", "viewer", stores=["STORE-001"])
    for bad in ("", "STORE 1", "x" * 65, "/etc", "STORE-1/../2"):
        with pytest.raises(ValueError, match="bad store id"):
            store.create("till-4", "store", stores=[bad])
    assert [r.name for r in store.list()] == ["till-1", "ana"]
    assert not store.has_active(Role.admin) and store.has_active(Role.store)


def test_store_is_the_lowest_role_and_store_claims_read_like_role_claims():
    assert highest_role(["store"]) is Role.store
    assert highest_role(["store", "viewer"]) is Role.viewer  # any other role wins; its scope is unused
    assert highest_role("rf-till", {"rf-till": "store"}) is Role.store
    assert store_ids("STORE-001, STORE-002") == {"STORE-001", "STORE-002"}
    assert store_ids(["STORE-001", 7, "bad id"]) == {"STORE-001"}
    assert store_ids(["grp-mitte", "grp-hr"], {"grp-mitte": "STORE-001"}) == {"STORE-001"}  # unmapped: ignored
    assert store_ids(None) == frozenset() and store_ids({"a": 1}) == frozenset()


@pytest.fixture
def oidc(tmp_path, engine):
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(_jwks()))
    settings = Settings(_env_file=None, oidc_issuer=ISS, oidc_audience=AUD, oidc_jwks_file=jwks,
                        oidc_role_map={"rf-till": "store"}, oidc_store_claim="retailflow.stores")
    app = create_app(settings, engine=engine)
    app.state.temporal = _Temporal()
    EmbeddedStoreFulfillment(engine).request_fulfillment(
        _request(PICKUP, "STORE-001", StoreFulfillmentKind.PICKUP, "Jana Novak"))
    return settings, TestClient(app, raise_server_exceptions=False), app.state.temporal


def test_an_oidc_store_token_carries_its_stores_from_the_store_claim(oidc):
    settings, http, temporal = oidc
    verifier = OidcVerifier(settings)
    who = verifier.verify(token(roles=["rf-till"], retailflow={"stores": ["STORE-001"]}))
    assert (who.name, who.role, who.stores) == ("oidc:user-42", Role.store, frozenset({"STORE-001"}))
    assert verifier.verify(token(roles=["analyst"], retailflow={"stores": ["STORE-001"]})).stores == frozenset()
    till = {"Authorization": f"Bearer {token(roles=['rf-till'], retailflow={'stores': 'STORE-001'})}"}
    assert http.get("/pos/stores/STORE-001/fulfillments", headers=till).json()[0]["recipient_name"] == "Jana Novak"
    assert http.get("/pos/stores/STORE-002/fulfillments", headers=till).status_code == 403
    assert http.get("/ops/needs-attention", headers=till).status_code == 403
    resp = http.post(f"/pos/stores/STORE-001/fulfillments/{PICKUP}/picked", headers=till)
    assert resp.status_code == 202 and resp.json()["actor"] == "oidc:user-42"
    assert temporal.signals[-1][2].actor == "oidc:user-42"
    # a store role without a store is no principal at all
    for claim in ({}, {"stores": []}, {"stores": "../x #1"}):
        bare = {"Authorization": f"Bearer {token(roles=['rf-till'], retailflow=claim)}"}
        resp = http.get("/pos/stores/STORE-001/fulfillments", headers=bare)
        assert resp.status_code == 403 and "names no store in its 'retailflow.stores' claim" in resp.text, claim


def test_0018_adds_the_scope_and_keeps_the_keys_there_are(empty_db_url):  # noqa: F811
    from alembic import command

    from adapters import sql as db
    from retailflow.migrate import alembic_config

    upgrade_database(empty_db_url, "0017")
    eng = db.make_engine(empty_db_url)
    try:
        with eng.begin() as conn:  # a key as the code of 0017 wrote it: no `stores` column named
            conn.execute(db.api_keys.insert().values(key_id="k1", name="ana", role="analyst", secret_sha256="0" * 64,
                                                     created_at=datetime.now(UTC)))
    finally:
        eng.dispose()
    assert upgrade_database(empty_db_url).before == "0017"
    engine = db.make_engine(empty_db_url)
    try:
        store = ApiKeyStore(engine)
        assert [(r.name, r.role, r.stores) for r in store.list()] == [("ana", Role.analyst, ())]
        store.create("till", "store", stores=["STORE-001"])
        assert store.get("till").stores == ("STORE-001",)
        with engine.begin() as conn:  # down again: the column goes, and the store keys with it
            cfg = alembic_config(empty_db_url)
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0017")
        with engine.connect() as conn:
            assert current_revision(conn) == "0017"
            assert conn.execute(text("SELECT name FROM api_keys")).scalars().all() == ["ana"]
    finally:
        engine.dispose()
    assert upgrade_database(empty_db_url).after == "0018"


def _cli(*args: str, url: str):
    from runtime.settings import get_settings

    get_settings.cache_clear()
    try:
        return CliRunner().invoke(cli, list(args), env={"RETAILFLOW_DATABASE_URL": url, "RETAILFLOW_LOG_JSON": "true"})
    finally:
        get_settings.cache_clear()


def test_keys_create_takes_the_stores_of_a_store_key_and_keys_list_shows_them(tmp_path):
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    made = _cli("keys", "create", "--name", "till-mitte", "--role", "store", "--store", "STORE-001",
                "--store", "STORE-002", url=url)
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[0]
    assert key.startswith("rfk_") and "stores STORE-001, STORE-002" in made.stderr
    refused = _cli("keys", "create", "--name", "till-x", "--role", "store", url=url)
    assert refused.exit_code == 2 and "needs the store id(s) it acts for (--store STORE-001)" in refused.stderr
    refused = _cli("keys", "create", "--name", "vic", "--role", "viewer", "--store", "STORE-001", url=url)
    assert refused.exit_code == 2 and "store ids are for store keys only" in refused.stderr
    assert _cli("keys", "create", "--name", "ana", "--role", "analyst", url=url).exit_code == 0
    listed = _cli("keys", "list", url=url)
    assert listed.exit_code == 0, listed.output
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:]}
    assert rows["till-mitte"][1] == "store" and rows["till-mitte"][-1] == "STORE-001,STORE-002"
    assert rows["ana"][1] == "analyst" and rows["ana"][-1] == "-"
    assert "STORES" in listed.stdout.splitlines()[0]
    engine = make_engine(url)
    try:
        assert ApiKeyStore(engine).verify(key).stores == ("STORE-001", "STORE-002")
    finally:
        engine.dispose()
