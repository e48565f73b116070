"""Amazon SP-API: the published Orders v0 payloads (tests/fixtures/amazon; provenance and
checksums in tests/fixtures/SOURCES.md, checked by tests/contract/test_fixture_sources.py) through our mapping and
request builders; the adapter against the sandbox (LWA, getOrders + NextToken, items, address, confirmShipment,
feeds, settlement reports) and every fault mode; the sandbox's answers checked against the published shapes."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from adapters.http import VendorRateLimited, VendorUnavailable
from adapters.marketplace import amazon_sp as amz
from canonical.money import Money
from canonical.order import Shipment, ShipmentLine
from canonical.returns import Refund, RefundLine
from canonical.vendor_errors import VendorAuthFailed
from sandbox.amazon import create_app
from sandbox.faults import FaultInjector
from tests.conftest import fixture_bytes
from tests.contract.serve_sandbox import serve


def load(name: str) -> dict:
    return json.loads(fixture_bytes("amazon", name))


ORDERS = load("orders_v0_getOrders_200_sandbox_TEST_CASE_200.json")
ITEMS = load("orders_v0_getOrderItems_200_sandbox.json")
CONFIRM = load("orders_v0_confirmShipment_request_sandbox.json")
CID, CSECRET, REFRESH = "client-id", "client-secret", "Atzr|refresh"


# -- mapping ------------------------------------------------------------------------------------------------------
def test_sandbox_order_and_items_map_to_a_canonical_order_whose_total_checks():
    order = amz.map_order(ORDERS["payload"]["Orders"][0], ITEMS["payload"]["OrderItems"])
    assert order.workflow_id == "order:amazon:902-1845936-5435065"
    assert order.currency == "USD" and order.taxes_included is False  # US marketplace: tax on top
    (line,) = order.lines
    assert (line.line_id, line.channel_sku, line.quantity) == ("05015851154158", "NABetaASINB00551Q3CS", 1)
    assert line.unit_price == Money.of("10.00", "USD") and line.tax_total == Money.of("1.01", "USD")
    assert order.total == order.computed_total == Money.of("11.01", "USD")


def test_item_price_is_the_line_total_split_exactly_over_the_quantity():
    item = {**ITEMS["payload"]["OrderItems"][0], "QuantityOrdered": 3, "ItemTax": None}
    order = amz.map_order({**ORDERS["payload"]["Orders"][0], "OrderTotal": None}, [item])
    assert order.lines[0].net == Money.of("10.00", "USD")  # 3 × 3.34 less a 0.02 rounding discount


def test_fractional_yen_in_the_published_example_is_refused_not_rounded():
    with pytest.raises(amz.AmazonMappingError, match="finer than the currency's minor unit"):
        amz.map_order(load("orders_v0_getOrder_200_example.json")["payload"],
                      load("orders_v0_getOrderItems_200_example.json")["payload"]["OrderItems"])


def test_get_orders_page_maps_next_token_and_statuses():
    page = amz.map_orders_page(load("orders_v0_getOrders_200_example.json"))
    assert page.next_token == "2YgYW55IGNhcm5hbCBwbGVhc3VyZS4"
    assert page.orders[0].order_status == "Pending" and not page.orders[0].fulfillable
    sandbox_page = amz.map_orders_page(ORDERS)
    assert [o.fulfillable for o in sandbox_page.orders] == [True, True] and sandbox_page.next_token is None


def test_confirm_shipment_body_has_the_published_shape():
    shipment = Shipment(shipment_id="shipstation:1", carrier="FedEx", service="FedEx Ground",
                        tracking_number="112345678", shipped_at=datetime(2022, 2, 11, 1, tzinfo=UTC),
                        lines=[ShipmentLine(line_id="79039765272157", channel_sku="CBA_OTF_5", quantity=1)])
    body = amz.shipment_confirmation_body(shipment, "ATVPDKIKX0DER")
    published = CONFIRM["packageDetail"]
    assert set(body) == set(CONFIRM)
    # every field we send is a published one; the optional ones we leave out are supply-source/transparency
    assert set(body["packageDetail"]) <= set(published)
    assert set(published) - set(body["packageDetail"]) == {"shipFromSupplySourceId"}
    assert body["packageDetail"]["shipDate"] == published["shipDate"]
    assert body["packageDetail"]["orderItems"] == [{"orderItemId": "79039765272157", "quantity": 1}]
    assert body["packageDetail"]["packageReferenceId"].isdigit()


def test_lwa_token_is_cached_until_expiry():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(dict(x.split("=") for x in request.content.decode().split("&")))
        return httpx.Response(200, json={"access_token": f"Atza|{len(calls)}", "token_type": "bearer",
                                         "expires_in": 3600})

    now = [0.0]
    tokens = amz.LwaTokens(httpx.Client(transport=httpx.MockTransport(handler)), "https://api.amazon.com/auth/o2/token",
                           CID, SecretStr(CSECRET), SecretStr(REFRESH), clock=lambda: now[0])
    assert tokens.token() == "Atza|1" and tokens.token() == "Atza|1"
    now[0] = 3539.0
    assert tokens.token() == "Atza|1"
    now[0] = 3541.0  # within the 60 s margin before expiry: refreshed
    assert tokens.token() == "Atza|2"
    assert calls[0]["grant_type"] == "refresh_token" and calls[0]["client_id"] == CID


# -- against the sandbox --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sandbox():
    injector = FaultInjector()
    app = create_app(client_id=CID, client_secret=CSECRET, refresh_token=REFRESH, page_size=1, items_page_size=1,
                     injector=injector)
    with serve(app) as url:
        yield app, url, injector


def _api(url: str, secret: str = CSECRET) -> amz.AmazonSpApi:
    settings = type("S", (), dict(
        amazon_lwa_token_url=f"{url}/auth/o2/token", amazon_lwa_client_id=CID,
        amazon_lwa_client_secret=SecretStr(secret), amazon_refresh_token=SecretStr(REFRESH), amazon_sp_base_url=url,
        amazon_marketplace_id="ATVPDKIKX0DER", amazon_seller_id="A-SELLER", amazon_channel="amazon"))()
    api = amz.build_amazon_sp(settings)
    api.http._client.timeout = httpx.Timeout(2.0)
    return api


@pytest.fixture
def api(sandbox):
    _, url, injector = sandbox
    injector.reset()
    for row in ORDERS["payload"]["Orders"]:
        items = [dict(i, QuantityShipped=0) for i in ITEMS["payload"]["OrderItems"]] \
            if row["AmazonOrderId"] == ITEMS["payload"]["AmazonOrderId"] else \
            [dict(ITEMS["payload"]["OrderItems"][0], OrderItemId="11111111111111", QuantityOrdered=2,
                  ItemPrice={"CurrencyCode": "USD", "Amount": "20.00"}, ItemTax={"CurrencyCode": "USD", "Amount": "2.02"})]
        if row["AmazonOrderId"] != ITEMS["payload"]["AmazonOrderId"]:  # two units: its total says so
            row = dict(row, OrderTotal={"CurrencyCode": "USD", "Amount": "22.02"})
        resp = httpx.post(f"{url}/_admin/orders", json={
            "order": row, "items": items,
            "address": load("orders_v0_getOrderAddress_200_example.json")["payload"]["ShippingAddress"]})
        assert resp.status_code == 201
    return _api(url)


def test_get_orders_pages_through_next_token_and_fetches_full_orders(api):
    since = datetime.now(UTC) - timedelta(minutes=5)
    summaries = list(api.orders_since(since))  # page size 1 in this sandbox: NextToken is followed
    assert [s.amazon_order_id for s in summaries] == ["902-1845936-5435065", "902-8745147-1934268"]
    order = api.fetch_order("902-1845936-5435065")
    assert order.shipping_address is not None and order.shipping_address.city == "Canton"
    assert order.total == order.computed_total
    two = api.fetch_order("902-8745147-1934268")
    assert two.lines[0].quantity == 2 and two.lines[0].unit_price == Money.of("10.00", "USD")


def test_the_order_feed_port_gives_each_order_its_action_under_amazons_rules(api):
    """`feed_page` (the OrderFeed port the channel order poll uses): the published page's Pending order waits;
    the sandbox's paid merchant-fulfilled orders start; AFN and Canceled rows get wait and cancel."""
    from canonical.order_feed import FeedAction

    since = datetime.now(UTC) - timedelta(minutes=5)
    first = api.feed_page(since)
    assert first.orders[0].external_order_id == "902-1845936-5435065" and first.next_token
    assert first.orders[0].action == FeedAction.START and first.orders[0].status == "Unshipped"
    rows = [{**ORDERS["payload"]["Orders"][0], "AmazonOrderId": f"X-{i}", "OrderStatus": status,
             "FulfillmentChannel": channel} for i, (status, channel) in
            enumerate([("Unshipped", "AFN"), ("Canceled", "MFN"), ("Pending", "MFN"), ("PartiallyShipped", "MFN")])]
    page = amz.map_orders_page({"payload": {"Orders": rows}})
    assert [amz.feed_order(o).action for o in page.orders] == [
        FeedAction.WAIT, FeedAction.CANCEL, FeedAction.WAIT, FeedAction.START]
    published = amz.map_orders_page(load("orders_v0_getOrders_200_example.json"))  # the vendor's own example
    assert amz.feed_order(published.orders[0]).action == FeedAction.WAIT  # Pending: not paid yet


