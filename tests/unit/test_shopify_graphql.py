"""The Shopify GraphQL Admin client (adapters/marketplace/shopify_graphql.py): request bodies, the throttle, user
errors, compare-and-set inventory, refunds against suggested transactions, and the order mapping, over an
httpx MockTransport that plays Shopify (the sandbox and the published payloads are tested in
tests/unit/test_sandbox_shopify_graphql.py and tests/contract/test_shopify_graphql.py)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters.http import VendorHttp
from adapters.marketplace.shopify import map_order
from adapters.marketplace.shopify_graphql import (
    ShopifyGraphQL,
    feed_action,
    fulfillment_input,
    gid,
    legacy_id,
    order_as_webhook,
    refund_input,
)
from canonical.errors import ChannelRejected
from canonical.money import Money
from canonical.order import Shipment, ShipmentLine
from canonical.order_feed import FeedAction
from canonical.returns import Refund, RefundLine
from canonical.vendor_errors import VendorRateLimited, VendorUnavailable

OP = re.compile(r"(?:query|mutation)\s+(\w+)")


def cost(available: float = 1990, requested: int = 10, maximum: float = 2000, rate: float = 100) -> dict:
    return {"cost": {"requestedQueryCost": requested, "actualQueryCost": requested,
                     "throttleStatus": {"maximumAvailable": maximum, "currentlyAvailable": available,
                                        "restoreRate": rate}}}


class FakeShopify:
    """Answers by operation name; records each request's operation and variables."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, dict]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/admin/api/2026-10/graphql.json"
        body = json.loads(request.content)
        name = OP.search(body["query"]).group(1)
        self.calls.append((name, body.get("variables") or {}))
        answer = self.answers[name]
        answer = answer(body.get("variables") or {}) if callable(answer) else answer
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, json={**answer, "extensions": answer.get("extensions", cost())},
                              headers={"X-Shopify-API-Version": "2026-10"})

    def ops(self) -> list[str]:
        return [name for name, _ in self.calls]


def client(fake: FakeShopify, **kwargs: Any) -> ShopifyGraphQL:
    http = VendorHttp("shopify", "https://shop.example", transport=httpx.MockTransport(fake))
    return ShopifyGraphQL(http, shop="shop.example", **kwargs)


ORDER = "gid://shopify/Order/5000000000000000001"


def fo(fo_id: int, status: str, lines: list[tuple[int, int, int]]) -> dict:
    """A fulfillment order with (fulfillment order line id, order line id, remaining quantity) lines."""
    return {"id": f"gid://shopify/FulfillmentOrder/{fo_id}", "status": status,
            "lineItems": {"nodes": [{"id": f"gid://shopify/FulfillmentOrderLineItem/{fl}", "remainingQuantity": rq,
                                     "lineItem": {"id": f"gid://shopify/LineItem/{li}"}} for fl, li, rq in lines]}}


def shipment(*lines: tuple[str, int], tracking: str | None = "1Z999") -> Shipment:
    return Shipment(shipment_id="SHP-1", carrier="UPS", tracking_number=tracking, shipped_at="2026-12-01T10:00:00Z",
                    tracking_url="https://ups.example/1Z999" if tracking else None,
                    lines=[ShipmentLine(line_id=li, channel_sku=f"SKU-{li}", quantity=q) for li, q in lines])


# -- ids ---------------------------------------------------------------------------------------------------
def test_ids_round_trip_exactly_above_2_53():
    assert gid("Order", "5000000000000000001") == ORDER
    assert legacy_id(ORDER) == "5000000000000000001"
    assert legacy_id("gid://shopify/LineItem/12?foo=bar") == "12"
    with pytest.raises(ChannelRejected):
        gid("Order", "12.5")


