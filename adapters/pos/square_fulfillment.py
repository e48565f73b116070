"""Square as a store's POS for ship-from-store and click-and-collect (issue 20, item 3), through the Orders API.

- Request: `POST /v2/orders` (CreateOrder) under the idempotency key derived from the release reference, at the
  store's Square location (`location_id`, from RETAILFLOW_SQUARE_STORE_LOCATIONS: node id → location id), with one
  line item per picked item (`name` = the item code, `quantity` a string, `base_price_money` 0: the customer paid on
  the selling channel) and one `fulfillments` entry: `type` PICKUP (`pickup_details`: the recipient,
  `schedule_type` ASAP) or SHIPMENT (`shipment_details`: the recipient), `state` PROPOSED. `reference_id` holds at
  most 40 characters, so it carries `RF` + 16 hex digits of the reference and `metadata.retailflow_ref` the whole
  reference. The Square order id, its fulfillment uid and version are kept in `pos_store_fulfillments`
  (adapters/sql/store_fulfillment.py): the `order.fulfillment.updated` webhook names only the order id.
- Cancel: `PUT /v2/orders/{id}` (UpdateOrder) with the order's current `version` and the fulfillment's `uid` set
  to `state: CANCELED`. A COMPLETED fulfillment cannot be cancelled (CannotCancel); a VERSION_MISMATCH is transient
  (read again, retried).
- Amend (a store sale took some lines' units before the pick): `PUT /v2/orders/{id}` at the current `version`,
  lines no longer asked for in `fields_to_clear` (`line_items[<uid>]`), a smaller quantity on its line item; only
  while the fulfillment is PROPOSED or RESERVED (CannotCancel once PREPARED: the staff hold what they picked).
- Read: `GET /v2/orders/{id}`: the first fulfillment's `state`.
- Webhook: `order.fulfillment.updated` (`data.object.order_fulfillment_updated`: `order_id`, `location_id`,
  `version`, `fulfillment_update[]` with `fulfillment_uid`, `old_state`, `new_state`), verified like every Square
  webhook (`adapters/pos/square.py::verify`), is mapped by `fulfillment_events` to the order's
  `store_fulfillment` signals (api/intake/square.py).

Requests carry `Square-Version` (adapters/pos/square_catalog.py SQUARE_VERSION, the version this platform speaks to
Square). An order created through the API shows in Square's Order Manager once it is paid: a fulfillment-only
order (total 0) is closed from the POS (docs/fulfillment.md "Square").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from adapters.http import VendorHttp
from adapters.pos.fulfillment import AMENDABLE_STATES, StoreFulfillmentBook, StoreFulfillmentRefused, _view
from adapters.pos.square import SquareMappingError
from adapters.pos.square_catalog import SQUARE_VERSION, channel_rejected
from canonical.errors import CannotCancel
from canonical.sourcing import (
    StoreFulfillment,
    StoreFulfillmentEvent,
    StoreFulfillmentKind,
    StoreFulfillmentLine,
    StoreFulfillmentRequest,
    StoreFulfillmentState,
)
from canonical.vendor_versions import VendorApiVersion

FULFILLMENT_EVENT = "order.fulfillment.updated"
API_VERSIONS = (
    VendorApiVersion("square", "Orders API (store fulfillments: PICKUP / SHIPMENT)", SQUARE_VERSION, released=None,
                     sunset=None, source="https://developer.squareup.com/docs/build-basics/versioning-overview",
                     note="Square-Version header; no version retirement date documented"),
)


def reference_id(ref: str) -> str:
    """Square's `reference_id` (at most 40 characters) for a release reference."""
    return "RF" + hashlib.sha256(ref.encode()).hexdigest()[:16].upper()


def idempotency_key(ref: str, what: str, version: int | None = None) -> str:
    return hashlib.sha256(f"{what}:{ref}:{version}".encode()).hexdigest()[:45]


def create_order_body(request: StoreFulfillmentRequest, location_id: str) -> dict[str, Any]:
    """The CreateOrder request for a store fulfillment (a pure function: the contract test checks its shape
    against Square's published schema)."""
    recipient = {"display_name": request.recipient or request.order_ref}
    fulfillment: dict[str, Any] = {"type": request.kind.value, "state": StoreFulfillmentState.PROPOSED.value}
    if request.kind == StoreFulfillmentKind.PICKUP:
        fulfillment["pickup_details"] = {"recipient": recipient, "schedule_type": "ASAP",
                                         "note": f"Click-and-collect {request.order_ref}"}
    else:
        fulfillment["shipment_details"] = {"recipient": recipient,
                                           "shipping_note": f"Ship-from-store {request.order_ref}"}
    currency = request.currency or "USD"
    return {
        "idempotency_key": idempotency_key(request.ref, "create"),
        "order": {
            "location_id": location_id,
            "reference_id": reference_id(request.ref),
            "metadata": {"retailflow_ref": request.ref[:255]},
            "line_items": [{"name": ln.item_code, "quantity": str(ln.quantity), "note": f"order line {ln.line_id}",
                            "base_price_money": {"amount": 0, "currency": currency}} for ln in request.lines],
            "fulfillments": [fulfillment],
        },
    }


