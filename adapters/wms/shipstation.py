"""ShipStation (V1 API, `ssapi.shipstation.com`, HTTP Basic auth with the API key and secret) as the WMS/3PL.

- release: `POST /orders/createorder` with `orderKey` = the platform's external reference (ShipStation updates
  rather than duplicates an order with the same orderKey); looked up first with `GET /orders?orderNumber=…`.
- cancel / amend: the order is read back (`GET /orders/{orderId}`) and posted again through createorder with
  `orderStatus: cancelled` or the new items, while it is still awaiting shipment.
- shipments: SHIP_NOTIFY webhooks carry only `{"resource_url", "resource_type"}`; the shipments are fetched from
  that resource (`{"shipments": […], "total", "page", "pages"}`) with `includeShipmentItems=true`, page by page,
  and mapped to canonical Shipments. The webhook is unsigned, so only the path and query of `resource_url` are
  used, against the configured base URL (a forged URL cannot make us call another host).
- returns: V1 has no inbound (return receipt) API, so return announcements go to the embedded WMS (the platform's
  own receiving), which `returns` provides.
ShipStation times are Pacific (America/Los_Angeles) without an offset, e.g. `2014-10-03T06:51:33.6270000`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import httpx
import structlog

from adapters.http import VendorHttp
from canonical import payload as canonical_payload
from canonical.errors import CannotCancel, InvalidOrder, PayloadInvalid
from canonical.fulfillment import ResolvedLine, WmsReleaseRef
from canonical.order import Address, Shipment, ShipmentLine
from canonical.payload import mapping
from canonical.returns import AuthorizedLine
from canonical.vendor_versions import VendorApiVersion

log = structlog.get_logger(__name__)

PACIFIC = ZoneInfo("America/Los_Angeles")
# The vendor API this adapter speaks (canonical/vendor_versions.py). docs.shipstation.com/api-overview lists V1 as
# "Legacy", "still supported and maintained for existing integrations"; V2 (api.shipstation.com/v2) is the
# current one. No end date for V1 is announced.
API_VERSIONS = (
    VendorApiVersion("shipstation", "ShipStation API (ssapi.shipstation.com)", "V1 (legacy)",
                     released=None, sunset=None, source="https://docs.shipstation.com/api-overview",
                     note="V1 is documented as legacy but supported and maintained; V2 is current "
                          "(migration guide: https://docs.shipstation.com/orders/legacy-migration); no V1 end date "
                          "announced"),
)
OPEN_STATUSES = frozenset({"awaiting_payment", "awaiting_shipment", "on_hold", "pending_fulfillment"})
SHIPMENT_RESOURCE_TYPES = frozenset({"SHIP_NOTIFY", "ITEM_SHIP_NOTIFY"})
MAX_PAGES = 500  # of one SHIP_NOTIFY resource (a batch of labels); more is a broken answer, not a batch


class ShipStationMappingError(PayloadInvalid):
    """A ShipStation payload cannot become a canonical model; the message says why."""


def parse_time(value: Any) -> datetime:
    """ShipStation's Pacific local times (7 fractional digits, no offset) → aware UTC; an explicit offset wins."""
    if not isinstance(value, str) or not value.strip():
        raise ShipStationMappingError("time is missing")
    text = value.strip().replace("Z", "+00:00")
    m = re.match(r"^(\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}:\d{2})?)(?:\.(\d+))?(.*)$", text)
    if not m:
        raise ShipStationMappingError(f"{value!r} is not a time")
    base, frac, rest = m.groups()
    try:
        parsed = datetime.fromisoformat(base + (f".{frac[:6].ljust(6, '0')}" if frac else "") + rest)
    except ValueError:
        raise ShipStationMappingError(f"{value!r} is not a time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=PACIFIC)
    return parsed.astimezone(UTC)


# -- mapping ----------------------------------------------------------------------------------------------------
def map_shipment(raw: Mapping[str, Any]) -> tuple[str, Shipment]:
    """One ShipStation shipment → (the order's orderKey, i.e. our external reference; canonical Shipment)."""
    if not isinstance(raw, Mapping):
        raise ShipStationMappingError("a shipment must be an object")
    with mapping(ShipStationMappingError, f"shipment {str(raw.get('shipmentId'))[:40]}"):
        shipment_id = raw.get("shipmentId")
        if isinstance(shipment_id, bool) or not isinstance(shipment_id, int | str) or not str(shipment_id).strip() \
                or len(str(shipment_id)) > 200:
            raise ShipStationMappingError("shipment has no shipmentId (an integer)")
        order_key = raw.get("orderKey")
        if not isinstance(order_key, str) or not order_key.strip() or len(order_key) > 255:
            raise ShipStationMappingError(f"shipment {shipment_id}: orderKey must be our release's reference "
                                          "(a string of at most 255 characters)")
        order_key = order_key.strip()
        items = raw.get("shipmentItems")
        if not items or not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
            raise ShipStationMappingError(f"shipment {shipment_id} has no shipmentItems (fetch with "
                                          "includeShipmentItems=true)")
        lines = [ShipmentLine(line_id=str(i["lineItemKey"]) if i.get("lineItemKey") else None,
                              channel_sku=str(i.get("sku") or "").strip() or f"orderItem:{i.get('orderItemId')}",
                              quantity=i.get("quantity")) for i in items]
        return order_key, Shipment(
            shipment_id=f"shipstation:{shipment_id}", carrier=raw.get("carrierCode"), service=raw.get("serviceCode"),
            tracking_number=raw.get("trackingNumber") or None,
            shipped_at=parse_time(raw.get("createDate") or raw.get("shipDate")), lines=lines)


def _address(a: Address | None) -> dict[str, Any]:
    if a is None:
        return {"name": None}
    return {"name": a.name or a.company or "", "company": a.company, "street1": a.line1, "street2": a.line2,
            "street3": None, "city": a.city, "state": a.region, "postalCode": a.postal_code, "country": a.country, "phone": a.phone,
            "residential": None}


def _items(lines: list[ResolvedLine]) -> list[dict[str, Any]]:
    return [{"lineItemKey": line.line_id, "sku": line.channel_sku, "name": line.item_code,
             "quantity": line.quantity, "warehouseLocation": None, "fulfillmentSku": line.item_code}
            for line in lines]


def create_order_body(external_ref: str, lines: list[ResolvedLine], ship_to: Address | None, *,
                      order_date: datetime, store_id: int | None = None) -> dict[str, Any]:
    """`POST /orders/createorder`: orderNumber and orderKey are the external reference (idempotent)."""
    body: dict[str, Any] = {
        "orderNumber": external_ref, "orderKey": external_ref,
        "orderDate": order_date.astimezone(PACIFIC).replace(tzinfo=None).isoformat(timespec="microseconds") + "0",
        "orderStatus": "awaiting_shipment", "billTo": _address(ship_to), "shipTo": _address(ship_to),
        "items": _items(lines),
    }
    if store_id is not None:
        body["advancedOptions"] = {"storeId": store_id}
    return body


def notification(body: bytes) -> tuple[str, str]:
    """A SHIP_NOTIFY body `{"resource_url", "resource_type"}` → (resource type, resource url)."""
    payload = canonical_payload.loads(body, error=ShipStationMappingError, what="SHIP_NOTIFY body")
    if not isinstance(payload, dict):
        raise ShipStationMappingError("not a ShipStation webhook body: not a JSON object")
    found: dict[str, str] = {}
    for name in ("resource_url", "resource_type"):
        value = payload.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ShipStationMappingError(f"not a ShipStation webhook body: {name} must be a non-empty string, "
                                          f"got {type(value).__name__}")
        found[name] = value.strip()
    return found["resource_type"], found["resource_url"]


def resource_path(resource_url: str) -> tuple[str, dict[str, str]]:
    """The path and query of a webhook's resource_url, with shipment items asked for."""
    try:
        parts = urlsplit(resource_url)
    except ValueError as exc:  # e.g. an invalid IPv6 netloc
        raise ShipStationMappingError(f"resource_url is not a URL: {exc}") from None
    if parts.path.rstrip("/").lower() != "/shipments":
        raise ShipStationMappingError(f"resource_url {parts.path!r} is not a shipments resource")
    query = {k: v for k, v in parse_qsl(parts.query) if k.lower() != "includeshipmentitems"}
    query["includeShipmentItems"] = "true"
    return "/shipments", query


class ShipStationWms:
    """The WMS port over ShipStation V1. `returns` handles return announcements (V1 has no inbound API)."""

    def __init__(self, http: VendorHttp, *, store_id: int | None = None, returns: Any = None) -> None:
        self.http = http
        self.store_id = store_id
        self.returns = returns

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.http.json(method, path, **kwargs)

    # -- lookups -----------------------------------------------------------------------------------------------
    def find_order(self, external_ref: str) -> dict[str, Any] | None:
        """The ShipStation order whose orderKey is `external_ref` (the list filters by orderNumber, which we set
        to the same value; orderKey is checked, so another store's order with that number never matches)."""
        page, pages = 1, 1
        while page <= pages:
            body = self._json("GET", "/orders", params={"orderNumber": external_ref, "page": page, "pageSize": 100})
            for order in body.get("orders") or []:
                if order.get("orderKey") == external_ref:
                    return order
            pages = int(body.get("pages") or 1)
            page += 1
        return None

    # -- WMS port ----------------------------------------------------------------------------------------------
    def release(self, external_ref: str, lines: list[ResolvedLine], ship_to: Address | None) -> WmsReleaseRef:
        existing = self.find_order(external_ref)
        if existing is not None and existing.get("orderStatus") != "cancelled":
            return WmsReleaseRef(release_id=str(existing["orderId"]), external_ref=external_ref)
        if ship_to is None:
            raise InvalidOrder(f"{external_ref}: ShipStation needs a ship-to address")
        body = create_order_body(external_ref, lines, ship_to, order_date=datetime.now(UTC), store_id=self.store_id)
        created = self._json("POST", "/orders/createorder", json=body)
        log.info("shipstation.order_created", external_ref=external_ref, order_id=created.get("orderId"))
        return WmsReleaseRef(release_id=str(created["orderId"]), external_ref=external_ref)

    def _repost(self, order: dict[str, Any], **changes: Any) -> dict[str, Any]:
        body = {k: v for k, v in order.items() if k not in ("orderId", "createDate", "modifyDate", "shipDate",
                                                            "userId", "externallyFulfilled",
                                                            "externallyFulfilledBy", "labelMessages")}
        body.update(changes)
        return self._json("POST", "/orders/createorder", json=body)

    def cancel_release(self, external_ref: str) -> bool:
        order = self.find_order(external_ref)
        if order is None or order.get("orderStatus") == "cancelled":
            return False
        if order.get("orderStatus") == "shipped":
            raise CannotCancel(f"ShipStation order {order.get('orderId')} ({external_ref}) has already shipped")
        self._repost(order, orderStatus="cancelled")
        log.info("shipstation.order_cancelled", external_ref=external_ref, order_id=order.get("orderId"))
        return True

    def amend_release(self, external_ref: str, lines: list[ResolvedLine]) -> bool:
        order = self.find_order(external_ref)
        if order is None:
            return False
        if order.get("orderStatus") not in OPEN_STATUSES:
            raise CannotCancel(f"ShipStation order {external_ref} is {order.get('orderStatus')}; its lines cannot "
                               "change")
        current = [(i.get("lineItemKey"), i.get("sku"), i.get("quantity")) for i in order.get("items") or []]
        wanted = [(line.line_id, line.channel_sku, line.quantity) for line in lines]
        if current == wanted:
            return False
        self._repost(order, items=_items(lines))
        return True

    def expect_return(self, external_ref: str, lines: list[AuthorizedLine]) -> str:
        if self.returns is None:
            raise InvalidOrder("ShipStation takes no return announcements and no receiving WMS is configured")
        return self.returns.expect_return(external_ref, lines)

    def cancel_expected_return(self, external_ref: str) -> bool:
        return False if self.returns is None else self.returns.cancel_expected_return(external_ref)

    # -- shipments (SHIP_NOTIFY) -------------------------------------------------------------------------------
    def shipments(self, resource_url: str) -> Iterator[dict[str, Any]]:
        """Every shipment of a SHIP_NOTIFY resource, page by page, with its items."""
        path, query = resource_path(resource_url)
        page, pages = 1, 1
        while page <= pages:
            body = self._json("GET", path, params={**query, "page": page})
            shipments = body.get("shipments") if isinstance(body, dict) else "not an object"
            if not isinstance(shipments, list | None) or not all(isinstance(x, dict) for x in shipments or []):
                raise ShipStationMappingError(f"GET {path} page {page}: not a list of shipments")
            yield from shipments or []
            given = body.get("pages") or 1
            if isinstance(given, bool) or not isinstance(given, int) or not 1 <= given <= MAX_PAGES:
                raise ShipStationMappingError(f"GET {path} page {page}: pages {str(given)[:20]!r} is not 1..{MAX_PAGES}")
            pages = given
            page += 1

    def shipment_events(self, resource_url: str) -> list[tuple[str, Shipment]]:
        """(external reference, canonical Shipment) for each shipment of the resource; voided labels skipped."""
        return [map_shipment(s) for s in self.shipments(resource_url) if not s.get("voided")]


def build_shipstation(settings: Any, *, returns: Any = None,
                      transport: httpx.BaseTransport | None = None) -> ShipStationWms:
    """From RETAILFLOW_SHIPSTATION_* settings; key and secret travel as Basic auth and are never logged."""
    http = VendorHttp("shipstation", settings.shipstation_base_url, transport=transport,
                      auth=(settings.shipstation_api_key.get_secret_value(),
                            settings.shipstation_api_secret.get_secret_value()),
                      headers={"Accept": "application/json"})
    return ShipStationWms(http, store_id=settings.shipstation_store_id, returns=returns)
