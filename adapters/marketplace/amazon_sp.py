"""Amazon Selling Partner API: order polling, order items, shipment confirmation, inventory through a listings
feed, settlement report download, Login-with-Amazon token refresh; Amazon order + items → canonical Order.

Facts (tests/fixtures/SOURCES.md, amzn/selling-partner-api-models):
- getOrders `GET /orders/v0/orders?MarketplaceIds=…&LastUpdatedAfter=…`, then `NextToken` (with MarketplaceIds
  only) until the payload has none; getOrder `GET /orders/v0/orders/{id}`; getOrderItems
  `GET /orders/v0/orders/{id}/orderItems` (NextToken too); confirmShipment
  `POST /orders/v0/orders/{id}/shipmentConfirmation` (204).
- The SP-API error envelope is `{"errors": [{"code", "message", "details"}]}`.
- Calls carry `x-amz-access-token`, an LWA access token from `POST https://api.amazon.com/auth/o2/token`
  (grant_type=refresh_token), valid `expires_in` seconds (3600).
- `ItemPrice` is the price of the whole line (unit price × QuantityOrdered); `ItemTax` its tax. In the
  Americas marketplaces the price excludes tax (OrderTotal = ItemPrice + ItemTax + shipping), elsewhere (EU, UK,
  JP…) it includes VAT.
- Feeds (2021-06-30): createFeedDocument → PUT the content to the pre-signed `url` → createFeed.
- Reports (2021-06-30): getReports (nextToken) → getReportDocument → GET its `url` (GZIP when
  `compressionAlgorithm` says so). Settlement reports are scheduled by Amazon; they cannot be requested.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

import httpx
import structlog
from pydantic import Field, SecretStr, ValidationError

from adapters.http import VendorHttp, vendor_message
from adapters.http import send as http_send
from canonical.errors import ChannelRejected
from canonical.money import Money, minor_units, sum_money
from canonical.order import (
    Address,
    CanonicalModel,
    Customer,
    Discount,
    Order,
    OrderLine,
    Shipment,
    ShippingLine,
    TaxLine,
)
from canonical.order_feed import FeedAction, FeedOrder, FeedPage, UnmappableOrder
from canonical.payload import mapping
from canonical.pricing import ChannelPrice
from canonical.returns import Refund
from canonical.vendor_versions import VendorApiVersion, day

log = structlog.get_logger(__name__)

# Orders API versions (canonical/vendor_versions.py; the one in use is the setting `amazon_orders_api_version`,
# default "v0"). Amazon: "If you are using the Orders API v0, you must migrate to Orders API v2026-01-01 by March
# 27, 2027" — getOrders, getOrder, getOrderBuyerInfo, getOrderAddress, getOrderItems, getOrderItemsBuyerInfo are
# removed then (confirmShipment is not in that list).
ORDERS_API_V0 = VendorApiVersion(
    "amazon", "SP-API Orders", "v0", released=None, sunset=day("2027-03-27"),
    source="https://developer-docs.amazon.com/sp-api/changelog/new-introducing-the-orders-api-v2026-01-01",
    note="getOrders/getOrder/getOrderItems (+BuyerInfo/Address) removed 2027-03-27; confirmShipment not listed")
ORDERS_API_V2026 = VendorApiVersion(
    "amazon", "SP-API Orders", "2026-01-01", released=None, sunset=None,
    source="https://developer-docs.amazon.com/sp-api/changelog/new-introducing-the-orders-api-v2026-01-01",
    note="the replacement of v0; no deprecation scheduled")
ORDERS_API_VERSIONS = {"v0": ORDERS_API_V0, "v2026-01-01": ORDERS_API_V2026, "2026-01-01": ORDERS_API_V2026}
# Feeds and Reports 2021-06-30: no removal date announced; the June 2024 deprecation reminder removed 2020-09-04.
API_VERSIONS = (
    VendorApiVersion("amazon", "SP-API Feeds", "2021-06-30", released=None, sunset=None,
                     source="https://developer-docs.amazon.com/sp-api/changelog/deprecation-reminders-june-2024",
                     note="no removal date scheduled (the 2020-09-04 version was removed 2024-06-27)"),
    VendorApiVersion("amazon", "SP-API Reports", "2021-06-30", released=None, sunset=None,
                     source="https://developer-docs.amazon.com/sp-api/changelog/deprecation-reminders-june-2024",
                     note="no removal date scheduled (the 2020-09-04 version was removed 2024-06-27)"),
    VendorApiVersion("amazon", "SP-API Listings Items (prices)", "2021-08-01", released=None, sunset=None,
                     source="https://developer-docs.amazon.com/sp-api/docs/manage-purchasable-offer",
                     note="patchListingsItem purchasable_offer / getListingsItem offers; the 2020-09-01 version "
                          "is the one deprecated"),
)
LISTINGS_API = "/listings/2021-08-01/items"

SETTLEMENT_REPORT_TYPE = "GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE_V2"
# Americas marketplaces: prices exclude tax (US, CA, MX, BR)
TAX_EXCLUSIVE_MARKETPLACES = frozenset({"ATVPDKIKX0DER", "A2EUQ1WTGCTBG2", "A1AM78C64UM0Y8", "A2Q3Y263D00KWC"})
# orders that are paid and waiting for the merchant to ship (Pending: not paid yet; AFN: Amazon ships)
FULFILLABLE_STATUSES = frozenset({"Unshipped", "PartiallyShipped"})


class AmazonMappingError(UnmappableOrder):
    """An Amazon payload cannot become a canonical model; the message says why."""


class OrderSummary(CanonicalModel):
    """One getOrders row: enough to decide what to do with the order, not the order itself."""

    amazon_order_id: str
    order_status: str
    fulfillment_channel: str | None = None
    last_update_date: datetime
    marketplace_id: str | None = None

    @property
    def fulfillable(self) -> bool:
        return self.order_status in FULFILLABLE_STATUSES and self.fulfillment_channel != "AFN"


def feed_order(o: OrderSummary) -> FeedOrder:
    """A getOrders row as the order feed port gives it: paid merchant-fulfilled orders start, Canceled ones
    cancel, the rest (Pending, Shipped, fulfilled by Amazon) wait."""
    action = (FeedAction.START if o.fulfillable else
              FeedAction.CANCEL if o.order_status == "Canceled" else FeedAction.WAIT)
    return FeedOrder(external_order_id=o.amazon_order_id, status=o.order_status, last_update_date=o.last_update_date,
                     action=action)


class OrdersPage(CanonicalModel):
    orders: list[OrderSummary] = Field(default_factory=list)
    next_token: str | None = None
    last_updated_before: datetime | None = None


class SettlementReport(CanonicalModel):
    report_id: str
    report_document_id: str
    created_time: datetime | None = None
    data_start_time: datetime | None = None
    data_end_time: datetime | None = None


def parse_time(value: Any, what: str) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise AmazonMappingError(f"{what} is missing")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise AmazonMappingError(f"{what} {value!r} is not an ISO-8601 time") from None
    if parsed.tzinfo is None:
        raise AmazonMappingError(f"{what} {value[:64]!r} has no time zone")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise AmazonMappingError(f"{what} {value[:64]!r} is out of range") from None


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- mapping ----------------------------------------------------------------------------------------------------
def _money(raw: Any, what: str, currency: str | None = None) -> Money | None:
    """An SP-API Money `{"CurrencyCode", "Amount"}` exactly: an amount finer than the currency's minor unit is
    refused, never rounded (money is not silently changed)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise AmazonMappingError(f"{what} is not a Money object")
    code, amount = raw.get("CurrencyCode"), raw.get("Amount")
    if not code or amount is None:
        raise AmazonMappingError(f"{what} lacks CurrencyCode or Amount")
    if currency is not None and code != currency:
        raise AmazonMappingError(f"{what} is in {code}, the order in {currency}")
    try:
        value = Decimal(str(amount).strip())
    except ArithmeticError:
        raise AmazonMappingError(f"{what} amount {amount!r} is not a decimal") from None
    if not value.is_finite():
        raise AmazonMappingError(f"{what} amount {amount!r} is not a decimal")
    if code.isalpha() and len(code) == 3 and value != value.quantize(Decimal(1).scaleb(-minor_units(code))):
        raise AmazonMappingError(f"{what} {amount} {code} is finer than the currency's minor unit")
    try:
        return Money.of(value, code)
    except ValidationError as exc:
        raise AmazonMappingError(f"{what}: {exc.errors()[0]['msg']}") from None


