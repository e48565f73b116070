"""The Shopify sandbox's GraphQL Admin endpoint (sandbox/shopify_graphql.py) driven by the platform's real client
(adapters/marketplace/shopify_graphql.py ShopifyGraphQL) over loopback HTTP: every client document validates
against the sandbox's SDL, an order seeded over the REST admin route is read and mapped like its webhook, and
fulfillments, refunds, cancels, tags, inventory and prices written over GraphQL land in the REST sandbox's state
(REST lists, signed webhooks). Shopify's behaviours: user errors, compare-and-set inventory, @idempotent replay,
duplicate webhook subscriptions, cost throttling, 401 on a wrong token."""

from __future__ import annotations

import copy
import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import graphql
import httpx
import pytest
from fastapi import FastAPI, Request

from adapters.http import VendorHttp
from adapters.marketplace import shopify
from adapters.marketplace import shopify_graphql as sg
from canonical.errors import ChannelRejected
from canonical.money import Money
from canonical.order import Shipment, ShipmentLine
from canonical.order_feed import FeedAction
from canonical.returns import Refund, RefundLine
from canonical.vendor_errors import VendorAuthFailed, VendorRateLimited, VendorUnavailable
from sandbox.faults import FaultInjector
from sandbox.shopify import LOCATION_ID, create_app
from tests.conftest import fixture_bytes
from tests.contract.serve_sandbox import serve

TOKEN, SECRET, VERSION = "shpat_graphql", "hook-secret", "2026-10"
SAMPLE = json.loads(fixture_bytes("shopify", "webhook_orders_create_sample_v2024.json"))
DOCUMENTS = ("FULFILLMENT_STATE", "FULFILLMENT_ORDER_LINES", "FULFILLMENT_CREATE", "ORDER_CANCELLED", "ORDER_CANCEL", "REFUND_STATE",
             "REFUND_CREATE", "TAGS_ADD", "VARIANTS_BY_SKU", "ACTIVE_LOCATIONS", "AVAILABLE_AT", "INVENTORY_SET",
             "PRICE_UPDATE", "ORDER", "ORDERS_PAGE", "WEBHOOK_SUBSCRIPTIONS", "WEBHOOK_SUBSCRIPTION_CREATE")
LENIENT = {"maximumAvailable": 1_000_000, "restoreRate": 100_000, "currentlyAvailable": 1_000_000,
           "maxQueryCost": None}


def paid_order(order_id: int | None = None, first_quantity: int = 3) -> dict:
    """The published orders/create sample, paid, its first line ordered `first_quantity` times."""
    order = copy.deepcopy(SAMPLE)
    order["financial_status"] = "paid"
    if order_id is not None:
        order["id"] = order_id
        for n, li in enumerate(order["line_items"]):
            li["id"] = order_id * 10 + n
    line = order["line_items"][0]
    total = Decimal(order["total_price"]) + Decimal(line["price"]) * (first_quantity - line["quantity"])
    line["quantity"] = line["fulfillable_quantity"] = line["current_quantity"] = first_quantity
    order["total_price"] = str(total)
    for money in order["total_price_set"].values():
        money["amount"] = str(total)
    return order


ORDER = paid_order()
OID = str(ORDER["id"])
LINE = ORDER["line_items"][0]


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


def client_for(url: str, token: str = TOKEN, transport: httpx.BaseTransport | None = None,
               **kwargs) -> sg.ShopifyGraphQL:
    http = VendorHttp("shopify", url, headers={sg.ACCESS_HEADER: token}, transport=transport,
                      error_mapper=sg.channel_rejected, timeout=5.0)
    return sg.ShopifyGraphQL(http, api_version=VERSION, shop="retailflow-sandbox.myshopify.com", **kwargs)


@pytest.fixture
def shop(sandbox, receiver):
    """A fresh sandbox holding ORDER; the bucket roomy (the cost tests set their own)."""
    app, url, _ = sandbox
    assert httpx.post(f"{url}/_admin/reset").status_code == 200
    assert httpx.post(f"{url}/_admin/graphql/throttle", json=LENIENT).status_code == 200
    assert httpx.post(f"{url}/_admin/orders", json=ORDER).status_code == 201
    receiver[1].clear()
    client = client_for(url)
    yield client
    client.http.close()


def rest(url: str, path: str) -> dict:
    resp = httpx.get(f"{url}/admin/api/{VERSION}/{path}", headers={sg.ACCESS_HEADER: TOKEN})
    assert resp.status_code == 200, resp.text
    return resp.json()