class SquareStoreFulfillment:
    provider = "square"

    def __init__(self, http: VendorHttp, book: StoreFulfillmentBook, locations: dict[str, str]) -> None:
        self.http = http
        self.book = book
        self.locations = dict(locations)

    def location(self, store_id: str) -> str:
        try:
            return self.locations[store_id]
        except KeyError:
            raise StoreFulfillmentRefused(
                f"store {store_id} has no Square location (RETAILFLOW_SQUARE_STORE_LOCATIONS: "
                f"{', '.join(sorted(self.locations)) or 'none'})", details={"store_id": store_id}) from None

    def request_fulfillment(self, request: StoreFulfillmentRequest) -> StoreFulfillment:
        row = self.book.row(request.ref)
        if row is not None:
            return _view(row)
        body = self.http.json("POST", "/v2/orders", json=create_order_body(request, self.location(request.store_id)))
        order = (body or {}).get("order") or {}
        fulfillments = order.get("fulfillments") or [{}]
        if not order.get("id"):
            raise StoreFulfillmentRefused(f"Square created no order for {request.ref}")
        state = StoreFulfillmentState(fulfillments[0].get("state") or "PROPOSED")
        return _view(self.book.add(request, state=state, external_id=order["id"],
                                   fulfillment_uid=fulfillments[0].get("uid"), version=int(order.get("version") or 1)))

    def _order(self, order_id: str) -> dict[str, Any]:
        return ((self.http.json("GET", f"/v2/orders/{order_id}") or {}).get("order")) or {}

    def cancel_fulfillment(self, ref: str) -> bool:
        row = self.book.row(ref)
        if row is None or not row.external_id:
            return False
        order = self._order(row.external_id)
        fulfillment = next((f for f in order.get("fulfillments") or [] if f.get("uid") == row.fulfillment_uid),
                           (order.get("fulfillments") or [{}])[0])
        state = fulfillment.get("state")
        if state in ("CANCELED", "FAILED"):
            self.book.set(ref, state=state)
            return False
        if state == "COMPLETED":
            self.book.set(ref, state=state)
            raise CannotCancel(f"Square order {row.external_id} at {row.store_id} is completed; handle it as a return",
                               details={"store_id": row.store_id})
        version = order.get("version")
        self.http.request("PUT", f"/v2/orders/{row.external_id}", json={
            "idempotency_key": idempotency_key(ref, "cancel", version),
            "order": {"location_id": order.get("location_id") or self.location(row.store_id), "version": version,
                      "fulfillments": [{"uid": fulfillment.get("uid") or row.fulfillment_uid, "state": "CANCELED"}]}})
        self.book.set(ref, state="CANCELED", cancelled_at=datetime.now(UTC), reason="withdrawn by the order")
        return True

    def amend_fulfillment(self, ref: str, lines: list[StoreFulfillmentLine]) -> bool:
        """UpdateOrder (a sparse order at the current version): a line the request no longer has is cleared
        (`fields_to_clear: line_items[<uid>]`), a smaller quantity is set on its line item (found by the note
        "order line <id>" the request was created with)."""
        row = self.book.row(ref)
        if row is None or not row.external_id:
            raise CannotCancel(f"store fulfillment {ref} was never requested at Square; nothing to amend")
        order = self._order(row.external_id)
        fulfillment = next((f for f in order.get("fulfillments") or [] if f.get("uid") == row.fulfillment_uid),
                           (order.get("fulfillments") or [{}])[0])
        state = fulfillment.get("state") or row.state
        if state not in AMENDABLE_STATES:
            self.book.set(ref, state=state)
            raise CannotCancel(f"Square order {row.external_id} at {row.store_id} is {state}: its lines cannot "
                               "change (the staff have picked it, or it is withdrawn)",
                               details={"store_id": row.store_id})
        wanted = {(ln.line_id, ln.item_code): ln.quantity for ln in lines}
        changed, cleared = [], []
        for item in order.get("line_items") or []:
            note = item.get("note") or ""
            line_id = note.removeprefix("order line ") if note.startswith("order line ") else None
            key = (line_id, item.get("name"))
            if key not in wanted:
                cleared.append(f"line_items[{item['uid']}]")
            elif str(wanted[key]) != str(item.get("quantity")):
                changed.append({"uid": item["uid"], "quantity": str(wanted[key])})
        if not changed and not cleared:
            self.book.set(ref, lines=[ln.model_dump(mode="json") for ln in lines])
            return False
        version = order.get("version")
        body: dict[str, Any] = {
            "idempotency_key": idempotency_key(ref, "amend", version),
            "order": {"location_id": order.get("location_id") or self.location(row.store_id), "version": version,
                      **({"line_items": changed} if changed else {})}}
        if cleared:
            body["fields_to_clear"] = cleared
        answer = self.http.json("PUT", f"/v2/orders/{row.external_id}", json=body) or {}
        self.book.set(ref, lines=[ln.model_dump(mode="json") for ln in lines],
                      version=int((answer.get("order") or {}).get("version") or (version or 0) + 1))
        return True

    def fulfillment(self, ref: str) -> StoreFulfillment | None:
        row = self.book.row(ref)
        if row is None or not row.external_id:
            return None
        fulfillments = self._order(row.external_id).get("fulfillments") or []
        mine = next((f for f in fulfillments if f.get("uid") == row.fulfillment_uid), fulfillments[0] if fulfillments
                    else {})
        if mine.get("state") and mine["state"] != row.state:
            self.book.set(ref, state=mine["state"])
        return _view(self.book.row(ref))


