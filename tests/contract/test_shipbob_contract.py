"""ShipBob (Developer API 2026-01): the published payloads (tests/fixtures/shipbob, unchanged) through our mapping
and ShipBob's published OpenAPI schemas; the adapter against the sandbox (release idempotent by reference_id,
cancel, cannot cancel after shipping, amend, return announcement, order.shipped → shipments read back, 429 with
x-retry-after, auth refused); the sandbox's answers validated against the published schemas."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime

import httpx
import pytest
from fastapi import FastAPI, Request
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from adapters.http import VendorHttp, raise_for_vendor, rate_signal, vendor_message
from adapters.wms import shipbob as sb
from canonical.errors import CannotCancel, InvalidOrder
from canonical.fulfillment import ResolvedLine
from canonical.money import Money
from canonical.order import Address
from canonical.returns import AuthorizedLine
from canonical.vendor_errors import VendorAuthFailed, VendorRateLimited
from canonical.vendor_versions import lifecycle
from sandbox.faults import FaultInjector
from sandbox.shipbob import create_app
from tests.conftest import fixture_bytes
from tests.contract.serve_sandbox import serve

SPEC = json.loads(fixture_bytes("shipbob", "openapi_2026-01_developer_api_upstream.json"))
CREATE_ORDER = fixture_bytes("shipbob", "create_order_request_build_orders_guide.json")
TRACKING_RECEIVED = fixture_bytes("shipbob", "webhook_order.shipment.tracking_received_logistics_docs.json")
RATE_LIMITED = fixture_bytes("shipbob", "error_429_rate_limit_docs.json")
TOKEN, CHANNEL, SECRET = "pat-test", 100102, "whsec_c2hpcGJvYi10ZXN0LXNlY3JldA=="
TO = Address(name="John Doe", line1="100 N Racine Ave", line2="Suite 100", city="Chicago", region="IL",
             postal_code="60607", country="US")
LINES = [ResolvedLine(line_id="1", channel_sku="SKU-LR-1", item_code="LIGHT-ROAST", quantity=2),
         ResolvedLine(line_id="487817672276298554", channel_sku="SKU-DR-2", item_code="DARK-ROAST", quantity=1)]
REGISTRY = Registry().with_resource("urn:shipbob", Resource.from_contents(SPEC, default_specification=DRAFT202012))


def schema_errors(instance: object, name: str) -> list[str]:
    """Where `instance` breaks ShipBob's published schema `components.schemas[name]` (empty: it conforms)."""
    validator = Draft202012Validator({"$ref": f"urn:shipbob#/components/schemas/{name}"}, registry=REGISTRY)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"[:300] for e in validator.iter_errors(instance)]


# -- the published payloads ---------------------------------------------------------------------------------------
def test_the_spec_is_the_2026_01_surface_the_adapter_speaks():
    paths = SPEC["paths"]
    for path, method in [("/2026-01/order", "post"), ("/2026-01/order", "get"), ("/2026-01/order/{orderId}", "get"),
                         ("/2026-01/order/{orderId}:cancel", "post"), ("/2026-01/order/{orderId}/shipment", "get"),
                         ("/2026-01/shipment/{shipmentId}:updateLineItems", "post"), ("/2026-01/product", "get"),
                         ("/2026-01/return", "post"), ("/2026-01/return", "get"),
                         ("/2026-01/return/{id}:cancel", "post")]:
        assert method in paths[path], (method, path)
    assert {p["name"] for p in paths["/2026-01/order"]["get"]["parameters"]} >= {"ReferenceIds", "Limit"}
    assert sb.API_VERSION == "2026-01"