# -- fulfillment -----------------------------------------------------------------------------------------------
def test_fulfillment_input_splits_across_open_fulfillment_orders_and_caps_at_remaining():
    order = {"id": ORDER, "fulfillmentOrders": {"nodes": [
        fo(1, "OPEN", [(11, 101, 1), (12, 102, 5)]), fo(2, "IN_PROGRESS", [(21, 101, 2)])]}}
    body = fulfillment_input(shipment(("101", 3), ("102", 2)), order)
    assert body["lineItemsByFulfillmentOrder"] == [
        {"fulfillmentOrderId": "gid://shopify/FulfillmentOrder/1", "fulfillmentOrderLineItems": [
            {"id": "gid://shopify/FulfillmentOrderLineItem/11", "quantity": 1},
            {"id": "gid://shopify/FulfillmentOrderLineItem/12", "quantity": 2}]},
        {"fulfillmentOrderId": "gid://shopify/FulfillmentOrder/2", "fulfillmentOrderLineItems": [
            {"id": "gid://shopify/FulfillmentOrderLineItem/21", "quantity": 2}]}]
    assert body["trackingInfo"] == {"number": "1Z999", "url": "https://ups.example/1Z999", "company": "UPS"}
    assert body["notifyCustomer"] is True


def test_units_no_open_fulfillment_order_holds_are_asked_of_the_closed_one():
    """Shopify, not the client, says why they cannot be fulfilled (its user error parks the run)."""
    order = {"id": ORDER, "fulfillmentOrders": {"nodes": [fo(1, "CLOSED", [(11, 101, 0)])]}}
    body = fulfillment_input(shipment(("101", 1)), order)
    assert body["lineItemsByFulfillmentOrder"] == [{"fulfillmentOrderId": "gid://shopify/FulfillmentOrder/1",
                                                    "fulfillmentOrderLineItems": [
                                                        {"id": "gid://shopify/FulfillmentOrderLineItem/11",
                                                         "quantity": 1}]}]


def test_more_than_remains_is_sent_as_asked_and_a_line_on_no_fulfillment_order_is_refused():
    order = {"id": ORDER, "fulfillmentOrders": {"nodes": [fo(1, "OPEN", [(11, 101, 1)])]}}
    body = fulfillment_input(shipment(("101", 3)), order)
    assert body["lineItemsByFulfillmentOrder"][0]["fulfillmentOrderLineItems"] == [
        {"id": "gid://shopify/FulfillmentOrderLineItem/11", "quantity": 3}]
    with pytest.raises(ChannelRejected, match="no fulfillment order with line item 999"):
        fulfillment_input(shipment(("999", 1)), order)


def test_without_tracking_a_fully_fulfilled_line_is_a_retry_not_a_request():
    order = {"id": ORDER, "fulfillmentOrders": {"nodes": [fo(1, "CLOSED", [(11, 101, 0)])]}}
    assert fulfillment_input(shipment(("101", 1), tracking=None), order) is None


def test_confirm_shipment_user_error_parks_with_shopifys_message():
    message = "Fulfillment order 1 has an unfulfillable status= closed."
    fake = FakeShopify({
        "FulfillmentState": {"data": {"order": {"id": ORDER, "fulfillments": [], "fulfillmentOrders": {
            "nodes": [fo(1, "CLOSED", [(11, 101, 0)])]}}}},
        "FulfillmentCreate": {"data": {"fulfillmentCreate": {"fulfillment": None, "userErrors": [
            {"field": ["fulfillment"], "message": message}]}}}})
    with pytest.raises(ChannelRejected) as err:
        client(fake).confirm_shipment("shopify", "5000000000000000001", shipment(("101", 1)))
    assert message in str(err.value)
    assert err.value.details["user_errors"] == [{"field": ["fulfillment"], "message": message}]


def test_confirm_shipment_is_idempotent_by_tracking_number():
    fake = FakeShopify({"FulfillmentState": {"data": {"order": {
        "id": ORDER, "fulfillments": [{"id": "gid://shopify/Fulfillment/9", "status": "SUCCESS",
                                       "trackingInfo": [{"number": "1Z999"}]}],
        "fulfillmentOrders": {"nodes": []}}}}})
    client(fake).confirm_shipment("shopify", "5000000000000000001", shipment(("101", 1)))
    assert fake.ops() == ["FulfillmentState"]