def hooks(got: list[dict], topic: str, count: int = 1) -> list[dict]:
    for _ in range(100):
        found = [h for h in got if h["headers"]["x-shopify-topic"] == topic]
        if len(found) >= count:
            return found
        time.sleep(0.05)
    return [h for h in got if h["headers"]["x-shopify-topic"] == topic]


def shipment(qty: int, tracking: str, line: dict = LINE) -> Shipment:
    return Shipment(shipment_id=f"shp:{tracking}", carrier="UPS", tracking_number=tracking,
                    tracking_url=f"https://ups.example/{tracking}", shipped_at=datetime.now(UTC),
                    lines=[ShipmentLine(line_id=str(line["id"]), channel_sku=line["sku"], quantity=qty)])


# -- schema ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", DOCUMENTS)
def test_every_client_document_validates_against_the_sandbox_schema(sandbox, name):
    schema = sandbox[0].state.graphql_schema
    assert graphql.validate(schema, graphql.parse(getattr(sg, name))) == []


def test_shopify_type_names_of_the_subset(sandbox):
    schema = sandbox[0].state.graphql_schema
    for name in ("Order", "LineItem", "FulfillmentOrder", "FulfillmentOrderLineItem", "Fulfillment", "Refund",
                 "SuggestedRefund", "SuggestedOrderTransaction", "MoneyBag", "MoneyV2", "ProductVariant",
                 "InventoryItem", "InventoryLevel", "Location", "WebhookSubscription", "UserError",
                 "OrderCancelUserError", "InventorySetQuantitiesUserError", "ProductVariantsBulkUpdateUserError"):
        assert isinstance(schema.get_type(name), graphql.GraphQLObjectType), name
    idempotent = schema.get_directive("idempotent")
    assert str(idempotent.args["key"].type) == "String!"
    assert [str(loc.name) for loc in idempotent.locations] == ["FIELD"]
    assert "CHANGE_FROM_QUANTITY_STALE" in schema.get_type("InventorySetQuantitiesUserErrorCode").values


# -- orders --------------------------------------------------------------------------------------------------------
def test_fetch_order_maps_exactly_like_the_webhook(shop):
    assert shop.fetch_order(OID) == shopify.map_order(ORDER, channel=shop.channel)


def test_feed_pages_and_filters_by_updated_at(shop, sandbox):
    url = sandbox[1]
    other = paid_order(5_000_000_000_000_000_777)
    other["financial_status"] = "pending"
    assert httpx.post(f"{url}/_admin/orders", json=other).status_code == 201
    shop.page_size = 1
    first = shop.feed_page(None)
    assert len(first.orders) == 1 and first.next_token
    second = shop.feed_page(None, first.next_token)
    assert second.next_token is None
    rows = {r.external_order_id: r for r in first.orders + second.orders}
    assert rows[OID].action == FeedAction.START and rows[str(other["id"])].action == FeedAction.WAIT
    # the sample's updated_at is 2021: an order changed since is found, the rest filtered out
    shop.notify_return_not_received("shopify", OID, "RET-1")
    shop.page_size = 50
    recent = shop.feed_page(datetime.now(UTC) - timedelta(minutes=5))
    assert [r.external_order_id for r in recent.orders] == [OID]
    assert shop.feed_page(datetime.now(UTC) + timedelta(minutes=5)).orders == []


def test_tags_add_is_the_rest_orders_tags(shop, sandbox):
    shop.notify_return_not_received("shopify", OID, "RET-9")
    shop.notify_return_not_received("shopify", OID, "RET-9")
    tags = [t.strip() for t in rest(sandbox[1], f"orders/{OID}.json")["order"]["tags"].split(",")]
    assert tags.count("return-not-received-RET-9") == 1


# -- fulfillment ---------------------------------------------------------------------------------------------------
def test_partial_then_full_fulfillment_in_rest_with_signed_webhooks(shop, sandbox, receiver):
    url, got = sandbox[1], receiver[1]
    shop.confirm_shipment("shopify", OID, shipment(1, "T1"))
    (fo,) = rest(url, f"orders/{OID}/fulfillment_orders.json")["fulfillment_orders"]
    assert fo["status"] == "in_progress"
    assert {li["line_item_id"]: li["fulfillable_quantity"] for li in fo["line_items"]}[LINE["id"]] == 2
    shop.confirm_shipment("shopify", OID, shipment(2, "T2"))
    shop.confirm_shipment("shopify", OID, shipment(2, "T2"))  # a retried activity: found by its tracking number
    fulfillments = rest(url, f"orders/{OID}/fulfillments.json")["fulfillments"]
    assert [f["tracking_number"] for f in fulfillments] == ["T1", "T2"]
    assert [li["quantity"] for f in fulfillments for li in f["line_items"]] == [1, 2]
    sent = hooks(got, "fulfillments/create", 2)
    assert len(sent) == 2
    for hook in sent:
        assert shopify.verify_webhook(hook["body"], hook["headers"]["x-shopify-hmac-sha256"], [SECRET])
    order_id, shipped = shopify.map_fulfillment(shopify.loads(sent[1]["body"]))
    assert order_id == OID and shipped.tracking_number == "T2"


