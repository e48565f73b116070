"""Hostile bodies through the HTTP intake, in process (httpx.ASGITransport: no server), correctly signed.

Every webhook route (Shopify orders/create, orders/cancelled and refunds/create; Square; the embedded WMS's
shipment and receipt events; ShipStation SHIP_NOTIFY and the shipments it fetches) gets mutated fixture bodies
and raw bytes with a valid signature, and hostile signature headers; the JSON routes (POS batches, inventory
events, returns) get mutated bodies with an admin key. The answer is never 5xx. A refused webhook delivery is a
4xx with a readable `detail` and a quarantined copy holding exactly the bytes sent (a bounded prefix for a bad
signature); a refused JSON request is a 4xx naming the field."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from adapters.http import VendorHttp
from adapters.marketplace import shopify
from adapters.platform.intake_store import IntakeStore
from adapters.pos import square
from adapters.wms.local import SIGNATURE_HEADER, sign
from adapters.wms.shipstation import ShipStationWms
from api.app import create_app
from runtime.settings import Settings
from tests.auth import headers as key_headers
from tests.auth import make_key
from tests.fuzz import report
from tests.fuzz.strategies import FUZZ, fixture_json, mutated, raw_bodies, to_json
from tests.fuzz.temporal_fake import FakeTemporal

SHOPIFY_SECRET, SQUARE_KEY, WMS_SECRET = "fuzz-shopify-secret", "fuzz-square-key", "fuzz-wms-secret"
SQUARE_URL = "https://retail.example/webhooks/square"
SHIPSTATION = "https://ssapi.shipstation.com"
NOTIFY = {"resource_url": f"{SHIPSTATION}/shipments?batchId=1&includeShipmentItems=False",
          "resource_type": "SHIP_NOTIFY"}


class Intake:
    """The app over the test database with a fake Temporal and a mocked ShipStation API, and what it answered."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.settings = Settings(shopify_webhook_secret=SecretStr(SHOPIFY_SECRET),
                                 square_webhook_signature_key=SecretStr(SQUARE_KEY), square_notification_url=SQUARE_URL,
                                 local_wms_webhook_secret=SecretStr(WMS_SECRET))
        self.temporal = FakeTemporal()
        self.app = create_app(self.settings, engine=engine, client=self.temporal)
        self.shipments_answer: Any = {"shipments": [], "pages": 1}
        self.app.state.shipstation_wms = ShipStationWms(VendorHttp(
            "shipstation", SHIPSTATION, transport=httpx.MockTransport(self._shipstation)))
        self.loop = asyncio.new_event_loop()
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app, raise_app_exceptions=False),
                                      base_url="http://intake.test")
        self.ids = itertools.count(1)
        self.counts: Counter[str] = Counter()
        self.store = IntakeStore(engine, keyring=self.app.state.keyring)  # bodies are sealed at rest
        self.admin = key_headers(make_key(engine, "admin"))

    def _shipstation(self, request: httpx.Request) -> httpx.Response:
        answer = self.shipments_answer
        if isinstance(answer, bytes):
            return httpx.Response(200, content=answer, headers={"content-type": "application/json"})
        return httpx.Response(200, content=to_json(answer), headers={"content-type": "application/json"})

    def close(self) -> None:
        self.loop.run_until_complete(self.http.aclose())
        self.loop.close()

    def post(self, path: str, body: bytes, headers: dict[str, Any], *, webhook: bool = True,
             unsigned: bool = False, vendor_broken: bool = False) -> httpx.Response:
        """`vendor_broken`: the fault is in a vendor API's answer (not JSON at all), not in the request: the
        documented answer is 503 with Retry-After and a quarantined copy, so the sender delivers again."""
        response = self.loop.run_until_complete(self.http.post(path, content=body, headers=headers))
        self.counts["inputs"] += 1
        status = response.status_code
        if vendor_broken and status == 503:
            assert response.headers.get("retry-after") and response.json().get("quarantine_id"), response.text
            self._check_quarantined(response, body, unsigned=False)
            self.counts["503 (vendor answer not JSON)"] += 1
            return response
        self.counts[f"{status // 100}xx"] += 1
        if status >= 500 and (qid := response.json().get("quarantine_id")):
            row = self.store.get(qid)
            raise AssertionError(f"{path} answered {status}: {row['reason'] if row else response.text[:500]}")
        assert status < 500, f"{path} answered {status}: {response.text[:500]}"
        if status >= 400:
            detail = response.json().get("detail")
            assert detail, f"{status} without a detail: {response.text[:300]}"
            assert json.dumps(detail, ensure_ascii=False).encode("utf-8")
            if webhook and status != 413:
                self._check_quarantined(response, body, unsigned=unsigned)
        return response

    def _check_quarantined(self, response: httpx.Response, body: bytes, *, unsigned: bool) -> None:
        qid = response.json().get("quarantine_id")
        if response.status_code == 401 and qid is None:  # ShipStation's ?token= refusal keeps nothing
            return
        assert qid, f"{response.status_code} kept no quarantined copy: {response.text[:300]}"
        row = self.store.get(qid)
        assert row is not None
        kept = bytes(row["body"])
        if unsigned:
            assert body.startswith(kept) and len(kept) <= self.settings.quarantine_unsigned_bytes
        else:
            assert kept == body, "the quarantined copy is not the raw body"
        self.counts["quarantined"] += 1

    # -- signed deliveries per source ----------------------------------------------------------------------------
    def shopify(self, topic: str, body: bytes) -> httpx.Response:
        return self.post("/webhooks/shopify", body, {
            "Content-Type": "application/json", "X-Shopify-Topic": topic, "X-Shopify-Webhook-Id": f"wh-{next(self.ids)}",
            "X-Shopify-Triggered-At": datetime.now(UTC).isoformat(),
            "X-Shopify-Hmac-Sha256": shopify.compute_hmac(body, SHOPIFY_SECRET)})

    def square(self, body: bytes) -> httpx.Response:
        return self.post("/webhooks/square", body, {
            "Content-Type": "application/json", square.SIGNATURE_HEADER: square.signature(SQUARE_KEY, SQUARE_URL, body)})

    def wms(self, body: bytes) -> httpx.Response:
        return self.post("/webhooks/wms/local", body, {"Content-Type": "application/json",
                                                        SIGNATURE_HEADER: sign(body, WMS_SECRET)})


