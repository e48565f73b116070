"""Shopify Admin REST: the adapter against the sandbox seeded with Shopify's published orders/create sample
(fulfillment via fulfillment orders with tracking, cancel, refund, inventory levels, Link pagination) and every
fault mode; the sandbox's fulfillment and refund records and its webhooks checked against the published
fulfillments/create and refunds/create samples (tests/fixtures/shopify, unchanged)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI, Request

from adapters.http import VendorHttp, VendorRateLimited, VendorUnavailable
from adapters.marketplace import shopify
from adapters.marketplace import shopify_admin as sa
from canonical.errors import ChannelRejected
from canonical.money import Money
from canonical.order import Shipment, ShipmentLine
from canonical.returns import Refund, RefundLine
from canonical.vendor_errors import VendorAuthFailed
from sandbox.faults import FaultInjector
from sandbox.shopify import create_app
from tests.conftest import fixture_bytes
from tests.contract.serve_sandbox import serve

ORDER_RAW = fixture_bytes("shopify", "webhook_orders_create_sample_v2024.json")
ORDER = json.loads(ORDER_RAW)
FULFILLMENT = json.loads(fixture_bytes("shopify", "webhook_fulfillments_create_sample.json"))
REFUND = json.loads(fixture_bytes("shopify", "webhook_refunds_create_sample.json"))
TOKEN, SECRET = "shpat_test", "hook-secret"
OID = str(ORDER["id"])
LINE = ORDER["line_items"][0]


def test_link_header_next_cursor():
    header = ('<https://shop.myshopify.com/admin/api/2024-07/products.json?limit=2&page_info=abc>; rel="previous", '
              '<https://shop.myshopify.com/admin/api/2024-07/products.json?limit=2&page_info=def>; rel="next"')
    assert sa.next_link(header).endswith("page_info=def")
    assert sa.next_link(header.split(",")[0]) is None and sa.next_link(None) is None


def test_ids_above_2_53_stay_exact():
    assert ORDER["id"] > 2**53
    assert sa._int_id(OID) == 820982911946154508


@pytest.fixture(scope="module")
def receiver():
    got: list[dict] = []
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> dict:
        got.append({"headers": dict(request.headers), "body": await request.body()})
        return {}

    with serve(app) as url:
        yield url + "/hook", got


@pytest.fixture(scope="module")
def sandbox(receiver):
    injector = FaultInjector()
    app = create_app(access_token=TOKEN, webhook_url=receiver[0], webhook_secret=SECRET, injector=injector)
    with serve(app) as url:
        yield app, url, injector


@pytest.fixture
def admin(sandbox):
    app, url, injector = sandbox
    injector.reset()
    assert httpx.post(f"{url}/_admin/orders", content=ORDER_RAW).status_code == 201
    settings = type("S", (), dict(shopify_admin_base_url=url, shopify_admin_access_token=__import__(
        "pydantic").SecretStr(TOKEN), shopify_admin_api_version="2024-07", shopify_location_id=None))()
    adapter = sa.build_shopify_admin(settings)
    adapter.http._client.timeout = httpx.Timeout(2.0)
    yield adapter
    adapter.http.close()


def _shipment(qty: int = 1, tracking: str = "1Z999") -> Shipment:
    return Shipment(shipment_id=f"shipstation:{tracking}", carrier="UPS", tracking_number=tracking,
                    tracking_url=f"https://ups.example/{tracking}", shipped_at=datetime.now(UTC),
                    lines=[ShipmentLine(line_id=str(LINE["id"]), channel_sku=LINE["sku"], quantity=qty)])


def test_fulfillment_with_tracking_once_and_its_webhook(admin, sandbox, receiver):
    app, url, _ = sandbox
    _, got = receiver
    got.clear()
    admin.confirm_shipment("shopify", OID, _shipment())
    admin.confirm_shipment("shopify", OID, _shipment())  # a retried activity: looked up by tracking number
    records = app.state.store.find("fulfillments", order_id=ORDER["id"])
    assert len(records) == 1
    record = records[0]
    assert set(record) == set(FULFILLMENT)  # the published Fulfillment's fields
    assert record["tracking_numbers"] == ["1Z999"] and record["tracking_company"] == "UPS"
    assert [li["id"] for li in record["line_items"]] == [LINE["id"]]
    for _ in range(50):
        if got:
            break
        time.sleep(0.05)
    (hook,) = got
    assert hook["headers"]["x-shopify-topic"] == "fulfillments/create"
    assert shopify.verify_webhook(hook["body"], hook["headers"]["x-shopify-hmac-sha256"], [SECRET])
    order_id, shipment = shopify.map_fulfillment(shopify.loads(hook["body"]))
    assert order_id == OID and shipment.tracking_number == "1Z999"


def test_nothing_left_to_fulfil_is_not_sent_again(admin, sandbox):
    admin.confirm_shipment("shopify", OID, _shipment(tracking="A1"))
    admin.confirm_shipment("shopify", OID, _shipment(tracking="A2"))  # other tracking, but the unit is fulfilled
    assert len(sandbox[0].state.store.find("fulfillments", order_id=ORDER["id"])) == 1


def test_cancel_is_idempotent_and_refused_after_fulfillment(admin, sandbox):
    admin.notify_cancelled("shopify", OID, "customer changed their mind")
    admin.notify_cancelled("shopify", OID, "again")
    assert sandbox[0].state.store.get("orders", OID)["cancelled_at"]
    httpx.post(f"{sandbox[1]}/_admin/orders", content=ORDER_RAW)  # re-seeded: open again
    admin.confirm_shipment("shopify", OID, _shipment(tracking="C1"))
    with pytest.raises(ChannelRejected, match="fulfilled"):
        admin.notify_cancelled("shopify", OID, "too late")


def test_refund_once_with_the_published_shape(admin, sandbox):
    refund = Refund(refund_key="return:shopify:R1", channel="shopify", external_order_id=OID, currency="USD",
                    lines=[RefundLine(line_id=str(LINE["id"]), quantity=1, amount=Money.of("89.99", "USD"),
                                      tax=Money.zero("USD"))],
                    shipping=Money.zero("USD"), tax=Money.zero("USD"), fees_kept=Money.zero("USD"))
    admin.refund(refund)
    admin.refund(refund)
    refunds = sandbox[0].state.store.find("refunds", order_id=ORDER["id"])
    assert len(refunds) == 1
    r = refunds[0]
    assert set(r) == set(REFUND)
    assert set(r["refund_line_items"][0]) == set(REFUND["refund_line_items"][0])
    assert set(r["transactions"][0]) == set(REFUND["transactions"][0])
    assert r["transactions"][0]["amount"] == "89.99" and r["transactions"][0]["kind"] == "refund"
    too_much = refund.model_copy(update={"refund_key": "return:shopify:R2", "lines": [
        RefundLine(line_id=str(LINE["id"]), quantity=1, amount=Money.of("89.99", "USD"), tax=Money.zero("USD"))]})
    with pytest.raises(ChannelRejected):  # the unit was refunded already
        admin.refund(too_much)


def test_refund_body_matches_the_documented_request():
    refund = Refund(refund_key="k", channel="shopify", external_order_id=OID, currency="USD",
                    lines=[RefundLine(line_id=str(LINE["id"]), quantity=1, amount=Money.of("10.00", "USD"),
                                      tax=Money.of("1.00", "USD"))],
                    shipping=Money.of("5.00", "USD"), tax=Money.of("1.00", "USD"), fees_kept=Money.of("2.00", "USD"))
    body = sa.refund_body(refund, {"id": 1, "gateway": "bogus"})["refund"]
    assert body["refund_line_items"] == [{"line_item_id": LINE["id"], "quantity": 1, "restock_type": "no_restock"}]
    assert body["shipping"] == {"amount": "5.00"}
    assert body["transactions"] == [{"parent_id": 1, "amount": "14.00", "kind": "refund", "gateway": "bogus"}]


def test_inventory_levels_set_and_products_pagination(admin, sandbox):
    url = sandbox[1]
    httpx.post(f"{url}/_admin/products", json=[f"SKU-P{i}" for i in range(5)])
    skus = [v["sku"] for p in admin._pages("products.json", "products", {"limit": 2}) for v in p["variants"]]
    assert len(skus) == len(set(skus)) and {f"SKU-P{i}" for i in range(5)} <= set(skus)
    admin.publish_availability("shopify", "SKU-P3", 12, key="inv-1")
    levels = httpx.get(f"{url}/_admin/inventory_levels").json()["inventory_levels"]
    assert [lv["available"] for lv in levels] == [12]
    with pytest.raises(ChannelRejected, match="no Shopify variant"):
        admin.publish_availability("shopify", "NOPE", 1)


# -- faults ---------------------------------------------------------------------------------------------------------
def test_429_retry_after(admin, sandbox):
    sandbox[2].set("GET /admin/api/{version}/orders/{order_id}/fulfillment_orders.json",
                   {"rate_limit_every": 1, "retry_after_seconds": 2})
    with pytest.raises(VendorRateLimited) as info:
        admin.confirm_shipment("shopify", OID, _shipment(tracking="RL"))
    assert info.value.next_retry_delay.total_seconds() == 2


@pytest.mark.parametrize("fault,kind", [({"error_rate": 1.0}, "VendorUnavailable"),
                                        ({"timeout_rate": 1.0, "timeout_seconds": 3}, "VendorTimeout"),
                                        ({"outage_until": "2999-01-01T00:00:00Z"}, "VendorUnavailable")])
def test_5xx_timeout_outage_retryable(admin, sandbox, fault, kind):
    sandbox[2].set("POST /admin/api/{version}/fulfillments.json", fault)
    with pytest.raises(VendorUnavailable) as info:
        admin.confirm_shipment("shopify", OID, _shipment(tracking="F1"))
    assert info.value.type == kind and not info.value.non_retryable
    sandbox[2].clear()
    if kind != "VendorTimeout":  # a stalled request is processed late by the vendor, as in real life
        admin.confirm_shipment("shopify", OID, _shipment(tracking="F1"))
    admin.confirm_shipment("shopify", OID, _shipment(tracking="F1"))
    assert len(sandbox[0].state.store.find("fulfillments", order_id=ORDER["id"])) == 1


def test_bad_token_is_an_auth_fault(sandbox):
    http = VendorHttp("shopify", sandbox[1], headers={"X-Shopify-Access-Token": "wrong"})
    with pytest.raises(VendorAuthFailed):
        sa.ShopifyAdmin(http).notify_cancelled("shopify", OID, "x")
