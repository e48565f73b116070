"""Authentication and roles on the API (api/auth.py), the API keys (adapters/platform/api_keys.py) and the masking
of customers' personal data below analyst (api/masking.py), on SQLite and PostgreSQL.

The route table below is the one README "Access" documents; every route the app serves must be in it or be
exempt (webhooks, /healthz, /metrics, the docs), so a new route cannot escape authentication unnoticed."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import select

from adapters import sql as db
from adapters.marketplace.shopify import map_order
from adapters.platform.api_keys import ApiKeyStore
from api.app import create_app
from api.audit import AuditEntry, audit_answer
from api.auth import Principal, Role
from api.masking import MASK, for_principal
from runtime.settings import Settings
from tests.auth import headers, make_key
from tests.conftest import fixture_bytes

V = frozenset(Role) - {Role.store}  # a store key reads nothing but its stores' fulfillments
A = frozenset({Role.analyst, Role.admin})
F = frozenset({Role.finance, Role.admin})
ROUTES: dict[tuple[str, str], frozenset[Role]] = {
    ("GET", "/orders"): V,
    ("GET", "/orders/{channel}/{external_order_id}"): V,
    ("POST", "/orders/{channel}/{external_order_id}/actions/{action}"): A,
    ("POST", "/orders/{channel}/{external_order_id}/lines/cancel"): A,
    ("GET", "/orders/{channel}/{external_order_id}/audit"): V,
    ("GET", "/ops/quarantine"): V,
    ("GET", "/ops/quarantine/{qid}"): V,
    ("POST", "/ops/quarantine/{qid}/replay"): A,
    ("GET", "/ops/needs-attention"): V,
    ("GET", "/ops/breakers"): V,
    ("GET", "/ops/audit/{workflow_id}"): V,
    ("GET", "/erp/sales-orders"): V,
    ("GET", "/erp/credit-notes"): V,
    ("GET", "/erp/parity"): frozenset({Role.analyst, Role.finance, Role.admin}),  # docs/erp-migration.md
    ("POST", "/returns"): A,
    ("GET", "/returns/{channel}/{return_id}"): V,
    ("POST", "/returns/{channel}/{return_id}/receipts"): A,
    ("POST", "/returns/{channel}/{return_id}/actions/{action}"): A,
    ("GET", "/returns/{channel}/{return_id}/audit"): V,
    ("POST", "/inventory/events"): A,
    ("GET", "/inventory/{sku}"): V,
    ("GET", "/inventory/{sku}/movements"): V,
    ("GET", "/inventory/{sku}/publications"): V,
    ("GET", "/inventory/{sku}/backorders"): V,
    ("GET", "/settlements/{provider}/{settlement_id}"): F,
    ("POST", "/settlements/{provider}/{settlement_id}/actions/{action}"): F,
    ("GET", "/settlements/{provider}/{settlement_id}/audit"): F,
    ("POST", "/pos/batches"): A,
    ("GET", "/storedays/{store_id}/{business_date}"): V,
    ("POST", "/storedays/{store_id}/{business_date}/close"): A,
    ("POST", "/storedays/{store_id}/{business_date}/actions/{action}"): A,
    ("GET", "/pos/stores/{store_id}/fulfillments"): V | {Role.store},  # ship-from-store / click-and-collect
    ("POST", "/pos/stores/{store_id}/fulfillments/{ref:path}/{action}"): A | {Role.store},  # docs/fulfillment.md
    ("POST", "/codec/encode"): V,  # the Temporal Web UI's codec server (api/routers/codec.py)
    ("POST", "/codec/decode"): V,
    ("POST", "/codec/session"): V,  # sign in: sets the rf_session cookie from the key presented
    ("GET", "/codec/whoami"): V,
    ("POST", "/prices/changes"): frozenset({Role.analyst, Role.finance, Role.admin}),  # docs/pricing.md
    ("POST", "/prices/changes/{change_set_id}/{decision}"): F,  # approve / reject
    ("POST", "/prices/changes/{change_set_id}/actions/{action}"): A,
    ("GET", "/prices/changes/{change_set_id}"): V,
    ("GET", "/prices/{sku}"): V,
}
OPEN = {"/healthz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
# the codec's sign-in page and sign-out (clears the cookie) need no credentials
OPEN_ROUTES = {("GET", "/codec/session"), ("DELETE", "/codec/session"),
               # the Shopify app install: Shopify signs these requests (hmac with the app's client secret)
               ("GET", "/shopify/oauth/install"), ("GET", "/shopify/oauth/callback")}
SAMPLE = {"channel": "shopify", "external_order_id": "1", "qid": "1", "workflow_id": "order:shopify:1",
          "return_id": "R1", "sku": "SKU1", "provider": "amazon", "settlement_id": "1", "store_id": "L1",
          "business_date": "2026-01-01", "action": "retry", "change_set_id": "CS1", "decision": "approve",
          "ref": "order:shopify:1/STORE-001/1"}


def _fill(path: str) -> str:
    return path.replace(":path}", "}").format(**SAMPLE)  # a {ref:path} parameter takes slashes


def _routes(app) -> dict[tuple[str, str], object]:
    found = {}
    for ctx in iter_route_contexts(app.routes):
        for method in sorted((ctx.methods or set()) - {"HEAD"}):
            found[(method, ctx.path)] = ctx
    return found


def _allowed(ctx) -> frozenset[Role] | None:
    """The roles the route's `require(...)` dependency admits, None if it has none."""
    dependant = getattr(ctx, "dependant", None)  # Starlette's own routes (the docs) have none
    stack = list(dependant.dependencies) if dependant is not None else []
    while stack:
        dep = stack.pop()
        if (allowed := getattr(dep.call, "allowed", None)) is not None:
            return allowed
        stack.extend(dep.dependencies)
    return None


