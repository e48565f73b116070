"""ShipBob (Developer API, date version 2026-01, `api.shipbob.com/2026-01`, Bearer Personal Access Token or OAuth
token, `shipbob_channel_id` header) as a 3PL: ShipBob's own fulfillment centers pick, pack and ship.

- release: `POST /order` with `reference_id` = the platform's external reference. ShipBob keeps reference ids
  unique per channel (422 "Duplicate reference ID", developer.shipbob.com/errors), so the order is looked up first
  (`GET /order?ReferenceIds=…`) and, when the create answers 422 because a retried create already made it, looked
  up again: one order per reference, whatever the retries.
- cancel: `POST /order/{id}:cancel`; an order with a shipment labelled or completed (`LabeledCreated`,
  `Completed`) or the order status `Fulfilled` / `PartiallyFulfilled` has shipped: CannotCancel. A cancel answer
  whose status is not `Success` (a shipment already being picked) is CannotCancel too.
- amend: the open shipment's lines are replaced with `POST /shipment/{id}:updateLineItems` (inventory ids, looked
  up by SKU with `GET /product?SKU=…`); a shipped order cannot change (CannotCancel).
- returns: ShipBob's Returns API (`POST /return`, `reference_id` = the return's external reference, looked up
  first with `GET /return?ReferenceIds=…`; `POST /return/{id}:cancel` while `AwaitingArrival`), received at the
  fulfillment center RETAILFLOW_SHIPBOB_RETURN_FULFILLMENT_CENTER_ID.
- shipments: webhooks (`order.shipped`, `order.shipment.tracking_received`, …) are notices: only the order id is
  taken from the body (`notification`), the shipments are read back from the API (`shipment_events`,
  `GET /order/{id}` and `GET /order/{id}/shipment`), as for ShipStation's SHIP_NOTIFY, so a forged body can make us
  read one of our orders but never invent a shipment. Polling uses the same read (`shipment_events`). Deliveries
  are signed with the Standard Webhooks scheme (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<b64>`,
  HMAC-SHA256 over `id.timestamp.body` with the `whsec_` secret): `verify_signature`.
- rate limit: 150 requests/minute per user and application, sliding window; a 429 carries `x-retry-after`
  (seconds) and answers carry `x-remaining-calls` (developer.shipbob.com/rate-limit): adapters/http.py reads both.
ShipBob times are ISO 8601 UTC (`2025-10-23T15:55:09.3614767Z`, up to 7 fractional digits).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog

from adapters.http import VendorHttp
from canonical import payload as canonical_payload
from canonical.errors import BusinessError, CannotCancel, InvalidOrder, PayloadInvalid
from canonical.fulfillment import ResolvedLine, WmsReleaseRef
from canonical.order import Address, Shipment, ShipmentLine
from canonical.payload import mapping
from canonical.returns import AuthorizedLine
from canonical.vendor_errors import VendorRejected
from canonical.vendor_versions import VendorApiVersion, day

log = structlog.get_logger(__name__)

API_VERSION = "2026-01"
# developer.shipbob.com/versioning (the 2026-07 docs): a date version is released every January and July and
# supported for 24 months; 2026-01 was released 2026-01-31 and is supported until 2028-01-31 (the page of February
# 2026 still said 12 months, 2027-01-31). 1.0 / 2.0 ended 2026-07-31 and are being blocked since August 2026.
API_VERSIONS = (
    VendorApiVersion("shipbob", "ShipBob Developer API (api.shipbob.com/2026-01)", API_VERSION,
                     released=day("2026-01-31"), sunset=day("2028-01-31"),
                     source="https://developer.shipbob.com/versioning",
                     note="date versions are supported 24 months from release; 2026-07 is the latest (its changes "
                          "are receiving and products, not orders or returns); legacy 1.0/2.0 ended 2026-07-31"),
)
SHIPPED_SHIPMENT_STATUSES = frozenset({"LabeledCreated", "Completed"})
SHIPPED_ORDER_STATUSES = frozenset({"Fulfilled", "PartiallyFulfilled"})
OPEN_SHIPMENT_STATUSES = frozenset({"None", "Processing", "Exception", "OnHold", "ImportReview"})
RETURN_CANCELLABLE = frozenset({"AwaitingArrival", "Awaiting Arrival"})
MAX_PAGES = 50
SIGNATURE_TOLERANCE_SECONDS = 300
INT32_MAX = 2**31 - 1


class ShipBobMappingError(PayloadInvalid):
    """A ShipBob payload cannot become a canonical model; the message says why."""


class ShipBobSignatureInvalid(PayloadInvalid):
    """A webhook delivery whose Standard Webhooks signature does not verify (or is too old)."""


def parse_time(value: Any) -> datetime:
    """ShipBob's UTC times (up to 7 fractional digits, `Z`) → aware UTC; a time without an offset is UTC."""
    if not isinstance(value, str) or not value.strip():
        raise ShipBobMappingError("time is missing")
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    m = re.match(r"^(\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2})?)?)(?:\.(\d+))?(.*)$", text)
    if not m:
        raise ShipBobMappingError(f"{value!r} is not a time")
    base, frac, rest = m.groups()
    try:
        parsed = datetime.fromisoformat(base + (f".{frac[:6].ljust(6, '0')}" if frac else "") + rest)
    except ValueError:
        raise ShipBobMappingError(f"{value!r} is not a time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def shipbob_error(response: httpx.Response, context: Any) -> BusinessError | None:
    """ShipBob's 4xx answers the HTTP policy leaves to us: a refused cancel (422 on `:cancel`) is CannotCancel."""
    if response.status_code in (400, 422) and response.request.url.path.endswith(":cancel"):
        return CannotCancel(f"ShipBob refused the cancel of {context or response.request.url.path}: "
                            f"{response.text[:300]}")
    return None


# -- request bodies -----------------------------------------------------------------------------------------------
def _line_id(line_id: str) -> int | None:
    """Our line id as ShipBob's integer `external_line_id`, when it is one (Shopify's are ids above 2^31: none)."""
    return int(line_id) if line_id.isdigit() and int(line_id) <= INT32_MAX else None


def recipient(a: Address) -> dict[str, Any]:
    return {"name": a.name or a.company or "", "address": {
        "address1": a.line1 or "", "address2": a.line2, "company_name": a.company, "city": a.city or "",
        "state": a.region, "country": a.country, "zip_code": a.postal_code}, "email": None, "phone_number": a.phone}


def products(lines: list[ResolvedLine]) -> list[dict[str, Any]]:
    """Products by reference id (our item code, which the merchant's ShipBob catalog carries); `sku` is the
    channel's SKU, echoed back on the order so a shipment maps to our lines."""
    return [{"reference_id": line.item_code, "name": line.item_code, "sku": line.channel_sku,
             "quantity": line.quantity, "external_line_id": _line_id(line.line_id)} for line in lines]


def create_order_body(external_ref: str, lines: list[ResolvedLine], ship_to: Address, *,
                      shipping_method: str, purchase_date: datetime) -> dict[str, Any]:
    """`POST /order` (Orders.CreateOrderModel): reference_id and order_number are the external reference."""
    return {"reference_id": external_ref, "order_number": external_ref, "type": "DTC",
            "shipping_method": shipping_method, "recipient": recipient(ship_to), "products": products(lines),
            "purchase_date": purchase_date.astimezone(UTC).isoformat().replace("+00:00", "Z")}


# -- mapping ------------------------------------------------------------------------------------------------------
def _int_id(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ShipBobMappingError(f"{what} must be a positive integer, got {str(value)[:40]!r}")
    return value


def map_shipment(order: Mapping[str, Any], raw: Mapping[str, Any]) -> tuple[str, Shipment]:
    """One shipment of a ShipBob order (Orders.ShipmentViewModel) → (our external reference, canonical Shipment).
    Its products are matched to the order's products (which echo our reference id, sku and external_line_id)."""
    if not isinstance(order, Mapping) or not isinstance(raw, Mapping):
        raise ShipBobMappingError("an order and its shipment must be objects")
    with mapping(ShipBobMappingError, f"shipment {str(raw.get('id'))[:40]}"):
        shipment_id = _int_id(raw.get("id"), "shipment id")
        ref = order.get("reference_id")
        if not isinstance(ref, str) or not ref.strip():
            raise ShipBobMappingError(f"shipment {shipment_id}: its order has no reference_id (not our release)")
        by_ref: dict[str, Mapping[str, Any]] = {}
        for p in order.get("products") or []:
            if isinstance(p, Mapping) and isinstance(p.get("reference_id"), str):
                by_ref.setdefault(p["reference_id"], p)
        lines: list[ShipmentLine] = []
        for product in raw.get("products") or []:
            if not isinstance(product, Mapping):
                raise ShipBobMappingError(f"shipment {shipment_id}: a product is not an object")
            qty = sum(_int_id(i.get("quantity"), "inventory_items[].quantity")
                      for i in product.get("inventory_items") or [] if isinstance(i, Mapping))
            if qty <= 0:
                raise ShipBobMappingError(f"shipment {shipment_id}: product {product.get('reference_id')!r} has no "
                                          "inventory_items quantity")
            ordered = by_ref.get(str(product.get("reference_id")), {})
            line_id = ordered.get("external_line_id")
            sku = ordered.get("sku") or product.get("sku") or product.get("reference_id")
            if not isinstance(sku, str) or not sku.strip():
                raise ShipBobMappingError(f"shipment {shipment_id}: a product has neither sku nor reference_id")
            lines.append(ShipmentLine(line_id=str(line_id) if line_id is not None else None, channel_sku=sku,
                                      quantity=qty))
        if not lines:
            raise ShipBobMappingError(f"shipment {shipment_id} has no products")
        given = raw.get("tracking")
        tracking: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
        shipped = raw.get("actual_fulfillment_date") or tracking.get("shipping_date") or raw.get("last_update_at")
        return ref.strip(), Shipment(
            shipment_id=f"shipbob:{shipment_id}", carrier=tracking.get("carrier"),
            service=tracking.get("carrier_service"), tracking_number=tracking.get("tracking_number") or None,
            tracking_url=tracking.get("tracking_url") or None, shipped_at=parse_time(shipped), lines=lines)


def notification(body: bytes) -> tuple[int, str | None]:
    """A webhook body → (ShipBob order id, our reference if the body names one). Every shipment topic's payload
    names its order: `order_id` (a shipment, `order.shipment.tracking_received`) or `id` with `shipments` (an
    order). Nothing else of the body is trusted: the shipments are read back from the API."""
    payload = canonical_payload.loads(body, error=ShipBobMappingError, what="ShipBob webhook body")
    if not isinstance(payload, dict):
        raise ShipBobMappingError("not a ShipBob webhook body: not a JSON object")
    raw_id = payload.get("order_id")
    if raw_id is None and isinstance(payload.get("shipments"), list):
        raw_id = payload.get("id")
    order_id = _int_id(raw_id, "order_id")
    ref = payload.get("reference_id")
    return order_id, ref.strip() if isinstance(ref, str) and ref.strip() else None


def verify_signature(secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None,
                     tolerance: int = SIGNATURE_TOLERANCE_SECONDS) -> str:
    """Standard Webhooks: HMAC-SHA256 over `webhook-id.webhook-timestamp.body` with the base64 key after `whsec_`,
    any of the space-separated `v1,<base64>` signatures; the timestamp within `tolerance`. Returns the webhook id."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, signatures = (lower.get("webhook-id"), lower.get("webhook-timestamp"),
                                 lower.get("webhook-signature"))
    if not msg_id or not stamp or not signatures:
        raise ShipBobSignatureInvalid("webhook-id, webhook-timestamp and webhook-signature are required")
    try:
        sent = int(stamp)
    except ValueError:
        raise ShipBobSignatureInvalid("webhook-timestamp is not Unix seconds") from None
    if abs((time.time() if now is None else now) - sent) > tolerance:
        raise ShipBobSignatureInvalid(f"webhook-timestamp is more than {tolerance}s away from now")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except ValueError:
        raise ShipBobSignatureInvalid("the webhook secret is not whsec_<base64>") from None
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{sent}.".encode() + body, hashlib.sha256).digest()).decode()
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return msg_id
    raise ShipBobSignatureInvalid("no webhook-signature matches")


def _items(body: Any, what: str) -> list[dict[str, Any]]:
    """A list answer (`GET /order` is a JSON array) or a paged one (`{"items": [...], "next"}`)."""
    rows = body.get("items") if isinstance(body, dict) else body
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ShipBobMappingError(f"{what}: not a list of objects")
    return rows


class ShipBobWms:
    """The WMS port over ShipBob's Developer API (2026-01)."""

    def __init__(self, http: VendorHttp, *, shipping_method: str = "Standard",
                 return_fulfillment_center_id: int | None = None) -> None:
        self.http = http
        self.shipping_method = shipping_method
        self.return_fulfillment_center_id = return_fulfillment_center_id

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.http.json(method, path, **kwargs)

    # -- lookups -------------------------------------------------------------------------------------------------
    def find_order(self, external_ref: str) -> dict[str, Any] | None:
        """The ShipBob order whose reference_id is `external_ref` (checked, not only filtered)."""
        for order in _items(self._json("GET", "/order", params={"ReferenceIds": external_ref, "Limit": 50}),
                            "GET /order"):
            if order.get("reference_id") == external_ref:
                return order
        return None

    def order_shipments(self, order_id: int) -> list[dict[str, Any]]:
        return _items(self._json("GET", f"/order/{order_id}/shipment"), f"GET /order/{order_id}/shipment")

    def inventory_id(self, sku: str) -> int:
        """The inventory id of the merchant's variant with this SKU (`GET /product?SKU=`)."""
        body = self._json("GET", "/product", params={"SKU": sku, "PageSize": 50})
        for product in _items(body, "GET /product"):
            for variant in product.get("variants") or []:
                inventory = variant.get("inventory") if isinstance(variant, dict) else None
                if variant.get("sku") == sku and isinstance(inventory, dict) and inventory.get("inventory_id"):
                    return int(inventory["inventory_id"])
        raise InvalidOrder(f"ShipBob has no product variant with SKU {sku!r} (create it in ShipBob first)")

    def find_return(self, external_ref: str) -> dict[str, Any] | None:
        for ret in _items(self._json("GET", "/return", params={"ReferenceIds": external_ref}), "GET /return"):
            if ret.get("reference_id") == external_ref:
                return ret
        return None

    @staticmethod
    def _shipped(order: Mapping[str, Any]) -> bool:
        return order.get("status") in SHIPPED_ORDER_STATUSES or any(
            isinstance(s, dict) and s.get("status") in SHIPPED_SHIPMENT_STATUSES for s in order.get("shipments") or [])

    # -- WMS port ------------------------------------------------------------------------------------------------
    def release(self, external_ref: str, lines: list[ResolvedLine], ship_to: Address | None) -> WmsReleaseRef:
        existing = self.find_order(external_ref)
        if existing is not None:
            if existing.get("status") == "Cancelled":
                raise InvalidOrder(f"ShipBob order {existing.get('id')} ({external_ref}) was cancelled and ShipBob "
                                   "keeps reference ids unique: release under a new reference")
            return WmsReleaseRef(release_id=str(existing["id"]), external_ref=external_ref)
        if ship_to is None:
            raise InvalidOrder(f"{external_ref}: ShipBob needs a ship-to address")
        body = create_order_body(external_ref, lines, ship_to, shipping_method=self.shipping_method,
                                 purchase_date=datetime.now(UTC))
        try:
            created = self._json("POST", "/order", json=body, context=external_ref)
        except VendorRejected as exc:
            again = self.find_order(external_ref)  # 422 duplicate: a retried create already made it
            if again is None:
                raise
            log.info("shipbob.order_existed", external_ref=external_ref, order_id=again.get("id"), error=str(exc)[:200])
            return WmsReleaseRef(release_id=str(again["id"]), external_ref=external_ref)
        log.info("shipbob.order_created", external_ref=external_ref, order_id=created.get("id"))
        return WmsReleaseRef(release_id=str(_int_id(created.get("id"), "created order id")),
                             external_ref=external_ref)

    def cancel_release(self, external_ref: str) -> bool:
        order = self.find_order(external_ref)
        if order is None or order.get("status") == "Cancelled":
            return False
        if self._shipped(order):
            raise CannotCancel(f"ShipBob order {order.get('id')} ({external_ref}) has already shipped")
        answer = self._json("POST", f"/order/{order['id']}:cancel", context=external_ref)
        status = answer.get("status") if isinstance(answer, dict) else None
        if status != "Success":
            reasons = "; ".join(str(r.get("reason")) for r in (answer or {}).get("canceled_shipment_results") or []
                                if isinstance(r, dict) and not r.get("is_success"))
            raise CannotCancel(f"ShipBob could not cancel order {order['id']} ({external_ref}): {status} {reasons}")
        log.info("shipbob.order_cancelled", external_ref=external_ref, order_id=order.get("id"))
        return True

    def amend_release(self, external_ref: str, lines: list[ResolvedLine]) -> bool:
        order = self.find_order(external_ref)
        if order is None or order.get("status") == "Cancelled":
            return False
        if self._shipped(order):
            raise CannotCancel(f"ShipBob order {external_ref} has shipped; its lines cannot change")
        current = sorted((p.get("reference_id"), p.get("quantity")) for p in order.get("products") or [])
        wanted_by_ref: dict[str, int] = {}
        for line in lines:
            wanted_by_ref[line.item_code] = wanted_by_ref.get(line.item_code, 0) + line.quantity
        if current == sorted(wanted_by_ref.items()):
            return False
        shipments = [s for s in self.order_shipments(int(order["id"])) if s.get("status") != "Cancelled"]
        if len(shipments) != 1 or shipments[0].get("status") not in OPEN_SHIPMENT_STATUSES:
            raise CannotCancel(f"ShipBob order {external_ref} has {len(shipments)} open shipments "
                               f"({', '.join(str(s.get('status')) for s in shipments)}); its lines cannot change")
        items = [{"inventory_id": self.inventory_id(ref), "quantity": qty} for ref, qty in wanted_by_ref.items()]
        answer = self._json("POST", f"/shipment/{shipments[0]['id']}:updateLineItems", json={"items": items},
                            context=external_ref)
        if isinstance(answer, dict) and answer.get("is_success") is False:
            raise CannotCancel(f"ShipBob refused the new lines of {external_ref}: {answer.get('error')}")
        log.info("shipbob.order_amended", external_ref=external_ref, shipment_id=shipments[0]["id"])
        return True

    def expect_return(self, external_ref: str, lines: list[AuthorizedLine]) -> str:
        existing = self.find_return(external_ref)
        if existing is not None and existing.get("status") != "Cancelled":
            return str(existing["id"])
        if self.return_fulfillment_center_id is None:
            raise InvalidOrder("ShipBob returns need RETAILFLOW_SHIPBOB_RETURN_FULFILLMENT_CENTER_ID")
        wanted: dict[str, int] = {}
        for line in lines:
            if line.quantity > 0:
                wanted[line.item_code] = wanted.get(line.item_code, 0) + line.quantity
        if not wanted:
            raise InvalidOrder(f"return {external_ref} has no units to receive")
        body = {"reference_id": external_ref, "fulfillment_center": {"id": self.return_fulfillment_center_id},
                "inventory": [{"id": self.inventory_id(sku), "quantity": qty, "requested_action": "Default"}
                              for sku, qty in wanted.items()]}
        try:
            created = self._json("POST", "/return", json=body, context=external_ref)
        except VendorRejected:
            again = self.find_return(external_ref)
            if again is None:
                raise
            return str(again["id"])
        log.info("shipbob.return_created", external_ref=external_ref, return_id=created.get("id"))
        return str(_int_id(created.get("id"), "created return id"))

    def cancel_expected_return(self, external_ref: str) -> bool:
        ret = self.find_return(external_ref)
        if ret is None or ret.get("status") == "Cancelled":
            return False
        if ret.get("status") not in RETURN_CANCELLABLE:
            raise CannotCancel(f"ShipBob return {ret.get('id')} ({external_ref}) is {ret.get('status')}; only a "
                               "return awaiting arrival can be cancelled")
        self._json("POST", f"/return/{ret['id']}:cancel", context=external_ref)
        return True

    # -- shipments (webhook notice or poll) ----------------------------------------------------------------------
    def shipment_events(self, order_id: int) -> list[tuple[str, Shipment]]:
        """(external reference, canonical Shipment) for each shipped shipment of the order, read from the API."""
        order = self._json("GET", f"/order/{order_id}")
        if not isinstance(order, dict):
            raise ShipBobMappingError(f"GET /order/{order_id}: not an object")
        return [map_shipment(order, s) for s in self.order_shipments(order_id)
                if s.get("status") in SHIPPED_SHIPMENT_STATUSES]

    def webhook_events(self, body: bytes) -> list[tuple[str, Shipment]]:
        """A webhook notice (signature verified by the caller) → the order's shipments, read back; a notice
        whose reference is not the order's is refused."""
        order_id, ref = notification(body)
        events = self.shipment_events(order_id)
        if ref is not None and any(r != ref for r, _ in events):
            raise ShipBobMappingError(f"webhook names reference {ref!r} but order {order_id} is another one")
        return events


def build_shipbob(settings: Any, *, transport: httpx.BaseTransport | None = None) -> ShipBobWms:
    """From RETAILFLOW_SHIPBOB_* settings; the token travels as a Bearer header and is never logged."""
    http = VendorHttp("shipbob", f"{settings.shipbob_base_url.rstrip('/')}/{API_VERSION}", transport=transport,
                      headers={"Authorization": f"Bearer {settings.shipbob_access_token.get_secret_value()}",
                               "shipbob_channel_id": str(settings.shipbob_channel_id), "Accept": "application/json"},
                      error_mapper=shipbob_error)
    return ShipBobWms(http, shipping_method=settings.shipbob_shipping_method,
                      return_fulfillment_center_id=settings.shipbob_return_fulfillment_center_id)
