"""Amazon Orders API v2026-01-01 (issue 18, item 3): the published searchOrders/getOrder payloads
(tests/fixtures/amazon/orders_2026-01-01_*, provenance in tests/fixtures/SOURCES.md) through the mapping to the
canonical Order; the client against the sandbox (LWA, searchOrders + paginationToken, one getOrder per order,
shipment confirmation on v0 confirmShipment); the same seeded order gives the same canonical Order through v0 and
v2026-01-01; `amazon_orders_api_version` selects the client and v0 stays selectable."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from adapters.marketplace import amazon_orders_v2026 as v26
from adapters.marketplace import amazon_sp as amz
from canonical.money import Money
from canonical.order import Shipment, ShipmentLine
from canonical.order_feed import FeedAction
from runtime.settings import Settings
from sandbox.amazon import create_app
from sandbox.faults import FaultInjector
from tests.conftest import fixture_bytes
from tests.contract.serve_sandbox import serve


def load(name: str) -> dict:
    return json.loads(fixture_bytes("amazon", name))


SEARCH_EXAMPLE = load("orders_2026-01-01_searchOrders_200_example.json")
SEARCH_JPY = load("orders_2026-01-01_searchOrders_200_sandbox_static0_JPY.json")
SEARCH_GBP = load("orders_2026-01-01_searchOrders_200_sandbox_static1_GBP.json")
SEARCH_400 = load("orders_2026-01-01_searchOrders_400_sandbox_error.json")
GET_EXAMPLE = load("orders_2026-01-01_getOrder_200_example.json")
GET_USD = load("orders_2026-01-01_getOrder_200_sandbox_static2_USD.json")
V0_ORDERS = load("orders_v0_getOrders_200_sandbox_TEST_CASE_200.json")
V0_ITEMS = load("orders_v0_getOrderItems_200_sandbox.json")
V0_ADDRESS = load("orders_v0_getOrderAddress_200_example.json")["payload"]["ShippingAddress"]
CID, CSECRET, REFRESH = "client-id", "client-secret", "Atzr|refresh"


# -- mapping of the published payloads ---------------------------------------------------------------------------
def test_published_us_get_order_maps_to_a_canonical_order_whose_total_checks():
    order = v26.map_order_v2026(GET_USD["order"])
    assert order.workflow_id == "order:amazon:114-9876543-1234567"
    assert order.currency == "USD" and order.taxes_included is False  # US: tax on top
    (line,) = order.lines
    assert (line.line_id, line.channel_sku, line.quantity) == ("11498765431234", "ECHO-POP-US-BLK", 1)
    assert line.unit_price == Money.of("39.99", "USD") and line.tax_total == Money.of("10.00", "USD")
    assert order.total == order.computed_total == Money.of("49.99", "USD")
    assert order.shipping_address is not None and (order.shipping_address.city, order.shipping_address.country) == (
        "Seattle", "US")
    assert order.customer.email is None  # asked without BUYER: no buyer, and nothing invented
    assert order.created_at == datetime.fromisoformat(GET_USD["order"]["createdTime"].replace("Z", "+00:00"))


def test_published_search_pages_map_rows_statuses_and_next_token():
    jpy = v26.map_search_page(SEARCH_JPY)
    assert jpy.next_token == SEARCH_JPY["pagination"]["nextToken"]
    (row,) = jpy.orders
    assert (row.amazon_order_id, row.order_status, row.fulfillment_channel) == ("250-1234567-8901234", "Shipped",
                                                                                 "AFN")
    assert amz.feed_order(row).action == FeedAction.WAIT
    order = v26.map_order_v2026(SEARCH_JPY["orders"][0])
    assert [(ln.quantity, ln.unit_price) for ln in order.lines] == [
        (1, Money.of("5980", "JPY")), (2, Money.of("6980", "JPY"))]  # ITEM proceeds 13960 is the line
    assert order.total == order.computed_total == Money.of("19940", "JPY")
    gbp = v26.map_search_page(SEARCH_GBP)
    assert gbp.next_token is None and gbp.orders[0].fulfillment_channel == "MFN"
    assert v26.map_order_v2026(SEARCH_GBP["orders"][0]).total == Money.of("34.99", "GBP")


def test_statuses_become_the_v0_statuses_the_feed_rules_act_on():
    base = SEARCH_GBP["orders"][0]
    rows = [{**base, "orderId": f"X-{i}", "fulfillment": {**base["fulfillment"], "fulfillmentStatus": status,
                                                          "fulfilledBy": by}}
            for i, (status, by) in enumerate([("UNSHIPPED", "MERCHANT"), ("PARTIALLY_SHIPPED", "MERCHANT"),
                                              ("UNSHIPPED", "AMAZON"), ("CANCELLED", "MERCHANT"),
                                              ("PENDING", "MERCHANT"), ("PENDING_AVAILABILITY", "MERCHANT")])]
    page = v26.map_search_page({"orders": rows})
    assert [o.order_status for o in page.orders] == ["Unshipped", "PartiallyShipped", "Unshipped", "Canceled",
                                                     "Pending", "PendingAvailability"]
    assert [amz.feed_order(o).action for o in page.orders] == [
        FeedAction.START, FeedAction.START, FeedAction.WAIT, FeedAction.CANCEL, FeedAction.WAIT, FeedAction.WAIT]
    with pytest.raises(amz.AmazonMappingError, match="unknown fulfillmentStatus"):
        v26.map_search_page({"orders": [{**base, "fulfillment": {"fulfillmentStatus": "LOST"}}]})


def test_published_examples_whose_money_does_not_add_up_are_refused_not_adjusted():
    # searchOrders example: grandTotal holds a DELIVERY_TIP no item carries
    with pytest.raises(amz.AmazonMappingError, match=r"order total 154.99 USD does not equal .* = 149.99 USD"):
        v26.map_order_v2026(SEARCH_EXAMPLE["orders"][0])
    # getOrder example: a UK order with its TAX on top of the price (the v0 rule: UK prices include VAT)
    with pytest.raises(amz.AmazonMappingError, match=r"order total 103.97 GBP does not equal .* = 99.97 GBP"):
        v26.map_order_v2026(GET_EXAMPLE["order"])
    # and with no grandTotal the same lines map (shipping and its detailed tax included)
    order = v26.map_order_v2026({**GET_EXAMPLE["order"], "proceeds": None})
    assert order.lines[0].unit_price == Money.of("29.99", "GBP") and order.lines[0].tax_total == Money.of("3.00", "GBP")
    (ship,) = order.shipping_lines
    assert ship.price == Money.of("10.00", "GBP") and ship.tax_lines[0].amount == Money.of("1.00", "GBP")


def test_without_proceeds_the_line_is_unit_price_times_quantity_and_bad_money_is_refused():
    item = {**GET_EXAMPLE["order"]["orderItems"][0], "proceeds": None}
    assert v26.v0_item(item)["ItemPrice"] == {"CurrencyCode": "GBP", "Amount": "89.97"}
    bad = {**GET_USD["order"], "orderItems": [{**GET_USD["order"]["orderItems"][0], "proceeds": {"breakdowns": [
        {"type": "ITEM", "subtotal": {"amount": "39.999", "currencyCode": "USD"}}]}}]}
    with pytest.raises(amz.AmazonMappingError, match="finer than the currency's minor unit"):
        v26.map_order_v2026(bad)
    with pytest.raises(amz.AmazonMappingError, match="orderItems must be a list"):
        v26.map_order_v2026({**GET_USD["order"], "orderItems": None})


# -- against the sandbox -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sandbox():
    injector = FaultInjector()
    app = create_app(client_id=CID, client_secret=CSECRET, refresh_token=REFRESH, page_size=1, items_page_size=1,
                     injector=injector)
    with serve(app) as url:
        yield app, url, injector


def _settings(url: str, version: str | None) -> object:
    values = dict(amazon_lwa_token_url=f"{url}/auth/o2/token", amazon_lwa_client_id=CID,
                  amazon_lwa_client_secret=SecretStr(CSECRET), amazon_refresh_token=SecretStr(REFRESH),
                  amazon_sp_base_url=url, amazon_marketplace_id="ATVPDKIKX0DER", amazon_seller_id="A-SELLER",
                  amazon_channel="amazon")
    if version is not None:
        values["amazon_orders_api_version"] = version
    return type("S", (), values)()


def _api(url: str, version: str | None = "2026-01-01") -> amz.AmazonSpApi:
    api = amz.build_amazon_sp(_settings(url, version))
    api.http._client.timeout = httpx.Timeout(2.0)
    return api


@pytest.fixture
def seeded(sandbox):
    app, url, injector = sandbox
    injector.reset()
    for row in V0_ORDERS["payload"]["Orders"]:
        items = [dict(i, QuantityShipped=0) for i in V0_ITEMS["payload"]["OrderItems"]]
        if row["AmazonOrderId"] != V0_ITEMS["payload"]["AmazonOrderId"]:  # two units: its total says so
            items = [dict(items[0], OrderItemId="11111111111111", QuantityOrdered=2,
                          ItemPrice={"CurrencyCode": "USD", "Amount": "20.00"},
                          ItemTax={"CurrencyCode": "USD", "Amount": "2.02"})]
            row = dict(row, OrderTotal={"CurrencyCode": "USD", "Amount": "22.02"})
        assert httpx.post(f"{url}/_admin/orders", json={"order": row, "items": items, "address": V0_ADDRESS}
                          ).status_code == 201
    return app, url


def _recording(api: amz.AmazonSpApi) -> list[httpx.Request]:
    sent: list[httpx.Request] = []
    api.http._client.event_hooks["request"].append(sent.append)
    return sent


def test_search_follows_the_pagination_token_with_the_same_filters_and_fetches_each_order_once(seeded):
    _, url = seeded
    api = _api(url)
    assert type(api) is v26.AmazonOrdersV2026
    sent = _recording(api)
    since = datetime.now(UTC) - timedelta(minutes=5)
    summaries = list(api.orders_since(since))  # page size 1 in this sandbox: paginationToken is followed
    assert [s.amazon_order_id for s in summaries] == ["902-1845936-5435065", "902-8745147-1934268"]
    assert all(s.order_status == "Unshipped" and s.fulfillable for s in summaries)
    assert [r.url.path for r in sent] == ["/orders/2026-01-01/orders"] * 2
    first, second = (r.url.params for r in sent)
    assert first["marketplaceIds"] == second["marketplaceIds"] == "ATVPDKIKX0DER"
    assert first["lastUpdatedAfter"] == second["lastUpdatedAfter"] == amz.iso(since)
    assert first["includedData"] == "FULFILLMENT" and "paginationToken" not in first and second["paginationToken"]
    assert "MarketplaceIds" not in first and "NextToken" not in second  # no v0 parameter names

    sent.clear()
    order = api.fetch_order("902-1845936-5435065")
    assert [r.url.path for r in sent] == ["/orders/2026-01-01/orders/902-1845936-5435065"]  # items included
    assert set(sent[0].url.params["includedData"].split(",")) == {"BUYER", "RECIPIENT", "PROCEEDS", "PROMOTION",
                                                                  "FULFILLMENT"}
    assert order.shipping_address is not None and order.shipping_address.city == "Canton"
    assert order.total == order.computed_total
    two = api.fetch_order("902-8745147-1934268")
    assert two.lines[0].quantity == 2 and two.lines[0].unit_price == Money.of("10.00", "USD")


def test_the_same_order_maps_to_the_same_canonical_order_through_v0_and_v2026(seeded):
    _, url = seeded
    old, new = _api(url, "v0"), _api(url)
    assert type(old) is amz.AmazonSpApi
    for order_id in ("902-1845936-5435065", "902-8745147-1934268"):
        assert new.fetch_order(order_id) == old.fetch_order(order_id)
    since = datetime.now(UTC) - timedelta(minutes=5)
    assert new.feed_page(since).orders == old.feed_page(since).orders  # same statuses, same actions


def test_confirm_shipment_reads_one_get_order_then_posts_v0_confirm_shipment_once(seeded):
    app, url = seeded
    api = _api(url)
    sent = _recording(api)
    shipment = Shipment(shipment_id="shipstation:26", carrier="USPS", service="First", tracking_number="9400",
                        shipped_at=datetime.now(UTC),
                        lines=[ShipmentLine(line_id="05015851154158", channel_sku="NABetaASINB00551Q3CS", quantity=1)])
    api.confirm_shipment("amazon", "902-1845936-5435065", shipment)
    assert [(r.method, r.url.path) for r in sent] == [
        ("GET", "/orders/2026-01-01/orders/902-1845936-5435065"),
        ("POST", "/orders/v0/orders/902-1845936-5435065/shipmentConfirmation")]
    body = json.loads(sent[1].content)
    assert body["marketplaceId"] == "ATVPDKIKX0DER"
    assert body["packageDetail"]["orderItems"] == [{"orderItemId": "05015851154158", "quantity": 1}]
    assert api.get_order("902-1845936-5435065")["OrderStatus"] == "Shipped"
    sent.clear()
    api.confirm_shipment("amazon", "902-1845936-5435065", shipment)  # a retried activity: no second package
    assert [r.method for r in sent] == ["GET"]
    assert len(app.state.store.get("orders", "902-1845936-5435065")["packages"]) == 1
    token = api.http._client.auth.tokens.token()
    shipped = httpx.get(f"{url}/orders/2026-01-01/orders/902-1845936-5435065",
                        params={"includedData": "FULFILLMENT,PACKAGES"}, headers={"x-amz-access-token": token}).json()
    assert shipped["order"]["fulfillment"]["fulfillmentStatus"] == "SHIPPED"
    assert shipped["order"]["orderItems"][0]["fulfillment"] == {"quantityFulfilled": 1, "quantityUnfulfilled": 0}
    (pkg,) = shipped["order"]["packages"]
    assert pkg["trackingNumber"] == "9400" and pkg["packageItems"] == [{"orderItemId": "05015851154158",
                                                                        "quantity": 1}]


def test_a_cancelled_order_is_not_confirmed_and_the_cancel_feed_is_not_sent_twice(seeded):
    _, url = seeded
    assert httpx.post(f"{url}/_admin/orders/902-8745147-1934268/status", params={"status": "Canceled"}
                      ).status_code == 200
    api = _api(url)
    sent = _recording(api)
    shipment = Shipment(shipment_id="shipstation:27", carrier="USPS", shipped_at=datetime.now(UTC),
                        lines=[ShipmentLine(line_id="11111111111111", channel_sku="x", quantity=2)])
    api.confirm_shipment("amazon", "902-8745147-1934268", shipment)
    api.notify_cancelled("amazon", "902-8745147-1934268", "test")
    assert [r.method for r in sent] == ["GET", "GET"]  # read the status twice, sent nothing
    page = api.feed_page(datetime.now(UTC) - timedelta(minutes=5))
    cancelled = [o for o in page.orders + api.feed_page(datetime.now(UTC) - timedelta(minutes=5),
                                                        page.next_token).orders
                 if o.external_order_id == "902-8745147-1934268"]
    assert [o.action for o in cancelled] == [FeedAction.CANCEL]


def test_sandbox_answers_in_the_published_shapes_and_honours_included_data(seeded):
    _, url = seeded
    api = _api(url)
    token = api.http._client.auth.tokens.token()
    headers = {"x-amz-access-token": token}
    everything = "BUYER,RECIPIENT,PROCEEDS,PROMOTION,FULFILLMENT"
    body = httpx.get(f"{url}/orders/2026-01-01/orders", headers=headers, params={
        "lastUpdatedAfter": "2020-01-01T00:00:00Z", "marketplaceIds": "ATVPDKIKX0DER", "includedData": everything,
        "maxResultsPerPage": 50}).json()
    assert set(body) <= set(SEARCH_JPY) | {"lastUpdatedBefore"} and body["pagination"]["nextToken"]
    published_order, published_item = SEARCH_EXAMPLE["orders"][0], SEARCH_EXAMPLE["orders"][0]["orderItems"][0]
    (ours,) = body["orders"]
    assert set(ours) <= set(published_order) and set(ours["orderItems"][0]) <= set(published_item)
    assert set(ours["orderItems"][0]["product"]) <= set(published_item["product"])
    assert set(ours["recipient"]["deliveryAddress"]) <= set(published_order["recipient"]["deliveryAddress"])
    assert {"recipient", "proceeds", "fulfillment"} <= set(ours)  # (the published v0 row has no BuyerInfo)
    bare = httpx.get(f"{url}/orders/2026-01-01/orders/{ours['orderId']}", headers=headers).json()["order"]
    assert set(bare) == {"orderId", "createdTime", "lastUpdatedTime", "salesChannel", "orderItems"}  # required
    assert set(bare["orderItems"][0]) == {"orderItemId", "quantityOrdered", "product"}
    both = httpx.get(f"{url}/orders/2026-01-01/orders", headers=headers, params={
        "lastUpdatedAfter": "2020-01-01T00:00:00Z", "createdAfter": "2020-01-01T00:00:00Z"})
    neither = httpx.get(f"{url}/orders/2026-01-01/orders", headers=headers)
    for bad in (both, neither):
        assert bad.status_code == 400
        assert bad.json()["errors"][0]["code"] == SEARCH_400["errors"][0]["code"]
        assert set(SEARCH_400["errors"][0]) <= set(bad.json()["errors"][0])
    foreign = httpx.get(f"{url}/orders/2026-01-01/orders", headers=headers, params={
        "lastUpdatedAfter": "2020-01-01T00:00:00Z", "paginationToken": body["pagination"]["nextToken"],
        "includedData": "NOT_A_DATASET"})
    assert foreign.status_code == 400
    assert httpx.get(f"{url}/orders/2026-01-01/orders/{ours['orderId']}").status_code == 403  # no LWA token


def test_a_revoked_access_token_is_refreshed_through_lwa_and_the_call_retried(seeded):
    app, url = seeded
    api = _api(url)
    assert api.fetch_order("902-1845936-5435065").total is not None
    tokens = api.http._client.auth.tokens
    assert tokens.refreshes == 1
    app.state.tokens.clear()  # Amazon revoked it early
    assert api.fetch_order("902-1845936-5435065").total is not None
    assert tokens.refreshes == 2
    with pytest.raises(amz.ChannelRejected, match="404 from GET /orders/2026-01-01/orders/000-0000000-0000000"):
        api.fetch_order("000-0000000-0000000")


# -- selection ----------------------------------------------------------------------------------------------------
def test_the_setting_selects_the_client_and_v0_stays_selectable():
    url = "http://127.0.0.1:9"  # nothing is called
    assert type(_api(url, "v0")) is amz.AmazonSpApi
    assert type(_api(url, None)) is amz.AmazonSpApi  # a settings object without the field: v0, as before
    assert type(_api(url, "2026-01-01")) is v26.AmazonOrdersV2026
    with pytest.raises(ValueError, match="expected '2026-01-01' or 'v0'"):
        _api(url, "2027-01-01")
    assert Settings(_env_file=None).amazon_orders_api_version == "2026-01-01"  # the version Amazon names current
    assert Settings(_env_file=None, amazon_orders_api_version="2026-01-01").amazon_orders_api_version == "2026-01-01"
    with pytest.raises(ValidationError):
        Settings(_env_file=None, amazon_orders_api_version="v1")
    built = amz.build_amazon_sp(Settings(_env_file=None, amazon_orders_api_version="2026-01-01"))
    assert isinstance(built, v26.AmazonOrdersV2026) and built.api_version == "2026-01-01"