def _address(raw: Any) -> Address | None:
    if not isinstance(raw, Mapping) or not raw.get("CountryCode"):
        return None  # restricted data (PII) not granted: validation parks the order for an address
    return Address(name=raw.get("Name"), company=raw.get("CompanyName"), line1=raw.get("AddressLine1"),
                   line2=" ".join(p for p in (raw.get("AddressLine2"), raw.get("AddressLine3")) if p) or None,
                   city=raw.get("City"), region=raw.get("StateOrRegion"), postal_code=raw.get("PostalCode"),
                   country=raw["CountryCode"], phone=raw.get("Phone"))


def _rate(tax: Money, base: Money) -> Decimal:
    if base.amount <= 0:
        return Decimal(0)
    return (tax.amount / base.amount).quantize(Decimal("0.0001"))


def _line(item: Mapping[str, Any], currency: str) -> OrderLine | None:
    item_id = str(item.get("OrderItemId") or "").strip()
    if not item_id:
        raise AmazonMappingError("an order item has no OrderItemId")
    qty = item.get("QuantityOrdered")
    if isinstance(qty, bool) or not isinstance(qty, int) or qty < 0:
        raise AmazonMappingError(f"item {item_id}: QuantityOrdered must be a whole number, got {qty!r}")
    if qty == 0:
        return None  # a cancelled item
    sku = str(item.get("SellerSKU") or "").strip() or (f"asin:{item['ASIN']}" if item.get("ASIN") else "")
    if not sku:
        raise AmazonMappingError(f"item {item_id} has neither SellerSKU nor ASIN")
    price = _money(item.get("ItemPrice"), f"item {item_id} ItemPrice", currency) or Money.zero(currency)
    # ItemPrice is the whole line: split it into a unit price and, when it does not divide evenly, a discount
    # that brings unit × quantity back to exactly ItemPrice.
    step = Decimal(1).scaleb(-minor_units(currency))
    unit = (price.amount / qty).quantize(step, rounding="ROUND_CEILING")
    discounts = []
    if unit * qty != price.amount:
        discounts.append(Discount(description="rounding of ItemPrice over the quantity",
                                  amount=Money.of(unit * qty - price.amount, currency)))
    promo = _money(item.get("PromotionDiscount"), f"item {item_id} PromotionDiscount", currency)
    if promo is not None and promo.amount > 0:
        discounts.append(Discount(code=", ".join(item.get("PromotionIds") or []) or None, description="promotion",
                                  amount=promo))
    tax = _money(item.get("ItemTax"), f"item {item_id} ItemTax", currency)
    line_net = price - (promo if promo is not None and promo.amount > 0 else Money.zero(currency))
    return OrderLine(
        line_id=item_id, channel_sku=sku, name=item.get("Title"), quantity=qty, unit_price=Money.of(unit, currency),
        discounts=discounts,
        tax_lines=[TaxLine(title="ItemTax", rate=_rate(tax, line_net), amount=tax)] if tax and tax.amount else [],
    )


