"""Return intake: a Shopify refund (`refunds/create`) checked against the order the ERP booked, a cancellation
after shipment turned into a return, and the embedded WMS's `return.received` receipt events signalled to their
return (the WMS source hands them here). Faults are answered and quarantined by the pipeline."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine

from adapters.erp.base import BookedOrder
from adapters.marketplace import shopify
from api.intake.pipeline import Act, Delivery, Fault, Key, signal_act
from canonical.money import Money, parse_decimal
from canonical.order import order_workflow_id
from canonical.payload import mapping
from canonical.returns import Receipt, ReturnLine, ReturnReason, ReturnRequest
from runtime.registry import build_erp
from runtime.settings import Settings

RECEIPT_TOPIC = "return.received"


def booked_order(settings: Settings, engine: Engine, order_ref: str) -> BookedOrder | None:
    """The order as the configured ERP booked it (RETAILFLOW_ERP_ADAPTER: the embedded ERP's tables, or ERPNext
    over its API — which may raise VendorUnavailable)."""
    erp = build_erp(settings, engine)
    try:
        return erp.booked_order(order_ref)
    finally:
        if callable(close := getattr(erp, "close", None)):
            close()


def shipped_lines(order: BookedOrder | None) -> list[tuple[str, int]]:
    """(line id, shipped quantity) for the order, from the ERP sales order and its deliveries."""
    return [] if order is None else [(line.line_id, line.shipped) for line in order.lines if line.shipped]


def cancellation_return(order: BookedOrder | None, channel: str, external_order_id: str, requested_at
                        ) -> ReturnRequest | None:
    """A cancellation of an order that has shipped becomes a return of everything shipped (None if nothing)."""
    lines = shipped_lines(order)
    if not lines:
        return None
    return ReturnRequest(channel=channel, return_id=f"cancel-{external_order_id}", external_order_id=external_order_id,
                         requested_at=requested_at,
                         lines=[ReturnLine(line_id=lid, quantity=q, reason=ReturnReason.ORDER_CANCELLED)
                                for lid, q in lines])


def _amount(raw: Any, what: str) -> Decimal:
    if isinstance(raw, float):  # JSON numbers in the refund payload: go through their text, never binary float
        raw = repr(raw)
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal):
        raise shopify.ShopifyMappingError(f"{what} must be a decimal string or number, got {type(raw).__name__}")
    try:
        return parse_decimal(raw)
    except ValueError as exc:
        raise shopify.ShopifyMappingError(f"{what}: {exc}") from None


def map_shopify_refund(lookup: Callable[[str], BookedOrder | None], payload: dict, channel: str, *,
                       taxes_included: bool | None = None) -> ReturnRequest:
    """Check a Shopify refund against the order the platform booked, and map it.

    Each refunded line carries Shopify's own subtotal and tax, so a partial price adjustment credits what was
    refunded, not the units' full price. Money refunded beyond the lines (a goodwill refund, a refunded
    discrepancy, a refund with no line items at all) becomes a lump-sum adjustment, tax included, spread over
    the order's lines. Inconsistent refunds (lines not on the order, more units than ordered, transactions that
    pay back less than the refunded lines) raise ShopifyMappingError: quarantined for an analyst, not booked.
    `lookup` gives the order as the ERP booked it (`booked_order`).

    A refunded line pays back Shopify's `subtotal` when the order's prices hold their tax (`taxes_included`,
    VAT-style shops: the tax is inside it) and `subtotal + total_tax` when the tax comes on top; the line is
    credited net (`subtotal - total_tax`, or `subtotal`) plus that tax. `taxes_included` is the order's, when the
    caller knows it; otherwise see `taxes_included()`."""
    with mapping(shopify.ShopifyMappingError, "refund"):
        if not isinstance(payload, dict):
            raise shopify.ShopifyMappingError("refund body must be a JSON object")
        refund_id = shopify._id(payload.get("id"), "refund id")
        order_id = shopify._id(payload.get("order_id"), "order id")
        order_ref = order_workflow_id(channel, order_id)
    so = lookup(order_ref)  # the ERP's answer: its faults are not the payload's
    if so is None:
        raise shopify.ShopifyMappingError(f"refund {refund_id}: no ERP sales order {order_ref}")
    with mapping(shopify.ShopifyMappingError, f"refund {refund_id}"):
        return _map_refund(payload, so, refund_id, order_id, channel, taxes_included)


def _map_refund(payload: dict, so: BookedOrder, refund_id: str, order_id: str, channel: str,
                known_inclusive: bool | None) -> ReturnRequest:
    cur = so.currency
    ordered = {line.line_id: line.quantity for line in so.lines}
    note = payload.get("note") or None
    items = _objects(payload.get("refund_line_items"), "refund_line_items")
    inclusive = known_inclusive if known_inclusive is not None else taxes_included(so, payload, items)
    problems, lines, expected = [], [], Decimal(0)
    for item in items:
        line_id = shopify._id(item.get("line_item_id"), "line_item_id")
        qty = _quantity(item.get("quantity"), f"refund_line_items[{line_id}].quantity")
        subtotal = _money_field(item, "subtotal", cur)
        tax = _money_field(item, "total_tax", cur)
        # Shopify's refund line `subtotal` is the refunded line price as the order charged it: with
        # `taxes_included` that price already holds the VAT (`total_tax` is the part of it that is tax), without
        # it the tax comes on top. The ERP credits net and tax apart.
        if inclusive and tax > subtotal:
            problems.append(f"line item {line_id}: tax {tax} exceeds its tax-inclusive subtotal {subtotal}")
            continue
        net, gross = (subtotal - tax, subtotal) if inclusive else (subtotal, subtotal + tax)
        expected += gross
        if line_id not in ordered:
            problems.append(f"line item {line_id} is not on order {order_id}")
        elif qty > ordered[line_id]:
            problems.append(f"line item {line_id}: {qty} refunded, {ordered[line_id]} ordered")
        elif qty > 0 or gross > 0:
            lines.append(ReturnLine(line_id=line_id, quantity=qty, reason=ReturnReason.OTHER, note=note,
                                    amount=Money.of(net, cur), tax=Money.of(tax, cur)))
    paid = sum((_amount(t.get("amount"), "transaction amount")
                for t in _objects(payload.get("transactions"), "transactions")
                if t.get("kind") == "refund" and t.get("status") in (None, "success")), Decimal(0))
    if paid < expected:
        problems.append(f"refund transactions total {paid} but the refunded lines total {expected}"
                        f" ({'tax included' if inclusive else 'tax on top'})")
    if problems:
        raise shopify.ShopifyMappingError(f"refund {refund_id} is inconsistent with order {order_id}: "
                                          + "; ".join(problems))
    extra = paid - expected
    if not lines and extra <= 0:
        raise shopify.ShopifyMappingError(f"refund {refund_id} refunds nothing (no line quantity, no amount)")
    if extra > 0:  # goodwill / discrepancy / a refund with no line items: spread over the order's lines
        have = {line.line_id for line in lines}
        lines += [ReturnLine(line_id=lid, quantity=0, reason=ReturnReason.OTHER, note=note)
                  for lid in ordered if lid not in have]
    return ReturnRequest(channel=channel, return_id=f"refund-{refund_id}", external_order_id=order_id,
                         requested_at=payload.get("created_at"), lines=lines,
                         adjustment=Money.of(extra, cur) if extra > 0 else None)


def taxes_included(so: BookedOrder, payload: dict, items: list[dict]) -> bool:
    """Whether the refunded order's prices hold their tax (Shopify's order `taxes_included`).

    After what the caller knows (`map_shopify_refund(taxes_included=...)`), in order: the booked order's
    `taxes_included` when the ERP recorded it (neither embedded ERP nor ERPNext does today); the refund payload's own `taxes_included` (a refund fetched with its order); else what the
    refunded lines themselves show: each line item carries its tax lines' rates, and a tax-inclusive subtotal S
    holds tax S·r/(1+r) where a tax-exclusive one bears S·r on top — the refund is tax-inclusive when its tax is
    nearer the first. Without rates, or with no tax at all, it reads as tax on top (False): the two agree when
    there is no tax, and a taxed refund whose lines give no rate is checked as before."""
    if so.taxes_included is not None:
        return so.taxes_included
    if isinstance(payload.get("taxes_included"), bool):
        return bool(payload["taxes_included"])
    inside = on_top = Decimal(0)
    for item in items:
        line_item = item.get("line_item")
        if not isinstance(line_item, dict):
            continue
        try:
            rate = sum((_amount(t.get("rate"), "tax rate") for t in _objects(line_item.get("tax_lines"), "tax_lines")
                        if isinstance(t, dict) and t.get("rate") is not None), Decimal(0))
            subtotal = _money_field(item, "subtotal", so.currency)
            tax = _money_field(item, "total_tax", so.currency)
        except shopify.ShopifyMappingError:
            continue
        if rate <= 0 or tax <= 0:
            continue
        inside += abs(tax - subtotal * rate / (1 + rate))
        on_top += abs(tax - subtotal * rate)
    return inside < on_top


def _money_field(item: dict, field: str, currency: str) -> Decimal:
    """A refund line's `subtotal` / `total_tax`: the `<field>_set` money in the order's currency (shop money, or
    presentment money when that is the order's), exact decimal text; else the plain field (a JSON number)."""
    money_set = item.get(f"{field}_set")
    if isinstance(money_set, dict):
        for side in ("shop_money", "presentment_money"):
            money = money_set.get(side)
            if isinstance(money, dict) and money.get("currency_code") == currency and "amount" in money:
                return _amount(money["amount"], f"{field}_set.{side}.amount")
    return _amount(item.get(field, 0), field)


def _objects(raw: Any, what: str) -> list[dict]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(x, dict) for x in raw):
        raise shopify.ShopifyMappingError(f"{what} must be a list of objects")
    return raw


