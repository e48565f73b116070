"""What an ERP books for an order: its sales order lines and totals. A pure rule shared by every ERP adapter (the
embedded ERP stores these values, ERPNext sends them as the Sales Order's rows), so that both book the same
amounts for the same order."""

from __future__ import annotations

from canonical.errors import InvalidOrder
from canonical.fulfillment import ResolvedLine
from canonical.money import Money
from canonical.order import Order, TaxQuote


def sales_order_values(order: Order, lines: list[ResolvedLine], tax: TaxQuote) -> tuple[list[dict], Money, Money]:
    """Sales order lines and (net, grand) totals for an order as booked: the ERP's view of it.

    Each line is what it was really charged: its share of order-level discounts taken off (as the tax engine
    does), and for VAT-style prices the tax taken out, so that net + tax of a line is what was paid. Raises
    InvalidOrder when a line has no resolved ERP item."""
    items_by_line = {r.line_id: r.item_code for r in lines}
    tax_by_line = {t.line_id: t.tax for t in tax.lines}
    zero = Money.zero(order.currency)
    shares = order.order_discount_total.allocate([line.net.amount for line in order.lines])
    so_lines = []
    for line, share in zip(order.lines, shares, strict=True):
        if line.line_id not in items_by_line:
            raise InvalidOrder(f"order line {line.line_id} has no resolved ERP item")
        line_tax = tax_by_line.get(line.line_id, zero)
        net = line.net - share - (line_tax if order.taxes_included else zero)
        so_lines.append({
            "line_id": line.line_id, "item_code": items_by_line[line.line_id], "channel_sku": line.channel_sku,
            "quantity": line.quantity, "unit_price": str(line.unit_price.amount),
            "discount": str((line.discount_total + share).amount), "net": str(net.amount),
            "tax": str(line_tax.amount),
        })
    net = order.lines_net + order.shipping_net - order.order_discount_total
    if order.taxes_included:
        grand = net
        net = net - tax.total_tax
    else:
        grand = net + tax.total_tax
    return so_lines, net, grand
