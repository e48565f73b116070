"""Click-and-collect from Shopify (issue 20, item 3): an order whose fulfillment order Shopify assigned to a store's
location for pick-up maps to that store (`Order.pickup_store`); a shipped order maps to None; a pick-up at a
location no store lists is a mapping error (the intake quarantines it, 422), never a shipment.

Payloads (tests/fixtures/SOURCES.md): Shopify's published `orders/create` sample, unchanged, with the published
fulfillment orders of `GET /orders/450789469/fulfillment_orders.json` (delivery method null) and of a fulfillment
request (method `shipping`) from Shopify/shopify-app-js, and one faithful pick-up fulfillment order (Shopify publishes
no pick-up example: the published list with `delivery_method.method_type` `pick_up` at the published location
655441491). The webhook carries no fulfillment orders; the intake adds them under `fulfillment_orders`, as the poll
does (`order_as_webhook`)."""

from __future__ import annotations

import json
from datetime import time

import pytest
from pydantic import ValidationError

from adapters.marketplace import shopify
from adapters.marketplace.shopify_graphql import order_as_webhook, rest_fulfillment_orders
from canonical.money import Money
from canonical.sourcing import FulfillmentNetwork, FulfillmentNode, SourcingPolicy
from tests.conftest import fixture_bytes

SAMPLE = json.loads(fixture_bytes("shopify", "webhook_orders_create_sample_v2024.json"))
LISTED = json.loads(fixture_bytes("shopify", "rest_fulfillment_orders_list_shopify_api_js_2026-07.json"))
SHIPPING = json.loads(fixture_bytes("shopify", "rest_fulfillment_order_shipping_shopify_api_js_2026-07.json"))
PICK_UP = json.loads(fixture_bytes("shopify", "rest_fulfillment_orders_pick_up_faithful.json"))
STORES = {"655441491": "STORE-001"}


def _with(fulfillment_orders: list[dict]) -> dict:
    return {**SAMPLE, "fulfillment_orders": fulfillment_orders}


def test_the_published_sample_alone_is_shipped():
    order = shopify.map_order(SAMPLE, pickup_locations=STORES)
    assert order.pickup_store is None and order.shipping_address is not None


def test_the_published_fulfillment_orders_are_shipped():
    for fos in (LISTED["fulfillment_orders"], [SHIPPING["fulfillment_order"]]):
        order = shopify.map_order(_with(fos), pickup_locations=STORES)
        assert order.pickup_store is None
        assert order.shipping_address is not None and order.shipping_address.country == "US"


def test_a_pick_up_at_a_stores_location_is_collected_there():
    order = shopify.map_order(_with(PICK_UP["fulfillment_orders"]), pickup_locations=STORES)
    assert order.pickup_store == "STORE-001"
    assert order.shipping_address is None  # nothing is shipped; the billing address stays
    assert order.billing_address is not None and order.billing_address.country == "US"
    assert [ln.channel_sku for ln in order.lines] == [li["sku"] for li in SAMPLE["line_items"]]


def test_a_pick_up_at_an_unknown_location_is_a_mapping_error_naming_it():
    with pytest.raises(shopify.ShopifyMappingError, match=r"location 655441491, which no store .*"
                                                        r"channel_locations\.shopify"):
        shopify.map_order(_with(PICK_UP["fulfillment_orders"]), pickup_locations={"24826418": "STORE-002"})


def test_a_channel_not_sourced_over_the_network_recognises_no_pick_up():
    order = shopify.map_order(_with(PICK_UP["fulfillment_orders"]), pickup_locations=None)
    assert order.pickup_store is None and order.shipping_address is not None  # as before this mapping


