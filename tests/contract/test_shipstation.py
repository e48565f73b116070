"""ShipStation V1: the published shipment and SHIP_NOTIFY payloads (tests/fixtures/shipstation, unchanged) through
our mapping; the adapter against the sandbox (create, idempotency, cancel, amend, SHIP_NOTIFY → shipments) and
every fault mode; the sandbox's shipments checked against the published shape; the intake route's handler."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI, Request

from adapters.http import VendorHttp, VendorRateLimited, VendorUnavailable
from adapters.wms import shipstation as ss
from canonical.errors import CannotCancel
from canonical.fulfillment import ResolvedLine
from canonical.order import Address, Shipment
from canonical.vendor_errors import VendorAuthFailed
from sandbox.faults import FaultInjector
from sandbox.shipstation import create_app
from tests.conftest import fixture_bytes
from tests.contract.serve_sandbox import serve

SHIPMENT = json.loads(fixture_bytes("shipstation", "v1_shipment_docs_example.json"))
NOTIFY = json.loads(fixture_bytes("shipstation", "webhook_SHIP_NOTIFY_real_capture_metactical.json"))
KEY, SECRET = "k-test", "s-test"
TO = Address(name="Steve Shipper", line1="123 Shipping Street", city="Shippington", region="KY", postal_code="40003",
             country="US")
LINES = [ResolvedLine(line_id="487817672276298554", channel_sku="SKU2006-001", item_code="SUN-AVIATOR", quantity=2)]


# -- mapping of the published payloads ----------------------------------------------------------------------------
def test_published_shipment_maps_to_a_canonical_shipment():
    ref, shipment = ss.map_shipment(SHIPMENT)
    assert ref == "8061c220f0794a9b92460b8bae6837e4"
    assert shipment.shipment_id == "shipstation:33974374"
    assert (shipment.carrier, shipment.service, shipment.tracking_number) == (
        "stamps_com", "usps_first_class_mail", "9400111899561704681189")
    # 2014-10-03T06:51:33.627 Pacific (PDT, UTC-7)
    assert shipment.shipped_at == datetime(2014, 10, 3, 13, 51, 33, 627000, tzinfo=UTC)
    assert [(x.line_id, x.channel_sku, x.quantity) for x in shipment.lines] == [(None, "SQ3785739", 1)]


def test_a_shipment_without_items_is_refused_not_guessed():
    with pytest.raises(ss.ShipStationMappingError, match="includeShipmentItems"):
        ss.map_shipment({**SHIPMENT, "shipmentItems": None})


def test_ship_notify_resource_url_is_followed_on_our_host_with_items():
    assert NOTIFY["resource_type"] == "SHIP_NOTIFY"
    path, query = ss.resource_path(NOTIFY["resource_url"])
    assert path == "/shipments"
    assert query == {"batchId": "190671332", "includeShipmentItems": "true"}
    with pytest.raises(ss.ShipStationMappingError):
        ss.resource_path("https://evil.example/admin/secrets?x=1")


def test_createorder_body_has_the_documented_fields():
    body = ss.create_order_body("order:shopify:1", LINES, TO, order_date=datetime(2024, 1, 2, 20, 0, tzinfo=UTC),
                                store_id=12345)
    assert body["orderKey"] == body["orderNumber"] == "order:shopify:1"
    assert body["orderDate"] == "2024-01-02T12:00:00.0000000"  # Pacific, 7 fractional digits like ShipStation
    assert body["orderStatus"] == "awaiting_shipment"
    assert set(body["shipTo"]) >= {"name", "street1", "city", "state", "postalCode", "country"}
    assert body["items"] == [{"lineItemKey": "487817672276298554", "sku": "SKU2006-001", "name": "SUN-AVIATOR",
                              "quantity": 2, "warehouseLocation": None, "fulfillmentSku": "SUN-AVIATOR"}]
    assert body["advancedOptions"] == {"storeId": 12345}


# -- against the sandbox --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def receiver():
    got: list[dict] = []
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> dict:
        got.append({"body": json.loads(await request.body()), "at": time.monotonic()})
        return {}

    with serve(app) as url:
        yield url + "/hook", got


@pytest.fixture(scope="module")
def sandbox(receiver):
    injector = FaultInjector()
    app = create_app(api_key=KEY, api_secret=SECRET, webhook_url=receiver[0], ship_after_seconds=None,
                     injector=injector)
    with serve(app) as url:
        yield app, url, injector


@pytest.fixture
def wms(sandbox):
    app, url, injector = sandbox
    injector.reset()
    http = VendorHttp("shipstation", url, auth=(KEY, SECRET), timeout=2.0)
    yield ss.ShipStationWms(http)
    http.close()


def _ship(url: str, order_id: str) -> dict:
    resp = httpx.post(f"{url}/_admin/ship/{order_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_release_is_idempotent_by_order_key(wms):
    first = wms.release("order:shopify:100", LINES, TO)
    again = wms.release("order:shopify:100", LINES, TO)
    assert first.release_id == again.release_id
    order = wms.find_order("order:shopify:100")
    assert order["orderKey"] == "order:shopify:100" and order["orderStatus"] == "awaiting_shipment"
    assert order["items"][0]["lineItemKey"] == "487817672276298554"


def test_cancel_and_amend(wms, sandbox):
    _, url, _ = sandbox
    wms.release("order:shopify:200", LINES, TO)
    assert wms.amend_release("order:shopify:200", [LINES[0].model_copy(update={"quantity": 1})]) is True
    assert wms.find_order("order:shopify:200")["items"][0]["quantity"] == 1
    assert wms.amend_release("order:shopify:200", [LINES[0].model_copy(update={"quantity": 1})]) is False
    assert wms.cancel_release("order:shopify:200") is True
    assert wms.cancel_release("order:shopify:200") is False
    assert wms.cancel_release("order:shopify:unknown") is False
    ref = wms.release("order:shopify:201", LINES, TO)
    _ship(url, ref.release_id)
    with pytest.raises(CannotCancel):
        wms.cancel_release("order:shopify:201")
    with pytest.raises(CannotCancel):
        wms.amend_release("order:shopify:201", LINES)


def test_ship_notify_then_shipments_resource_maps_back_to_our_lines(wms, sandbox, receiver):
    _, url, _ = sandbox
    _, got = receiver
    got.clear()
    ref = wms.release("order:shopify:300", LINES, TO)
    _ship(url, ref.release_id)
    assert len(got) == 1 and got[0]["body"]["resource_type"] == "SHIP_NOTIFY"
    events = wms.shipment_events(got[0]["body"]["resource_url"])
    assert len(events) == 1
    external_ref, shipment = events[0]
    assert external_ref == "order:shopify:300"
    assert [(x.line_id, x.channel_sku, x.quantity) for x in shipment.lines] == [
        ("487817672276298554", "SKU2006-001", 2)]
    assert shipment.tracking_number and shipment.carrier == "stamps_com"


def test_sandbox_shipments_have_the_published_shape(wms, sandbox, receiver):
    app, url, _ = sandbox
    ref = wms.release("order:shopify:400", LINES, TO)
    batch = _ship(url, ref.release_id)["batchId"]
    body = httpx.get(f"{url}/shipments", params={"batchId": batch, "includeShipmentItems": "true"},
                     auth=(KEY, SECRET)).json()
    assert set(body) == {"shipments", "total", "page", "pages"}
    got = body["shipments"][0]
    assert set(got) == set(SHIPMENT)
    assert set(got["shipmentItems"][0]) == set(SHIPMENT["shipmentItems"][0])
    assert set(got["shipTo"]) == set(SHIPMENT["shipTo"])
    for key in ("shipmentId", "orderId", "warehouseId"):
        assert type(got[key]) is type(SHIPMENT[key])
    without = httpx.get(f"{url}/shipments", params={"batchId": batch, "includeShipmentItems": "False"},
                        auth=(KEY, SECRET)).json()
    assert without["shipments"][0]["shipmentItems"] is None  # as the real capture's resource_url asks
    # the sandbox's own answer maps like the published one
    assert ss.map_shipment(got)[0] == "order:shopify:400"


def test_shipments_pagination_follows_pages(wms, sandbox):
    _, url, _ = sandbox
    ref = wms.release("order:shopify:500", LINES, TO)
    _ship(url, ref.release_id)
    ref2 = wms.release("order:shopify:501", LINES, TO)
    _ship(url, ref2.release_id)
    seen = list(wms.shipments(f"{url}/shipments?pageSize=1"))
    assert len(seen) >= 2 and len({s["shipmentId"] for s in seen}) == len(seen)


# -- fault modes ------------------------------------------------------------------------------------------------
def test_429_becomes_a_retry_after_delay(wms, sandbox):
    sandbox[2].set("GET /orders", {"rate_limit_every": 1, "retry_after_seconds": 7})
    with pytest.raises(VendorRateLimited) as info:
        wms.find_order("order:shopify:x")
    assert info.value.next_retry_delay.total_seconds() == 7 and not info.value.non_retryable


def test_5xx_is_retryable(wms, sandbox):
    sandbox[2].set("POST /orders/createorder", {"error_rate": 1.0, "error_statuses": [500]})
    with pytest.raises(VendorUnavailable) as info:
        wms.release("order:shopify:err", LINES, TO)
    assert info.value.status == 500 and not info.value.non_retryable
    sandbox[2].clear()
    assert wms.release("order:shopify:err", LINES, TO).release_id  # the retry creates it once


def test_timeout_is_retryable(wms, sandbox):
    sandbox[2].set("GET /orders", {"timeout_rate": 1.0, "timeout_seconds": 3})
    with pytest.raises(VendorUnavailable) as info:
        wms.find_order("order:shopify:slow")
    assert info.value.type == "VendorTimeout"


def test_outage_window_answers_503(wms, sandbox):
    sandbox[2].set("*", {"outage_until": "2999-01-01T00:00:00Z", "retry_after_seconds": 30})
    with pytest.raises(VendorUnavailable) as info:
        wms.find_order("order:shopify:down")
    assert info.value.status == 503 and info.value.next_retry_delay.total_seconds() == 30


def test_latency_is_added(wms, sandbox):
    sandbox[2].set("GET /orders", {"latency_ms": 300})
    started = time.monotonic()
    wms.find_order("order:shopify:none")
    assert time.monotonic() - started >= 0.3


def test_wrong_credentials_park(sandbox):
    http = VendorHttp("shipstation", sandbox[1], auth=(KEY, "wrong"))
    with pytest.raises(VendorAuthFailed):
        ss.ShipStationWms(http).find_order("x")


def test_duplicate_and_out_of_order_ship_notify(wms, sandbox, receiver):
    app, url, injector = sandbox
    _, got = receiver
    refs = [wms.release(f"order:shopify:60{i}", LINES, TO) for i in range(2)]
    got.clear()
    injector.set("WEBHOOK SHIP_NOTIFY", {"duplicate_webhooks": True})
    _ship(url, refs[0].release_id)
    assert len(got) == 2 and got[0]["body"] == got[1]["body"]  # same notification twice (at-least-once)
    # the resource is the same both times: the intake dedupes by shipment id (see the handler test below)
    assert wms.shipment_events(got[0]["body"]["resource_url"]) == wms.shipment_events(got[1]["body"]["resource_url"])
    delivered = asyncio.run(_out_of_order(injector))
    assert delivered != ["a", "b", "c"] and sorted(delivered) == ["a", "b", "c"]


async def _out_of_order(injector):
    from sandbox.faults import WebhookDelivery, deliver_webhooks

    injector.set("WEBHOOK SHIP_NOTIFY", {"out_of_order_webhooks": True})
    sent: list[str] = []

    async def send(d):
        sent.append(d.body.decode())
        return 200

    await deliver_webhooks([WebhookDelivery("http://x", s.encode(), {}, "SHIP_NOTIFY") for s in "abc"],
                           injector=injector, send=send)
    return sent


# -- intake: POST /webhooks/shipstation's handler -------------------------------------------------------------------
class _Handle:
    def __init__(self, running: bool, signals: list) -> None:
        self.running, self.signals = running, signals

    async def describe(self):
        from temporalio.client import WorkflowExecutionStatus

        if not self.running:
            from temporalio.service import RPCError, RPCStatusCode

            raise RPCError("not found", RPCStatusCode.NOT_FOUND, b"")
        return type("D", (), {"status": WorkflowExecutionStatus.RUNNING})()

    async def signal(self, name, arg):
        self.signals.append((name, arg))


class _Client:
    def __init__(self, running: set[str]) -> None:
        self.running, self.signals = running, []

    def get_workflow_handle(self, wf_id):
        return _Handle(wf_id in self.running, self.signals)


async def test_intake_signals_each_shipment_once_and_quarantines_orphans(wms, sandbox, engine):
    from api.intake.shipstation import handle_shipstation
    from runtime.settings import Settings

    _, url, _ = sandbox
    ref = wms.release("order:shopify:700", LINES, TO)
    batch = _ship(url, ref.release_id)["batchId"]
    body = json.dumps({"resource_url": f"https://ssapi6.shipstation.com/shipments?batchId={batch}"
                                       "&includeShipmentItems=False", "resource_type": "SHIP_NOTIFY"}).encode()
    client = _Client({"order:shopify:700"})
    state = type("S", (), {"shipstation_wms": wms})()

    async def get():
        return client

    out = await handle_shipstation(engine, get, Settings(), body, {}, app_state=state)
    assert out.status_code == 202, out.body
    assert len(client.signals) == 1 and client.signals[0][0] == "shipment"
    assert isinstance(client.signals[0][1], Shipment) and client.signals[0][1].lines[0].line_id == "487817672276298554"
    again = await handle_shipstation(engine, get, Settings(), body, {}, app_state=state)  # duplicate delivery
    assert again.status_code == 202 and again.body["duplicate"] is True and len(client.signals) == 1
    orphan = await handle_shipstation(engine, _orphan_getter(), Settings(), _batch_body(url, wms), {}, app_state=state)
    assert orphan.status_code == 409 and orphan.body["quarantine_id"]
    bad = await handle_shipstation(engine, get, Settings(), b'{"nope": 1}', {}, app_state=state)
    assert bad.status_code == 422
    ignored = await handle_shipstation(engine, get, Settings(), b'{"resource_url": "x", "resource_type": '
                                       b'"ORDER_NOTIFY"}', {}, app_state=state)
    assert ignored.status_code == 200 and ignored.body["ignored"]


def _orphan_getter():
    async def get():
        return _Client(set())
    return get


def _batch_body(url: str, wms) -> bytes:
    ref = wms.release("order:shopify:701", LINES, TO)
    batch = _ship(url, ref.release_id)["batchId"]
    return json.dumps({"resource_url": f"{url}/shipments?batchId={batch}", "resource_type": "SHIP_NOTIFY"}).encode()