def _shipping(items: Sequence[Mapping[str, Any]], currency: str) -> list[ShippingLine]:
    price = sum_money([m for i in items if (m := _money(i.get("ShippingPrice"), "ShippingPrice", currency))],
                      currency)
    discount = sum_money([m for i in items if (m := _money(i.get("ShippingDiscount"), "ShippingDiscount", currency))],
                         currency)
    tax = sum_money([m for i in items if (m := _money(i.get("ShippingTax"), "ShippingTax", currency))], currency)
    if price.is_zero and tax.is_zero:
        return []
    net = price - discount
    return [ShippingLine(code="amazon", title="Shipping", price=price,
                         discounts=[Discount(description="shipping discount", amount=discount)]
                         if not discount.is_zero else [],
                         tax_lines=[TaxLine(title="ShippingTax", rate=_rate(tax, net), amount=tax)]
                         if not tax.is_zero else [])]


def map_order(order: Mapping[str, Any], items: Sequence[Mapping[str, Any]], channel: str = "amazon") -> Order:
    """An Amazon order (getOrders row or getOrder payload) and its getOrderItems → canonical Order."""
    with mapping(AmazonMappingError, "order"):
        if not isinstance(order, Mapping) or not isinstance(items, Sequence) or \
                not all(isinstance(i, Mapping) for i in items):
            raise AmazonMappingError("the order must be an object and its items a list of objects")
        return _map_order(order, items, channel)