def test_part_pick_up_part_shipping_or_two_stores_is_refused():
    pick = PICK_UP["fulfillment_orders"][0]
    with pytest.raises(shopify.ShopifyMappingError, match="in part"):
        shopify.map_order(_with([pick, SHIPPING["fulfillment_order"]]), pickup_locations=STORES)
    elsewhere = {**pick, "assigned_location_id": 24826418}
    with pytest.raises(shopify.ShopifyMappingError, match="2 Shopify locations"):
        shopify.map_order(_with([pick, elsewhere]), pickup_locations={**STORES, "24826418": "STORE-002"})


def test_closed_and_cancelled_fulfillment_orders_do_not_count():
    moved = {**SHIPPING["fulfillment_order"], "status": "closed"}  # what a move leaves behind
    order = shopify.map_order(_with([moved, *PICK_UP["fulfillment_orders"]]), pickup_locations=STORES)
    assert order.pickup_store == "STORE-001"


def test_the_graphql_delivery_method_maps_as_the_rest_one():
    """GraphQL `fulfillmentOrders { status deliveryMethod { methodType } assignedLocation { location { id } } }`
    (DeliveryMethodType PICK_UP, a Location gid) turned into the REST resource's JSON."""
    connection = {"nodes": [{"status": "OPEN", "deliveryMethod": {"methodType": "PICK_UP"},
                             "assignedLocation": {"location": {"id": "gid://shopify/Location/655441491"}}}]}
    fos = rest_fulfillment_orders(connection)
    assert fos == [{"status": "open", "delivery_method": {"method_type": "pick_up"},
                    "assigned_location_id": "655441491"}]
    assert shopify.pickup_store(_with(fos), "shopify", STORES) == "STORE-001"
    shipped = rest_fulfillment_orders({"nodes": [{"status": "OPEN", "deliveryMethod": {"methodType": "SHIPPING"},
                                                  "assignedLocation": {"location": {"id": "gid://shopify/Location/1"}}}]})
    assert shopify.pickup_store(_with(shipped), "shopify", STORES) is None
    # the poll's order carries them when the document asked for them, and nothing otherwise
    assert "fulfillment_orders" not in order_as_webhook({"id": "gid://shopify/Order/1"})
    assert order_as_webhook({"id": "gid://shopify/Order/1", "fulfillmentOrders": connection})[
        "fulfillment_orders"] == fos


# -- the configuration: a store node's channel_locations ---------------------------------------------------------
def _node(id_: str, kind: str = "store", **extra) -> FulfillmentNode:
    return FulfillmentNode(id=id_, kind=kind, location=id_, adapter="pos:store" if kind == "store" else "wms:local",
                           channels=["*"], ship_to=["*"], capacity_per_day=10, cutoff=time(12),
                           time_zone="Europe/Berlin", cost_per_shipment=Money.of("1.00", "EUR"), **extra)


def test_channel_locations_map_a_gid_and_its_number_to_the_store():
    network = FulfillmentNetwork(
        node=[_node("STORE-001", channel_locations={"shopify": "gid://shopify/Location/655441491", "pos": "L1"}),
              _node("STORE-002", channel_locations={"shopify-de": "655441491"}), _node("WH", "warehouse")],
        policy=[SourcingPolicy(channel="shopify", nodes=["STORE-001", "WH"])])
    assert network.pickup_locations("shopify") == {"655441491": "STORE-001"}
    assert network.pickup_locations("shopify-de") == {"655441491": "STORE-002"}  # another shop, its own ids
    assert network.pickup_locations("amazon") == {}


def test_channel_locations_are_validated():
    with pytest.raises(ValidationError, match="for store nodes, not a warehouse"):
        _node("WH", "warehouse", channel_locations={"shopify": "1"})
    with pytest.raises(ValidationError, match="must not be empty"):
        _node("S", channel_locations={"shopify": " "})
    with pytest.raises(ValidationError, match="pick-up location of both S1 and S2"):
        FulfillmentNetwork(node=[_node("S1", channel_locations={"shopify": "gid://shopify/Location/7"}),
                                 _node("S2", channel_locations={"shopify": "7"})])
