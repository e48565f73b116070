"""Square webhooks: signature verification and mapping to canonical POS transactions.

- Signature: `x-square-hmacsha256-signature` = base64(HMAC-SHA256(signature_key, notification_url + raw body)),
  over the exact bytes received (a re-serialized body fails) and the URL exactly as configured in Square.
- Money is integer minor units (`{"amount": 100, "currency": "USD"}`).
- `payment.created` / `payment.updated` with status COMPLETED → an unitemized *sale* (the tender; Square's
  payment events carry no basket), transaction id `square:payment:{payment id}` — the created and updated events of
  one payment are the same transaction, deduplicated by the store day. Other statuses (APPROVED = authorized, not
  captured; PENDING; CANCELED; FAILED) carry no money yet → ignored.
- `refund.created` / `refund.updated` with status PENDING or COMPLETED → an unitemized *return*,
  `square:refund:{refund id}`; REJECTED / FAILED → ignored.
- `order.created` / `order.updated` carry only a summary (order id, location, state, version; the line items need
  a RetrieveOrder call) and no money: they map to an `SquareOrderNotice` and post nothing.
- Store id = Square `location_id`. The business date is the local date, in the store's time zone, of the time the
  payment or refund was *created* (not the webhook's delivery time), so every event of one payment lands in the same
  store day.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from canonical import payload as canonical_payload
from canonical.errors import PayloadInvalid
from canonical.money import minor_units
from canonical.pos import PosKind, PosTransaction, Tender, TenderType
from canonical.vendor_versions import VendorApiVersion

SIGNATURE_HEADER = "x-square-hmacsha256-signature"
SOURCE = "square"
# The vendor API this adapter speaks (canonical/vendor_versions.py; `retailflow vendors versions`). The adapter only
# receives webhooks: it makes no Square API call and so sends no `Square-Version`; the payload version is the one
# the webhook subscription pins in the Developer Console. Square versions have no documented retirement date:
# individual APIs are deprecated, "typically at least 12 months before permanent retirement".
API_VERSIONS = (
    VendorApiVersion("square", "Webhooks (payment / refund / order events)", "subscription's API version",
                     released=None, sunset=None,
                     source="https://developer.squareup.com/docs/build-basics/api-lifecycle",
                     note="no outbound calls, no Square-Version header sent; no version retirement date documented "
                          "(deprecated APIs are retired typically >= 12 months after deprecation)"),
)


class SquareMappingError(PayloadInvalid):
    """The payload is not a Square event we can map (422 and quarantine)."""


def signature(signature_key: str, notification_url: str, body: bytes) -> str:
    mac = hmac.new(signature_key.encode("utf-8"), notification_url.encode("utf-8") + body, hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


def verify(body: bytes, header_value: str | None, signature_key: str, notification_url: str) -> bool:
    """Constant-time check of the signature header; False when missing or when no key is configured."""
    if not header_value or not signature_key or not notification_url:
        return False
    return hmac.compare_digest(signature(signature_key, notification_url, body).encode("ascii"),
                               header_value.strip().encode("ascii", "replace"))


def loads(body: bytes) -> dict[str, Any]:
    payload = canonical_payload.loads(body, error=SquareMappingError)
    if not isinstance(payload, dict):
        raise SquareMappingError("body is not a JSON object")
    return payload


def store_timezone(timezones: dict[str, str], store_id: str) -> ZoneInfo:
    name = timezones.get(store_id) or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"store {store_id}: unknown time zone {name!r} in RETAILFLOW_STORE_TIMEZONES") from None


def business_date(at: datetime, tz: ZoneInfo) -> date:
    return at.astimezone(tz).date()


def money(value: Any, what: str) -> tuple[Decimal, str]:
    """Square money (integer minor units) → (Decimal amount, currency)."""
    if not isinstance(value, dict):
        raise SquareMappingError(f"{what} is missing")
    amount, currency = value.get("amount"), value.get("currency")
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise SquareMappingError(f"{what}.amount must be an integer number of minor units, got {_shown(amount)}")
    if abs(amount) >= 10 ** 17:  # beyond any amount the platform carries (canonical.money.MAX_AMOUNT)
        raise SquareMappingError(f"{what}.amount {amount} is out of range")
    if not isinstance(currency, str) or len(currency) != 3:
        raise SquareMappingError(f"{what}.currency must be an ISO-4217 code, got {_shown(currency)}")
    return Decimal(amount).scaleb(-minor_units(currency.upper())), currency.upper()


def _shown(value: Any) -> str:
    """A payload value in a message: strings and numbers as they are (bounded), anything else by its type."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return repr(value)[:40]
    return type(value).__name__