@pytest.fixture
def intake(engine):
    it = Intake(engine)
    yield it
    it.close()


def _fresh_square(doc: Any) -> Any:
    """The published Square fixtures are from 2020: a delivery now carries a `created_at` of now."""
    if isinstance(doc, dict) and doc.get("created_at") == "__now__":
        doc["created_at"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return doc


def _with_now(doc: dict) -> dict:
    return {**doc, "created_at": "__now__"}


SHOPIFY_ORDER = fixture_json("shopify", "webhook_orders_create_sample_v2024.json")
SHOPIFY_REFUND = fixture_json("shopify", "webhook_refunds_create_sample.json")
SQUARE = [_with_now(fixture_json("square", f"webhook_{n}_example.json")) for n in (
    "payment.created", "payment.updated", "refund.created", "order.created", "order.updated")]
SQUARE[1]["data"]["object"]["payment"]["status"] = "COMPLETED"  # a payment that carries money
SHIPMENT = fixture_json("shipstation", "v1_shipment_docs_example.json")
WMS_SHIPMENT = {"type": "shipment.shipped", "event_id": "evt-1", "external_ref": "order:shopify:1",
                "shipment": {"shipment_id": "SHP-1", "carrier": "LOCAL-POST", "tracking_number": "LP1",
                             "shipped_at": "2026-01-05T10:00:00+00:00",
                             "lines": [{"line_id": "1", "channel_sku": "SKU-1", "quantity": 1}]}}
RECEIPT = {"type": "return.received", "event_id": "evt-2", "external_ref": "return:shopify:r1",
           "receipt": {"receipt_id": "rcpt-1", "return_id": "r1", "received_at": "2026-01-05T10:00:00Z",
                       "lines": [{"line_id": "1", "quantity": 1, "condition": "resellable"}]}}


def _bodies(doc: Any, *, pinned: tuple = ()) -> st.SearchStrategy[bytes]:
    return st.one_of(mutated(doc, pinned=pinned, times=3).map(lambda d: to_json(_fresh_square(d))),
                     raw_bodies(to_json(doc)))


def finish(test_id: str, intake: Intake, *, injects: str) -> None:
    c = intake.counts
    extra = {k: v for k, v in c.items() if k.startswith("503 (")}
    report(f"{test_id}[{intake.engine.dialect.name}]", injects=injects, inputs=c["inputs"],
           **{"2xx": c["2xx"], "4xx": c["4xx"], "5xx": c["5xx"]}, **extra, quarantined=c["quarantined"],
           invariant="never 5xx; each refusal a 4xx with a detail and a quarantined copy of the raw body")
    assert c["5xx"] == 0 and c["4xx"] > 0 and c["quarantined"] > 0


def test_shopify_webhooks(intake):
    @FUZZ
    @given(st.sampled_from(["orders/create", "orders/cancelled", "refunds/create"]), st.data())
    def prop(topic, data):
        doc = SHOPIFY_REFUND if topic == "refunds/create" else SHOPIFY_ORDER
        intake.shopify(topic, data.draw(_bodies(doc)))

    prop()
    finish("fuzz/http/shopify", intake, injects="signed mutated orders/create, orders/cancelled, refunds/create "
           "bodies and raw bytes")


def test_square_webhook(intake):
    @FUZZ
    @given(st.sampled_from(range(len(SQUARE))), st.data())
    def prop(i, data):
        intake.square(data.draw(_bodies(SQUARE[i], pinned=(("type",),))))

    prop()
    finish("fuzz/http/square", intake, injects="signed mutated Square notifications and raw bytes")


def test_wms_webhook(intake):
    intake.temporal.running |= {WMS_SHIPMENT["external_ref"], RECEIPT["external_ref"]}  # the runs they signal
    @FUZZ
    @given(st.sampled_from([WMS_SHIPMENT, RECEIPT]), st.data())
    def prop(doc, data):
        intake.wms(data.draw(_bodies(doc, pinned=(("type",),))))

    prop()
    finish("fuzz/http/wms", intake, injects="signed mutated shipment.shipped and return.received events, raw bytes")


def test_shipstation_webhook(intake):
    intake.temporal.running.add(SHIPMENT["orderKey"])  # the order run the shipment is signalled to
    @FUZZ
    @given(st.booleans(), st.data())
    def prop(mutate_notice, data):
        if mutate_notice:
            body = data.draw(_bodies(NOTIFY))
            intake.shipments_answer = {"shipments": [SHIPMENT], "pages": 1}
        else:
            body = to_json(NOTIFY)
            intake.shipments_answer = data.draw(st.one_of(
                mutated({"shipments": [SHIPMENT], "total": 1, "page": 1, "pages": 1}, times=3),
                raw_bodies(to_json({"shipments": [SHIPMENT], "pages": 1}))))
        intake.post("/webhooks/shipstation", body, {"Content-Type": "application/json"},
                    vendor_broken=isinstance(intake.shipments_answer, bytes))

    prop()
    finish("fuzz/http/shipstation", intake, injects="mutated SHIP_NOTIFY bodies and mutated shipments answers from "
           "the ShipStation API")


HOSTILE_HEADERS = [b"", b" ", b"\xff\xfe\xfd", "é".encode("latin-1"), "☃".encode(), b"A" * 8000, b"=" * 44,
                   b"not base64!!", b"\x7f\x01"]


def test_hostile_signatures_are_401_and_keep_a_bounded_prefix(intake):
    body = to_json(SHOPIFY_ORDER) * 40  # beyond what an unsigned delivery may keep

    @FUZZ
    @given(st.sampled_from(["shopify", "square", "wms"]), st.sampled_from(HOSTILE_HEADERS) | st.binary(max_size=60))
    def prop(source, value):
        value = value.replace(b"\r", b"").replace(b"\n", b"")
        path, name = {"shopify": ("/webhooks/shopify", "X-Shopify-Hmac-Sha256"),
                      "square": ("/webhooks/square", square.SIGNATURE_HEADER),
                      "wms": ("/webhooks/wms/local", SIGNATURE_HEADER)}[source]
        response = intake.post(path, body, {"Content-Type": "application/json", "X-Shopify-Topic": "orders/create",
                                            name: value}, unsigned=True)
        assert response.status_code == 401, response.text[:300]

    prop()
    finish("fuzz/http/hostile-signatures", intake, injects="non-ASCII, empty, huge and random signature headers on "
           "a large body")


def _pos_batch() -> dict:
    return {"transactions": [{"pos_transaction_id": "pos-1", "store_id": "S1", "business_date": "2026-01-05",
                              "kind": "sale", "occurred_at": "2026-01-05T10:00:00Z", "currency": "USD",
                              "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price": "5.00"}],
                              "tenders": [{"type": "cash", "amount": "5.00"}]}]}


