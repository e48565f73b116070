"""Amazon Orders API v2026-01-01: searchOrders and getOrder (items always included) → the same canonical Order the
v0 mapping produces; shipment confirmation stays on Orders v0 `confirmShipment`, which is not deprecated.

Facts (tests/fixtures/SOURCES.md; `amzn/selling-partner-api-models` @ 34dc93fe45f3,
`models/orders-api-model/orders_2026-01-01.json`; developer-docs.amazon.com/sp-api/docs/orders-api-migration-guide):
- searchOrders `GET /orders/2026-01-01/orders`: exactly one of `createdAfter` / `lastUpdatedAfter`,
  `marketplaceIds` (array, ≤ 50), `fulfillmentStatuses`, `fulfilledBy`, `maxResultsPerPage` (1–100, default
  100), `paginationToken` (the previous page's `pagination.nextToken`; no token on the last page; tokens expire
  after 24 h), `includedData`. Answer `{"orders": [Order], "pagination": {"nextToken"}, "lastUpdatedBefore"}`.
- getOrder `GET /orders/2026-01-01/orders/{orderId}?includedData=…` → `{"order": Order}`. It replaces v0 getOrder,
  getOrderItems (items are always in `orderItems`), getOrderAddress (`includedData=RECIPIENT`) and
  getOrderBuyerInfo (`includedData=BUYER`).
- `includedData` ∈ BUYER, RECIPIENT, PROCEEDS, EXPENSE, PROMOTION, CANCELLATION, FULFILLMENT, PACKAGES, TAX,
  PAYMENT, FULFILLMENT_ORDERS; without FULFILLMENT an order has no `fulfillment.fulfillmentStatus`.
- Buyer and recipient PII needs no Restricted Data Token in this version (role-based: Direct-to-Consumer
  Delivery for the address, Tax Remittance / Tax Invoicing for the buyer); an app without the role gets the order
  without them, and validation parks it for an address as with v0.
- Money is `{"amount": "<decimal string>", "currencyCode"}`. `product.price.unitPrice` is one unit;
  `proceeds.breakdowns[type=ITEM]` is the line (unit × quantity), `TAX` its tax (`detailedBreakdowns` subtype ITEM
  / SHIPPING), `SHIPPING` the line's shipping, `DISCOUNT` its discounts (subtype ITEM / SHIPPING).
- The error envelope is v0's `{"errors": [{"code", "message", "details"}]}`; LWA auth is unchanged.
- v0 getOrders/getOrder/getOrderItems/getOrderAddress/… are deprecated; they are removed on 2027-03-27
  (changelog "New: Introducing the Orders API v2026-01-01"). confirmShipment, updateShipmentStatus and the
  regulatedInfo operations are not deprecated and have no v2026-01-01 equivalent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from adapters.marketplace.amazon_sp import (
    AmazonMappingError,
    AmazonSpApi,
    OrdersPage,
    iso,
    map_order,
    map_summary,
    parse_time,
)
from canonical.order import Order, Shipment
from canonical.payload import mapping

API_VERSION = "2026-01-01"
BASE = f"/orders/{API_VERSION}/orders"
# what an order needs to become a canonical Order: status, money, buyer, address, promotions
ORDER_DATA = ("BUYER", "RECIPIENT", "PROCEEDS", "PROMOTION", "FULFILLMENT")
# what the poll needs to decide start / cancel / wait
SEARCH_DATA = ("FULFILLMENT",)

# fulfillmentStatus → the v0 OrderStatus the feed rules, the poll's statuses and confirm_shipment speak
ORDER_STATUS = {"PENDING_AVAILABILITY": "PendingAvailability", "PENDING": "Pending", "UNSHIPPED": "Unshipped",
                "PARTIALLY_SHIPPED": "PartiallyShipped", "SHIPPED": "Shipped", "CANCELLED": "Canceled",
                "UNFULFILLABLE": "Unfulfillable"}
FULFILLMENT_CHANNEL = {"AMAZON": "AFN", "MERCHANT": "MFN"}


# -- mapping: a v2026-01-01 order in the v0 shape, so the v0 mapping (and its checks) apply unchanged -------------
def _v0_money(raw: Any, what: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or raw.get("amount") is None or not raw.get("currencyCode"):
        raise AmazonMappingError(f"{what} is not a Money object with amount and currencyCode")
    return {"CurrencyCode": raw["currencyCode"], "Amount": str(raw["amount"])}


def _decimal(raw: Mapping[str, Any], what: str) -> Decimal:
    try:
        value = Decimal(str(raw["amount"]).strip())
    except (InvalidOperation, ArithmeticError):
        raise AmazonMappingError(f"{what} amount {raw['amount']!r} is not a decimal") from None
    if not value.is_finite():
        raise AmazonMappingError(f"{what} amount {raw['amount']!r} is not a decimal")
    return value


def _positive(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    """A DISCOUNT proceeds amount (reduces proceeds, so it may be published negative) as v0's positive discount."""
    if raw is None or not str(raw["Amount"]).strip().startswith("-"):
        return raw
    return {**raw, "Amount": str(raw["Amount"]).strip()[1:]}