def test_the_published_create_order_example_conforms_to_the_published_schema_and_ours_too():
    published = json.loads(CREATE_ORDER)
    assert schema_errors(published, "Orders.CreateOrderModel") == []
    ours = sb.create_order_body("order:shopify:1", LINES, TO, shipping_method="Standard",
                                purchase_date=datetime(2026, 12, 3, 12, 0, tzinfo=UTC))
    assert schema_errors(ours, "Orders.CreateOrderModel") == []
    assert ours["reference_id"] == ours["order_number"] == "order:shopify:1"
    assert ours["recipient"]["address"] == {**published["recipient"]["address"], "address2": "Suite 100"}
    assert ours["products"][0] == {"reference_id": "LIGHT-ROAST", "name": "LIGHT-ROAST", "sku": "SKU-LR-1",
                                   "quantity": 2, "external_line_id": 1}
    assert ours["products"][1]["external_line_id"] is None  # a Shopify line id does not fit ShipBob's int32
    # the check can fail: a published example without its required reference_id does not conform
    assert schema_errors({k: v for k, v in published.items() if k != "reference_id"}, "Orders.CreateOrderModel")


def test_published_tracking_received_notice_names_the_order():
    assert sb.notification(TRACKING_RECEIVED) == (100000001, "TEST101")
    assert sb.parse_time(json.loads(TRACKING_RECEIVED)["event_time"]) == datetime(2025, 10, 23, 15, 55, 9, 361476,
                                                                                   tzinfo=UTC)
    with pytest.raises(sb.ShipBobMappingError):
        sb.notification(b'{"reference_id": "TEST101"}')
    with pytest.raises(sb.ShipBobMappingError):
        sb.notification(b"[1]")


def test_published_429_answer_is_a_retry_after_delay():
    request = httpx.Request("GET", "https://api.shipbob.com/2026-01/order")
    response = httpx.Response(429, headers={"x-retry-after": "25", "x-remaining-calls": "0"}, content=RATE_LIMITED,
                              request=request)
    assert vendor_message(response) == "Rate limit is exceeded. Try again in 25 seconds."
    with pytest.raises(VendorRateLimited) as info:
        raise_for_vendor(response, vendor="shipbob")
    assert info.value.next_retry_delay.total_seconds() == 25 and not info.value.non_retryable
    signal = rate_signal("shipbob", response.headers)
    assert signal is not None and signal.used == 1.0 and signal.limit_per_second == 2.5
    assert rate_signal("shipbob", {"x-remaining-calls": "150"}).used == 0.0
    assert rate_signal("shipstation", {"x-remaining-calls": "0"}) is None


def test_signature_verification_standard_webhooks():
    from sandbox.shipbob import _sign

    body, stamp = b'{"order_id": 1}', int(time.time())
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(stamp), "webhook-signature": _sign(SECRET, "msg_1",
                                                                                                   stamp, body)}
    assert sb.verify_signature(SECRET, headers, body) == "msg_1"
    with pytest.raises(sb.ShipBobSignatureInvalid):
        sb.verify_signature(SECRET, headers, body + b" ")
    with pytest.raises(sb.ShipBobSignatureInvalid):
        sb.verify_signature("whsec_b3RoZXI=", headers, body)
    with pytest.raises(sb.ShipBobSignatureInvalid, match="away from now"):
        sb.verify_signature(SECRET, headers, body, now=stamp + 3600)


def test_the_version_is_declared_with_its_sunset():
    from runtime.settings import Settings
    from runtime.vendor_versions import declared_by_module

    (version,) = declared_by_module(Settings())["adapters.wms.shipbob"]
    assert (version.version, version.sunset) == ("2026-01", date(2028, 1, 31))
    assert lifecycle(version, date(2026, 12, 3)) == "ok" and lifecycle(version, date(2027, 12, 1)) == "warn"


# -- against the sandbox ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def receiver():
    got: list[dict] = []
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> dict:
        got.append({"body": await request.body(), "headers": dict(request.headers)})
        return {}

    with serve(app) as url:
        yield url + "/hook", got


@pytest.fixture(scope="module")
def sandbox(receiver):
    injector = FaultInjector()
    app = create_app(access_token=TOKEN, channel_id=CHANNEL, webhook_url=receiver[0], webhook_secret=SECRET,
                     ship_after_seconds=None, injector=injector)
    with serve(app) as url:
        yield app, url, injector