def _exempt(key: tuple[str, str]) -> bool:
    return key[1].startswith("/webhooks/") or key[1] in OPEN or key in OPEN_ROUTES


@pytest.fixture
def app(engine):
    return create_app(Settings(_env_file=None), engine=engine)


@pytest.fixture
def http(app) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def test_every_route_is_in_the_role_table_or_exempt_and_requires_what_the_table_says(app):
    served = _routes(app)
    protected = {k: ctx for k, ctx in served.items() if not _exempt(k)}
    assert set(protected) - set(ROUTES) == set(), "a route missing from the role table (README 'Access')"
    assert set(ROUTES) - set(protected) == set(), "a route of the role table the app does not serve"
    for key, ctx in protected.items():
        assert _allowed(ctx) == ROUTES[key], key
    for key, ctx in served.items():  # webhooks keep their vendors' signatures; health and metrics stay open
        if _exempt(key):
            assert _allowed(ctx) is None, key
    schema = app.openapi()
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert schema["paths"]["/orders"]["get"]["security"] == [{"bearer": []}, {"apiKey": []}]
    assert {"401", "403"} <= set(schema["paths"]["/ops/quarantine/{qid}/replay"]["post"]["responses"])
    assert "security" not in schema["paths"]["/webhooks/shopify"]["post"]


def test_without_credentials_every_protected_route_answers_401(app, http):
    protected = [k for k in _routes(app) if not _exempt(k)]
    assert len(protected) >= 28
    for method, path in protected:
        resp = http.request(method, _fill(path), json={})
        assert resp.status_code == 401, (method, path, resp.text)
        assert resp.headers["WWW-Authenticate"].startswith("Bearer"), (method, path)
    # health and metrics answer without credentials
    assert http.get("/healthz").status_code == 200 and http.get("/metrics").status_code == 200


def test_each_role_is_refused_with_403_where_the_table_says_and_admitted_elsewhere(app, http, engine):
    keys = {role: make_key(engine, role.value) for role in Role}
    for (method, path), allowed in ROUTES.items():
        if (method, path) not in _routes(app):
            continue
        for role in Role:
            if role in allowed:
                continue
            resp = http.request(method, _fill(path), json={}, headers=headers(keys[role]))
            assert resp.status_code == 403, (role, method, path, resp.text)
            assert role.value in resp.json()["detail"]
    for role in V:  # and every role but store reads what a viewer reads (a route that needs only the database)
        assert http.get("/ops/needs-attention", headers=headers(keys[role])).status_code == 200
    assert http.get("/ops/needs-attention", headers=headers(keys[Role.store])).status_code == 403