def _inventory() -> dict:
    return {"events": [{"kind": "receipt", "source": "wms", "source_event_id": "e-1", "sku": "SKU-1",
                        "location": "WH1", "quantity": 5, "occurred_at": "2026-01-05T10:00:00Z"}]}


def _return() -> dict:
    return {"channel": "shopify", "return_id": "r-1", "external_order_id": "1",
            "requested_at": "2026-01-05T10:00:00Z", "lines": [{"line_id": "1", "quantity": 1, "reason": "damaged"}]}


def test_json_routes(intake):
    routes = {"/pos/batches": _pos_batch(), "/inventory/events": _inventory(), "/returns": _return()}

    @FUZZ
    @given(st.sampled_from(sorted(routes)), st.data())
    def prop(path, data):
        body = data.draw(_bodies(routes[path]))
        response = intake.post(path, body, {"Content-Type": "application/json", **intake.admin}, webhook=False)
        if response.status_code == 422:
            detail = response.json()["detail"]
            assert isinstance(detail, list) and all(d.get("loc") for d in detail), detail

    prop()
    c = intake.counts
    report(f"fuzz/http/json-routes[{intake.engine.dialect.name}]", injects="mutated POS batches, inventory event "
           "batches and return requests, raw bytes, with an admin key", inputs=c["inputs"],
           **{"2xx": c["2xx"], "4xx": c["4xx"], "5xx": c["5xx"]},
           invariant="never 5xx; each refusal a 4xx naming the field (422 `loc`)")
    assert c["5xx"] == 0 and c["4xx"] > 0 and c["2xx"] >= 0
