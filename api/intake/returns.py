"""Return intake: a Shopify refund (`refunds/create`) checked against the order the ERP booked, a cancellation
after shipment turned into a return, and the embedded WMS's `return.received` receipt events signalled to their
return (the WMS source hands them here). Faults are answered and quarantined by the pipeline."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine

from adapters.erp.base import BookedOrder
from adapters.marketplace import shopify
from api.intake.pipeline import Accepted, Act, Delivery, Fault, Key, Outcome
from canonical.money import Money
from canonical.order import order_workflow_id
from canonical.returns import Receipt, ReturnLine, ReturnReason, ReturnRequest
from runtime.registry import build_erp
from runtime.settings import Settings
from starters import signal_workflow

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
    try:
        return Decimal(str(raw))
    except Exception as exc:
        raise shopify.ShopifyMappingError(f"{what} {raw!r} is not an amount") from exc


def map_shopify_refund(lookup: Callable[[str], BookedOrder | None], payload: dict, channel: str) -> ReturnRequest:
    """Check a Shopify refund against the order the platform booked, and map it.

    Each refunded line carries Shopify's own subtotal and tax, so a partial price adjustment credits what was
    refunded, not the units' full price. Money refunded beyond the lines (a goodwill refund, a refunded
    discrepancy, a refund with no line items at all) becomes a lump-sum adjustment, tax included, spread over
    the order's lines. Inconsistent refunds (lines not on the order, more units than ordered, transactions that
    pay back less than the refunded lines) raise ShopifyMappingError: quarantined for an analyst, not booked.
    `lookup` gives the order as the ERP booked it (`booked_order`)."""
    refund_id = shopify._id(payload.get("id"), "refund id")
    order_id = shopify._id(payload.get("order_id"), "order id")
    order_ref = order_workflow_id(channel, order_id)
    so = lookup(order_ref)
    if so is None:
        raise shopify.ShopifyMappingError(f"refund {refund_id}: no ERP sales order {order_ref}")
    cur = so.currency
    ordered = {line.line_id: line.quantity for line in so.lines}
    note = payload.get("note") or None
    problems, lines, expected = [], [], Decimal(0)
    for item in payload.get("refund_line_items") or []:
        line_id = shopify._id(item.get("line_item_id"), "line_item_id")
        qty = int(item.get("quantity") or 0)
        subtotal = _amount(item.get("subtotal", 0), "subtotal")
        tax = _amount(item.get("total_tax", 0), "total_tax")
        expected += subtotal + tax
        if line_id not in ordered:
            problems.append(f"line item {line_id} is not on order {order_id}")
        elif qty > ordered[line_id]:
            problems.append(f"line item {line_id}: {qty} refunded, {ordered[line_id]} ordered")
        elif qty > 0 or subtotal + tax > 0:
            lines.append(ReturnLine(line_id=line_id, quantity=qty, reason=ReturnReason.OTHER, note=note,
                                    amount=Money.of(subtotal, cur), tax=Money.of(tax, cur)))
    paid = sum((_amount(t.get("amount"), "transaction amount") for t in payload.get("transactions") or []
                if t.get("kind") == "refund" and t.get("status") in (None, "success")), Decimal(0))
    if paid < expected:
        problems.append(f"refund transactions total {paid} but the refunded lines total {expected}")
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
    try:
        return ReturnRequest(channel=channel, return_id=f"refund-{refund_id}", external_order_id=order_id,
                             requested_at=payload.get("created_at"), lines=lines,
                             adjustment=Money.of(extra, cur) if extra > 0 else None)
    except ValidationError as exc:
        raise shopify.ShopifyMappingError(shopify.describe_validation_error(exc)) from exc


def map_receipt(payload: dict) -> tuple[str, Receipt]:
    """A `return.received` event of the embedded WMS: (return workflow id, receipt)."""
    return str(payload["external_ref"]), Receipt.model_validate(payload["receipt"])


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
            raise ValueError(f"unknown event type {payload.get('type')!r}")
        event_id = str(payload["event_id"])
        external_ref, receipt = map_receipt(payload)
        if not external_ref.startswith("return:"):
            raise ValueError(f"{external_ref!r} is not a return workflow id")
    except (KeyError, TypeError, ValueError, shopify.ShopifyMappingError) as exc:
        raise Fault(422, f"receipt event does not map: {exc}", topic=RECEIPT_TOPIC, delivery_id=None) from exc
    return Key(RECEIPT_TOPIC, event_id, payload=(external_ref, receipt))


def signal_receipt(d: Delivery, key: Key) -> Act:
    external_ref, receipt = key.payload

    async def act() -> Accepted:
        if not await signal_workflow(await d.client(), external_ref, "receipt", receipt):
            raise Fault(409, f"no running return {external_ref} for receipt {receipt.receipt_id}")
        return Accepted(external_ref, Outcome(202, {"workflow_id": external_ref, "duplicate": False}))

    return act
