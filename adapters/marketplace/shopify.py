"""Shopify: webhook verification and the mapping of Shopify payloads to canonical models.

Facts (tests/fixtures/SOURCES.md): the HMAC is base64(HMAC-SHA256(client secret, raw body)); header names
come as `X-Shopify-*` or, for the newer "events" webhooks, `shopify-*`; ids exceed 2^53 so they stay strings;
the same sample Order is used for every `orders/*` topic.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from canonical import payload as canonical_payload
from canonical.errors import PayloadInvalid, printable
from canonical.money import Money, sum_money
from canonical.order import (
    Address,
    Customer,
    Discount,
    Order,
    OrderLine,
    Shipment,
    ShipmentLine,
    ShippingLine,
    TaxLine,
)

CHANNEL_DEFAULT = "shopify"


class ShopifyMappingError(PayloadInvalid):
    """The payload cannot be turned into a canonical model; the message says why."""


# -- webhook headers and signature ---------------------------------------------------------------------
def header(headers: Mapping[str, str], name: str) -> str | None:
    """Read `X-Shopify-<name>` or `shopify-<name>`, case-insensitively."""
    lowered = {k.lower(): v for k, v in headers.items()}
    return lowered.get(f"x-shopify-{name}") or lowered.get(f"shopify-{name}")


def compute_hmac(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")


def verify_webhook(body: bytes, signature: str | None, secrets: list[str]) -> bool:
    """Constant-time check against the current secret and any previous one kept for rotation."""
    if not signature:
        return False
    try:
        given = base64.b64decode(signature.strip(), validate=True)
    except (ValueError, TypeError):
        return False
    ok = False
    for secret in secrets:
        expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
        ok |= hmac.compare_digest(expected, given)
    return ok


def loads(body: bytes) -> dict[str, Any]:
    """Parse a webhook body keeping integers exact and JSON numbers with fractions as Decimal (strictly:
    canonical/payload.py)."""
    data = canonical_payload.loads(body, error=ShopifyMappingError)
    if not isinstance(data, dict):
        raise ShopifyMappingError("body must be a JSON object")
    return data


# -- mapping -------------------------------------------------------------------------------------------
ID_MAX = 128  # Order.external_order_id; workflow ids and the platform's id columns are built from it


def _id(value: Any, what: str) -> str:
    if isinstance(value, bool) or value is None:
        raise ShopifyMappingError(f"{what} is missing")
    if isinstance(value, int):
        text = str(value) if -10 ** ID_MAX < value < 10 ** ID_MAX else "x" * (ID_MAX + 1)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        text = text.rsplit("/", 1)[-1] if text.startswith("gid://") else text
    else:
        raise ShopifyMappingError(f"{what} must be an integer or string id, got {type(value).__name__}")
    if len(text) > ID_MAX:
        raise ShopifyMappingError(f"{what} is longer than {ID_MAX} characters")
    return text


def _money(obj: Mapping[str, Any], field: str, currency: str, where: str = "") -> Money:
    """Prefer the `<field>_set.shop_money` form, falling back to the plain string field."""
    name = f"{where}{field}"
    try:
        money_set = obj.get(f"{field}_set")
        if isinstance(money_set, Mapping) and isinstance(money_set.get("shop_money"), Mapping):
            shop = money_set["shop_money"]
            name = f"{where}{field}_set.shop_money"
            return Money.of(shop.get("amount"), shop.get("currency_code") or currency)
        value = obj.get(field)
        if value is None:
            return Money.zero(currency)
        return Money.of(value, currency)
    except ValidationError as exc:
        raise ShopifyMappingError(f"{name}: {canonical_payload.describe(exc)}") from None


def _objects(raw: Any, what: str) -> list[Mapping[str, Any]]:
    """A list of JSON objects (None or missing: empty), or the mapping error naming the field."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(x, Mapping) for x in raw):
        raise ShopifyMappingError(f"{what} must be a list of objects")
    return raw


def _object(raw: Any, what: str) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ShopifyMappingError(f"{what} must be an object, got {type(raw).__name__}")
    return raw