def test_sandbox_get_orders_answers_in_the_published_shape(api, sandbox):
    url = sandbox[1]
    token = api.http._client.auth.tokens.token()
    body = httpx.get(f"{url}/orders/v0/orders", params={"MarketplaceIds": "ATVPDKIKX0DER",
                                                        "LastUpdatedAfter": "2020-01-01T00:00:00Z"},
                     headers={"x-amz-access-token": token}).json()
    published = ORDERS["payload"]["Orders"][0]
    assert set(body["payload"]["Orders"][0]) >= set(published)
    items = httpx.get(f"{url}/orders/v0/orders/902-1845936-5435065/orderItems",
                      headers={"x-amz-access-token": token}).json()
    assert set(items["payload"]["OrderItems"][0]) == set(ITEMS["payload"]["OrderItems"][0])
    bad = httpx.get(f"{url}/orders/v0/orders", params={"MarketplaceIds": "ATVPDKIKX0DER"},
                    headers={"x-amz-access-token": token}).json()
    published_error = load("orders_v0_getOrders_400_sandbox_error.json")
    assert bad["errors"][0]["code"] == published_error["errors"][0]["code"]
    assert set(published_error["errors"][0]) <= set(bad["errors"][0])


def test_confirm_shipment_then_idempotent(api, sandbox):
    shipment = Shipment(shipment_id="shipstation:9", carrier="USPS", service="First", tracking_number="9400",
                        shipped_at=datetime.now(UTC),
                        lines=[ShipmentLine(line_id="05015851154158", channel_sku="NABetaASINB00551Q3CS", quantity=1)])
    api.confirm_shipment("amazon", "902-1845936-5435065", shipment)
    assert api.get_order("902-1845936-5435065")["OrderStatus"] == "Shipped"
    api.confirm_shipment("amazon", "902-1845936-5435065", shipment)  # a retried activity: no second package
    rec = sandbox[0].state.store.get("orders", "902-1845936-5435065")
    assert len(rec["packages"]) == 1