def _time(value: Any, what: str) -> datetime:
    if not isinstance(value, str) or not value:
        raise SquareMappingError(f"{what} is missing")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SquareMappingError(f"{what} {value[:64]!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise SquareMappingError(f"{what} {value[:64]!r} has no time zone")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is a valid string but no UTC time
        raise SquareMappingError(f"{what} {value[:64]!r} is out of range") from None


def _str(obj: dict, key: str, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise SquareMappingError(f"{what}.{key} is missing")
    return value.strip()


def payment_tender(payment: dict) -> TenderType:
    source = str(payment.get("source_type") or "").upper()
    if source == "CASH":
        return TenderType.CASH
    if source == "CARD":
        brand = str(((payment.get("card_details") or {}).get("card") or {}).get("card_brand") or "").upper()
        return TenderType.GIFT_CARD if brand == "SQUARE_GIFT_CARD" else TenderType.CARD
    return TenderType.OTHER


def refund_tender(refund: dict) -> TenderType:
    dest = str(refund.get("destination_type") or "").upper()
    return {"CASH": TenderType.CASH, "CARD": TenderType.CARD}.get(dest, TenderType.OTHER)


@dataclass(frozen=True)
class SquareOrderNotice:
    order_id: str
    store_id: str
    state: str | None
    version: int | None
    business_date: date


@dataclass(frozen=True)
class SquareEvent:
    event_id: str
    event_type: str
    transaction: PosTransaction | None = None
    order: SquareOrderNotice | None = None
    ignored: str | None = None  # why nothing is posted


PAYMENT_FINAL = frozenset({"COMPLETED"})
REFUND_COUNTED = frozenset({"PENDING", "COMPLETED"})


def notification_time(payload: dict[str, Any]) -> datetime | None:
    """The notification's own `created_at` (when Square created the event; every retry of it carries the same
    one), or None when the body has none. Square retries for up to 72 hours after the event
    (https://developer.squareup.com/docs/webhooks-api/delivery-sla): the intake's replay window is measured
    from it."""
    if not isinstance(payload, dict) or payload.get("created_at") is None:
        return None
    return _time(payload.get("created_at"), "created_at")


def map_event(payload: dict[str, Any], *, timezones: dict[str, str] | None = None) -> SquareEvent:
    timezones = timezones or {}
    event_id = _str(payload, "event_id", "event")
    event_type = _str(payload, "type", "event")
    data = payload.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    try:
        if event_type in ("payment.created", "payment.updated"):
            payment = _object(obj, "payment", event_type)
            status = str(payment.get("status") or "").upper()
            if status not in PAYMENT_FINAL:
                return SquareEvent(event_id, event_type, ignored=f"payment status {status or 'missing'}: no money "
                                   "taken yet (only COMPLETED payments count)")
            return SquareEvent(event_id, event_type, transaction=_transaction(
                payment, PosKind.SALE, "payment", payment_tender(payment), timezones))
        if event_type in ("refund.created", "refund.updated"):
            refund = _object(obj, "refund", event_type)
            status = str(refund.get("status") or "").upper()
            if status not in REFUND_COUNTED:
                return SquareEvent(event_id, event_type, ignored=f"refund status {status or 'missing'}: no money "
                                   "given back")
            return SquareEvent(event_id, event_type, transaction=_transaction(
                refund, PosKind.RETURN, "refund", refund_tender(refund), timezones))
        if event_type in ("order.created", "order.updated"):
            key = "order_created" if event_type == "order.created" else "order_updated"
            summary = _object(obj, key, event_type)
            store_id = _str(summary, "location_id", key)
            at = _time(summary.get("updated_at") or summary.get("created_at"), f"{key}.created_at")
            version = summary.get("version")
            notice = SquareOrderNotice(order_id=_str(summary, "order_id", key), store_id=store_id,
                                       state=summary.get("state"), version=version if isinstance(version, int) else None,
                                       business_date=business_date(at, store_timezone(timezones, store_id)))
            return SquareEvent(event_id, event_type, order=notice, ignored="order events carry a summary only, no "
                               "money: the store day counts the order's payments and refunds")
    except ValidationError as exc:
        raise SquareMappingError(f"{event_type} does not make a valid POS transaction: "
                                 f"{exc.errors()[0].get('msg')}") from None
    return SquareEvent(event_id, event_type, ignored=f"event type {event_type!r} is not handled")


def _object(obj: Any, key: str, event_type: str) -> dict:
    inner = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(inner, dict):
        raise SquareMappingError(f"{event_type}: data.object.{key} is missing")
    return inner


def _transaction(obj: dict, kind: PosKind, what: str, tender: TenderType, timezones: dict[str, str]) -> PosTransaction:
    obj_id = _str(obj, "id", what)
    store_id = _str(obj, "location_id", what)
    amount, currency = money(obj.get("total_money") or obj.get("amount_money"), f"{what}.total_money")
    if amount <= 0:
        raise SquareMappingError(f"{what} {obj_id}: amount {amount} {currency} is not positive")
    occurred = _time(obj.get("created_at"), f"{what}.created_at")
    return PosTransaction(
        pos_transaction_id=f"square:{what}:{obj_id}", store_id=store_id,
        business_date=business_date(occurred, store_timezone(timezones, store_id)), kind=kind, lines=[],
        tenders=[Tender(type=tender, amount=amount)], occurred_at=occurred, currency=currency, source=SOURCE,
        reference=obj.get("order_id") if isinstance(obj.get("order_id"), str) else None)