# -- throttle ---------------------------------------------------------------------------------------------------
def test_throttled_answer_is_rate_limited_for_the_restore_time():
    fake = FakeShopify({"OrderCancelled": {"errors": [{"message": "Throttled", "extensions": {
        "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
        "extensions": cost(available=150, requested=352)}})
    with pytest.raises(VendorRateLimited) as err:
        client(fake, clock=lambda: 100.0).notify_cancelled("shopify", "5000000000000000001", "x")
    assert err.value.retry_after == pytest.approx(2.1)  # (352 − 150) / 100 points a second, to 0.1 s


def test_a_request_the_bucket_cannot_afford_is_not_sent_and_the_status_reaches_on_cost():
    seen = []
    now = [100.0]
    fake = FakeShopify({"OrderCancelled": {"data": {"order": {"id": ORDER, "cancelledAt": "2026-12-01T00:00:00Z"}},
                                           "extensions": cost(available=5)}})
    shop = client(fake, clock=lambda: now[0], on_cost=lambda s, st: seen.append((s, st.available)))
    shop.notify_cancelled("shopify", "5000000000000000001", "x")
    assert seen == [("shop.example", Decimal("5"))]
    with pytest.raises(VendorRateLimited) as err:  # FulfillmentState costs 520: 515 short at 100/s
        shop.confirm_shipment("shopify", "5000000000000000001", shipment(("101", 1)))
    assert err.value.retry_after == pytest.approx(5.2)  # rounded up to a tenth
    assert fake.ops() == ["OrderCancelled"]
    now[0] += 5.3  # restored meanwhile: sent
    fake.answers["FulfillmentState"] = {"data": {"order": {"id": ORDER, "fulfillments": [{
        "id": "f", "status": "SUCCESS", "trackingInfo": [{"number": "1Z999"}]}], "fulfillmentOrders": {"nodes": []}}}}
    shop.confirm_shipment("shopify", "5000000000000000001", shipment(("101", 1)))
    assert fake.ops() == ["OrderCancelled", "FulfillmentState"]


def test_other_graphql_errors_park_and_server_errors_retry():
    fake = FakeShopify({"OrderCancelled": {"errors": [{"message": "Field 'x' doesn't exist on type 'Order'",
                                                       "extensions": {"code": "undefinedField"}}]}})
    with pytest.raises(ChannelRejected, match="doesn't exist"):
        client(fake).notify_cancelled("shopify", "1", "x")
    fake.answers["OrderCancelled"] = {"errors": [{"message": "Internal error", "extensions": {
        "code": "INTERNAL_SERVER_ERROR"}}]}
    with pytest.raises(VendorUnavailable):
        client(fake).notify_cancelled("shopify", "1", "x")


# -- cancel, tags ---------------------------------------------------------------------------------------------
def test_cancel_once_without_refund_or_restock_and_order_cancel_user_errors_park():
    fake = FakeShopify({
        "OrderCancelled": {"data": {"order": {"id": ORDER, "cancelledAt": None}}},
        "OrderCancel": {"data": {"orderCancel": {"job": {"id": "gid://shopify/Job/1", "done": False},
                                                 "orderCancelUserErrors": []}}}})
    client(fake).notify_cancelled("shopify", "5000000000000000001", "customer asked")
    assert fake.calls[1][1] == {"orderId": ORDER, "reason": "OTHER", "staffNote": "customer asked"}
    fake.answers["OrderCancel"] = {"data": {"orderCancel": {"job": None, "orderCancelUserErrors": [
        {"field": ["orderId"], "message": "Cannot cancel a fulfilled order", "code": "INVALID"}]}}}
    with pytest.raises(ChannelRejected, match="Cannot cancel a fulfilled order"):
        client(fake).notify_cancelled("shopify", "5000000000000000001", "again")


# -- refunds ----------------------------------------------------------------------------------------------------
def refund(total: str = "30.00", shipping: str = "0") -> Refund:
    zero = Money.zero("USD")
    return Refund(refund_key="RET-1", channel="shopify", external_order_id="5000000000000000001", currency="USD",
                  lines=[RefundLine(line_id="101", quantity=1, amount=Money.of(Decimal(total) - Decimal(shipping),
                                                                               "USD"), tax=zero)],
                  shipping=Money.of(shipping, "USD"), tax=zero, fees_kept=zero)


def suggested(*amounts: str) -> dict:
    return {"amountSet": {"shopMoney": {"amount": "0", "currencyCode": "USD"}}, "suggestedTransactions": [
        {"gateway": "shopify_payments", "kind": "SUGGESTED_REFUND",
         "amountSet": {"shopMoney": {"amount": a, "currencyCode": "USD"}},
         "parentTransaction": {"id": f"gid://shopify/OrderTransaction/{n}"}} for n, a in enumerate(amounts, 1)]}


def test_refund_is_paid_against_the_suggested_transactions_in_order():
    r = refund("30.00", shipping="5.00")
    body = refund_input(r, ORDER, suggested("20.00", "50.00"))
    assert body["transactions"] == [
        {"orderId": ORDER, "parentId": "gid://shopify/OrderTransaction/1", "amount": "20.00",
         "gateway": "shopify_payments", "kind": "REFUND"},
        {"orderId": ORDER, "parentId": "gid://shopify/OrderTransaction/2", "amount": "10.00",
         "gateway": "shopify_payments", "kind": "REFUND"}]
    assert body["shipping"] == {"amount": "5.00"}
    assert body["note"] == "retailflow refund RET-1"
    assert body["refundLineItems"] == [{"lineItemId": "gid://shopify/LineItem/101", "quantity": 1,
                                        "restockType": "NO_RESTOCK"}]
    with pytest.raises(ChannelRejected, match="more than Shopify can refund"):
        refund_input(refund("30.00"), ORDER, suggested("12.00"))
    with pytest.raises(ChannelRejected, match="no transaction"):
        refund_input(refund("30.00"), ORDER, {"suggestedTransactions": []})


def test_a_buyer_who_paid_in_another_currency_is_refunded_in_it_at_the_transactions_rate():
    """Shopify's RefundInput.currency: required where the presentment currency differs; the transactions are in it.
    (Shopify's published suggestedRefund for order 469306983: 8.26 USD in the shop, 7.00 EUR for the buyer.)"""
    eur = {"amountSet": {"shopMoney": {"amount": "8.26", "currencyCode": "USD"}}, "suggestedTransactions": [
        {"gateway": "shopify_payments", "kind": "SUGGESTED_REFUND",
         "amountSet": {"shopMoney": {"amount": "8.26", "currencyCode": "USD"},
                       "presentmentMoney": {"amount": "7.00", "currencyCode": "EUR"}},
         "parentTransaction": {"id": "gid://shopify/OrderTransaction/9"}}]}
    whole = refund_input(refund("8.26"), ORDER, eur)
    assert whole["currency"] == "EUR" and whole["transactions"][0]["amount"] == "7.00"  # exactly what was paid
    part = refund_input(refund("4.13"), ORDER, eur)
    assert part["currency"] == "EUR" and part["transactions"][0]["amount"] == "3.50"
    assert "currency" not in refund_input(refund("30.00"), ORDER, suggested("30.00"))  # one currency: not sent


def test_refund_once_by_note():
    fake = FakeShopify({"RefundState": {"data": {"order": {"id": ORDER, "currencyCode": "USD", "refunds": [
        {"id": "gid://shopify/Refund/1", "note": "retailflow refund RET-1"}], "suggestedRefund": suggested("30")}}}})
    client(fake).refund(refund())
    assert fake.ops() == ["RefundState"]
    assert fake.calls[0][1]["refundLineItems"] == [{"lineItemId": "gid://shopify/LineItem/101", "quantity": 1,
                                                    "restockType": "NO_RESTOCK"}]


# -- inventory ---------------------------------------------------------------------------------------------------
def inventory_fake(available: int | None, set_answer: dict) -> FakeShopify:
    return FakeShopify({
        "VariantsBySku": {"data": {"productVariants": {"nodes": [
            {"id": "gid://shopify/ProductVariant/7", "sku": "SKU-1X", "price": "1.00", "compareAtPrice": None,
             "product": {"id": "gid://shopify/Product/3"}, "inventoryItem": {"id": "gid://shopify/InventoryItem/70"}},
            {"id": "gid://shopify/ProductVariant/8", "sku": "SKU-1", "price": "9.00", "compareAtPrice": None,
             "product": {"id": "gid://shopify/Product/3"}, "inventoryItem": {"id": "gid://shopify/InventoryItem/80"}},
        ]}}},
        "ActiveLocations": {"data": {"locations": {"nodes": [
            {"id": "gid://shopify/Location/1", "name": "Old", "isActive": False},
            {"id": "gid://shopify/Location/2", "name": "Main", "isActive": True}]}}},
        "AvailableAt": {"data": {"inventoryItem": {"id": "gid://shopify/InventoryItem/80", "inventoryLevel": None if
                                                   available is None else {"quantities": [
                                                       {"name": "available", "quantity": available}]}}}},
        "InventorySet": set_answer})


def test_inventory_is_set_compare_and_set_with_an_idempotency_key():
    fake = inventory_fake(7, {"data": {"inventorySetQuantities": {"inventoryAdjustmentGroup": {
        "id": "gid://shopify/InventoryAdjustmentGroup/1", "reason": "correction", "changes": []}, "userErrors": []}}})
    client(fake).publish_availability("shopify", "SKU-1", 4, key="pub-9")
    name, variables = fake.calls[-1]
    assert name == "InventorySet"
    assert variables["input"]["quantities"] == [{"inventoryItemId": "gid://shopify/InventoryItem/80",
                                                 "locationId": "gid://shopify/Location/2", "quantity": 4,
                                                 "changeFromQuantity": 7}]
    assert variables["input"]["name"] == "available"
    assert variables["key"].startswith("retailflow-availability-pub-9")


def test_inventory_unchanged_is_not_written_and_a_stale_count_is_read_again():
    fake = inventory_fake(4, {})
    client(fake).publish_availability("shopify", "SKU-1", 4, key="k")
    assert "InventorySet" not in fake.ops()
    fake = inventory_fake(7, {"data": {"inventorySetQuantities": {"inventoryAdjustmentGroup": None, "userErrors": [
        {"field": ["input", "quantities", "0", "changeFromQuantity"], "code": "CHANGE_FROM_QUANTITY_STALE",
         "message": "The specified compare quantity does not match the current quantity."}]}}})
    with pytest.raises(VendorUnavailable) as err:
        client(fake).publish_availability("shopify", "SKU-1", 4, key="k")
    assert err.value.type == "StaleCount"


def test_a_sku_no_variant_has_exactly_is_refused():
    fake = inventory_fake(1, {})
    with pytest.raises(ChannelRejected, match="no Shopify variant has SKU 'SKU'"):
        client(fake).publish_availability("shopify", "SKU", 1)


def test_price_update_names_the_variant_and_product():
    fake = inventory_fake(1, {})
    fake.answers["PriceUpdate"] = {"data": {"productVariantsBulkUpdate": {"productVariants": [], "userErrors": []}}}
    client(fake).publish_price("shopify", "SKU-1", Money.of("12.50", "USD"), Money.of("15.00", "USD"))
    assert fake.calls[-1] == ("PriceUpdate", {"productId": "gid://shopify/Product/3", "variants": [
        {"id": "gid://shopify/ProductVariant/8", "price": "12.50", "compareAtPrice": "15.00"}]})


# -- orders --------------------------------------------------------------------------------------------------------
def money(a: str) -> dict:
    return {"shopMoney": {"amount": a, "currencyCode": "EUR"}}


GRAPHQL_ORDER = {
    "id": ORDER, "name": "#1001", "createdAt": "2026-11-30T10:00:00Z", "updatedAt": "2026-11-30T10:05:00Z",
    "cancelledAt": None, "test": False, "taxesIncluded": True, "currencyCode": "EUR", "email": "a@example.com",
    "displayFinancialStatus": "PAID", "displayFulfillmentStatus": "UNFULFILLED", "discountCodes": ["WINTER"],
    "totalPriceSet": money("54.00"), "totalDiscountsSet": money("6.00"),
    "customer": {"id": "gid://shopify/Customer/44", "firstName": "Ada", "lastName": "L", "taxExempt": False},
    "shippingAddress": {"name": "Ada L", "firstName": "Ada", "lastName": "L", "company": None, "address1": "1 Road",
                        "address2": None, "city": "Paris", "provinceCode": None, "zip": "75001",
                        "countryCodeV2": "FR", "phone": None},
    "billingAddress": None,
    "lineItems": {"nodes": [{"id": "gid://shopify/LineItem/101", "sku": "SKU-1", "name": "Mug", "quantity": 2,
                             "requiresShipping": True, "taxable": True, "variant": {"id": "gid://shopify/ProductVariant/8"},
                             "originalUnitPriceSet": money("25.00"),
                             "discountAllocations": [{"allocatedAmountSet": money("6.00")}],
                             "taxLines": [{"title": "TVA", "rate": Decimal("0.2"), "priceSet": money("7.33")}]}]},
    "shippingLines": {"nodes": [{"code": "STD", "title": "Standard", "originalPriceSet": money("10.00"),
                                 "discountAllocations": [], "taxLines": [
                                     {"title": "TVA", "rate": Decimal("0.2"), "priceSet": money("1.67")}]}]},
}


def test_a_graphql_order_maps_like_its_webhook():
    order = map_order(order_as_webhook(GRAPHQL_ORDER), channel="shopify")
    assert order.external_order_id == "5000000000000000001"
    assert order.order_number == "#1001" and order.currency == "EUR" and order.taxes_included
    line = order.lines[0]
    assert (line.line_id, line.channel_sku, line.quantity) == ("101", "SKU-1", 2)
    assert line.unit_price == Money.of("25.00", "EUR")
    assert line.discounts[0].amount == Money.of("6.00", "EUR")
    assert line.tax_lines[0].amount == Money.of("7.33", "EUR")
    assert order.shipping_lines[0].price == Money.of("10.00", "EUR")
    assert order.shipping_address.country == "FR" and order.shipping_address.postal_code == "75001"
    assert order.customer.external_id == "44" and order.customer.email == "a@example.com"
    assert order.total == Money.of("54.00", "EUR")


def test_feed_pages_and_actions():
    fake = FakeShopify({"OrdersPage": {"data": {"orders": {"nodes": [
        {"id": ORDER, "updatedAt": "2026-11-30T10:05:00Z", "cancelledAt": None, "displayFinancialStatus": "PAID",
         "displayFulfillmentStatus": "UNFULFILLED"},
        {"id": "gid://shopify/Order/2", "updatedAt": "2026-11-30T10:06:00Z", "cancelledAt": "2026-11-30T10:06:00Z",
         "displayFinancialStatus": "REFUNDED", "displayFulfillmentStatus": "UNFULFILLED"}],
        "pageInfo": {"hasNextPage": True, "endCursor": "c1"}}}}})
    from datetime import UTC, datetime

    page = client(fake).feed_page(datetime(2026, 11, 30, tzinfo=UTC))
    assert [(o.external_order_id, o.action) for o in page.orders] == [
        ("5000000000000000001", FeedAction.START), ("2", FeedAction.CANCEL)]
    assert page.next_token == "c1"
    assert fake.calls[0][1]["query"] == "updated_at:>='2026-11-30T00:00:00+00:00'"
    assert feed_action({"displayFinancialStatus": "PENDING"}) == FeedAction.WAIT
    assert feed_action({"displayFinancialStatus": "PAID", "displayFulfillmentStatus": "FULFILLED"}) == FeedAction.WAIT


def test_ensure_webhooks_creates_only_missing_topics():
    fake = FakeShopify({
        "WebhookSubscriptions": {"data": {"webhookSubscriptions": {"nodes": [
            {"id": "gid://shopify/WebhookSubscription/1", "topic": "ORDERS_CREATE",
             "uri": "https://rf.example/webhooks/shopify", "format": "JSON"}],
            "pageInfo": {"hasNextPage": False, "endCursor": None}}}},
        "WebhookSubscriptionCreate": lambda v: {"data": {"webhookSubscriptionCreate": {
            "webhookSubscription": {"id": "gid://shopify/WebhookSubscription/2", "topic": v["topic"],
                                    "uri": v["webhookSubscription"]["uri"], "format": "JSON"}, "userErrors": []}}}})
    outcome = client(fake).ensure_webhooks("https://rf.example/webhooks/shopify", ("ORDERS_CREATE", "REFUNDS_CREATE"))
    assert outcome == {"ORDERS_CREATE": "exists", "REFUNDS_CREATE": "created"}
    assert fake.calls[-1][1] == {"topic": "REFUNDS_CREATE", "webhookSubscription": {
        "uri": "https://rf.example/webhooks/shopify", "format": "JSON"}}