def _breakdowns(proceeds: Any, what: str) -> dict[str, Mapping[str, Any]]:
    if proceeds is None:
        return {}
    if not isinstance(proceeds, Mapping) or not isinstance(proceeds.get("breakdowns") or [], list):
        raise AmazonMappingError(f"{what} proceeds must be an object with a breakdowns list")
    out: dict[str, Mapping[str, Any]] = {}
    for b in proceeds.get("breakdowns") or []:
        if not isinstance(b, Mapping) or not b.get("type"):
            raise AmazonMappingError(f"{what}: a proceeds breakdown has no type")
        if b["type"] in out:
            raise AmazonMappingError(f"{what}: proceeds breakdown {b['type']} appears twice")
        out[str(b["type"])] = b
    return out


def _detail(breakdown: Mapping[str, Any] | None, subtype: str, what: str) -> dict[str, Any] | None:
    """The `subtype` part of a TAX / DISCOUNT breakdown; without detailedBreakdowns the whole is the ITEM part."""
    if breakdown is None:
        return None
    details = breakdown.get("detailedBreakdowns")
    if not details:
        return _v0_money(breakdown.get("subtotal"), what) if subtype == "ITEM" else None
    found = [d for d in details if isinstance(d, Mapping) and d.get("subtype") == subtype]
    return _v0_money(found[0].get("value"), f"{what} {subtype}") if found else None


def v0_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """One v2026-01-01 `orderItems` entry as a v0 OrderItem."""
    if not isinstance(item, Mapping):
        raise AmazonMappingError("an order item must be an object")
    item_id = str(item.get("orderItemId") or "").strip()
    what = f"item {item_id}"
    product = item.get("product") or {}
    if not isinstance(product, Mapping):
        raise AmazonMappingError(f"{what}: product must be an object")
    qty = item.get("quantityOrdered")
    parts = _breakdowns(item.get("proceeds"), what)
    price = _v0_money((parts.get("ITEM") or {}).get("subtotal"), f"{what} ITEM proceeds")
    unit = _v0_money((product.get("price") or {}).get("unitPrice"), f"{what} unitPrice")
    if price is None and unit is not None and isinstance(qty, int) and not isinstance(qty, bool):
        # no PROCEEDS data: the line is the unit price times the quantity
        price = {**unit, "Amount": str(_decimal({"amount": unit["Amount"]}, f"{what} unitPrice") * qty)}
    fulfillment = item.get("fulfillment") or {}
    promotions = (item.get("promotion") or {}).get("breakdowns") or []
    v0: dict[str, Any] = {
        "OrderItemId": item_id, "QuantityOrdered": qty, "SellerSKU": product.get("sellerSku"),
        "ASIN": product.get("asin"), "Title": product.get("title"), "ItemPrice": price,
        "ItemTax": _detail(parts.get("TAX"), "ITEM", f"{what} TAX"),
        "ShippingPrice": _v0_money((parts.get("SHIPPING") or {}).get("subtotal"), f"{what} SHIPPING"),
        "ShippingTax": _detail(parts.get("TAX"), "SHIPPING", f"{what} TAX"),
        "PromotionDiscount": _positive(_detail(parts.get("DISCOUNT"), "ITEM", f"{what} DISCOUNT")),
        "ShippingDiscount": _positive(_detail(parts.get("DISCOUNT"), "SHIPPING", f"{what} DISCOUNT")),
        "PromotionIds": [str(p["promotionId"]) for p in promotions if isinstance(p, Mapping) and p.get("promotionId")],
        "QuantityShipped": fulfillment.get("quantityFulfilled") if isinstance(fulfillment, Mapping) else None,
    }
    return {k: v for k, v in v0.items() if v is not None}


def v0_address(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, Mapping):
        return None
    keys = {"name": "Name", "companyName": "CompanyName", "addressLine1": "AddressLine1",
            "addressLine2": "AddressLine2", "addressLine3": "AddressLine3", "city": "City",
            "districtOrCounty": "County", "stateOrRegion": "StateOrRegion", "municipality": "Municipality",
            "postalCode": "PostalCode", "countryCode": "CountryCode", "phone": "Phone", "addressType": "AddressType"}
    return {v0: raw[k] for k, v0 in keys.items() if raw.get(k) not in (None, "")}


