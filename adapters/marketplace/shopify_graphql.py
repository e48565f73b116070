"""Shopify GraphQL Admin API: what the platform tells a Shopify shop, and what it reads from it. The marketplace
port of adapters/marketplace/base.py, and an order feed (adapters/marketplace/base.py `OrderFeed`) for the order
poll and backfills, over `POST /admin/api/{version}/graphql.json` (one endpoint, header `X-Shopify-Access-Token`).

Operations (the documents are the module constants below; tests/contract/test_shopify_graphql.py checks them and
the mapping of each answer against Shopify's published examples):
- fulfillment: `order.fulfillmentOrders` (+ the order's fulfillments, to find one already made for a tracking
  number), then `fulfillmentCreate` with `lineItemsByFulfillmentOrder` (a partial fulfillment names each fulfillment
  order line and its quantity) and `trackingInfo`.
- cancel: `order.cancelledAt`, then `orderCancel` (no refund, no restock: the ERP restocks, refunds are their own
  flow).
- refund: `order.refunds` (a refund whose note carries the refund key? done), `order.suggestedRefund` for the
  transactions Shopify would refund against, then `refundCreate` for the platform's own amount.
- return not received: `tagsAdd` (idempotent by nature).
- inventory: SKU → inventory item through `productVariants(query: "sku:…")`, the current `available` quantity,
  then `inventorySetQuantities` with `changeFromQuantity` (compare-and-set: Shopify refuses the write with
  CHANGE_FROM_QUANTITY_STALE when the count moved since it was read, and the activity's retry reads it again) and
  the `@idempotent` key Shopify requires since 2026-04 (a repeat of the same publication is the same write).
- prices: `productVariantsBulkUpdate` (the pricing work publishes through `publish_price`).
- orders: `orders(query: "updated_at:>=…", sortKey: UPDATED_AT)` pages for the poll, `order(id:)` for the whole
  order, mapped by the intake's own mapping (adapters/marketplace/shopify.py `map_order`) after turning the
  GraphQL order into the webhook's JSON (so the webhook and the poll cannot map differently).
- webhooks: `webhookSubscriptions` / `webhookSubscriptionCreate`, one subscription per topic at the intake.

Errors: a `userErrors` entry is the vendor refusing the request (ChannelRejected with Shopify's message: parks the
run, `skip` allowed); a top-level `THROTTLED` error is Shopify's cost-based rate limit: VendorRateLimited whose
delay is what the bucket needs to restore the query's cost (Temporal retries then, no loop here). Every answer's
`extensions.cost.throttleStatus` updates the client's view of its bucket; a call that the bucket cannot afford is
not sent (VendorRateLimited with the restore time), and `on_cost` hands each status to the runtime (a gauge for
back-pressure). Other 4xx/5xx follow adapters/http.py. Shopify answers with the version it served in
`X-Shopify-API-Version`; a different one than asked (Shopify falls forward from an unsupported version) is logged.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import httpx
import structlog

from adapters.http import VendorHttp, vendor_message
from adapters.marketplace.shopify import ShopifyMappingError, map_order
from adapters.marketplace.shopify_admin import refund_note, tracking_info
from canonical.errors import ChannelRejected
from canonical.money import Money
from canonical.order import Order, Shipment
from canonical.order_feed import FeedAction, FeedOrder, FeedPage, UnmappableOrder
from canonical.pricing import ChannelPrice
from canonical.returns import Refund
from canonical.vendor_errors import VendorAuthFailed, VendorRateLimited, VendorUnavailable

log = structlog.get_logger(__name__)

API_VERSION = "2026-10"  # a stable version Shopify supports until 2027-10-01
ACCESS_HEADER = "X-Shopify-Access-Token"
_GID = "gid://shopify/"


def gid(kind: str, value: str | int) -> str:
    """A Shopify global id from a numeric (REST) id; a global id is returned as it is."""
    text = str(value)
    if text.startswith(_GID):
        return text
    if not text.isdigit():
        raise ChannelRejected(f"{text!r} is not a Shopify {kind} id")
    return f"{_GID}{kind}/{text}"


def legacy_id(global_id: Any, what: str = "id") -> str:
    """The numeric id of `gid://shopify/Kind/123` (or `…/123?key=…`): what the webhooks and the REST API carry."""
    text = str(global_id or "")
    tail = text.rsplit("/", 1)[-1].split("?", 1)[0]
    if not text.startswith(_GID) or not tail.isdigit():
        raise ShopifyMappingError(f"{what} {text!r} is not a Shopify global id")
    return tail


# -- documents ---------------------------------------------------------------------------------------------
# Shopify refuses a query whose requested cost is over 1000 points and connections multiply by `first`: the
# documents ask for pages that stay well under it (FULFILLMENT_STATE 520, ORDER 692) and page the rest.
_FO_LINES = "lineItems(first: 50, after: $linesAfter) { nodes { id remainingQuantity lineItem { id } } pageInfo { hasNextPage endCursor } }"
FULFILLMENT_STATE = f"""
query FulfillmentState($id: ID!, $after: String, $linesAfter: String) {{
  order(id: $id) {{
    id
    fulfillments(first: 50) {{ id status trackingInfo(first: 5) {{ number }} }}
    fulfillmentOrders(first: 5, after: $after) {{
      nodes {{ id status {_FO_LINES} }}
      pageInfo {{ hasNextPage endCursor }}
    }}
  }}
}}"""

FULFILLMENT_ORDER_LINES = f"""
query FulfillmentOrderLines($id: ID!, $linesAfter: String) {{
  fulfillmentOrder(id: $id) {{ id {_FO_LINES} }}
}}"""

FULFILLMENT_CREATE = """
mutation FulfillmentCreate($fulfillment: FulfillmentInput!) {
  fulfillmentCreate(fulfillment: $fulfillment) {
    fulfillment { id status trackingInfo(first: 10) { number url company } }
    userErrors { field message }
  }
}"""

ORDER_CANCELLED = """
query OrderCancelled($id: ID!) { order(id: $id) { id cancelledAt } }"""

ORDER_CANCEL = """
mutation OrderCancel($orderId: ID!, $reason: OrderCancelReason!, $staffNote: String) {
  orderCancel(orderId: $orderId, reason: $reason, refundMethod: {originalPaymentMethodsRefund: false},
              restock: false, notifyCustomer: false, staffNote: $staffNote) {
    job { id done }
    orderCancelUserErrors { field message code }
  }
}"""

REFUND_STATE = """
query RefundState($id: ID!, $refundLineItems: [RefundLineItemInput!], $shippingAmount: Money) {
  order(id: $id) {
    id
    currencyCode
    refunds(first: 250) { id note }
    suggestedRefund(refundLineItems: $refundLineItems, shippingAmount: $shippingAmount) {
      amountSet { shopMoney { amount currencyCode } }
      suggestedTransactions {
        gateway
        kind
        amountSet { shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } }
        maximumRefundableSet { shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } }
        parentTransaction { id }
      }
    }
  }
}"""

REFUND_CREATE = """
mutation RefundCreate($input: RefundInput!) {
  refundCreate(input: $input) {
    refund { id note totalRefundedSet { shopMoney { amount currencyCode } } }
    userErrors { field message }
  }
}"""

TAGS_ADD = """
mutation TagsAdd($id: ID!, $tags: [String!]!) {
  tagsAdd(id: $id, tags: $tags) { node { id } userErrors { field message } }
}"""

VARIANTS_BY_SKU = """
query VariantsBySku($query: String!) {
  productVariants(first: 10, query: $query) {
    nodes { id sku price compareAtPrice product { id } inventoryItem { id } }
  }
}"""

ACTIVE_LOCATIONS = """
query ActiveLocations { locations(first: 50, query: "active:true") { nodes { id name isActive } } }"""

AVAILABLE_AT = """
query AvailableAt($item: ID!, $location: ID!) {
  inventoryItem(id: $item) {
    id
    inventoryLevel(locationId: $location) { quantities(names: ["available"]) { name quantity } }
  }
}"""

INVENTORY_SET = """
mutation InventorySet($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id reason changes { name delta quantityAfterChange } }
    userErrors { field message code }
  }
}"""

PRICE_UPDATE = """
mutation PriceUpdate($productId: ID!, $variants: [ProductVariantsBulkInput!]!) {
  productVariantsBulkUpdate(productId: $productId, variants: $variants) {
    productVariants { id price compareAtPrice }
    userErrors { field message }
  }
}"""

# what the client expects each read to cost (Shopify's requested cost: objects 1, connections 2 + first x node)
FULFILLMENT_STATE_COST, FO_LINES_COST, ORDER_COST, DELIVERY_METHODS_COST = 520, 110, 740, 45
_MONEY = "shopMoney { amount currencyCode }"
_ADDRESS = ("name firstName lastName company address1 address2 city provinceCode zip countryCodeV2 phone")
_TAX_LINES = f"taxLines {{ title rate priceSet {{ {_MONEY} }} }}"
_DISCOUNTS = f"discountAllocations {{ allocatedAmountSet {{ {_MONEY} }} }}"
ORDER_FIELDS = f"""
    id name createdAt updatedAt cancelledAt test taxesIncluded currencyCode email
    displayFinancialStatus displayFulfillmentStatus discountCodes
    totalPriceSet {{ {_MONEY} }}
    totalDiscountsSet {{ {_MONEY} }}
    customer {{ id firstName lastName taxExempt }}
    shippingAddress {{ {_ADDRESS} }}
    billingAddress {{ {_ADDRESS} }}
    lineItems(first: 50, after: $linesAfter) {{
      nodes {{
        id sku name quantity requiresShipping taxable variant {{ id }}
        originalUnitPriceSet {{ {_MONEY} }}
        {_DISCOUNTS}
        {_TAX_LINES}
      }}
      pageInfo {{ hasNextPage endCursor }}
    }}
    shippingLines(first: 20, includeRemovals: false) {{
      nodes {{ code title originalPriceSet {{ {_MONEY} }} {_DISCOUNTS} {_TAX_LINES} }}
    }}"""

# click-and-collect (adapters/marketplace/shopify.py `pickup_location`): each open fulfillment order's delivery method
# and the location it is assigned to; with the order (the poll) and alone (the webhook's order, DELIVERY_METHODS)
_DELIVERY = "fulfillmentOrders(first: 10) { nodes { status deliveryMethod { methodType } assignedLocation { location { id } } } }"
ORDER_FIELDS += f"\n    {_DELIVERY}"

DELIVERY_METHODS = f"""
query DeliveryMethods($id: ID!) {{
  order(id: $id) {{ id {_DELIVERY} }}
}}"""

ORDER = f"""
query Order($id: ID!, $linesAfter: String) {{
  order(id: $id) {{{ORDER_FIELDS}
  }}
}}"""

ORDERS_PAGE = """
query OrdersPage($first: Int!, $after: String, $query: String) {
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    nodes { id updatedAt cancelledAt displayFinancialStatus displayFulfillmentStatus }
    pageInfo { hasNextPage endCursor }
  }
}"""

WEBHOOK_SUBSCRIPTIONS = """
query WebhookSubscriptions($after: String) {
  webhookSubscriptions(first: 100, after: $after) {
    nodes { id topic uri format }
    pageInfo { hasNextPage endCursor }
  }
}"""

WEBHOOK_SUBSCRIPTION_CREATE = """
mutation WebhookSubscriptionCreate($topic: WebhookSubscriptionTopic!, $webhookSubscription: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $webhookSubscription) {
    webhookSubscription { id topic uri format }
    userErrors { field message }
  }
}"""

# The topics the intake serves (api/intake/shopify.py), as the webhookSubscriptionCreate enum names them.
WEBHOOK_TOPICS = ("ORDERS_CREATE", "ORDERS_UPDATED", "ORDERS_CANCELLED", "FULFILLMENTS_CREATE", "REFUNDS_CREATE")

# displayFinancialStatus values whose order is paid (ours to ship) — the rest wait for their next update
PAID_STATUSES = frozenset({"PAID", "PARTIALLY_PAID", "PARTIALLY_REFUNDED", "AUTHORIZED"})


# -- throttle ----------------------------------------------------------------------------------------------
@dataclass
class ThrottleStatus:
    """Shopify's view of the client's cost bucket (`extensions.cost.throttleStatus`), when it was seen."""

    maximum: Decimal
    available: Decimal
    restore_rate: Decimal
    seen_at: float

    def available_at(self, now: float) -> Decimal:
        restored = self.available + self.restore_rate * Decimal(str(max(now - self.seen_at, 0.0)))
        return min(self.maximum, restored)

    def wait_for(self, cost: Decimal, now: float) -> float:
        """Seconds until the bucket holds `cost` points (0 when it does now)."""
        short = cost - self.available_at(now)
        if short <= 0 or self.restore_rate <= 0:
            return 0.0
        return math.ceil(float(short / self.restore_rate) * 10) / 10


def throttle_status(extensions: Any, now: float) -> ThrottleStatus | None:
    try:
        status = extensions["cost"]["throttleStatus"]
        return ThrottleStatus(maximum=Decimal(str(status["maximumAvailable"])),
                              available=Decimal(str(status["currentlyAvailable"])),
                              restore_rate=Decimal(str(status["restoreRate"])), seen_at=now)
    except (KeyError, TypeError, ArithmeticError):
        return None


def requested_cost(extensions: Any) -> Decimal | None:
    try:
        return Decimal(str(extensions["cost"]["requestedQueryCost"]))
    except (KeyError, TypeError, ArithmeticError):
        return None


# -- request bodies (pure: tested against the published shapes) --------------------------------------------
def fulfillment_input(shipment: Shipment, order: Mapping[str, Any], *,
                      notify_customer: bool = True) -> dict[str, Any] | None:
    """`FulfillmentInput` for a shipment: each shipped order line is taken from the open fulfillment orders that
    still hold it, never more than remains. What no open fulfillment order can take is asked of the (closed or on
    hold) fulfillment order that has the line, so Shopify says why in a user error rather than the shipment being
    dropped here. None when nothing is left to fulfil."""
    wanted: dict[str, int] = {}
    for line in shipment.lines:
        if not line.line_id:
            raise ChannelRejected(f"shipment {shipment.shipment_id} has a line without the Shopify line item id "
                                  f"({line.channel_sku}); Shopify fulfils by line item")
        key = legacy_line(line.line_id)
        wanted[key] = wanted.get(key, 0) + line.quantity
    groups: dict[str, list[dict[str, Any]]] = {}
    holders: dict[str, tuple[str, str]] = {}  # line → (fulfillment order, its line) of any status
    fos = ((order.get("fulfillmentOrders") or {}).get("nodes")) or []
    for fo in fos:
        open_fo = fo.get("status") in ("OPEN", "IN_PROGRESS")
        for li in ((fo.get("lineItems") or {}).get("nodes")) or []:
            line_id = legacy_id((li.get("lineItem") or {}).get("id"), "fulfillment order lineItem id")
            holders.setdefault(line_id, (fo["id"], li["id"]))
            left = wanted.get(line_id, 0)
            take = min(left, int(li.get("remainingQuantity") or 0)) if open_fo else 0
            if take > 0:
                groups.setdefault(fo["id"], []).append({"id": li["id"], "quantity": take})
                wanted[line_id] = left - take
    for line_id, left in wanted.items():
        if left <= 0:
            continue
        if line_id not in holders:
            raise ChannelRejected(f"Shopify order {order.get('id')} has no fulfillment order with line item "
                                  f"{line_id} (shipment {shipment.shipment_id})")
        if not shipment.tracking_number and _remaining_total(fos, line_id) == 0:
            continue  # nothing of the line is left: a retry after the create went through (no tracking to match)
        # units no open fulfillment order can take: ask the one holding the line, Shopify's user error says why
        fo_id, fo_line = holders[line_id]
        items = groups.setdefault(fo_id, [])
        same = next((i for i in items if i["id"] == fo_line), None)
        if same is not None:
            same["quantity"] += left
        else:
            items.append({"id": fo_line, "quantity": left})
    if not groups:
        return None
    tracking = tracking_info(shipment)
    body: dict[str, Any] = {
        "lineItemsByFulfillmentOrder": [{"fulfillmentOrderId": fo_id, "fulfillmentOrderLineItems": items}
                                        for fo_id, items in groups.items()],
        "notifyCustomer": notify_customer}
    if tracking:
        body["trackingInfo"] = tracking
    return body


def _remaining_total(fos: list[Mapping[str, Any]], line_id: str) -> int:
    return sum(int(li.get("remainingQuantity") or 0) for fo in fos
               for li in ((fo.get("lineItems") or {}).get("nodes")) or []
               if legacy_id((li.get("lineItem") or {}).get("id")) == line_id)


def legacy_line(line_id: str) -> str:
    """A shipment's line id (the webhook's numeric id, or a global id) as the numeric id."""
    return legacy_id(line_id, "line item id") if str(line_id).startswith(_GID) else str(line_id)


def refund_variables(refund: Refund, order_gid: str) -> dict[str, Any]:
    variables: dict[str, Any] = {
        "id": order_gid,
        "refundLineItems": [{"lineItemId": gid("LineItem", line.line_id), "quantity": line.quantity,
                             "restockType": "NO_RESTOCK"} for line in refund.lines if line.quantity > 0]}
    if not refund.shipping.is_zero:
        variables["shippingAmount"] = str(refund.shipping.amount)
    return variables


def refund_input(refund: Refund, order_gid: str, suggested: Mapping[str, Any] | None) -> dict[str, Any]:
    """`RefundInput`: the refunded lines (no restock: returns restock in the ERP), the shipping, and the platform's
    total paid back against the transactions Shopify suggests, in their order, each up to what it can still refund
    (`maximumRefundable`; the suggested amount when Shopify does not say)."""
    total = refund.total.amount
    body: dict[str, Any] = {
        "orderId": order_gid, "note": refund_note(refund.refund_key), "notify": True,
        "refundLineItems": [{"lineItemId": gid("LineItem", line.line_id), "quantity": line.quantity,
                             "restockType": "NO_RESTOCK"} for line in refund.lines if line.quantity > 0],
        "transactions": []}
    if not refund.shipping.is_zero:
        body["shipping"] = {"amount": str(refund.shipping.amount)}
    if total <= 0:
        return body
    transactions = [t for t in (suggested or {}).get("suggestedTransactions") or []
                    if (t.get("parentTransaction") or {}).get("id")]
    if not transactions:
        raise ChannelRejected(f"Shopify suggests no transaction to refund {refund.total} of order "
                              f"{refund.external_order_id} against (nothing captured, or all of it refunded)")
    left = total
    for t in transactions:
        # a suggestion is Shopify's computation of the refund; the platform pays back its own amount (its credit
        # note), against each suggested transaction up to what that transaction can still refund
        cap_set = t.get("maximumRefundableSet") or t.get("amountSet") or {}
        money = cap_set.get("shopMoney") or {}
        if money.get("currencyCode") and money["currencyCode"] != refund.currency:
            raise ChannelRejected(f"order {refund.external_order_id} was paid in {money['currencyCode']}, the "
                                  f"refund is in {refund.currency}")
        refundable = Decimal(str(money.get("amount") or "0"))
        take = min(left, refundable)
        if take <= 0:
            continue
        amount = take
        buyer = cap_set.get("presentmentMoney") or {}
        if buyer.get("currencyCode") and buyer["currencyCode"] != money.get("currencyCode"):
            # the buyer paid in another currency: Shopify takes the transactions in that (presentment) currency,
            # named in `currency`; the shop-currency amount is converted at the transaction's own rate
            paid = Decimal(str(buyer.get("amount") or "0"))
            amount = paid if take == refundable else (take * paid / refundable).quantize(
                Decimal("0.01"), rounding=ROUND_HALF_EVEN)
            body["currency"] = buyer["currencyCode"]
        body["transactions"].append({"orderId": order_gid, "parentId": t["parentTransaction"]["id"],
                                     "amount": str(amount), "gateway": t.get("gateway"), "kind": "REFUND"})
        left -= take
        if left <= 0:
            break
    if left > 0:
        raise ChannelRejected(f"the refund of {refund.total} for order {refund.external_order_id} is more than "
                              f"Shopify can refund ({refund.total.amount - left} {refund.currency} refundable)")
    return body


# -- the GraphQL order as the webhook's JSON (so one mapping serves both) -----------------------------------
def _money_set(raw: Any) -> dict[str, Any] | None:
    shop = (raw or {}).get("shopMoney") if isinstance(raw, Mapping) else None
    if not isinstance(shop, Mapping):
        return None
    return {"shop_money": {"amount": shop.get("amount"), "currency_code": shop.get("currencyCode")}}


def _rest_address(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, Mapping):
        return None
    return {"name": raw.get("name"), "first_name": raw.get("firstName"), "last_name": raw.get("lastName"),
            "company": raw.get("company"), "address1": raw.get("address1"), "address2": raw.get("address2"),
            "city": raw.get("city"), "province_code": raw.get("provinceCode"), "zip": raw.get("zip"),
            "country_code": raw.get("countryCodeV2"), "phone": raw.get("phone")}


def _rest_taxes(raw: Any) -> list[dict[str, Any]]:
    return [{"title": t.get("title"), "rate": t.get("rate"), "price_set": _money_set(t.get("priceSet"))}
            for t in raw or []]


def _rest_discounts(raw: Any) -> list[dict[str, Any]]:
    return [{"amount_set": _money_set(d.get("allocatedAmountSet"))} for d in raw or []]


def rest_fulfillment_orders(connection: Any) -> list[dict[str, Any]]:
    """GraphQL `fulfillmentOrders` (status, deliveryMethod, assignedLocation) as the REST resource's JSON: `status`
    and `delivery_method.method_type` in lower case (PICK_UP → pick_up), `assigned_location_id` numeric."""
    out = []
    for fo in ((connection or {}).get("nodes")) or []:
        method = (fo.get("deliveryMethod") or {}).get("methodType")
        location = ((fo.get("assignedLocation") or {}).get("location")) or {}
        out.append({"status": str(fo.get("status") or "").lower() or None,
                    "delivery_method": {"method_type": str(method).lower()} if method else None,
                    "assigned_location_id": legacy_id(location["id"], "location id") if location.get("id") else None})
    return out


def order_as_webhook(node: Mapping[str, Any]) -> dict[str, Any]:
    """A GraphQL `Order` (ORDER_FIELDS) in the `orders/create` webhook's JSON, for `map_order`."""
    customer = node.get("customer") or None
    lines = []
    for li in ((node.get("lineItems") or {}).get("nodes")) or []:
        variant = li.get("variant") or {}
        lines.append({
            "id": legacy_id(li.get("id"), "line item id"), "sku": li.get("sku"), "name": li.get("name"),
            "quantity": li.get("quantity"),
            "variant_id": legacy_id(variant["id"], "variant id") if variant.get("id") else None,
            "price_set": _money_set(li.get("originalUnitPriceSet")),
            "discount_allocations": _rest_discounts(li.get("discountAllocations")),
            "tax_lines": _rest_taxes(li.get("taxLines")),
            "requires_shipping": li.get("requiresShipping", True), "taxable": li.get("taxable", True)})
    shipping = [{"code": s.get("code"), "title": s.get("title"), "price_set": _money_set(s.get("originalPriceSet")),
                 "discount_allocations": _rest_discounts(s.get("discountAllocations")),
                 "tax_lines": _rest_taxes(s.get("taxLines"))}
                for s in ((node.get("shippingLines") or {}).get("nodes")) or []]
    return {
        "id": legacy_id(node.get("id"), "order id"), "name": node.get("name"), "created_at": node.get("createdAt"),
        "currency": node.get("currencyCode"), "taxes_included": node.get("taxesIncluded"), "test": node.get("test"),
        "email": node.get("email"), "cancelled_at": node.get("cancelledAt"),
        "total_price_set": _money_set(node.get("totalPriceSet")),
        "total_price": (((node.get("totalPriceSet") or {}).get("shopMoney")) or {}).get("amount"),
        "total_discounts_set": _money_set(node.get("totalDiscountsSet")),
        "discount_codes": [{"code": c} for c in node.get("discountCodes") or []],
        "customer": None if not customer else {
            "id": legacy_id(customer.get("id"), "customer id") if customer.get("id") else None,
            "first_name": customer.get("firstName"), "last_name": customer.get("lastName"),
            "tax_exempt": customer.get("taxExempt")},
        "shipping_address": _rest_address(node.get("shippingAddress")),
        "billing_address": _rest_address(node.get("billingAddress")),
        "line_items": lines, "shipping_lines": shipping,
        **({"fulfillment_orders": rest_fulfillment_orders(node["fulfillmentOrders"])}
           if node.get("fulfillmentOrders") is not None else {})}


