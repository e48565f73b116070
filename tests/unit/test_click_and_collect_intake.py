"""Click-and-collect through the Shopify webhook intake (issue 20, item 3): `orders/create` carries no delivery
method, so for a channel sourced over the fulfillment network whose stores offer pick-up the intake asks the shop's
GraphQL Admin API for the order's fulfillment orders (the platform's real client against the Shopify sandbox over
loopback HTTP) and starts the order with `pickup_store` set — or quarantines a pick-up at a location no store
lists (422). The order body is Shopify's published `orders/create` sample, unchanged; the sandbox holds the same
order with its fulfillment order for pick-up (`/_admin/orders?pickup_location=`) or for shipping."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from adapters.marketplace import shopify
from adapters.marketplace import shopify_graphql as sg
from api.app import create_app
from runtime.settings import Settings
from sandbox.shopify import LOCATION_ID
from sandbox.shopify import create_app as create_sandbox
from tests.auth import headers as auth_headers
from tests.auth import make_key
from tests.conftest import fixture_bytes
from tests.contract.serve_sandbox import serve
from tests.unit.test_intake_pipeline import FakeClient, quarantined

SECRET, TOKEN = "click-and-collect-secret", "shpat_click_and_collect"
BODY = fixture_bytes("shopify", "webhook_orders_create_sample_v2024.json")
ORDER = json.loads(BODY)
PICKUP_AT = 70001  # a store's Shopify location (the sandbox's own location 655441491 ships)

NETWORK = """
[[node]]
id = "STORE-001"
kind = "store"
location = "STORE-001"
adapter = "pos:store"
channels = ["shopify"]
ship_to = ["*"]
capacity_per_day = 40
cutoff = 12:00:00
time_zone = "Europe/Berlin"
cost_per_shipment = { amount = "7.00", currency = "EUR" }
channel_locations = { shopify = "gid://shopify/Location/%d" }

[[node]]
id = "WH-BER"
kind = "warehouse"
location = "WH-BER"
adapter = "wms:local"
channels = ["*"]
ship_to = ["*"]
capacity_per_day = 100
cutoff = 15:00:00
time_zone = "Europe/Berlin"
cost_per_shipment = { amount = "4.90", currency = "EUR" }

[[policy]]
channel = "shopify"
nodes = ["STORE-001", "WH-BER"]
"""


class RecordingClient(FakeClient):
    """The intake's fake Temporal client, keeping each started order."""

    def __init__(self) -> None:
        super().__init__()
        self.orders = []

    async def start_workflow(self, workflow, arg, *, id, **kwargs):
        await super().start_workflow(workflow, arg, id=id, **kwargs)
        self.orders.append(arg.order)


@pytest.fixture(scope="module")
def shop():
    with serve(create_sandbox(access_token=TOKEN, webhook_url="http://127.0.0.1:9/unused",
                              webhook_secret="unused")) as url:
        yield url


def _seed(url: str, pickup_location: int | None) -> None:
    httpx.post(f"{url}/_admin/reset").raise_for_status()
    params = {"pickup_location": pickup_location} if pickup_location else {}
    assert httpx.post(f"{url}/_admin/orders", json=ORDER, params=params).status_code == 201


@pytest.fixture
def intake(engine, shop, tmp_path):
    network = tmp_path / "fulfillment.toml"
    network.write_text(NETWORK % PICKUP_AT)
    settings = Settings(shopify_webhook_secret=SecretStr(SECRET), shopify_admin_base_url=shop,
                        shopify_admin_access_token=SecretStr(TOKEN), split_fulfillment_channels=["shopify"],
                        fulfillment_network_file=network)
    fake = RecordingClient()
    http = TestClient(create_app(settings, engine=engine, client=fake),
                      headers=auth_headers(make_key(engine, "analyst")))
    return http, fake, network


def _deliver(http: TestClient, webhook_id: str):
    return http.post("/webhooks/shopify", content=BODY, headers={
        "Content-Type": "application/json", "X-Shopify-Topic": "orders/create", "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Hmac-Sha256": shopify.compute_hmac(BODY, SECRET)})


def test_a_pick_up_order_starts_for_its_store(intake, shop):
    http, fake, _ = intake
    _seed(shop, PICKUP_AT)
    resp = _deliver(http, "wh-pickup")
    assert resp.status_code == 202, resp.text
    [order] = fake.orders
    assert order.pickup_store == "STORE-001" and order.shipping_address is None
    assert order.billing_address is not None


