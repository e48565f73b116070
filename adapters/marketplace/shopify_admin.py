"""Shopify Admin REST API: what the platform tells a Shopify shop (fulfillment with tracking, cancel, refund,
inventory levels). The marketplace port of adapters/marketplace/base.py over HTTP.

Endpoints (Admin REST, `/admin/api/{version}/…`, header `X-Shopify-Access-Token`):
- fulfillment: `GET orders/{id}/fulfillment_orders.json` then `POST fulfillments.json` with
  `line_items_by_fulfillment_order` and `tracking_info` (the fulfillment-orders flow; the legacy
  `orders/{id}/fulfillments.json` create is gone). Idempotent: the order's fulfillments are looked up first by
  tracking number, and lines with nothing left to fulfil are not sent again.
- cancel: `GET orders/{id}.json` (already `cancelled_at`? done) then `POST orders/{id}/cancel.json`.
- refund: `GET orders/{id}/refunds.json` (a refund whose note carries the refund key? done), the parent
  transaction from `GET orders/{id}/transactions.json`, then `POST orders/{id}/refunds.json`.
- inventory: SKU → inventory item through `GET products.json` (Link-header pagination), then
  `POST inventory_levels/set.json` (an absolute quantity, so a repeat is harmless).
Shopify ids exceed 2^53: they are kept as strings and sent as JSON integers built from the exact digits.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import structlog

from adapters.http import VendorHttp, vendor_message
from adapters.marketplace.shopify import _id
from canonical.errors import ChannelRejected
from canonical.order import Shipment
from canonical.returns import Refund

log = structlog.get_logger(__name__)

_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_ACCESS_HEADER = "X-Shopify-Access-Token"


def next_link(link_header: str | None) -> str | None:
    """The `rel="next"` URL of a Link header (Shopify's cursor pagination), or None on the last page."""
    if not link_header:
        return None
    for part in link_header.split(","):
        m = _LINK_NEXT.search(part)
        if m:
            return m.group(1)
    return None


def _int_id(value: str | int) -> int:
    """A Shopify id as a JSON integer (exact: built from the digits, never through a float)."""
    text = str(value)
    if not text.isdigit():
        raise ChannelRejected(f"{text!r} is not a Shopify id")
    return int(text)


REFUND_NOTE_PREFIX = "retailflow refund "  # marks refunds the platform pays, so their refunds/create echo is known


def refund_note(refund_key: str) -> str:
    return f"{REFUND_NOTE_PREFIX}{refund_key}"


# -- request bodies (pure: tested against the published shapes) --------------------------------------------
def tracking_info(shipment: Shipment) -> dict[str, Any]:
    """Shopify's tracking info of a shipment (number, url, company), the same for REST and GraphQL."""
    tracking: dict[str, Any] = {}
    if shipment.tracking_number:
        tracking["number"] = shipment.tracking_number
    if shipment.tracking_url:
        tracking["url"] = shipment.tracking_url
    if shipment.carrier:
        tracking["company"] = shipment.carrier
    return tracking


def fulfillment_body(shipment: Shipment, fulfillment_orders: list[dict[str, Any]], *,
                     notify_customer: bool = True) -> dict[str, Any] | None:
    """`POST fulfillments.json` body for a shipment: each shipped order line is taken from the open fulfillment
    orders that still hold it (never more than is fulfillable). None when nothing is left to fulfil."""
    wanted: dict[str, int] = {}
    for line in shipment.lines:
        if not line.line_id:
            raise ChannelRejected(f"shipment {shipment.shipment_id} has a line without the Shopify line item id "
                                  f"({line.channel_sku}); Shopify fulfils by line item")
        wanted[line.line_id] = wanted.get(line.line_id, 0) + line.quantity
    groups = []
    for fo in fulfillment_orders:
        if fo.get("status") not in ("open", "in_progress", "scheduled"):
            continue
        items = []
        for li in fo.get("line_items") or []:
            line_id = _id(li.get("line_item_id"), "fulfillment_order line_item_id")
            left = wanted.get(line_id, 0)
            take = min(left, int(li.get("fulfillable_quantity") or 0))
            if take > 0:
                items.append({"id": _int_id(_id(li.get("id"), "fulfillment_order line item id")), "quantity": take})
                wanted[line_id] = left - take
        if items:
            groups.append({"fulfillment_order_id": _int_id(_id(fo.get("id"), "fulfillment_order id")),
                           "fulfillment_order_line_items": items})
    if not groups:
        return None
    tracking = tracking_info(shipment)
    body: dict[str, Any] = {"line_items_by_fulfillment_order": groups, "notify_customer": notify_customer}
    if tracking:
        body["tracking_info"] = tracking
    return {"fulfillment": body}


def refund_body(refund: Refund, parent: dict[str, Any] | None) -> dict[str, Any]:
    """`POST orders/{id}/refunds.json` body: the refunded line items (no restock: returns restock in the ERP),
    the shipping refunded, and one refund transaction against the order's sale/capture for the total."""
    total = refund.total
    body: dict[str, Any] = {
        "currency": refund.currency,
        "notify": True,
        "note": refund_note(refund.refund_key),
        "refund_line_items": [
            {"line_item_id": _int_id(line.line_id), "quantity": line.quantity, "restock_type": "no_restock"}
            for line in refund.lines if line.quantity > 0
        ],
        "transactions": [],
    }
    if not refund.shipping.is_zero:
        body["shipping"] = {"amount": str(refund.shipping.amount)}
    if total.amount > 0:
        if parent is None:
            raise ChannelRejected(f"order {refund.external_order_id} has no successful sale or capture to refund "
                                  f"{total} against")
        body["transactions"].append({"parent_id": _int_id(_id(parent.get("id"), "transaction id")),
                                     "amount": str(total.amount), "kind": "refund",
                                     "gateway": parent.get("gateway")})
    return {"refund": body}


def parent_transaction(transactions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The successful capture (or sale) a refund is paid back against."""
    for kind in ("capture", "sale"):
        for t in transactions:
            if t.get("kind") == kind and t.get("status") == "success":
                return t
    return None


class ShopifyAdmin:
    """The marketplace port for Shopify shops, over the Admin REST API.

    `http` is a VendorHttp whose base URL is the shop (`https://<shop>.myshopify.com`) carrying the access token
    header (`build_shopify_admin`). Errors follow adapters/http.py: 429 → retry after Retry-After,
    5xx/timeouts → retried, 401/403 → VendorAuthFailed, other 4xx → ChannelRejected (parks; skippable)."""

    lists_by_channel_sku = True  # inventory is set per variant SKU, not per ERP item code

    def __init__(self, http: VendorHttp, *, api_version: str = "2026-10", location_id: str | None = None,
                 inventory_item_ids: dict[str, str] | None = None) -> None:
        self.http = http
        self.prefix = f"/admin/api/{api_version}"
        self.location_id = location_id
        self._inventory_items: dict[str, str] = dict(inventory_item_ids or {})
        self._lock = threading.Lock()

    # -- HTTP ----------------------------------------------------------------------------------------------
    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = path if path.startswith("http") else f"{self.prefix}/{path.lstrip('/')}"
        resp = self.http.request(method, url, **kwargs)
        assert resp is not None
        return resp

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        resp = self._call(method, path, **kwargs)
        return resp.json(parse_float=Decimal) if resp.content else {}

    def _pages(self, path: str, key: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every record of a list endpoint, following the Link header's `rel="next"` page_info cursor."""
        url: str | None = path
        query = params
        while url:
            resp = self._call("GET", url, params=query)
            yield from resp.json(parse_float=Decimal).get(key) or []
            url, query = next_link(resp.headers.get("link")), None  # the next URL carries its own query

    # -- click-and-collect ---------------------------------------------------------------------------------
    def delivery_methods(self, external_order_id: str) -> list[dict[str, Any]]:
        """The order's open fulfillment orders (`GET orders/{id}/fulfillment_orders.json`), each with its
        `delivery_method.method_type` and `assigned_location_id`: what `shopify.pickup_location` reads."""
        path = f"orders/{_int_id(external_order_id)}/fulfillment_orders.json"
        return list(self._json("GET", path).get("fulfillment_orders") or [])

    # -- fulfillment ---------------------------------------------------------------------------------------
    def confirm_shipment(self, channel: str, external_order_id: str, shipment: Shipment) -> None:
        order_id = _int_id(external_order_id)
        if shipment.tracking_number:
            for f in self._pages(f"orders/{order_id}/fulfillments.json", "fulfillments"):
                numbers = set(f.get("tracking_numbers") or []) | {f.get("tracking_number")}
                if shipment.tracking_number in numbers and f.get("status") != "cancelled":
                    log.info("shopify.fulfillment_exists", external_id=external_order_id, fulfillment_id=f.get("id"))
                    return
        fos = self._json("GET", f"orders/{order_id}/fulfillment_orders.json").get("fulfillment_orders") or []
        body = fulfillment_body(shipment, fos)
        if body is None:  # every shipped unit is fulfilled already (a retry after the create went through)
            log.info("shopify.nothing_to_fulfil", external_id=external_order_id, shipment_id=shipment.shipment_id)
            return
        created = self._json("POST", "fulfillments.json", json=body).get("fulfillment") or {}
        log.info("shopify.fulfillment_created", external_id=external_order_id, fulfillment_id=created.get("id"))

    # -- cancel --------------------------------------------------------------------------------------------
    def notify_cancelled(self, channel: str, external_order_id: str, reason: str) -> None:
        order_id = _int_id(external_order_id)
        order = self._json("GET", f"orders/{order_id}.json", params={"fields": "id,cancelled_at"}).get("order") or {}
        if order.get("cancelled_at"):
            return
        self._call("POST", f"orders/{order_id}/cancel.json", json={"reason": "other", "email": False})
        log.info("shopify.order_cancelled", external_id=external_order_id, reason=reason[:200])

    # -- refund --------------------------------------------------------------------------------------------
    def refund(self, refund: Refund) -> None:
        order_id = _int_id(refund.external_order_id)
        note = refund_note(refund.refund_key)
        for existing in self._pages(f"orders/{order_id}/refunds.json", "refunds"):
            if existing.get("note") == note:
                return
        if refund.total.amount <= 0 and not any(line.quantity for line in refund.lines):
            return  # nothing to pay and nothing to mark refunded
        transactions = self._json("GET", f"orders/{order_id}/transactions.json").get("transactions") or []
        parent = parent_transaction(transactions)
        if parent is not None and parent.get("currency") and parent["currency"] != refund.currency:
            raise ChannelRejected(f"order {order_id} was paid in {parent['currency']}, the refund is in "
                                  f"{refund.currency}")
        self._json("POST", f"orders/{order_id}/refunds.json", json=refund_body(refund, parent))
        log.info("shopify.refund_created", external_id=refund.external_order_id, refund_key=refund.refund_key,
                 total=str(refund.total))

    def notify_return_not_received(self, channel: str, external_order_id: str, return_id: str) -> None:
        """Tag the order `return-not-received-<return id>` (Shopify has no return-closure call); idempotent."""
        order_id = _int_id(external_order_id)
        order = self._json("GET", f"orders/{order_id}.json", params={"fields": "id,tags"}).get("order") or {}
        tags = [t.strip() for t in str(order.get("tags") or "").split(",") if t.strip()]
        tag = f"return-not-received-{return_id}"[:40]
        if tag in tags:
            return
        self._call("PUT", f"orders/{order_id}.json", json={"order": {"id": order_id, "tags": ", ".join([*tags, tag])}})

    # -- inventory -----------------------------------------------------------------------------------------
    def inventory_item_id(self, sku: str) -> str:
        with self._lock:
            if sku in self._inventory_items:
                return self._inventory_items[sku]
        found: dict[str, str] = {}
        for product in self._pages("products.json", "products", {"limit": 250, "fields": "id,variants"}):
            for v in product.get("variants") or []:
                if v.get("sku") and v.get("inventory_item_id") is not None:
                    found.setdefault(str(v["sku"]), _id(v["inventory_item_id"], "inventory_item_id"))
        with self._lock:
            self._inventory_items.update(found)
            if sku not in self._inventory_items:
                raise ChannelRejected(f"no Shopify variant has SKU {sku!r}")
            return self._inventory_items[sku]

    def _location(self) -> str:
        if self.location_id:
            return self.location_id
        locations = self._json("GET", "locations.json").get("locations") or []
        active = [loc for loc in locations if loc.get("active", True)]
        if not active:
            raise ChannelRejected("the shop has no active location to set inventory at")
        self.location_id = _id(active[0].get("id"), "location id")
        return self.location_id

    def publish_availability(self, channel: str, sku: str, quantity: int, *, key: str | None = None) -> None:
        body = {"location_id": _int_id(self._location()), "inventory_item_id": _int_id(self.inventory_item_id(sku)),
                "available": max(int(quantity), 0)}
        self._call("POST", "inventory_levels/set.json", json=body)
        log.info("shopify.inventory_set", sku=sku, quantity=body["available"], key=key)



def channel_rejected(response: httpx.Response, context: Any = None) -> ChannelRejected:
    """A 4xx other than 401/403/429: the channel refused the update (parks the run; `skip` is allowed)."""
    return ChannelRejected(f"{response.status_code} from {response.request.method} {response.request.url.path}: "
                           f"{vendor_message(response)}", details={"status": response.status_code})


def build_shopify_admin(settings: Any, *, transport: httpx.BaseTransport | None = None,
                        auth: httpx.Auth | None = None) -> ShopifyAdmin:
    """From RETAILFLOW_SHOPIFY_ADMIN_* settings; the token goes into a header once (or per request through `auth`,
    an installed shop's token) and is never logged."""
    headers = {"Accept": "application/json"}
    if auth is None:
        headers[_ACCESS_HEADER] = settings.shopify_admin_access_token.get_secret_value()
    http = VendorHttp("shopify", settings.shopify_admin_base_url, transport=transport, error_mapper=channel_rejected,
                      headers=headers, auth=auth)
    return ShopifyAdmin(http, api_version=settings.shopify_admin_api_version, location_id=settings.shopify_location_id)