def _address(raw: Any, what: str = "address") -> Address | None:
    if raw is None or isinstance(raw, Mapping) and not raw:
        return None
    if not isinstance(raw, Mapping):
        raise ShopifyMappingError(f"{what} must be an object, got {type(raw).__name__}")
    name = raw.get("name") or " ".join(p for p in (raw.get("first_name"), raw.get("last_name")) if p) or None
    country = raw.get("country_code")
    if not country:
        raise ShopifyMappingError(f"{what} has no country_code")
    with canonical_payload.mapping(ShopifyMappingError, what):
        return Address(
            name=name, company=raw.get("company"), line1=raw.get("address1"), line2=raw.get("address2"),
            city=raw.get("city"), region=raw.get("province_code"), postal_code=raw.get("zip"), country=country,
            phone=raw.get("phone"),
        )


def _tax_lines(raw: Any, currency: str, where: str) -> list[TaxLine]:
    out = []
    for i, t in enumerate(_objects(raw, f"{where}tax_lines")):
        with canonical_payload.mapping(ShopifyMappingError, f"{where}tax_lines[{i}]"):
            rate = t.get("rate", "0")
            out.append(TaxLine(title=t.get("title") or "tax", rate=repr(rate) if isinstance(rate, float) else rate,
                               amount=_money(t, "price", currency, f"{where}tax_lines[{i}].")))
    return out


def _discounts(raw: Any, currency: str, where: str) -> list[Discount]:
    return [Discount(amount=_money(d, "amount", currency, f"{where}discount_allocations[{i}]."))
            for i, d in enumerate(_objects(raw, f"{where}discount_allocations"))]


def order_id(payload: Mapping[str, Any]) -> str:
    """The order's id (as `map_order` maps it)."""
    return _id(payload.get("id"), "order id")


# -- click-and-collect ------------------------------------------------------------------------------------------
# Shopify keeps an order's delivery method on its fulfillment orders, not on the order: each fulfillment order has a
# `delivery_method.method_type` (REST `pick_up`, `shipping`, `local`, `pickup_point`, `none`, `retail`; GraphQL
# `DeliveryMethodType` PICK_UP, SHIPPING, …) and the location it is assigned to (`assigned_location_id`; GraphQL
# `assignedLocation.location.id`). The `orders/create` webhook does not carry them (its shipping line of a pick-up
# only names the location in `title`/`code`, like any rate), so the intake asks for them (shopify_graphql
# `delivery_methods`) and the poll reads them with the order (`order_as_webhook` puts them under
# `fulfillment_orders`, the REST resource's shape). docs/fulfillment.md, "Click-and-collect orders".
PICK_UP = "pick_up"
_NOT_DELIVERED = frozenset({"none"})  # non-physical items: no delivery either way
_GONE = frozenset({"cancelled", "closed"})  # a moved or cancelled fulfillment order leaves these behind


def pickup_location(payload: Mapping[str, Any]) -> str | None:
    """The Shopify location (numeric id) where the customer collects the order, or None when it is shipped or
    the payload carries no fulfillment orders. ShopifyMappingError when the order is collected in part only or at
    two locations: the canonical order has one pick-up store, and shipping such an order whole would be wrong."""
    fos = [fo for fo in _objects(payload.get("fulfillment_orders"), "fulfillment_orders")
           if str(fo.get("status") or "").lower() not in _GONE]
    pickups, others = set(), 0
    for fo in fos:
        method = str((_object(fo.get("delivery_method"), "fulfillment_orders[].delivery_method")
                      .get("method_type")) or "").lower()
        if method == PICK_UP:
            location = fo.get("assigned_location_id")
            if location is None:
                location = _object(fo.get("assigned_location"), "fulfillment_orders[].assigned_location") \
                    .get("location_id")
            pickups.add(_id(location, "pick-up fulfillment order assigned_location_id"))
        elif method not in _NOT_DELIVERED:
            others += 1
    if not pickups:
        return None
    if len(pickups) > 1:
        raise ShopifyMappingError(f"click-and-collect at {len(pickups)} Shopify locations ({', '.join(sorted(pickups))})"
                                  ": an order is collected at one store")
    if others:
        raise ShopifyMappingError(f"the order is collected at Shopify location {next(iter(pickups))} in part and "
                                  f"delivered otherwise in part ({others} fulfillment order(s)): not supported")
    return next(iter(pickups))