def _quantity(raw: Any, what: str) -> int:
    if raw is None:
        return 0
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise shopify.ShopifyMappingError(f"{what} must be a whole number of units, got {str(raw)[:40]!r}")
    return raw


def map_receipt(payload: dict) -> tuple[str, Receipt]:
    """A `return.received` event of the embedded WMS: (return workflow id, receipt)."""
    with mapping(shopify.ShopifyMappingError, "return.received"):
        external_ref = payload.get("external_ref")
        if not isinstance(external_ref, str) or not external_ref.startswith("return:") or len(external_ref) > 255:
            raise shopify.ShopifyMappingError(f"external_ref {str(external_ref)[:80]!r} is not a return workflow id")
        if not isinstance(payload.get("receipt"), dict):
            raise shopify.ShopifyMappingError("receipt must be an object")
        return external_ref, Receipt.model_validate(payload["receipt"])


def is_receipt_event(body: bytes) -> bool:
    try:
        payload = shopify.loads(body)
    except shopify.ShopifyMappingError:
        return False
    return payload.get("type") == RECEIPT_TOPIC


def identify_receipt(d: Delivery) -> Key:
    """`{"type": "return.received", "event_id", "external_ref": "return:…", "receipt": {...}}` (already verified)."""
    try:
        payload = shopify.loads(d.body)
        if payload.get("type") != RECEIPT_TOPIC:
            raise shopify.ShopifyMappingError(f"unknown event type {str(payload.get('type'))[:40]!r}")
        event_id = event_id_of(payload)
        external_ref, receipt = map_receipt(payload)
    except shopify.ShopifyMappingError as exc:
        raise Fault(422, f"receipt event does not map: {exc}", topic=RECEIPT_TOPIC, delivery_id=None) from exc
    return Key(RECEIPT_TOPIC, event_id, payload=(external_ref, receipt))


def event_id_of(payload: dict) -> str:
    """The embedded WMS's event id (the dedupe key): a non-empty string or an integer."""
    value = payload.get("event_id")
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        raise shopify.ShopifyMappingError(f"event_id must be a non-empty string, got {type(value).__name__}")
    if len(str(value)) > 255:
        raise shopify.ShopifyMappingError("event_id is longer than 255 characters")
    return str(value).strip()


def signal_receipt(d: Delivery, key: Key) -> Act:
    external_ref, receipt = key.payload
    return signal_act(d, external_ref, "receipt", receipt,
                      f"no running return {external_ref} for receipt {receipt.receipt_id}",
                      hold_for=key.delivery_id or f"receipt:{receipt.receipt_id}")