def test_fulfilling_a_closed_fulfillment_order_is_shopifys_user_error(shop, sandbox):
    lines = ORDER["line_items"]
    whole = Shipment(shipment_id="all", carrier="UPS", tracking_number="ALL", shipped_at=datetime.now(UTC),
                     lines=[ShipmentLine(line_id=str(li["id"]), channel_sku=li["sku"], quantity=li["quantity"])
                            for li in lines])
    shop.confirm_shipment("shopify", OID, whole)
    (fo,) = rest(sandbox[1], f"orders/{OID}/fulfillment_orders.json")["fulfillment_orders"]
    assert fo["status"] == "closed"
    with pytest.raises(ChannelRejected, match=r"fulfillment: Fulfillment order \d+ has an unfulfillable "
                                              r"status= closed\.") as info:
        shop.confirm_shipment("shopify", OID, shipment(1, "AGAIN"))
    assert info.value.details["user_errors"] == [{"field": ["fulfillment"], "message": (
        f"Fulfillment order {fo['id']} has an unfulfillable status= closed.")}]
    assert len(rest(sandbox[1], f"orders/{OID}/fulfillments.json")["fulfillments"]) == 1


def test_more_than_remains_is_a_user_error(shop):
    state = shop.execute(sg.FULFILLMENT_STATE, {"id": sg.gid("Order", OID)})["order"]
    fo = state["fulfillmentOrders"]["nodes"][0]
    line = fo["lineItems"]["nodes"][0]
    result = shop.execute(sg.FULFILLMENT_CREATE, {"fulfillment": {"lineItemsByFulfillmentOrder": [
        {"fulfillmentOrderId": fo["id"], "fulfillmentOrderLineItems": [
            {"id": line["id"], "quantity": line["remainingQuantity"] + 1}]}]}})["fulfillmentCreate"]
    assert result["fulfillment"] is None
    assert result["userErrors"] == [{"field": ["fulfillment"],
                                     "message": "Invalid fulfillment order line item quantity requested."}]


# -- cancel ----------------------------------------------------------------------------------------------------------
def test_cancel_once_and_refused_after_fulfillment(shop, sandbox):
    url = sandbox[1]
    shop.notify_cancelled("shopify", OID, "customer changed their mind")
    shop.notify_cancelled("shopify", OID, "again")  # cancelledAt is read first: nothing sent
    order = rest(url, f"orders/{OID}.json")["order"]
    assert order["cancelled_at"] and order["cancel_reason"] == "other"
    assert httpx.post(f"{url}/_admin/orders", json=ORDER).status_code == 201  # open again
    shop.confirm_shipment("shopify", OID, shipment(1, "C1"))
    with pytest.raises(ChannelRejected, match="fulfilled line items") as info:
        shop.notify_cancelled("shopify", OID, "too late")
    assert info.value.details["user_errors"][0]["code"] == "INVALID"


# -- refunds ---------------------------------------------------------------------------------------------------------
def _refund(key: str, qty: int = 1, amount: str | None = None) -> Refund:
    return Refund(refund_key=key, channel="shopify", external_order_id=OID, currency="USD",
                  lines=[RefundLine(line_id=str(LINE["id"]), quantity=qty,
                                    amount=Money.of(amount or LINE["price"], "USD"), tax=Money.zero("USD"))],
                  shipping=Money.zero("USD"), tax=Money.zero("USD"), fees_kept=Money.zero("USD"))