def feed_action(node: Mapping[str, Any]) -> FeedAction:
    if node.get("cancelledAt"):
        return FeedAction.CANCEL
    if node.get("displayFulfillmentStatus") == "FULFILLED":
        return FeedAction.WAIT  # shipped already (by the merchant in Shopify, or an earlier run)
    return FeedAction.START if node.get("displayFinancialStatus") in PAID_STATUSES else FeedAction.WAIT


def _user_errors(payload: Mapping[str, Any] | None, operation: str, key: str = "userErrors") -> None:
    errors = [e for e in (payload or {}).get(key) or [] if e]
    if errors:
        message = "; ".join(
            (f"{'.'.join(str(f) for f in e['field'])}: " if e.get("field") else "") + str(e.get("message"))
            for e in errors)
        raise ChannelRejected(f"Shopify {operation}: {message}",
                              details={"operation": operation, "user_errors": errors})


class ShopifyGraphQL:
    """The marketplace port and order feed for one Shopify shop over the GraphQL Admin API.

    `http` is a VendorHttp whose base URL is the shop (`https://<shop>.myshopify.com`) and whose auth sets the
    access token (`build_shopify_graphql`)."""

    lists_by_channel_sku = True  # inventory is set per variant SKU, not per ERP item code

    def __init__(self, http: VendorHttp, *, api_version: str = API_VERSION, location_id: str | None = None,
                 shop: str = "", channel: str = "shopify", page_size: int = 50,
                 on_cost: Callable[[str, ThrottleStatus], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 pickup_locations: Mapping[str, str] | None = None) -> None:
        self.http = http
        # Shopify location id → store node (click-and-collect); None: the channel's orders are not sourced over the
        # fulfillment network, none is recognised as collected (adapters/marketplace/shopify.py `pickup_store`)
        self.pickup_locations = dict(pickup_locations) if pickup_locations is not None else None
        self.api_version = api_version
        self.path = f"/admin/api/{api_version}/graphql.json"
        self.location_id = gid("Location", location_id) if location_id else None
        self.shop = shop
        self.channel = channel
        self.page_size = page_size
        self.on_cost = on_cost
        self.clock = clock
        self._throttle: ThrottleStatus | None = None
        self._inventory_items: dict[str, str] = {}
        self._variants: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    # -- transport -------------------------------------------------------------------------------------------
    def execute(self, document: str, variables: Mapping[str, Any] | None = None, *,
                cost: Decimal | int = 10) -> dict[str, Any]:
        """One GraphQL request; its `data`. `cost` is what the client expects the request to cost (mutations 10):
        when the bucket is known not to hold it, nothing is sent."""
        now = self.clock()
        with self._lock:
            status = self._throttle
        if status is not None:
            wait = status.wait_for(Decimal(cost), now)
            if wait > 0:
                raise VendorRateLimited(f"shopify cost bucket holds {status.available_at(now):.0f} of the {cost} "
                                        f"points the request needs", vendor="shopify", retry_after=wait)
        resp = self.http.request("POST", self.path, json={"query": document, "variables": dict(variables or {})})
        assert resp is not None
        served = resp.headers.get("x-shopify-api-version")
        if served and served != self.api_version:
            log.warning("shopify.api_version_served", requested=self.api_version, served=served, shop=self.shop)
        body = resp.json(parse_float=Decimal)
        extensions = body.get("extensions") if isinstance(body, Mapping) else None
        status = throttle_status(extensions, self.clock())
        if status is not None:
            with self._lock:
                self._throttle = status
            if self.on_cost is not None:
                self.on_cost(self.shop, status)
        errors = body.get("errors") if isinstance(body, Mapping) else None
        if errors:
            self._raise_errors(errors, extensions, status)
        data = body.get("data") if isinstance(body, Mapping) else None
        if not isinstance(data, Mapping):
            raise VendorUnavailable("shopify answered GraphQL without data", vendor="shopify")
        return dict(data)

    def _raise_errors(self, errors: Any, extensions: Any, status: ThrottleStatus | None) -> None:
        items: list[Any] = errors if isinstance(errors, list) else [{"message": str(errors)}]
        codes = {str((e.get("extensions") or {}).get("code", "")) if isinstance(e, Mapping) else "" for e in items}
        message = "; ".join(str(e.get("message") if isinstance(e, Mapping) else e) for e in items)[:500]
        if "THROTTLED" in codes:
            cost = requested_cost(extensions) or Decimal(10)
            wait = status.wait_for(cost, self.clock()) if status is not None else 1.0
            raise VendorRateLimited(f"shopify throttled the request ({message})", vendor="shopify",
                                    retry_after=max(wait, 0.5))
        if codes & {"ACCESS_DENIED", "UNAUTHORIZED"}:
            raise VendorAuthFailed(f"shopify refused the access token: {message}")
        if codes & {"INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE", "TIMEOUT"}:
            raise VendorUnavailable(f"shopify GraphQL error: {message}", vendor="shopify")
        raise ChannelRejected(f"Shopify GraphQL error: {message}", details={"errors": items})

    # -- fulfillment -------------------------------------------------------------------------------------------
    def fulfillment_state(self, order_gid: str) -> dict[str, Any] | None:
        """The order's fulfillments and every fulfillment order with every line (all pages)."""
        order = self.execute(FULFILLMENT_STATE, {"id": order_gid}, cost=FULFILLMENT_STATE_COST).get("order")
        if not order:
            return None
        fos = list((order.get("fulfillmentOrders") or {}).get("nodes") or [])
        info = (order.get("fulfillmentOrders") or {}).get("pageInfo") or {}
        while info.get("hasNextPage"):
            more = self.execute(FULFILLMENT_STATE, {"id": order_gid, "after": info.get("endCursor")},
                                cost=FULFILLMENT_STATE_COST).get("order") or {}
            fos += (more.get("fulfillmentOrders") or {}).get("nodes") or []
            info = (more.get("fulfillmentOrders") or {}).get("pageInfo") or {}
        for fo in fos:
            lines: dict[str, Any] = dict(fo.get("lineItems") or {})
            while (lines.get("pageInfo") or {}).get("hasNextPage"):
                data = self.execute(FULFILLMENT_ORDER_LINES, {"id": fo["id"], "linesAfter": lines["pageInfo"]["endCursor"]},
                                    cost=FO_LINES_COST)
                page: dict[str, Any] = dict((data.get("fulfillmentOrder") or {}).get("lineItems") or {})
                lines = {"nodes": [*lines.get("nodes", []), *(page.get("nodes") or [])],
                         "pageInfo": page.get("pageInfo") or {}}
            fo["lineItems"] = lines
        order["fulfillmentOrders"] = {"nodes": fos}
        return order

    def confirm_shipment(self, channel: str, external_order_id: str, shipment: Shipment) -> None:
        order_gid = gid("Order", external_order_id)
        order = self.fulfillment_state(order_gid)
        if not order:
            raise ChannelRejected(f"Shopify has no order {external_order_id}")
        if shipment.tracking_number:
            for f in order.get("fulfillments") or []:
                numbers = {t.get("number") for t in f.get("trackingInfo") or []}
                if shipment.tracking_number in numbers and f.get("status") != "CANCELLED":
                    log.info("shopify.fulfillment_exists", external_id=external_order_id, fulfillment_id=f.get("id"))
                    return
        body = fulfillment_input(shipment, order)
        if body is None:
            log.info("shopify.nothing_to_fulfil", external_id=external_order_id, shipment_id=shipment.shipment_id)
            return
        result = self.execute(FULFILLMENT_CREATE, {"fulfillment": body}).get("fulfillmentCreate")
        _user_errors(result, "fulfillmentCreate")
        log.info("shopify.fulfillment_created", external_id=external_order_id,
                 fulfillment_id=((result or {}).get("fulfillment") or {}).get("id"))

    # -- cancel ------------------------------------------------------------------------------------------------
    def notify_cancelled(self, channel: str, external_order_id: str, reason: str) -> None:
        order_gid = gid("Order", external_order_id)
        order = self.execute(ORDER_CANCELLED, {"id": order_gid}, cost=1).get("order")
        if not order:
            raise ChannelRejected(f"Shopify has no order {external_order_id}")
        if order.get("cancelledAt"):
            return
        result = self.execute(ORDER_CANCEL, {"orderId": order_gid, "reason": "OTHER",
                                             "staffNote": reason[:255] or None}).get("orderCancel")
        _user_errors(result, "orderCancel", key="orderCancelUserErrors")
        log.info("shopify.order_cancelled", external_id=external_order_id, reason=reason[:200])

    # -- refund ------------------------------------------------------------------------------------------------
    def refund(self, refund: Refund) -> None:
        order_gid = gid("Order", refund.external_order_id)
        order = self.execute(REFUND_STATE, refund_variables(refund, order_gid), cost=30).get("order")
        if not order:
            raise ChannelRejected(f"Shopify has no order {refund.external_order_id}")
        note = refund_note(refund.refund_key)
        if any(r.get("note") == note for r in order.get("refunds") or []):
            return
        if refund.total.amount <= 0 and not any(line.quantity for line in refund.lines):
            return
        if order.get("currencyCode") and order["currencyCode"] != refund.currency:
            raise ChannelRejected(f"order {refund.external_order_id} is in {order['currencyCode']}, the refund is "
                                  f"in {refund.currency}")
        body = refund_input(refund, order_gid, order.get("suggestedRefund"))
        result = self.execute(REFUND_CREATE, {"input": body}).get("refundCreate")
        _user_errors(result, "refundCreate")
        log.info("shopify.refund_created", external_id=refund.external_order_id, refund_key=refund.refund_key,
                 total=str(refund.total))

    def notify_return_not_received(self, channel: str, external_order_id: str, return_id: str) -> None:
        tag = f"return-not-received-{return_id}"[:40]
        result = self.execute(TAGS_ADD, {"id": gid("Order", external_order_id), "tags": [tag]}).get("tagsAdd")
        _user_errors(result, "tagsAdd")

    # -- inventory and prices ------------------------------------------------------------------------------------
    def variant(self, sku: str) -> dict[str, Any]:
        """The variant whose SKU is exactly `sku` (Shopify's search matches more than exact SKUs)."""
        with self._lock:
            if sku in self._variants:
                return self._variants[sku]
        nodes = ((self.execute(VARIANTS_BY_SKU, {"query": f'sku:"{_search_value(sku)}"'}, cost=32)
                  .get("productVariants") or {}).get("nodes")) or []
        exact = [n for n in nodes if n.get("sku") == sku]
        if not exact:
            raise ChannelRejected(f"no Shopify variant has SKU {sku!r}")
        if len(exact) > 1:
            raise ChannelRejected(f"{len(exact)} Shopify variants have SKU {sku!r}; SKUs must be unique")
        with self._lock:
            self._variants[sku] = exact[0]
        return exact[0]

    def inventory_item_id(self, sku: str) -> str:
        item = (self.variant(sku).get("inventoryItem") or {}).get("id")
        if not item:
            raise ChannelRejected(f"Shopify variant with SKU {sku!r} has no inventory item")
        return str(item)

    def _location(self) -> str:
        if self.location_id:
            return self.location_id
        nodes = ((self.execute(ACTIVE_LOCATIONS, cost=52).get("locations") or {}).get("nodes")) or []
        active = [n for n in nodes if n.get("isActive", True)]
        if not active:
            raise ChannelRejected("the shop has no active location to set inventory at")
        self.location_id = str(active[0]["id"])
        return self.location_id

    def available(self, sku: str) -> int | None:
        """The shop's `available` quantity of `sku` at the location (None when the item is not stocked there)."""
        item = self.execute(AVAILABLE_AT, {"item": self.inventory_item_id(sku), "location": self._location()},
                            cost=3).get("inventoryItem") or {}
        level = item.get("inventoryLevel")
        if not level:
            return None
        for q in level.get("quantities") or []:
            if q.get("name") == "available":
                return int(q.get("quantity") or 0)
        return None

    def publish_availability(self, channel: str, sku: str, quantity: int, *, key: str | None = None) -> None:
        target = max(int(quantity), 0)
        current = self.available(sku)
        if current == target:
            log.info("shopify.inventory_unchanged", sku=sku, quantity=target, key=key)
            return
        quantity_input = {"inventoryItemId": self.inventory_item_id(sku), "locationId": self._location(),
                          "quantity": target, "changeFromQuantity": current}
        body = {"name": "available", "reason": "correction", "quantities": [quantity_input],
                "referenceDocumentUri": f"retailflow://availability/{key or sku}"}
        idem = f"retailflow-availability-{key or sku}-{target}-{current}"[:255]
        result = self.execute(INVENTORY_SET, {"input": body, "key": idem}).get("inventorySetQuantities") or {}
        errors = result.get("userErrors") or []
        if any(e.get("code") == "CHANGE_FROM_QUANTITY_STALE" for e in errors):
            # the shop's count moved between the read and the write (a sale, a manual count): read it again
            raise VendorUnavailable(f"shopify's available count of {sku} changed while publishing "
                                    f"({errors[0].get('message')})", vendor="shopify", error_type="StaleCount",
                                    retry_after=1.0)
        _user_errors(result, "inventorySetQuantities")
        log.info("shopify.inventory_set", sku=sku, quantity=target, previous=current, key=key)

    def publish_price(self, channel: str, sku: str, price: Money, compare_at: Money | None = None) -> None:
        """Set the variant's price (and compare-at price: None clears it). An absolute value: a repeat is
        harmless."""
        variant = self.variant(sku)
        item: dict[str, Any] = {"id": variant["id"], "price": str(price.amount),
                                "compareAtPrice": str(compare_at.amount) if compare_at is not None else None}
        result = self.execute(PRICE_UPDATE, {"productId": variant["product"]["id"], "variants": [item]}
                              ).get("productVariantsBulkUpdate")
        _user_errors(result, "productVariantsBulkUpdate")
        with self._lock:
            self._variants.pop(sku, None)
        log.info("shopify.price_set", sku=sku, price=str(price))

    shop_currency: str | None = None  # the shop's currency (variant prices carry none); set by the composition root

    def read_price(self, channel: str, sku: str) -> ChannelPrice | None:
        """The variant's price and compare-at price as the shop shows them now (read fresh, not from the cache)."""
        with self._lock:
            self._variants.pop(sku, None)
        variant = self.variant(sku)
        if variant.get("price") is None:
            return None
        if not self.shop_currency:
            raise ChannelRejected("the Shopify shop's currency is unknown (RETAILFLOW_PRICING_CHANNEL_CURRENCIES)")
        compare = variant.get("compareAtPrice")
        return ChannelPrice(channel=channel, channel_sku=sku, amount=Decimal(str(variant["price"])),
                            currency=self.shop_currency,
                            compare_at=Decimal(str(compare)) if compare is not None else None)

    # -- orders (the poll and backfills) --------------------------------------------------------------------------
    def feed_page(self, updated_after: datetime | None, next_token: str | None = None) -> FeedPage:
        query = f"updated_at:>='{updated_after.isoformat()}'" if updated_after else None
        page = self.execute(ORDERS_PAGE, {"first": self.page_size, "after": next_token, "query": query},
                            cost=2 + self.page_size).get("orders") or {}
        rows = []
        for node in page.get("nodes") or []:
            rows.append(FeedOrder(
                external_order_id=legacy_id(node.get("id"), "order id"),
                status=f"{node.get('displayFinancialStatus')}/{node.get('displayFulfillmentStatus')}"
                       + ("/cancelled" if node.get("cancelledAt") else ""),
                last_update_date=node.get("updatedAt"), action=feed_action(node)))
        info = page.get("pageInfo") or {}
        return FeedPage(orders=rows, next_token=info.get("endCursor") if info.get("hasNextPage") else None)

    def fetch_order(self, external_order_id: str) -> Order:
        order_gid = gid("Order", external_order_id)
        node = self.execute(ORDER, {"id": order_gid}, cost=ORDER_COST).get("order")
        while node and ((node.get("lineItems") or {}).get("pageInfo") or {}).get("hasNextPage"):
            more = self.execute(ORDER, {"id": order_gid, "linesAfter": node["lineItems"]["pageInfo"]["endCursor"]},
                                cost=ORDER_COST).get("order") or {}
            page = more.get("lineItems") or {}
            node["lineItems"] = {"nodes": [*node["lineItems"]["nodes"], *(page.get("nodes") or [])],
                                 "pageInfo": page.get("pageInfo") or {}}
        if not node:
            raise UnmappableOrder(f"Shopify has no order {external_order_id}")
        try:
            return map_order(order_as_webhook(node), channel=self.channel, pickup_locations=self.pickup_locations)
        except ShopifyMappingError as exc:
            raise UnmappableOrder(str(exc)) from None

    def delivery_methods(self, external_order_id: str) -> list[dict[str, Any]]:
        """The order's open fulfillment orders as the REST resource's JSON (`rest_fulfillment_orders`): what the
        intake adds to an `orders/create` webhook's order, which carries none, to recognise a pick-up."""
        node = self.execute(DELIVERY_METHODS, {"id": gid("Order", external_order_id)},
                            cost=DELIVERY_METHODS_COST).get("order")
        if not node:
            raise UnmappableOrder(f"Shopify has no order {external_order_id}")
        return rest_fulfillment_orders(node.get("fulfillmentOrders"))

    def orders(self, updated_after: datetime | None) -> Iterator[FeedOrder]:
        token: str | None = None
        while True:
            page = self.feed_page(updated_after, token)
            yield from page.orders
            if not page.next_token:
                return
            token = page.next_token

    # -- webhook subscriptions -------------------------------------------------------------------------------------
    def webhook_subscriptions(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            page = self.execute(WEBHOOK_SUBSCRIPTIONS, {"after": after}, cost=102).get("webhookSubscriptions") or {}
            out += page.get("nodes") or []
            info = page.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                return out
            after = info.get("endCursor")

    def ensure_webhooks(self, uri: str, topics: tuple[str, ...] = WEBHOOK_TOPICS) -> dict[str, str]:
        """One JSON subscription per topic pointing at `uri`: each topic's outcome, "exists" or "created".
        Subscriptions of the topic elsewhere are left alone (another app environment may own them)."""
        have = {(s.get("topic"), s.get("uri")) for s in self.webhook_subscriptions()}
        outcome: dict[str, str] = {}
        for topic in topics:
            if (topic, uri) in have:
                outcome[topic] = "exists"
                continue
            result = self.execute(WEBHOOK_SUBSCRIPTION_CREATE, {
                "topic": topic, "webhookSubscription": {"uri": uri, "format": "JSON"}}
            ).get("webhookSubscriptionCreate")
            _user_errors(result, f"webhookSubscriptionCreate {topic}")
            outcome[topic] = "created"
        return outcome


def _search_value(text: str) -> str:
    """A value inside Shopify search syntax's double quotes (backslash and quote escaped)."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def channel_rejected(response: httpx.Response, context: Any = None) -> ChannelRejected:
    """A 4xx other than 401/403/429: the channel refused the request (parks the run; `skip` is allowed)."""
    return ChannelRejected(f"{response.status_code} from {response.request.method} {response.request.url.path}: "
                           f"{vendor_message(response)}", details={"status": response.status_code})


def build_shopify_graphql(settings: Any, *, auth: httpx.Auth | None = None, channel: str | None = None,
                          transport: httpx.BaseTransport | None = None,
                          on_cost: Callable[[str, ThrottleStatus], None] | None = None,
                          pickup_locations: Mapping[str, str] | None = None) -> ShopifyGraphQL:
    """From RETAILFLOW_SHOPIFY_ADMIN_* settings. `auth` sets the access token per request (an installed shop's
    token); without it the configured static token goes into the header once. Tokens are never logged."""
    headers = {"Accept": "application/json"}
    if auth is None:
        headers[ACCESS_HEADER] = settings.shopify_admin_access_token.get_secret_value()
    http = VendorHttp("shopify", settings.shopify_admin_base_url, transport=transport, error_mapper=channel_rejected,
                      headers=headers, auth=auth)
    shop = httpx.URL(settings.shopify_admin_base_url).host
    return ShopifyGraphQL(http, api_version=settings.shopify_admin_api_version,
                          location_id=settings.shopify_location_id, shop=shop, on_cost=on_cost,
                          channel=channel or settings.shopify_channel, pickup_locations=pickup_locations)