def _http(url: str, token: str = TOKEN) -> VendorHttp:
    return VendorHttp("shipbob", f"{url}/2026-01", timeout=3.0, error_mapper=sb.shipbob_error,
                      headers={"Authorization": f"Bearer {token}", "shipbob_channel_id": str(CHANNEL)})


@pytest.fixture
def wms(sandbox):
    sandbox[2].reset()
    http = _http(sandbox[1])
    yield sb.ShipBobWms(http, return_fulfillment_center_id=10)
    http.close()


def _ship(url: str, order_id: str) -> dict:
    resp = httpx.post(f"{url}/_admin/ship/{order_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_the_sandbox_takes_the_published_example_unchanged_and_answers_the_published_shape(sandbox):
    sandbox[2].reset()
    headers = {"Authorization": f"Bearer {TOKEN}", "shipbob_channel_id": str(CHANNEL),
               "Content-Type": "application/json"}
    created = httpx.post(f"{sandbox[1]}/2026-01/order", content=CREATE_ORDER, headers=headers)
    assert created.status_code == 201, created.text
    assert schema_errors(created.json(), "Orders.OrderViewModel") == []
    again = httpx.post(f"{sandbox[1]}/2026-01/order", content=CREATE_ORDER, headers=headers)
    assert again.status_code == 422 and "Duplicate reference ID" in again.text
    listed = httpx.get(f"{sandbox[1]}/2026-01/order", params={"ReferenceIds": "1234762738908"}, headers=headers)
    assert schema_errors(listed.json(), "Orders.OrderViewModelArray") == [] and len(listed.json()) == 1
    oid = created.json()["id"]
    _ship(sandbox[1], oid)
    shipments = httpx.get(f"{sandbox[1]}/2026-01/order/{oid}/shipment", headers=headers).json()
    assert schema_errors(shipments, "Orders.Get.Api.Order.OrderId.Shipment.OK.OneOfArray") == []
    products = httpx.get(f"{sandbox[1]}/2026-01/product", params={"SKU": "LIGHT-ROAST"}, headers=headers).json()
    # the spec's variants are `oneOf` two schemas that differ only by an optional field (every variant matches
    # both, so none can pass a strict oneOf): the variant is checked against the public one, the rest as published
    (product,) = products["items"]
    assert schema_errors(product["variants"][0], "Products.VariantViewModelV5") == []
    assert schema_errors({**products, "items": [{k: v for k, v in product.items() if k != "variants"}]},
                         "Products.ProductViewModelV5PagedResponse") == []
    assert product["variants"][0]["sku"] == "LIGHT-ROAST" and product["variants"][0]["inventory"]["inventory_id"]
    inventory_id = product["variants"][0]["inventory"]["inventory_id"]
    ret = httpx.post(f"{sandbox[1]}/2026-01/return", headers=headers, json={
        "reference_id": "RMA-1", "fulfillment_center": {"id": 10},
        "inventory": [{"id": inventory_id, "quantity": 1, "requested_action": "Restock"}]})
    assert ret.status_code == 201 and schema_errors(ret.json(), "Returns.PublicReturnV1Dto") == []
    second = httpx.post(f"{sandbox[1]}/2026-01/order", headers=headers, json={
        **json.loads(CREATE_ORDER), "reference_id": "1234762738909"}).json()
    amended = httpx.post(f"{sandbox[1]}/2026-01/shipment/{second['shipments'][0]['id']}:updateLineItems",
                         headers=headers, json={"items": [{"inventory_id": inventory_id, "quantity": 3}]})
    assert schema_errors(amended.json(), "Orders.ShipmentLineItemsApiResponse") == [] and amended.json()["is_success"]
    cancelled = httpx.post(f"{sandbox[1]}/2026-01/order/{second['id']}:cancel", headers=headers)
    assert schema_errors(cancelled.json(), "Orders.CanceledOrderViewModel") == []
    assert cancelled.json()["status"] == "Success"


def test_release_is_idempotent_by_reference_id(wms, sandbox):
    first = wms.release("order:shopify:100", LINES, TO)
    again = wms.release("order:shopify:100", LINES, TO)
    assert first.release_id == again.release_id
    order = wms.find_order("order:shopify:100")
    assert order["reference_id"] == "order:shopify:100" and order["status"] == "Processing"
    assert [(p["reference_id"], p["sku"], p["quantity"]) for p in order["products"]] == [
        ("LIGHT-ROAST", "SKU-LR-1", 2), ("DARK-ROAST", "SKU-DR-2", 1)]


def test_a_create_that_meets_a_duplicate_reference_returns_the_order_made_by_the_earlier_try(wms, monkeypatch):
    made = wms.release("order:shopify:dup", LINES, TO)
    real = wms.find_order
    calls = []

    def first_miss(ref):  # the lookup before the create missed it (the earlier create's answer was lost)
        calls.append(ref)
        return None if len(calls) == 1 else real(ref)

    monkeypatch.setattr(wms, "find_order", first_miss)
    assert wms.release("order:shopify:dup", LINES, TO).release_id == made.release_id
    assert len(calls) == 2


def test_cancel_then_cancel_again_and_a_cancelled_reference_is_not_reused(wms):
    wms.release("order:shopify:c1", LINES, TO)
    assert wms.cancel_release("order:shopify:c1") is True
    assert wms.cancel_release("order:shopify:c1") is False
    assert wms.find_order("order:shopify:c1")["status"] == "Cancelled"
    assert wms.cancel_release("order:shopify:never") is False
    with pytest.raises(InvalidOrder, match="cancelled"):
        wms.release("order:shopify:c1", LINES, TO)


def test_cannot_cancel_or_amend_after_shipping(wms, sandbox):
    ref = wms.release("order:shopify:s1", LINES, TO)
    _ship(sandbox[1], ref.release_id)
    with pytest.raises(CannotCancel, match="shipped"):
        wms.cancel_release("order:shopify:s1")
    with pytest.raises(CannotCancel):
        wms.amend_release("order:shopify:s1", LINES[:1])
    # the sandbox refuses too, as ShipBob does: the API answer is mapped, not only our own check
    with pytest.raises(CannotCancel):
        wms._json("POST", f"/order/{ref.release_id}:cancel", context="order:shopify:s1")


def test_amend_replaces_the_open_shipments_lines(wms):
    wms.release("order:shopify:a1", LINES, TO)
    assert wms.amend_release("order:shopify:a1", LINES) is False  # unchanged
    smaller = [LINES[0].model_copy(update={"quantity": 1})]
    assert wms.amend_release("order:shopify:a1", smaller) is True
    order = wms.find_order("order:shopify:a1")
    assert [(p["reference_id"], p["quantity"], p["sku"]) for p in order["products"]] == [
        ("LIGHT-ROAST", 1, "SKU-LR-1")]
    assert wms.amend_release("order:shopify:missing", smaller) is False


def test_shipped_webhook_is_signed_and_its_shipments_are_read_back_to_our_lines(wms, sandbox, receiver):
    _, got = receiver
    ref = wms.release("order:shopify:w1", LINES, TO)
    before = len(got)
    _ship(sandbox[1], ref.release_id)
    deadline = time.monotonic() + 5
    while len(got) == before and time.monotonic() < deadline:
        time.sleep(0.02)
    delivery = got[-1]
    assert delivery["headers"]["x-webhook-topic"] == "order.shipped"
    assert sb.verify_signature(SECRET, delivery["headers"], delivery["body"]).startswith("msg_")
    assert schema_errors(json.loads(delivery["body"]), "Orders.ShipmentViewModel") == []
    events = wms.webhook_events(delivery["body"])
    assert len(events) == 1
    external_ref, shipment = events[0]
    assert external_ref == "order:shopify:w1" and shipment.shipment_id.startswith("shipbob:")
    assert shipment.carrier == "USPS" and shipment.tracking_number and shipment.tracking_url
    assert sorted(((x.line_id, x.channel_sku, x.quantity) for x in shipment.lines), key=str) == [
        ("1", "SKU-LR-1", 2), (None, "SKU-DR-2", 1)]
    # polling reads the same; an order not yet shipped has none
    assert wms.shipment_events(int(ref.release_id)) == events
    other = wms.release("order:shopify:w2", LINES, TO)
    assert wms.shipment_events(int(other.release_id)) == []
    # a notice naming another reference than its order's is refused
    forged = json.dumps({"order_id": int(ref.release_id), "reference_id": "order:shopify:w2"}).encode()
    with pytest.raises(sb.ShipBobMappingError):
        wms.webhook_events(forged)


def _authorized(item: str, qty: int) -> AuthorizedLine:
    return AuthorizedLine(line_id="1", item_code=item, quantity=qty, ordered_quantity=max(qty, 1),
                          line_net=Money(amount="10.00", currency="USD"),
                          line_tax=Money(amount="0.00", currency="USD"))


def test_return_announcement_is_idempotent_and_cancellable_until_arrival(wms, sandbox):
    lines = [_authorized("LIGHT-ROAST", 1), _authorized("DARK-ROAST", 1), _authorized("LIGHT-ROAST", 1),
             _authorized("GIFT-CARD", 0)]
    rid = wms.expect_return("return:R-1", lines)
    assert wms.expect_return("return:R-1", lines) == rid
    ret = wms.find_return("return:R-1")
    assert ret["status"] == "AwaitingArrival" and ret["fulfillment_center"]["id"] == 10
    assert sorted((i["sku"], i["quantity"]) for i in ret["inventory"]) == [("DARK-ROAST", 1), ("LIGHT-ROAST", 2)]
    listed = httpx.get(f"{sandbox[1]}/2026-01/return", params={"ReferenceIds": "return:R-1"},
                       headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert schema_errors(listed, "Returns.PublicReturnDtoPagedUrlResultDto") == []
    assert wms.cancel_expected_return("return:R-1") is True
    assert wms.cancel_expected_return("return:R-1") is False
    assert wms.cancel_expected_return("return:none") is False
    rid2 = wms.expect_return("return:R-2", lines[:1])
    assert httpx.post(f"{sandbox[1]}/_admin/returns/{rid2}/arrive").status_code == 200
    with pytest.raises(CannotCancel, match="Arrived"):
        wms.cancel_expected_return("return:R-2")


def test_returns_need_a_receiving_fulfillment_center(sandbox):
    http = _http(sandbox[1])
    with pytest.raises(InvalidOrder, match="FULFILLMENT_CENTER"):
        sb.ShipBobWms(http).expect_return("return:R-9", [_authorized("LIGHT-ROAST", 1)])


def test_429_from_the_sandbox_is_shipbobs_and_becomes_a_retry_after_delay(wms, sandbox):
    sandbox[2].set("GET /2026-01/order", {"rate_limit_every": 1, "retry_after_seconds": 7})
    with pytest.raises(VendorRateLimited) as info:
        wms.find_order("order:shopify:x")
    assert info.value.next_retry_delay.total_seconds() == 7 and not info.value.non_retryable
    raw = httpx.get(f"{sandbox[1]}/2026-01/order", headers={"Authorization": f"Bearer {TOKEN}"})
    assert raw.headers["x-retry-after"] == "7" and "Retry-After" not in raw.headers
    assert raw.json() == {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 7 seconds."}
    sandbox[2].clear()
    ok = httpx.get(f"{sandbox[1]}/2026-01/order", headers={"Authorization": f"Bearer {TOKEN}"})
    assert 0 <= int(ok.headers["x-remaining-calls"]) < 150


def test_wrong_token_is_auth_refused(sandbox):
    http = _http(sandbox[1], token="wrong")
    with pytest.raises(VendorAuthFailed):
        sb.ShipBobWms(http).find_order("x")
    http.close()


def test_the_composition_root_builds_it_from_settings(sandbox):
    from runtime.settings import Settings

    settings = Settings(wms_adapter="shipbob", shipbob_base_url=sandbox[1], shipbob_access_token=TOKEN,
                        shipbob_channel_id=CHANNEL, shipbob_return_fulfillment_center_id=10)
    wms = sb.build_shipbob(settings)
    assert wms.http.vendor == "shipbob" and "pat-test" not in repr(wms.http)
    assert wms.find_order("order:none") is None
    assert "shipbob_access_token" in settings.secrets_in_use()
    prod = Settings(env="production", wms_adapter="shipbob")
    assert any("RETAILFLOW_SHIPBOB_ACCESS_TOKEN is the published development default" in p
               for p in prod.production_problems())


def test_5xx_is_retryable_and_the_retry_creates_the_order_once(wms, sandbox):
    from canonical.vendor_errors import VendorUnavailable

    sandbox[2].set("POST /2026-01/order", {"error_rate": 1.0, "error_statuses": [503]})
    with pytest.raises(VendorUnavailable) as info:
        wms.release("order:shopify:err", LINES, TO)
    assert info.value.status == 503 and not info.value.non_retryable
    sandbox[2].clear()
    first = wms.release("order:shopify:err", LINES, TO)
    assert wms.release("order:shopify:err", LINES, TO).release_id == first.release_id
    assert len(httpx.get(f"{sandbox[1]}/2026-01/order", params={"ReferenceIds": "order:shopify:err"},
                         headers={"Authorization": f"Bearer {TOKEN}"}).json()) == 1


def test_a_timed_out_create_that_the_vendor_processed_is_found_on_retry(wms, sandbox):
    from canonical.vendor_errors import VendorUnavailable

    sandbox[2].set("POST /2026-01/order", {"timeout_rate": 1.0, "timeout_seconds": 4})
    with pytest.raises(VendorUnavailable) as info:
        wms.release("order:shopify:slow", LINES, TO)
    assert info.value.type == "VendorTimeout"
    sandbox[2].clear()
    deadline = time.monotonic() + 5  # the sandbox processes the stalled create once its stall is over
    while wms.find_order("order:shopify:slow") is None and time.monotonic() < deadline:
        time.sleep(0.1)
    made = wms.find_order("order:shopify:slow")
    assert made is not None and wms.release("order:shopify:slow", LINES, TO).release_id == str(made["id"])


def test_the_dev_stack_builds_the_sandbox_with_the_platforms_settings():
    from runtime.settings import Settings
    from sandbox import APPS, DEFAULT_PORTS
    from sandbox.stack import app_kwargs, build_app

    settings = Settings()
    assert APPS["shipbob"] == "sandbox.shipbob:create_app" and DEFAULT_PORTS["shipbob"] == 8106
    assert settings.shipbob_base_url.endswith(":8106")
    kwargs = app_kwargs("shipbob", settings)
    assert kwargs["access_token"] == settings.shipbob_access_token.get_secret_value()
    assert kwargs["webhook_url"].endswith("/webhooks/shipbob")
    app = build_app("shipbob", settings)
    assert app.state.webhook_secret == settings.shipbob_webhook_secret.get_secret_value()
    with serve(app) as url:  # the adapter built from the same defaults is let in and releases an order
        wms = sb.build_shipbob(settings.model_copy(update={"shipbob_base_url": url,
                                                           "shipbob_return_fulfillment_center_id": 10}))
        ref = wms.release("order:shopify:stack", LINES, TO)
        assert wms.find_order("order:shopify:stack")["id"] == int(ref.release_id)
        assert wms.expect_return("return:stack", [_authorized("LIGHT-ROAST", 1)])