def _map_order(order: Mapping[str, Any], items: Sequence[Mapping[str, Any]], channel: str) -> Order:
    try:
        order_id = str(order.get("AmazonOrderId") or "").strip()
        if not order_id:
            raise AmazonMappingError("order has no AmazonOrderId")
        total_raw = order.get("OrderTotal")
        currency = (total_raw or {}).get("CurrencyCode") or next(
            (i["ItemPrice"]["CurrencyCode"] for i in items if isinstance(i.get("ItemPrice"), Mapping)), None)
        if not currency:
            raise AmazonMappingError(f"order {order_id}: no currency (no OrderTotal and no ItemPrice)")
        lines = [line for item in items if (line := _line(item, currency)) is not None]
        if not lines:
            raise AmazonMappingError(f"order {order_id} has no order items with a quantity")
        buyer = order.get("BuyerInfo") or {}
        marketplace = order.get("MarketplaceId")
        return Order(
            channel=channel, external_order_id=order_id, order_number=order_id,
            created_at=parse_time(order.get("PurchaseDate"), f"order {order_id} PurchaseDate"),
            currency=currency, taxes_included=marketplace not in TAX_EXCLUSIVE_MARKETPLACES,
            customer=Customer(email=buyer.get("BuyerEmail") or None, name=buyer.get("BuyerName") or None),
            shipping_address=_address(order.get("ShippingAddress")),
            lines=lines, shipping_lines=_shipping(items, currency),
            total=_money(total_raw, f"order {order_id} OrderTotal", currency) if total_raw else None,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        raise AmazonMappingError(f"{'.'.join(str(p) for p in err['loc']) or 'order'}: {err['msg']}") from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise AmazonMappingError(f"unexpected payload shape: {type(exc).__name__}: {exc}") from None


def map_summary(row: Mapping[str, Any]) -> OrderSummary:
    with mapping(AmazonMappingError, "getOrders row"):
        return _map_summary(row)


def _map_summary(row: Mapping[str, Any]) -> OrderSummary:
    if not isinstance(row, Mapping):
        raise AmazonMappingError("a getOrders row must be an object")
    order_id = row.get("AmazonOrderId")
    if not isinstance(order_id, str) or not order_id.strip():
        raise AmazonMappingError("getOrders row has no AmazonOrderId")
    order_id = order_id.strip()
    return OrderSummary(amazon_order_id=order_id, order_status=str(row.get("OrderStatus") or ""),
                        fulfillment_channel=row.get("FulfillmentChannel"), marketplace_id=row.get("MarketplaceId"),
                        last_update_date=parse_time(row.get("LastUpdateDate") or row.get("PurchaseDate"),
                                                    f"order {order_id} LastUpdateDate"))


def map_orders_page(body: Mapping[str, Any]) -> OrdersPage:
    with mapping(AmazonMappingError, "getOrders"):
        payload = body.get("payload") or {}
        if not isinstance(payload, Mapping) or not isinstance(payload.get("Orders") or [], list):
            raise AmazonMappingError("getOrders payload must be an object with an Orders list")
        before = payload.get("LastUpdatedBefore")
        return OrdersPage(orders=[map_summary(o) for o in payload.get("Orders") or []],
                          next_token=payload.get("NextToken") or None,
                          last_updated_before=parse_time(before, "LastUpdatedBefore") if before else None)


# -- request bodies ---------------------------------------------------------------------------------------------
def package_reference_id(shipment_id: str) -> str:
    """Amazon wants a positive number unique within the order: derived from our shipment id, stable on retry."""
    return str(int(hashlib.sha256(shipment_id.encode()).hexdigest()[:12], 16) % 999_999_999 + 1)


def shipment_confirmation_body(shipment: Shipment, marketplace_id: str,
                               item_ids_by_sku: Mapping[str, str] | None = None) -> dict[str, Any]:
    items = []
    for line in shipment.lines:
        item_id = line.line_id or (item_ids_by_sku or {}).get(line.channel_sku)
        if not item_id:
            raise ChannelRejected(f"shipment {shipment.shipment_id}: no Amazon OrderItemId for {line.channel_sku}")
        items.append({"orderItemId": item_id, "quantity": line.quantity})
    detail: dict[str, Any] = {
        "packageReferenceId": package_reference_id(shipment.shipment_id),
        "carrierCode": shipment.carrier or "Other",
        "carrierName": shipment.carrier or "Other",
        "shipDate": shipment.shipped_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "orderItems": items,
    }
    if shipment.service:
        detail["shippingMethod"] = shipment.service
    if shipment.tracking_number:
        detail["trackingNumber"] = shipment.tracking_number
    return {"marketplaceId": marketplace_id, "packageDetail": detail}


def listings_inventory_feed(seller_id: str, quantities: Mapping[str, int]) -> dict[str, Any]:
    """JSON_LISTINGS_FEED: one PATCH per SKU replacing `fulfillment_availability` (merchant-fulfilled quantity)."""
    return {
        "header": {"sellerId": seller_id, "version": "2.0", "issueLocale": "en_US"},
        "messages": [
            {"messageId": n, "sku": sku, "operationType": "PATCH", "productType": "PRODUCT",
             "patches": [{"op": "replace", "path": "/attributes/fulfillment_availability",
                          "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": max(int(qty), 0)}]}]}
            for n, (sku, qty) in enumerate(quantities.items(), start=1)
        ],
    }


def _envelope(seller_id: str, message_type: str, messages: list[str]) -> str:
    body = "".join(f"<Message><MessageID>{n}</MessageID>{m}</Message>" for n, m in enumerate(messages, start=1))
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<AmazonEnvelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xsi:noNamespaceSchemaLocation="amzn-envelope.xsd">'
            f"<Header><DocumentVersion>1.01</DocumentVersion><MerchantIdentifier>{escape(seller_id)}"
            f"</MerchantIdentifier></Header><MessageType>{message_type}</MessageType>{body}</AmazonEnvelope>")


def cancel_feed(seller_id: str, amazon_order_id: str) -> str:
    """POST_ORDER_ACKNOWLEDGEMENT_DATA with StatusCode Failure: the seller cancels the whole order."""
    return _envelope(seller_id, "OrderAcknowledgement", [
        f"<OrderAcknowledgement><AmazonOrderID>{escape(amazon_order_id)}</AmazonOrderID>"
        "<StatusCode>Failure</StatusCode></OrderAcknowledgement>"])