def test_refund_against_the_suggested_refund_once(shop, sandbox, receiver):
    state = shop.execute(sg.REFUND_STATE, sg.refund_variables(_refund("probe"), sg.gid("Order", OID)))["order"]
    suggested = state["suggestedRefund"]
    assert suggested["amountSet"]["shopMoney"]["amount"] == LINE["price"]
    (tx,) = suggested["suggestedTransactions"]
    assert tx["gateway"] == "bogus" and tx["parentTransaction"]["id"].startswith("gid://shopify/OrderTransaction/")
    shop.refund(_refund("return:shopify:R1"))
    shop.refund(_refund("return:shopify:R1"))  # the note carries the key: not refunded twice
    (record,) = rest(sandbox[1], f"orders/{OID}/refunds.json")["refunds"]
    assert record["note"] == sg.refund_note("return:shopify:R1")
    assert [t["amount"] for t in record["transactions"]] == [LINE["price"]]
    assert [li["quantity"] for li in record["refund_line_items"]] == [1]
    (hook,) = hooks(receiver[1], "refunds/create")
    assert shopify.verify_webhook(hook["body"], hook["headers"]["x-shopify-hmac-sha256"], [SECRET])
    assert shop.execute(sg.ORDERS_PAGE, {"first": 5})["orders"]["nodes"][0]["displayFinancialStatus"] \
        == "PARTIALLY_REFUNDED"


def test_refund_beyond_what_was_paid_is_a_user_error(shop):
    state = shop.execute(sg.REFUND_STATE, {"id": sg.gid("Order", OID)})["order"]
    parent = state["suggestedRefund"]["suggestedTransactions"]
    assert parent == []  # nothing asked for, nothing suggested
    suggested = shop.execute(sg.REFUND_STATE, {"id": sg.gid("Order", OID), "refundLineItems": [
        {"lineItemId": sg.gid("LineItem", LINE["id"]), "quantity": 1}]})["order"]["suggestedRefund"]
    parent_id = suggested["suggestedTransactions"][0]["parentTransaction"]["id"]
    result = shop.execute(sg.REFUND_CREATE, {"input": {
        "orderId": sg.gid("Order", OID), "note": "too much", "transactions": [
            {"orderId": sg.gid("Order", OID), "parentId": parent_id, "amount": "10000.00", "gateway": "bogus",
             "kind": "REFUND"}]}})["refundCreate"]
    assert result["refund"] is None
    (error,) = result["userErrors"]
    assert error["field"] == ["transactions", "0", "amount"] and "exceeds the refundable amount" in error["message"]
    with pytest.raises(ChannelRejected):  # the client refuses a refund beyond the suggestion by itself
        shop.refund(_refund("return:shopify:BIG", amount="10000.00"))