def pickup_store(payload: Mapping[str, Any], channel: str, locations: Mapping[str, str] | None) -> str | None:
    """The store node of a click-and-collect order (`locations`: the channel's pick-up locations, Shopify location
    id → node id, from the fulfillment network's `channel_locations`), None when the order is shipped.
    ShopifyMappingError (the intake quarantines it, 422) when Shopify assigned the pick-up to a location no store
    lists: routing it to a warehouse would ship an order the customer will come to collect. `locations` None: the
    channel is not sourced over the fulfillment network, no order of it is recognised as collected."""
    if locations is None:
        return None
    location = pickup_location(payload)
    if location is None:
        return None
    node = locations.get(location)
    if node is None:
        raise ShopifyMappingError(f"click-and-collect at Shopify location {location}, which no store of the "
                                  f"fulfillment network lists (node channel_locations.{channel} in "
                                  "RETAILFLOW_FULFILLMENT_NETWORK_FILE)")
    return node


def map_order(payload: Mapping[str, Any], channel: str = CHANNEL_DEFAULT,
              pickup_locations: Mapping[str, str] | None = None) -> Order:
    """Shopify `orders/create` (or any `orders/*` topic) → canonical Order. With `fulfillment_orders` in the
    payload (the poll's order, or the webhook's once the intake has asked for them) a pick-up order is mapped to
    its store (`pickup_store`, see above) and has no shipping address: nothing is shipped."""
    try:
        pickup = pickup_store(payload, channel, pickup_locations)
        currency = payload.get("currency")
        if not isinstance(currency, str) or not currency.strip():
            raise ShopifyMappingError("order has no currency" if currency is None or currency == "" else
                                      f"currency must be a 3-letter ISO-4217 code, got {type(currency).__name__}")
        lines = []
        for n, li in enumerate(_objects(payload.get("line_items"), "line_items")):
            line_id = _id(li.get("id"), f"line_items[{n}].id")
            where = f"line_items[{line_id}]."
            sku = (li.get("sku") or "").strip()
            if not sku:  # an unmapped variant: resolved (or parked) by the SKU step, not lost here
                sku = f"variant:{_id(li.get('variant_id'), f'line {line_id} sku and variant_id')}"
            qty = li.get("quantity")
            unit_price = _money(li, "price", currency, where)
            discounts = _discounts(li.get("discount_allocations"), currency, where)
            tax_lines = _tax_lines(li.get("tax_lines"), currency, where)
            with canonical_payload.mapping(ShopifyMappingError, f"line_items[{line_id}]"):
                lines.append(OrderLine(
                    line_id=line_id, channel_sku=sku, name=li.get("name") or li.get("title"), quantity=qty,
                    unit_price=unit_price, discounts=discounts, tax_lines=tax_lines,
                    requires_shipping=bool(li.get("requires_shipping", True)),
                    taxable=bool(li.get("taxable", True)),
                ))
        if not lines:
            raise ShopifyMappingError("order has no line_items")
        shipping = []
        for n, sl in enumerate(_objects(payload.get("shipping_lines"), "shipping_lines")):
            if sl.get("is_removed"):
                continue
            where = f"shipping_lines[{n}]."
            price = _money(sl, "price", currency, where)
            discounts = _discounts(sl.get("discount_allocations"), currency, where)
            tax_lines = _tax_lines(sl.get("tax_lines"), currency, where)
            with canonical_payload.mapping(ShopifyMappingError, f"shipping_lines[{n}]"):
                shipping.append(ShippingLine(code=sl.get("code"), title=sl.get("title") or "shipping", price=price,
                                             discounts=discounts, tax_lines=tax_lines))
        total_discounts = _money(payload, "total_discounts", currency)
        allocated = sum_money([d.amount for line in lines for d in line.discounts]
                              + [d.amount for s in shipping for d in s.discounts], currency)
        order_discounts = []
        unallocated = total_discounts - allocated
        if unallocated.amount > 0:
            codes = [str(c.get("code")) for c in _objects(payload.get("discount_codes"), "discount_codes")
                     if c.get("code")]
            order_discounts.append(Discount(code=", ".join(codes) or None,
                                            description="order-level discount not allocated to lines",
                                            amount=unallocated))
        customer_raw = _object(payload.get("customer"), "customer")
        customer = Customer(
            external_id=_id(customer_raw["id"], "customer.id") if customer_raw.get("id") is not None else None,
            email=payload.get("email") or payload.get("contact_email") or customer_raw.get("email"),
            name=" ".join(p for p in (customer_raw.get("first_name"), customer_raw.get("last_name")) if p) or None,
            tax_exempt=bool(customer_raw.get("tax_exempt") or payload.get("tax_exempt")),
        )
        created = payload.get("created_at")
        if not created:
            raise ShopifyMappingError("order has no created_at")
        return Order(
            channel=channel, external_order_id=_id(payload.get("id"), "order id"),
            order_number=payload.get("name") or (str(payload["order_number"]) if payload.get("order_number") else None),
            created_at=datetime.fromisoformat(str(created).replace("Z", "+00:00")),
            currency=currency, taxes_included=bool(payload.get("taxes_included")), customer=customer,
            shipping_address=None if pickup else _address(payload.get("shipping_address"), "shipping_address"),
            billing_address=_address(payload.get("billing_address"), "billing_address"),
            lines=lines, shipping_lines=shipping, pickup_store=pickup, order_discounts=order_discounts,
            total=_money(payload, "total_price", currency) if payload.get("total_price") is not None else None,
            test=bool(payload.get("test")),
        )
    except ValidationError as exc:
        raise ShopifyMappingError(describe_validation_error(exc)) from None
    except (TypeError, AttributeError, KeyError) as exc:
        raise ShopifyMappingError(f"unexpected payload shape: {type(exc).__name__}: {exc}") from None
    except ValueError as exc:
        if isinstance(exc, ShopifyMappingError):
            raise
        raise ShopifyMappingError(str(exc)) from None