def v0_order(order: Mapping[str, Any]) -> dict[str, Any]:
    """A v2026-01-01 Order (its header) as a v0 Order: ids, times, marketplace, status, channel, total, buyer,
    address. `fulfillment.fulfillmentStatus` becomes v0's OrderStatus (e.g. CANCELLED → Canceled)."""
    if not isinstance(order, Mapping):
        raise AmazonMappingError("an order must be an object")
    order_id = str(order.get("orderId") or "").strip()
    fulfillment = order.get("fulfillment") or {}
    sales = order.get("salesChannel") or {}
    buyer = order.get("buyer") or {}
    if not all(isinstance(x, Mapping) for x in (fulfillment, sales, buyer)):
        raise AmazonMappingError(f"order {order_id}: fulfillment, salesChannel and buyer must be objects")
    status = fulfillment.get("fulfillmentStatus")
    if status is not None and status not in ORDER_STATUS:
        raise AmazonMappingError(f"order {order_id}: unknown fulfillmentStatus {status!r}")
    v0: dict[str, Any] = {
        "AmazonOrderId": order_id, "PurchaseDate": order.get("createdTime"),
        "LastUpdateDate": order.get("lastUpdatedTime"), "MarketplaceId": sales.get("marketplaceId"),
        "OrderStatus": ORDER_STATUS.get(status or ""),
        "FulfillmentChannel": FULFILLMENT_CHANNEL.get(str(fulfillment.get("fulfilledBy") or "")),
        "OrderTotal": _v0_money((order.get("proceeds") or {}).get("grandTotal"), f"order {order_id} grandTotal"),
        "BuyerInfo": {k: v for k, v in (("BuyerEmail", buyer.get("buyerEmail")),
                                        ("BuyerName", buyer.get("buyerName"))) if v} or None,
        "ShippingAddress": v0_address((order.get("recipient") or {}).get("deliveryAddress")),
    }
    return {k: v for k, v in v0.items() if v is not None}


def v0_items(order: Mapping[str, Any]) -> list[dict[str, Any]]:
    items = order.get("orderItems") if isinstance(order, Mapping) else None
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        raise AmazonMappingError(f"order {order.get('orderId') if isinstance(order, Mapping) else '?'}: "
                                 "orderItems must be a list")
    return [v0_item(i) for i in items]


def map_order_v2026(order: Mapping[str, Any], channel: str = "amazon") -> Order:
    """A v2026-01-01 Order (getOrder `order`, or a searchOrders row with PROCEEDS) → canonical Order, through the
    v0 mapping: the same lines, shipping, tax, total check and refusals."""
    with mapping(AmazonMappingError, "order"):
        return map_order(v0_order(order), v0_items(order), channel)


def map_search_page(body: Mapping[str, Any]) -> OrdersPage:
    with mapping(AmazonMappingError, "searchOrders"):
        if not isinstance(body, Mapping) or not isinstance(body.get("orders"), list):
            raise AmazonMappingError("searchOrders answer must be an object with an orders list")
        pagination = body.get("pagination") or {}
        before = body.get("lastUpdatedBefore")
        return OrdersPage(orders=[map_summary(v0_order(o)) for o in body["orders"]],
                          next_token=(pagination.get("nextToken") if isinstance(pagination, Mapping) else None)
                          or None,
                          last_updated_before=parse_time(before, "lastUpdatedBefore") if before else None)


# -- the client ------------------------------------------------------------------------------------------------
class AmazonOrdersV2026(AmazonSpApi):
    """AmazonSpApi with its order reads on Orders API v2026-01-01 (one getOrder per order, items included, no RDT);
    shipment confirmation (v0 confirmShipment, not deprecated), feeds and reports are inherited unchanged."""

    api_version = API_VERSION

    def orders_page(self, last_updated_after: datetime | None, next_token: str | None = None) -> OrdersPage:
        if last_updated_after is None:
            # the filters are sent again with paginationToken (as the published sandbox requests do)
            raise ValueError("searchOrders needs lastUpdatedAfter, also with a paginationToken")
        params: dict[str, Any] = {"marketplaceIds": self.marketplace_id, "lastUpdatedAfter": iso(last_updated_after),
                                  "includedData": ",".join(SEARCH_DATA)}
        if next_token:
            params["paginationToken"] = next_token
        return map_search_page(self._json("GET", BASE, params=params))

    def raw_order(self, amazon_order_id: str, included: Sequence[str] = ORDER_DATA) -> dict[str, Any]:
        body = self._json("GET", f"{BASE}/{amazon_order_id}", params={"includedData": ",".join(included)})
        order = body.get("order")
        if not isinstance(order, dict):
            raise AmazonMappingError(f"getOrder {amazon_order_id} answered without an order")
        return order

    def order_with_items(self, amazon_order_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        order = self.raw_order(amazon_order_id)
        with mapping(AmazonMappingError, "order"):
            return v0_order(order), v0_items(order)

    def get_order(self, amazon_order_id: str) -> dict[str, Any]:
        return self.order_with_items(amazon_order_id)[0]

    def order_items(self, amazon_order_id: str) -> list[dict[str, Any]]:
        return self.order_with_items(amazon_order_id)[1]

    def order_address(self, amazon_order_id: str) -> dict[str, Any] | None:
        return self.get_order(amazon_order_id).get("ShippingAddress")

    def confirm_shipment(self, channel: str, external_order_id: str, shipment: Shipment) -> None:
        """One getOrder (status and items), then v0 confirmShipment (not deprecated; no v2026-01-01 successor)."""
        order, items = self.order_with_items(external_order_id)
        if self.closed(external_order_id, order):
            return
        self.confirm_items(external_order_id, shipment, order, items)

    def fetch_order(self, amazon_order_id: str) -> Order:
        """One getOrder (items, buyer, recipient, proceeds, promotions, status) → Order."""
        return map_order_v2026(self.raw_order(amazon_order_id), self.channel)