# -- inventory and prices -----------------------------------------------------------------------------------------------
def test_publish_availability_compare_and_set(shop, sandbox):
    url = sandbox[1]
    httpx.post(f"{url}/_admin/products", json=["SKU-INV"])
    shop.publish_availability("shopify", "SKU-INV", 7, key="inv-1")
    assert shop.available("SKU-INV") == 7
    levels = httpx.get(f"{url}/_admin/inventory_levels").json()["inventory_levels"]
    assert [(lv["location_id"], lv["available"]) for lv in levels] == [(LOCATION_ID, 7)]

    # a sale lands between the client's read and its write: Shopify refuses the stale compare-and-set
    item = levels[0]["inventory_item_id"]
    inner = httpx.HTTPTransport()

    class SaleInBetween(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if b"InventorySet" in request.content:
                httpx.post(f"{url}/admin/api/{VERSION}/inventory_levels/set.json", headers={sg.ACCESS_HEADER: TOKEN},
                           json={"location_id": LOCATION_ID, "inventory_item_id": item, "available": 6})
            return inner.handle_request(request)

    racing = client_for(url, transport=SaleInBetween())
    with pytest.raises(VendorUnavailable, match="changed while publishing") as info:
        racing.publish_availability("shopify", "SKU-INV", 3, key="inv-2")
    assert info.value.type == "StaleCount" and not info.value.non_retryable
    racing.publish_availability("shopify", "SKU-INV", 3, key="inv-2")  # the retry reads the count again
    assert shop.available("SKU-INV") == 3
    racing.http.close()


def test_idempotent_key_replays_the_first_result(shop, sandbox):
    httpx.post(f"{sandbox[1]}/_admin/products", json=["SKU-IDEM"])
    item = shop.inventory_item_id("SKU-IDEM")
    body = {"name": "available", "reason": "correction", "referenceDocumentUri": "retailflow://t",
            "quantities": [{"inventoryItemId": item, "locationId": sg.gid("Location", LOCATION_ID), "quantity": 5,
                            "changeFromQuantity": 0}]}
    first = shop.execute(sg.INVENTORY_SET, {"input": body, "key": "k-1"})["inventorySetQuantities"]
    assert first["userErrors"] == []
    assert first["inventoryAdjustmentGroup"]["changes"][0] == {"name": "available", "delta": 5,
                                                               "quantityAfterChange": 5}
    # the count is 5 now, so the same write without the key would be stale; with it, the first answer is replayed
    again = shop.execute(sg.INVENTORY_SET, {"input": body, "key": "k-1"})["inventorySetQuantities"]
    assert again == first
    stale = shop.execute(sg.INVENTORY_SET, {"input": body, "key": "k-2"})["inventorySetQuantities"]
    assert [e["code"] for e in stale["userErrors"]] == ["CHANGE_FROM_QUANTITY_STALE"]
    other = {**body, "quantities": [{**body["quantities"][0], "quantity": 9}]}
    mismatch = shop.execute(sg.INVENTORY_SET, {"input": other, "key": "k-1"})["inventorySetQuantities"]
    assert [e["code"] for e in mismatch["userErrors"]] == ["IDEMPOTENCY_KEY_PARAMETER_MISMATCH"]
    assert shop.available("SKU-IDEM") == 5


def test_publish_price_sets_the_variant(shop, sandbox):
    shop.publish_price("shopify", LINE["sku"], Money.of("79.50", "USD"), Money.of("99.00", "USD"))
    variant = shop.variant(LINE["sku"])
    assert (variant["price"], variant["compareAtPrice"]) == ("79.50", "99.00")
    shop.publish_price("shopify", LINE["sku"], Money.of("75.00", "USD"))
    products = rest(sandbox[1], "products.json")["products"]
    (rest_variant,) = [v for p in products for v in p["variants"] if v["sku"] == LINE["sku"]]
    assert (rest_variant["price"], rest_variant["compare_at_price"]) == ("75.00", None)
    with pytest.raises(ChannelRejected, match="no Shopify variant"):
        shop.publish_price("shopify", "NOPE", Money.of("1.00", "USD"))


# -- webhooks ---------------------------------------------------------------------------------------------------------
def test_ensure_webhooks_creates_each_topic_once(shop):
    uri = "https://retailflow.example/webhooks/shopify"
    assert shop.ensure_webhooks(uri) == {t: "created" for t in sg.WEBHOOK_TOPICS}
    assert shop.ensure_webhooks(uri) == {t: "exists" for t in sg.WEBHOOK_TOPICS}
    subs = shop.webhook_subscriptions()
    assert sorted(s["topic"] for s in subs) == sorted(sg.WEBHOOK_TOPICS)
    assert {s["uri"] for s in subs} == {uri} and {s["format"] for s in subs} == {"JSON"}
    dup = shop.execute(sg.WEBHOOK_SUBSCRIPTION_CREATE, {"topic": "ORDERS_CREATE", "webhookSubscription": {
        "uri": uri, "format": "JSON"}})["webhookSubscriptionCreate"]
    assert dup["webhookSubscription"] is None
    assert dup["userErrors"] == [{"field": ["webhookSubscription", "callbackUrl"],
                                  "message": "Address for this topic has already been taken"}]


# -- cost, auth, errors ---------------------------------------------------------------------------------------------------
def test_every_answer_carries_the_cost_and_the_version(shop, sandbox):
    resp = httpx.post(f"{sandbox[1]}/admin/api/2025-01/graphql.json", headers={sg.ACCESS_HEADER: TOKEN},
                      json={"query": sg.ACTIVE_LOCATIONS})
    assert resp.status_code == 200 and resp.headers["x-shopify-api-version"] == "2025-01"
    body = resp.json()
    assert body["data"]["locations"]["nodes"] == [{"id": f"gid://shopify/Location/{LOCATION_ID}",
                                                   "name": "Main warehouse", "isActive": True}]
    cost = body["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 52 and 0 < cost["actualQueryCost"] <= 52
    assert set(cost["throttleStatus"]) == {"maximumAvailable", "currentlyAvailable", "restoreRate"}


def test_throttled_when_the_bucket_lacks_the_cost(shop, sandbox):
    url = sandbox[1]
    httpx.post(f"{url}/_admin/graphql/throttle", json={"maximumAvailable": 2000, "restoreRate": 10,
                                                       "currentlyAvailable": 0, "maxQueryCost": 1000})
    resp = httpx.post(f"{url}/admin/api/{VERSION}/graphql.json", headers={sg.ACCESS_HEADER: TOKEN},
                      json={"query": sg.ACTIVE_LOCATIONS})
    body = resp.json()
    assert resp.status_code == 200 and "data" not in body
    assert body["errors"] == [{"message": "Throttled", "extensions": {
        "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}]
    assert body["extensions"]["cost"]["requestedQueryCost"] == 52
    assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] < 52
    fresh = client_for(url)
    with pytest.raises(VendorRateLimited) as info:
        fresh.webhook_subscriptions()  # 102 points, restored at 10/s
    assert 4 <= info.value.retry_after <= 11
    with pytest.raises(VendorRateLimited):  # the client now knows the bucket: it does not send
        fresh.webhook_subscriptions()
    fresh.http.close()


def test_reset_restores_shopifys_bucket(shop, sandbox):
    url = sandbox[1]
    httpx.post(f"{url}/_admin/graphql/throttle", json={"maximumAvailable": 5, "currentlyAvailable": 0})
    httpx.post(f"{url}/_admin/reset")
    status = httpx.post(f"{url}/_admin/graphql/throttle", json={}).json()
    assert status == {"throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 2000, "restoreRate": 100.0},
                      "maxQueryCost": 1000}


@pytest.mark.parametrize("fault,error", [({"error_rate": 1.0}, VendorUnavailable),
                                         ({"rate_limit_every": 1, "retry_after_seconds": 2}, VendorRateLimited)])
def test_faults_apply_to_the_graphql_endpoint(shop, sandbox, fault, error):
    sandbox[2].set("POST /admin/api/{version}/graphql.json", fault)
    with pytest.raises(error):
        shop.notify_cancelled("shopify", OID, "x")
    sandbox[2].clear()
    shop.notify_cancelled("shopify", OID, "x")
    assert rest(sandbox[1], f"orders/{OID}.json")["order"]["cancelled_at"]


def test_a_query_above_the_single_query_limit(shop, sandbox):
    httpx.post(f"{sandbox[1]}/_admin/graphql/throttle", json={"maxQueryCost": 1000})
    big = "query Big { orders(first: 250) { nodes { lineItems(first: 250) { nodes { id } } } } }"
    with pytest.raises(ChannelRejected, match="exceeds the single query max cost limit"):
        shop.execute(big)


def test_wrong_token_is_401_and_issued_tokens_are_accepted(sandbox, shop):
    app, url, _ = sandbox
    wrong = client_for(url, token="shpat_wrong")
    with pytest.raises(VendorAuthFailed):
        wrong.execute(sg.ORDER_CANCELLED, {"id": sg.gid("Order", OID)})
    tokens = app.state.access_tokens  # a set, or sandbox/shopify_oauth.py AccessTokens (add/revoke)
    tokens.add("shpat_wrong")
    try:
        assert wrong.execute(sg.ORDER_CANCELLED, {"id": sg.gid("Order", OID)})["order"]["cancelledAt"] is None
    finally:
        (tokens.revoke if hasattr(tokens, "revoke") else tokens.discard)("shpat_wrong")
        wrong.http.close()
    with pytest.raises(VendorAuthFailed):
        client_for(url, token="shpat_wrong").execute(sg.ORDER_CANCELLED, {"id": sg.gid("Order", OID)})


def test_unknown_fields_are_graphql_errors_with_http_200(shop, sandbox):
    resp = httpx.post(f"{sandbox[1]}/admin/api/{VERSION}/graphql.json", headers={sg.ACCESS_HEADER: TOKEN},
                      json={"query": "{ order(id: \"gid://shopify/Order/1\") { id nope } }"})
    assert resp.status_code == 200
    body = resp.json()
    assert "nope" in body["errors"][0]["message"] and "cost" in body["extensions"]
    with pytest.raises(ChannelRejected, match="Cannot query field 'shop'"):
        shop.execute("query Q { shop { id } }")


def test_client_documents_fit_shopifys_single_query_limit(sandbox):
    from sandbox.shopify_graphql import requested_cost

    schema = sandbox[0].state.graphql_schema
    costs = {}
    for name in DOCUMENTS:
        op = graphql.parse(getattr(sg, name)).definitions[0]
        costs[name] = requested_cost(schema, op, {}, {"first": 50})
    assert {n: c for n, c in costs.items() if c > 1000} == {}
    # the client's own estimates (what it checks against the bucket before sending) are not below the real cost
    assert costs["FULFILLMENT_STATE"] <= sg.FULFILLMENT_STATE_COST and costs["ORDER"] <= sg.ORDER_COST
    assert costs["FULFILLMENT_ORDER_LINES"] <= sg.FO_LINES_COST, costs