def map_cancellation(payload: Mapping[str, Any]) -> tuple[str, str]:
    """Shopify `orders/cancelled` → (external order id, the reason to record)."""
    if not isinstance(payload, Mapping):
        raise ShopifyMappingError("body must be a JSON object")
    external_id = _id(payload.get("id"), "order id")
    reason = payload.get("cancel_reason")
    if reason is not None and not isinstance(reason, str):
        raise ShopifyMappingError(f"cancel_reason must be a string, got {type(reason).__name__}")
    return external_id, printable(reason or "cancelled in Shopify", 500)


def map_fulfillment(payload: Mapping[str, Any]) -> tuple[str, Shipment]:
    """Shopify `fulfillments/create` → (external order id, canonical Shipment)."""
    try:
        order_id = _id(payload.get("order_id"), "order_id")
        lines = [
            ShipmentLine(line_id=_id(li.get("id"), "line_items[].id"),
                         channel_sku=(li.get("sku") or f"variant:{li.get('variant_id')}"), quantity=li.get("quantity"))
            for li in payload.get("line_items") or []
        ]
        tracking_numbers = payload.get("tracking_numbers") or []
        tracking_urls = payload.get("tracking_urls") or []
        shipped = payload.get("created_at")
        return order_id, Shipment(
            shipment_id=f"shopify-fulfillment:{_id(payload.get('id'), 'fulfillment id')}",
            carrier=payload.get("tracking_company"), service=payload.get("service"),
            tracking_number=payload.get("tracking_number") or (tracking_numbers[0] if tracking_numbers else None),
            tracking_url=payload.get("tracking_url") or (tracking_urls[0] if tracking_urls else None),
            shipped_at=datetime.fromisoformat(str(shipped).replace("Z", "+00:00")), lines=lines,
        )
    except ValidationError as exc:
        raise ShopifyMappingError(describe_validation_error(exc)) from None
    except (TypeError, AttributeError, KeyError, ValueError) as exc:
        if isinstance(exc, ShopifyMappingError):
            raise
        raise ShopifyMappingError(f"unexpected payload shape: {exc}") from None


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:10]:
        loc = ".".join(str(p) for p in err["loc"]) or "order"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)