def test_a_settlement_trail_through_the_generic_audit_route_needs_finance(http, engine):
    viewer = make_key(engine, "analyst")
    resp = http.get("/ops/audit/settlement:amazon:1", headers=headers(viewer))
    assert resp.status_code == 403 and "finance" in resp.json()["detail"]


def test_api_keys_are_stored_hashed_listed_without_secret_and_verified(engine):
    store = ApiKeyStore(engine)
    record, key = store.create("ana", Role.analyst)
    assert key.startswith(f"rfk_{record.key_id}_") and len(key) > 50
    with engine.connect() as conn:
        row = conn.execute(select(db.api_keys)).mappings().one()
    assert key.split("_", 2)[2] not in json.dumps({k: str(v) for k, v in row.items()})  # only the digest is kept
    assert store.verify(key).name == "ana" and store.verify(key).role is Role.analyst
    assert store.get("ana").last_used_at is not None
    assert [r.name for r in store.list()] == ["ana"] and store.list()[0].state() == "active"
    assert store.has_active(Role.analyst) and not store.has_active(Role.admin)
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    for bad in (tampered, "rfk_", "rfk_x_y", f"rfk_{record.key_id}_", "nope", key + "x", "rfk_" + "0" * 40 + "_s"):
        assert store.verify(bad) is None, bad
    with pytest.raises(ValueError, match="exists already"):
        store.create("ana", "viewer")
    with pytest.raises(ValueError, match="unknown role"):
        store.create("bob", "superuser")
    with pytest.raises(ValueError, match="bad key name"):
        store.create("bad name", "viewer")


def test_expired_and_revoked_keys_answer_401_and_other_credentials_work(http, engine):
    store = ApiKeyStore(engine)
    _, expired = store.create("old", "admin", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    _, later = store.create("later", "viewer", expires_at=datetime.now(UTC) + timedelta(days=1))
    _, revoked = store.create("gone", "admin")
    first = store.revoke("gone").revoked_at
    assert store.revoke("gone").revoked_at == first and store.revoke("nobody") is None
    for key, why in ((expired, "'old' is expired"), (revoked, "'gone' is revoked")):
        resp = http.get("/ops/needs-attention", headers=headers(key))
        assert resp.status_code == 401 and why in resp.json()["detail"], resp.text
        assert resp.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    wrong = later[:-2] + ("xy" if not later.endswith("xy") else "zz")
    resp = http.get("/ops/needs-attention", headers=headers(wrong))
    assert resp.status_code == 401 and resp.json()["detail"] == "invalid API key"
    # no OIDC issuer configured: a bearer that is not an API key is refused
    assert http.get("/ops/needs-attention", headers=headers("eyJhbGciOi.x.y")).status_code == 401
    assert http.get("/ops/needs-attention", headers=headers(later)).status_code == 200
    assert http.get("/ops/needs-attention", headers={"X-API-Key": later}).status_code == 200
    # the session cookie is taken under /codec/ only (the Web UI's codec calls), never elsewhere
    http.cookies.set("rf_session", later)
    try:
        assert http.get("/ops/needs-attention").status_code == 401
    finally:
        http.cookies.clear()


def test_the_actor_is_the_principal_never_the_body(app):
    from api.routers.orders import ActionBody, LineCancelBody

    body = ActionBody.model_validate({"actor": "mallory", "reason": "because"})
    assert "actor" not in body.model_dump()  # ignored: the route records principal.name
    assert "actor" not in LineCancelBody.model_fields and "actor" not in ActionBody.model_fields
    for path, ops in app.openapi()["paths"].items():
        for op in ops.values():
            ref = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            name = ref.get("$ref", "").rsplit("/", 1)[-1]
            if name:
                props = app.openapi()["components"]["schemas"][name].get("properties", {})
                assert "actor" not in props, (path, name)


# -- masking of personal data below analyst -------------------------------------------------------------------

ORDER = map_order(json.loads(fixture_bytes("shopify", "webhook_orders_create_sample_v2024.json")))
PERSONAL = [v for v in (ORDER.customer.email, ORDER.customer.name, ORDER.shipping_address.name,
                        ORDER.shipping_address.line1, ORDER.shipping_address.postal_code,
                        ORDER.shipping_address.phone, ORDER.shipping_address.company) if v]
VIEWER = Principal("key:v", Role.viewer, "api_key")
FINANCE = Principal("key:f", Role.finance, "api_key")
ANALYST = Principal("key:a", Role.analyst, "api_key")


def _entries() -> list[AuditEntry]:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        AuditEntry(time=t, kind="workflow", name="started", summary="OrderFulfillment",
                   input={"order": ORDER.model_dump(mode="json"), "sla_hours": 48}),
        AuditEntry(time=t, kind="step", name="release_to_wms", state="failed",
                   input={"external_ref": "order:shopify:1", "ship_to": ORDER.shipping_address.model_dump(mode="json")},
                   error=f"InvalidAddress: no such street for {ORDER.customer.email}"),
        AuditEntry(time=t, kind="update", name="act", actor="oidc:ana@retailer.example", reason="typo",
                   input={"action": "resume", "actor": "oidc:ana@retailer.example", "reason": "typo",
                          "corrections": {"shipping_address": ORDER.shipping_address.model_dump(mode="json")}}),
    ]