def test_cancel_inventory_and_refund_feeds(api, sandbox):
    store = sandbox[0].state.store
    api.notify_cancelled("amazon", "902-8745147-1934268", "out of stock")
    assert api.get_order("902-8745147-1934268")["OrderStatus"] == "Canceled"
    feeds = len(store.collection("feeds"))
    api.notify_cancelled("amazon", "902-8745147-1934268", "again")
    assert len(store.collection("feeds")) == feeds  # already cancelled: nothing sent
    api.publish_availability("amazon", "NABetaASINB00551Q3CS", 7, key="k1")
    assert store.collection("inventory")["NABetaASINB00551Q3CS"] == 7
    refund = Refund(refund_key="return:amazon:R1", channel="amazon", external_order_id="902-1845936-5435065",
                    currency="USD", lines=[RefundLine(line_id="05015851154158", quantity=1,
                                                      amount=Money.of("10.00", "USD"), tax=Money.of("1.01", "USD"))],
                    shipping=Money.zero("USD"), tax=Money.of("1.01", "USD"), fees_kept=Money.zero("USD"))
    api.refund(refund)
    api.refund(refund)  # same MerchantAdjustmentItemID: Amazon (and the sandbox) apply it once
    adjustments = list(store.collection("adjustments").values())
    assert len(adjustments) == 1
    assert adjustments[0]["components"] == {"Principal": "10.00", "Tax": "1.01"}
    assert all(f["processingStatus"] == "DONE" for f in store.collection("feeds").values())


def test_settlement_reports_download_gzip_once(api, sandbox, tmp_path):
    data = fixture_bytes("amazon", "settlement_flat_file_V1_GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE_sample.tsv")
    httpx.post(f"{sandbox[1]}/_admin/reports", params={"gzip_compressed": "true"}, content=data)
    written = api.download_settlements(tmp_path)
    assert len(written) == 1 and written[0].read_bytes() == data
    assert api.download_settlements(tmp_path) == []
    assert gzip.decompress(gzip.compress(data)) == data