@dataclass(frozen=True)
class SquareFulfillmentUpdate:
    """One fulfillment's move in an `order.fulfillment.updated` event."""

    order_id: str
    location_id: str
    fulfillment_uid: str | None
    old_state: str | None
    new_state: StoreFulfillmentState
    version: int | None
    updated_at: datetime


def fulfillment_updates(payload: dict[str, Any]) -> list[SquareFulfillmentUpdate]:
    """The moves an `order.fulfillment.updated` payload reports (a state Square adds later is refused: 422)."""
    if payload.get("type") != FULFILLMENT_EVENT:
        raise SquareMappingError(f"not an {FULFILLMENT_EVENT} event: {str(payload.get('type'))[:40]!r}")
    obj = (payload.get("data") or {}).get("object") if isinstance(payload.get("data"), dict) else None
    inner = obj.get("order_fulfillment_updated") if isinstance(obj, dict) else None
    if not isinstance(inner, dict):
        raise SquareMappingError(f"{FULFILLMENT_EVENT}: data.object.order_fulfillment_updated is missing")
    order_id, location_id = inner.get("order_id"), inner.get("location_id")
    if not isinstance(order_id, str) or not order_id or not isinstance(location_id, str) or not location_id:
        raise SquareMappingError(f"{FULFILLMENT_EVENT}: order_id and location_id are required")
    raw_at = inner.get("updated_at") or payload.get("created_at")
    try:
        at = datetime.fromisoformat(str(raw_at).replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise SquareMappingError(f"{FULFILLMENT_EVENT}: updated_at {str(raw_at)[:40]!r} is not a time") from None
    out = []
    for u in inner.get("fulfillment_update") or []:
        if not isinstance(u, dict):
            continue
        try:
            state = StoreFulfillmentState(str(u.get("new_state")))
        except ValueError:
            raise SquareMappingError(f"{FULFILLMENT_EVENT}: unknown fulfillment state "
                                     f"{str(u.get('new_state'))[:20]!r}") from None
        version = inner.get("version")
        out.append(SquareFulfillmentUpdate(order_id=order_id, location_id=location_id,
                                           fulfillment_uid=u.get("fulfillment_uid"), old_state=u.get("old_state"),
                                           new_state=state, version=version if isinstance(version, int) else None,
                                           updated_at=at))
    return out


def fulfillment_events(payload: dict[str, Any], book: StoreFulfillmentBook) -> list[StoreFulfillmentEvent]:
    """The order events of an `order.fulfillment.updated` webhook: one per fulfillment move of an order this
    platform created (found by its Square order id in `pos_store_fulfillments`); other Square orders are none of
    the platform's business (an empty list). The table row follows Square's state."""
    event_id = str(payload.get("event_id") or "")
    if not event_id:
        raise SquareMappingError(f"{FULFILLMENT_EVENT}: event_id is missing")
    out = []
    for u in fulfillment_updates(payload):
        row = book.by_external_id(u.order_id)
        if row is None or (row.fulfillment_uid and u.fulfillment_uid and row.fulfillment_uid != u.fulfillment_uid):
            continue
        values: dict[str, Any] = {"state": u.new_state.value}
        if u.version is not None:
            values["version"] = u.version
        book.set(row.ref, **values)
        out.append(StoreFulfillmentEvent(
            event_id=f"square:{event_id}:{u.fulfillment_uid or ''}:{u.new_state.value}", ref=row.ref,
            state=u.new_state, actor=f"square:{u.location_id}", occurred_at=u.updated_at,
            reason=f"Square fulfillment {u.old_state or '?'} → {u.new_state.value}"))
    return out


def build_square_store_fulfillment(settings: Any, book: StoreFulfillmentBook, *,
                                   locations: dict[str, str] | None = None,
                                   transport: httpx.BaseTransport | None = None) -> SquareStoreFulfillment:
    """`locations`: store node id → Square location id (default: the settings' `square_store_locations`)."""
    token = settings.square_access_token
    if token is None or not token.get_secret_value().strip():
        raise ValueError("a pos:square store node needs RETAILFLOW_SQUARE_ACCESS_TOKEN")
    http = VendorHttp("square", settings.square_api_base_url, transport=transport, error_mapper=channel_rejected,
                      headers={"Authorization": f"Bearer {token.get_secret_value()}", "Square-Version": SQUARE_VERSION,
                               "Accept": "application/json"})
    if locations is None:
        locations = dict(getattr(settings, "square_store_locations", {}) or {})
    return SquareStoreFulfillment(http, book, locations)