def refund_feed(seller_id: str, refund: Refund) -> str:
    """POST_PAYMENT_ADJUSTMENT_DATA: one AdjustedItem per refunded line (Principal, Tax; Shipping and the
    restocking fee on the first), MerchantAdjustmentItemID derived from the refund key so Amazon sees a repeat."""
    if not refund.lines:
        raise ChannelRejected("an Amazon refund must name at least one order item")
    cur = escape(refund.currency)
    items = []
    for n, line in enumerate(refund.lines):
        comps = [("Principal", line.amount), ("Tax", line.tax)]
        if n == 0:
            comps += [("Shipping", refund.shipping), ("RestockingFee", -refund.fees_kept)]
        xml_comps = "".join(f"<Component><Type>{t}</Type><Amount currency=\"{cur}\">{m.amount}</Amount></Component>"
                            for t, m in comps if not m.is_zero)
        adj_id = hashlib.sha256(f"{refund.refund_key}:{line.line_id}".encode()).hexdigest()[:32]
        items.append(f"<AdjustedItem><AmazonOrderItemCode>{escape(line.line_id)}</AmazonOrderItemCode>"
                     f"<MerchantAdjustmentItemID>{adj_id}</MerchantAdjustmentItemID>"
                     f"<AdjustmentReason>CustomerReturn</AdjustmentReason>"
                     f"<ItemPriceAdjustments>{xml_comps}</ItemPriceAdjustments></AdjustedItem>")
    return _envelope(seller_id, "OrderAdjustment", [
        f"<OrderAdjustment><AmazonOrderID>{escape(refund.external_order_id)}</AmazonOrderID>{''.join(items)}"
        "</OrderAdjustment>"])


# -- HTTP -------------------------------------------------------------------------------------------------------
def channel_rejected(response: httpx.Response, context: Any = None) -> ChannelRejected:
    return ChannelRejected(f"{response.status_code} from {response.request.method} {response.request.url.path}: "
                           f"{vendor_message(response)}", details={"status": response.status_code})