def test_a_shipped_order_starts_with_no_store(intake, shop):
    http, fake, _ = intake
    _seed(shop, None)
    resp = _deliver(http, "wh-ship")
    assert resp.status_code == 202, resp.text
    [order] = fake.orders
    assert order.pickup_store is None and order.shipping_address is not None


def test_a_pick_up_at_an_unlisted_location_is_quarantined_not_started(intake, shop, engine):
    http, fake, _ = intake
    _seed(shop, 70002)
    resp = _deliver(http, "wh-unknown")
    assert resp.status_code == 422
    assert "Shopify location 70002, which no store" in resp.text
    assert fake.orders == []
    assert any(q.get("delivery_id") == "wh-unknown" for q in quarantined(engine))


def test_shopify_unreachable_is_503_so_shopify_retries(engine, tmp_path):
    network = tmp_path / "fulfillment.toml"
    network.write_text(NETWORK % PICKUP_AT)
    settings = Settings(shopify_webhook_secret=SecretStr(SECRET), shopify_admin_base_url="http://127.0.0.1:9",
                        shopify_admin_access_token=SecretStr(TOKEN), split_fulfillment_channels=["shopify"],
                        fulfillment_network_file=network)
    fake = RecordingClient()
    http = TestClient(create_app(settings, engine=engine, client=fake))
    resp = _deliver(http, "wh-down")
    assert resp.status_code == 503 and "delivery method" in resp.text
    assert fake.orders == []


def test_a_channel_with_no_pick_up_store_asks_shopify_nothing(engine, tmp_path):
    """No store lists the channel: the webhook maps as before, Shopify is not called (its URL is unreachable)."""
    network = tmp_path / "fulfillment.toml"
    network.write_text((NETWORK % PICKUP_AT).replace('channel_locations = { shopify = "gid://shopify/Location/70001" }',
                                                      ""))
    settings = Settings(shopify_webhook_secret=SecretStr(SECRET), shopify_admin_base_url="http://127.0.0.1:9",
                        shopify_admin_access_token=SecretStr(TOKEN), split_fulfillment_channels=["shopify"],
                        fulfillment_network_file=network)
    fake = RecordingClient()
    resp = _deliver(TestClient(create_app(settings, engine=engine, client=fake)), "wh-none")
    assert resp.status_code == 202, resp.text
    assert fake.orders[0].pickup_store is None


def test_the_graphql_client_reads_the_delivery_method_and_the_poll_maps_the_store(shop):
    _seed(shop, PICKUP_AT)
    http = sg.VendorHttp("shopify", shop, headers={sg.ACCESS_HEADER: TOKEN}, error_mapper=sg.channel_rejected)
    client = sg.ShopifyGraphQL(http, api_version="2026-10", pickup_locations={str(PICKUP_AT): "STORE-001"})
    assert client.delivery_methods(str(ORDER["id"])) == [
        {"status": "open", "delivery_method": {"method_type": "pick_up"}, "assigned_location_id": str(PICKUP_AT)}]
    assert client.fetch_order(str(ORDER["id"])).pickup_store == "STORE-001"
    _seed(shop, None)
    assert client.delivery_methods(str(ORDER["id"]))[0]["assigned_location_id"] == str(LOCATION_ID)
    assert client.fetch_order(str(ORDER["id"])).pickup_store is None


def test_the_rest_admin_api_reads_the_same_delivery_method(engine, shop, tmp_path):
    """RETAILFLOW_SHOPIFY_ADMIN_API=rest: `GET orders/{id}/fulfillment_orders.json` (the REST resource itself)."""
    network = tmp_path / "fulfillment.toml"
    network.write_text(NETWORK % PICKUP_AT)
    settings = Settings(shopify_webhook_secret=SecretStr(SECRET), shopify_admin_base_url=shop,
                        shopify_admin_access_token=SecretStr(TOKEN), shopify_admin_api="rest",
                        split_fulfillment_channels=["shopify"], fulfillment_network_file=network)
    fake = RecordingClient()
    _seed(shop, PICKUP_AT)
    resp = _deliver(TestClient(create_app(settings, engine=engine, client=fake)), "wh-rest")
    assert resp.status_code == 202, resp.text
    assert fake.orders[0].pickup_store == "STORE-001"