@pytest.mark.parametrize("who", [VIEWER, FINANCE], ids=["viewer", "finance"])
def test_audit_json_and_csv_mask_personal_data_below_analyst(who):
    entries = audit_answer(_entries(), "json", who)
    text = json.dumps([e.model_dump(mode="json") for e in entries])
    for value in PERSONAL:
        assert value not in text, value
    csv_text = audit_answer(_entries(), "csv", who).body.decode()
    for value in PERSONAL:
        assert value not in csv_text, value
    started = entries[0].input["order"]
    assert started["customer"]["email"] == MASK and started["shipping_address"]["line1"] == MASK
    # what is not personal stays: location for tax, the order's lines and money, the staff actor
    assert started["shipping_address"]["country"] == "US" and started["shipping_address"]["region"] == "KY"
    assert [line["channel_sku"] for line in started["lines"]] == [line.channel_sku for line in ORDER.lines]
    assert entries[2].actor == "oidc:ana@retailer.example" and entries[2].input["actor"] == entries[2].actor
    assert list(csv.DictReader(io.StringIO(csv_text)))[2]["actor"] == "oidc:ana@retailer.example"


def test_analysts_see_the_audit_trail_whole():
    text = json.dumps([e.model_dump(mode="json") for e in audit_answer(_entries(), "json", ANALYST)])
    csv_text = audit_answer(_entries(), "csv", ANALYST).body.decode()
    for value in PERSONAL:
        assert value in text, value
    assert ORDER.customer.email in csv_text  # the error column
    assert for_principal(Principal("key:x", Role.admin, "api_key"), {"email": "a@b.example"}) == {
        "email": "a@b.example"}


def test_quarantine_bodies_are_shown_to_analysts_only(http, engine):
    body = fixture_bytes("shopify", "webhook_orders_create_sample_v2024.json").replace(b'"id": 8', b'"id": "x8', 1)
    resp = http.post("/webhooks/shopify", content=b"{" + body, headers={
        "X-Shopify-Topic": "orders/create", "X-Shopify-Webhook-Id": "wh-mask",
        "X-Shopify-Hmac-Sha256": __import__("adapters.marketplace.shopify", fromlist=["x"]).compute_hmac(
            b"{" + body, "retailflow-dev-shopify-secret")})
    assert resp.status_code == 422, resp.text
    qid = resp.json()["quarantine_id"]
    keys = {role: make_key(engine, role) for role in ("viewer", "finance", "analyst", "admin")}
    for role, key in keys.items():
        listed = http.get("/ops/quarantine", headers=headers(key)).json()
        one = http.get(f"/ops/quarantine/{qid}", headers=headers(key)).json()
        assert listed[0]["id"] == qid and listed[0]["size"] > 1000
        if role in ("analyst", "admin"):
            assert ORDER.customer.email in one["body_preview"] and listed[0]["body_preview"] == one["body_preview"]
        else:
            assert one["body_preview"] is None and listed[0]["body_preview"] is None
            assert ORDER.customer.email not in json.dumps(one) + json.dumps(listed)