def send(client: httpx.Client, vendor: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One call outside the SP-API endpoint (LWA, pre-signed S3 URLs) under the same error policy."""
    return http_send(client, vendor, method, url, error_mapper=channel_rejected, **kwargs)


class LwaAuth(httpx.Auth):
    """Adds `x-amz-access-token`; on a 403 whose token may have been revoked early, refreshes once and retries."""

    def __init__(self, tokens: LwaTokens) -> None:
        self.tokens = tokens

    def auth_flow(self, request: httpx.Request):
        request.headers["x-amz-access-token"] = self.tokens.token()
        response = yield request
        if response.status_code == 403:
            response.read()
            if "Unauthorized" in response.text or "token" in response.text.lower():
                self.tokens.invalidate()
                request.headers["x-amz-access-token"] = self.tokens.token()
                yield request


# -- LWA --------------------------------------------------------------------------------------------------------
class LwaTokens:
    """Login with Amazon: exchanges the refresh token for an access token and caches it until shortly before it
    expires. Thread-safe (activities run in a thread pool). Secrets are never logged."""

    def __init__(self, http: httpx.Client, token_url: str, client_id: str, client_secret: SecretStr,
                 refresh_token: SecretStr, *, clock: Callable[[], float] = time.monotonic,
                 margin_seconds: float = 60.0) -> None:
        self.http, self.token_url, self.client_id = http, token_url, client_id
        self._secret, self._refresh = client_secret, refresh_token
        self._clock, self._margin = clock, margin_seconds
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.refreshes = 0

    def token(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at:
                self._refresh_now()
            assert self._token is not None
            return self._token

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def _refresh_now(self) -> None:
        resp = send(self.http, "amazon-lwa", "POST", self.token_url, data={
            "grant_type": "refresh_token", "refresh_token": self._refresh.get_secret_value(),
            "client_id": self.client_id, "client_secret": self._secret.get_secret_value()})
        body = resp.json()
        token, expires = body.get("access_token"), body.get("expires_in")
        if not token or not isinstance(expires, int):
            raise ChannelRejected("Login with Amazon answered without access_token/expires_in")
        self._token = token
        self._expires_at = self._clock() + max(expires - self._margin, 0)
        self.refreshes += 1
        log.info("amazon.lwa_token_refreshed", expires_in=expires)


# -- the client -------------------------------------------------------------------------------------------------
class AmazonSpApi:
    """SP-API client and the marketplace port for Amazon channels. `http` is a VendorHttp on the SP-API endpoint
    whose auth adds the LWA access token (`build_amazon_sp`); `raw` is a plain client for the pre-signed feed
    upload and report download URLs, which must not receive the token."""

    lists_by_channel_sku = True  # the listings feed is keyed by the seller SKU, not the ERP item code

    def __init__(self, http: VendorHttp, raw: httpx.Client, *, marketplace_id: str, seller_id: str,
                 channel: str = "amazon") -> None:
        self.http, self.raw = http, raw
        self.marketplace_id, self.seller_id, self.channel = marketplace_id, seller_id, channel

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        resp = self.http.request(method, path, **kwargs)
        return resp.json() if resp is not None and resp.content else {}

    # -- orders ------------------------------------------------------------------------------------------------
    def orders_page(self, last_updated_after: datetime | None, next_token: str | None = None) -> OrdersPage:
        params: dict[str, Any] = {"MarketplaceIds": self.marketplace_id}
        if next_token:
            params["NextToken"] = next_token
        elif last_updated_after is not None:
            params["LastUpdatedAfter"] = iso(last_updated_after)
        else:
            raise ValueError("getOrders needs LastUpdatedAfter or a NextToken")
        return map_orders_page(self._json("GET", "/orders/v0/orders", params=params))

    def feed_page(self, updated_after: datetime | None, next_token: str | None = None) -> FeedPage:
        """The order feed port: a getOrders page with each order's action under Amazon's rules — paid
        merchant-fulfilled orders (Unshipped, PartiallyShipped; not AFN) start, Canceled ones cancel, the rest
        (Pending, Shipped…) wait for their next update."""
        page = self.orders_page(updated_after, next_token)
        return FeedPage(next_token=page.next_token, orders=[feed_order(o) for o in page.orders])

    def orders_since(self, last_updated_after: datetime) -> Iterator[OrderSummary]:
        page = self.orders_page(last_updated_after)
        yield from page.orders
        while page.next_token:  # v0 reads only the NextToken; v2026-01-01 wants the filter with every page
            page = self.orders_page(last_updated_after, page.next_token)
            yield from page.orders

    def get_order(self, amazon_order_id: str) -> dict[str, Any]:
        return self._json("GET", f"/orders/v0/orders/{amazon_order_id}").get("payload") or {}

    def order_items(self, amazon_order_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        params: dict[str, Any] | None = None
        while True:
            payload = self._json("GET", f"/orders/v0/orders/{amazon_order_id}/orderItems",
                                 params=params).get("payload") or {}
            items += payload.get("OrderItems") or []
            if not payload.get("NextToken"):
                return items
            params = {"NextToken": payload["NextToken"]}

    def order_address(self, amazon_order_id: str) -> dict[str, Any] | None:
        return (self._json("GET", f"/orders/v0/orders/{amazon_order_id}/address").get("payload") or {}).get(
            "ShippingAddress")

    def fetch_order(self, amazon_order_id: str) -> Order:
        """getOrder + getOrderItems (+ getOrderAddress when the order came without its address) → Order."""
        order = self.get_order(amazon_order_id)
        if not order.get("ShippingAddress"):
            address = self.order_address(amazon_order_id)
            if address:
                order = {**order, "ShippingAddress": address}
        return map_order(order, self.order_items(amazon_order_id), self.channel)

    # -- marketplace port --------------------------------------------------------------------------------------
    def confirm_shipment(self, channel: str, external_order_id: str, shipment: Shipment) -> None:
        order = self.get_order(external_order_id)
        if self.closed(external_order_id, order):
            return
        self.confirm_items(external_order_id, shipment, order, self.order_items(external_order_id))

    @staticmethod
    def closed(external_order_id: str, order: Mapping[str, Any]) -> bool:
        if order.get("OrderStatus") in ("Shipped", "Canceled"):
            log.info("amazon.already_closed", external_id=external_order_id, status=order.get("OrderStatus"))
            return True
        return False

    def confirm_items(self, external_order_id: str, shipment: Shipment, order: Mapping[str, Any],
                      items: Sequence[Mapping[str, Any]]) -> None:
        """confirmShipment (Orders v0, not deprecated) for the shipment's lines not yet confirmed; `order` and
        `items` in the v0 shape."""
        left = {str(i["OrderItemId"]): int(i.get("QuantityOrdered") or 0) - int(i.get("QuantityShipped") or 0)
                for i in items}
        by_sku = {str(i.get("SellerSKU")): str(i["OrderItemId"]) for i in items}
        wanted = [line.line_id or by_sku.get(line.channel_sku) for line in shipment.lines]
        if all(w is not None and left.get(w, 0) <= 0 for w in wanted):
            log.info("amazon.shipment_already_confirmed", external_id=external_order_id,
                     shipment_id=shipment.shipment_id)
            return
        body = shipment_confirmation_body(shipment, order.get("MarketplaceId") or self.marketplace_id, by_sku)
        self.http.request("POST", f"/orders/v0/orders/{external_order_id}/shipmentConfirmation", json=body)
        log.info("amazon.shipment_confirmed", external_id=external_order_id, shipment_id=shipment.shipment_id)

    def notify_cancelled(self, channel: str, external_order_id: str, reason: str) -> None:
        if self.get_order(external_order_id).get("OrderStatus") == "Canceled":
            return
        feed_id = self.submit_feed("POST_ORDER_ACKNOWLEDGEMENT_DATA", cancel_feed(self.seller_id, external_order_id),
                                   "text/xml; charset=UTF-8")
        log.info("amazon.cancel_submitted", external_id=external_order_id, feed_id=feed_id, reason=reason[:200])

    def refund(self, refund: Refund) -> None:
        feed_id = self.submit_feed("POST_PAYMENT_ADJUSTMENT_DATA", refund_feed(self.seller_id, refund),
                                   "text/xml; charset=UTF-8")
        log.info("amazon.refund_submitted", external_id=refund.external_order_id, refund_key=refund.refund_key,
                 feed_id=feed_id)

    def notify_return_not_received(self, channel: str, external_order_id: str, return_id: str) -> None:
        """Amazon runs returns itself (a return it never received is its own to close): nothing to send."""
        log.info("amazon.return_not_received_noop", external_id=external_order_id, return_id=return_id)

    def publish_availability(self, channel: str, sku: str, quantity: int, *, key: str | None = None) -> None:
        feed_id = self.submit_feed("JSON_LISTINGS_FEED", json.dumps(listings_inventory_feed(self.seller_id,
                                                                                            {sku: quantity})),
                                   "application/json; charset=UTF-8")
        log.info("amazon.inventory_feed_submitted", sku=sku, quantity=quantity, feed_id=feed_id, key=key)

    # -- prices (Listings Items API 2021-08-01) ----------------------------------------------------------------
    applies_async = True  # Amazon processes an accepted patch shortly after: a read-back may lag (retried)

    def listing(self, sku: str) -> dict[str, Any]:
        """getListingsItem with summaries (the product type a patch needs), attributes and offers."""
        resp = self.http.request("GET", f"{LISTINGS_API}/{quote(self.seller_id, safe='')}/{quote(sku, safe='')}",
                                 params={"marketplaceIds": self.marketplace_id,
                                         "includedData": "summaries,attributes,offers"}, not_found=True)
        if resp is None:
            raise ChannelRejected(f"Amazon has no listing for seller SKU {sku!r} in marketplace {self.marketplace_id}")
        return resp.json()

    def publish_price(self, channel: str, sku: str, price: Money, compare_at: Money | None = None) -> None:
        """patchListingsItem: replace the offer's `our_price` (with tax, as Amazon shows it) for this marketplace;
        a promotion's regular price goes as `list_price`. INVALID or an ERROR issue is the channel's refusal."""
        summaries = self.listing(sku).get("summaries") or []
        product_type = next((x.get("productType") for x in summaries
                             if x.get("marketplaceId") == self.marketplace_id and x.get("productType")), None)
        if not product_type:
            raise ChannelRejected(f"Amazon listing {sku!r} has no product type in marketplace {self.marketplace_id}")
        offer: dict[str, Any] = {"marketplace_id": self.marketplace_id, "currency": price.currency, "audience": "ALL",
                                 "our_price": [{"schedule": [{"value_with_tax": price.amount}]}]}
        patches = [{"op": "replace", "path": "/attributes/purchasable_offer", "value": [offer]}]
        if compare_at is not None:
            patches.append({"op": "replace", "path": "/attributes/list_price", "value": [
                {"marketplace_id": self.marketplace_id, "currency": compare_at.currency, "value": compare_at.amount}]})
        body = self._json("PATCH", f"{LISTINGS_API}/{quote(self.seller_id, safe='')}/{quote(sku, safe='')}",
                          params={"marketplaceIds": self.marketplace_id},
                          json={"productType": product_type, "patches": patches})
        errors = [i for i in body.get("issues") or [] if i.get("severity") == "ERROR"]
        if body.get("status") != "ACCEPTED" or errors:
            detail = "; ".join(f"{i.get('code')}: {i.get('message')}" for i in errors) or str(body.get("status"))
            raise ChannelRejected(f"Amazon refused the price of {sku}: {detail}")
        log.info("amazon.price_patched", sku=sku, price=str(price), submission_id=body.get("submissionId"))

    def read_price(self, channel: str, sku: str) -> ChannelPrice | None:
        """The B2C offer's price in this marketplace (getListingsItem `offers`), with the list price if any."""
        item = self.listing(sku)
        offer = next((o for o in item.get("offers") or [] if o.get("marketplaceId") == self.marketplace_id
                      and o.get("offerType", "B2C") == "B2C"), None)
        price = (offer or {}).get("price") or {}
        if price.get("amount") is None:
            return None
        lists = ((item.get("attributes") or {}).get("list_price")) or []
        listed = next((x for x in lists if x.get("marketplace_id") in (None, self.marketplace_id)), None)
        return ChannelPrice(channel=channel, channel_sku=sku, amount=Decimal(str(price["amount"])),
                            currency=str(price.get("currencyCode")),
                            compare_at=Decimal(str(listed["value"])) if listed and listed.get("value") is not None
                            else None)

    # -- feeds -------------------------------------------------------------------------------------------------
    def submit_feed(self, feed_type: str, content: str, content_type: str) -> str:
        doc = self._json("POST", "/feeds/2021-06-30/documents", json={"contentType": content_type})
        if not doc.get("feedDocumentId") or not doc.get("url"):
            raise ChannelRejected("createFeedDocument answered without feedDocumentId/url")
        # the pre-signed upload URL takes no access token
        send(self.raw, "amazon-feed-upload", "PUT", doc["url"], content=content.encode("utf-8"),
             headers={"Content-Type": content_type})
        feed = self._json("POST", "/feeds/2021-06-30/feeds", json={
            "feedType": feed_type, "marketplaceIds": [self.marketplace_id],
            "inputFeedDocumentId": doc["feedDocumentId"]})
        if not feed.get("feedId"):
            raise ChannelRejected("createFeed answered without feedId")
        return str(feed["feedId"])

    # -- settlement reports ------------------------------------------------------------------------------------
    def settlement_reports(self, created_since: datetime | None = None) -> list[SettlementReport]:
        params: dict[str, Any] = {"reportTypes": SETTLEMENT_REPORT_TYPE, "processingStatuses": "DONE",
                                  "pageSize": 100}
        if created_since is not None:
            params["createdSince"] = iso(created_since)
        reports = []
        while True:
            body = self._json("GET", "/reports/2021-06-30/reports", params=params)
            for r in body.get("reports") or []:
                if r.get("reportDocumentId") and r.get("processingStatus", "DONE") == "DONE":
                    reports.append(SettlementReport(
                        report_id=str(r["reportId"]), report_document_id=str(r["reportDocumentId"]),
                        created_time=parse_time(r["createdTime"], "createdTime") if r.get("createdTime") else None,
                        data_start_time=parse_time(r["dataStartTime"], "dataStartTime")
                        if r.get("dataStartTime") else None,
                        data_end_time=parse_time(r["dataEndTime"], "dataEndTime") if r.get("dataEndTime") else None))
            if not body.get("nextToken"):
                return reports
            params = {"nextToken": body["nextToken"]}

    def download_report(self, report_document_id: str) -> bytes:
        doc = self._json("GET", f"/reports/2021-06-30/documents/{report_document_id}")
        if not doc.get("url"):
            raise ChannelRejected(f"report document {report_document_id} has no url")
        data = send(self.raw, "amazon-report-download", "GET", doc["url"]).content
        if doc.get("compressionAlgorithm") == "GZIP":
            data = gzip.decompress(data)
        return data

    def download_settlements(self, folder: Path, created_since: datetime | None = None) -> list[Path]:
        """Write each settlement report not yet in `folder` as `<reportId>.tsv` (atomically); the new paths."""
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for report in self.settlement_reports(created_since):
            target = folder / f"{report.report_id}.tsv"
            if target.exists():
                continue
            tmp = target.with_suffix(".part")
            tmp.write_bytes(self.download_report(report.report_document_id))
            tmp.replace(target)
            written.append(target)
        return written


class AmazonSettlementReports:
    """A settlement report source (adapters/marketplace/settlement_reports.py) that first downloads Amazon's new
    settlement reports into the embedded folder, then lists and resolves from it."""

    def __init__(self, api: AmazonSpApi, local: Any, provider: str = "amazon") -> None:
        self.api, self.local, self.provider = api, local, provider

    def list_reports(self, provider: str):
        if provider == self.provider:
            self.api.download_settlements(self.local.folder(provider))
        return self.local.list_reports(provider)

    def resolve(self, provider: str, source: str) -> Path:
        return self.local.resolve(provider, source)


def build_amazon_sp(settings: Any, *, transport: httpx.BaseTransport | None = None) -> AmazonSpApi:
    """From RETAILFLOW_AMAZON_* settings; LWA secrets stay in SecretStr and are never logged. Order reads on Orders
    API v2026-01-01 or v0 as `amazon_orders_api_version` says (v0 when the settings object has no such field)."""
    raw = httpx.Client(timeout=httpx.Timeout(60.0, connect=5.0), transport=transport, follow_redirects=True)
    tokens = LwaTokens(raw, settings.amazon_lwa_token_url, settings.amazon_lwa_client_id,
                       settings.amazon_lwa_client_secret, settings.amazon_refresh_token)
    http = VendorHttp("amazon", settings.amazon_sp_base_url, transport=transport, auth=LwaAuth(tokens),
                      error_mapper=channel_rejected, headers={"Accept": "application/json",
                                                              "User-Agent": "retailflow/0.1 (Language=Python)"})
    version = getattr(settings, "amazon_orders_api_version", "v0")
    cls: type[AmazonSpApi] = AmazonSpApi
    if version == "2026-01-01":
        from adapters.marketplace.amazon_orders_v2026 import AmazonOrdersV2026

        cls = AmazonOrdersV2026
    elif version != "v0":
        raise ValueError(f"amazon_orders_api_version {version!r}: expected '2026-01-01' or 'v0'")
    return cls(http, raw, marketplace_id=settings.amazon_marketplace_id, seller_id=settings.amazon_seller_id,
               channel=settings.amazon_channel)