def test_sandbox_settles_what_shipped_and_was_refunded_as_a_v2_report_the_reader_parses(api, sandbox, tmp_path):
    from adapters.marketplace.amazon_settlement import read_settlement
    from canonical.finance import TransactionKind

    shipment = Shipment(shipment_id="shipstation:9", carrier="USPS", tracking_number="9400",
                        shipped_at=datetime.now(UTC),
                        lines=[ShipmentLine(line_id="05015851154158", channel_sku="NABetaASINB00551Q3CS", quantity=1)])
    api.confirm_shipment("amazon", "902-1845936-5435065", shipment)
    api.refund(Refund(refund_key="return:amazon:R1", channel="amazon", external_order_id="902-1845936-5435065",
                      currency="USD", lines=[RefundLine(line_id="05015851154158", quantity=1,
                                                        amount=Money.of("10.00", "USD"), tax=Money.of("1.01", "USD"))],
                      shipping=Money.zero("USD"), tax=Money.of("1.01", "USD"), fees_kept=Money.zero("USD")))
    body = httpx.post(f"{sandbox[1]}/_admin/settlements").json()
    assert body["orders"] == ["902-1845936-5435065"] and body["refunded_orders"] == ["902-1845936-5435065"]
    assert httpx.post(f"{sandbox[1]}/_admin/settlements").json()["settlementId"] is None  # nothing new to settle
    (path,) = api.download_settlements(tmp_path)  # listed by the Reports API like any settlement report
    with open(path, "rb") as f:
        reader = read_settlement(f)
        lines = list(reader)
    settlement = reader.settlement
    assert settlement.settlement_id == body["settlementId"] and str(settlement.total) == body["total"]
    assert sum((line.amount for line in lines), Money.zero("USD").amount) == settlement.total
    orders = [line for line in lines if line.kind == TransactionKind.ORDER]
    refunds = [line for line in lines if line.kind == TransactionKind.REFUND]
    buyer = {(line.amount_type, line.amount_description): line.amount for line in orders if line.buyer_amount}
    assert {k: str(v) for k, v in buyer.items()} == {("ItemPrice", "Principal"): "10.00",
                                                     ("ItemPrice", "Tax"): "1.01"}
    assert sum(line.amount for line in refunds if line.buyer_amount) == -sum(buyer.values())
    assert all(line.sku == "NABetaASINB00551Q3CS" for line in lines)
    assert {line.order_id for line in lines} == {"902-1845936-5435065"}


# -- faults and auth ----------------------------------------------------------------------------------------------
def test_429_becomes_retry_after_delay(api, sandbox):
    sandbox[2].set("GET /orders/v0/orders", {"rate_limit_every": 1, "retry_after_seconds": 3})
    with pytest.raises(VendorRateLimited) as info:
        api.orders_page(datetime.now(UTC) - timedelta(hours=1))
    assert info.value.next_retry_delay == timedelta(seconds=3)


@pytest.mark.parametrize("fault,kind", [({"error_rate": 1.0, "error_statuses": [503]}, "VendorUnavailable"),
                                        ({"timeout_rate": 1.0, "timeout_seconds": 3}, "VendorTimeout"),
                                        ({"outage_until": "2999-01-01T00:00:00Z"}, "VendorUnavailable")])
def test_5xx_timeouts_and_outages_are_retryable(api, sandbox, fault, kind):
    sandbox[2].set("GET /orders/v0/orders/{order_id}", fault)
    with pytest.raises(VendorUnavailable) as info:
        api.get_order("902-1845936-5435065")
    assert info.value.type == kind and not info.value.non_retryable


def test_lwa_faults_and_bad_credentials(sandbox):
    _, url, injector = sandbox
    injector.reset()
    injector.set("POST /auth/o2/token", {"rate_limit_every": 1, "retry_after_seconds": 2})
    with pytest.raises(VendorRateLimited):
        _api(url).get_order("x")
    injector.reset()
    with pytest.raises(VendorAuthFailed):
        _api(url, secret="wrong").get_order("x")


def test_expired_token_is_refreshed_and_the_call_retried(api, sandbox):
    api.get_order("902-1845936-5435065")
    tokens = sandbox[0].state.tokens
    for t in list(tokens):
        tokens[t] = datetime.now(UTC) - timedelta(seconds=1)  # Amazon expired it early
    assert api.get_order("902-1845936-5435065")["AmazonOrderId"] == "902-1845936-5435065"
    assert api.http._client.auth.tokens.refreshes == 2


def test_secrets_are_never_in_reprs(api):
    tokens = api.http._client.auth.tokens
    shown = repr(api.http) + repr(tokens._secret) + repr(tokens._refresh)
    assert CSECRET not in shown and REFRESH not in shown
