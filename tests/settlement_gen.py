"""Generated Amazon settlement flat files (V2 layout) for tests and benchmarks.

`generate_settlement(path, lines)` writes a report of about `lines` lines, streaming (nothing is held), and returns
what the platform must know to reconcile it: each order's id, SKU and buyer total (to seed ERP sales orders).
The values are synthetic: no real V2 report is public (see tests/fixtures/amazon and tests/fixtures/SOURCES.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from adapters.marketplace.amazon_settlement import V2_COLUMNS

# per order: principal, tax, commission, FBA fee (4 lines)
LINES_PER_ORDER = 4


@dataclass
class GeneratedSettlement:
    settlement_id: str
    currency: str
    total: Decimal
    line_count: int
    orders: list[tuple[str, str, Decimal]] = field(default_factory=list)  # (order id, sku, buyer total)


def _orders(n: int) -> Iterator[tuple[str, str, Decimal, Decimal, Decimal, Decimal]]:
    for i in range(n):
        principal = Decimal(1000 + (i * 37) % 9000) / 100  # 10.00 .. 99.99
        tax = (principal * Decimal("0.08")).quantize(Decimal("0.01"))
        commission = -(principal * Decimal("0.15")).quantize(Decimal("0.01"))
        fba = -Decimal(250 + i % 300) / 100
        yield f"111-{i:07d}-{(i * 7919) % 10000000:07d}", f"SKU-{i % 500:04d}", principal, tax, commission, fba


def generate_settlement(path: Path | str, lines: int, *, settlement_id: str = "99000000001", currency: str = "USD",
                        decimal_comma: bool = False, keep_orders: bool = True) -> GeneratedSettlement:
    """Write a V2 settlement of about `lines` lines (a multiple of 4: four lines per order)."""
    n_orders = max(1, lines // LINES_PER_ORDER)

    def fmt(d: Decimal) -> str:
        text = f"{d:.2f}"
        return text.replace(".", ",") if decimal_comma else text

    total = Decimal(0)
    gen = GeneratedSettlement(settlement_id=settlement_id, currency=currency, total=Decimal(0),
                              line_count=n_orders * LINES_PER_ORDER)
    for _, _, p, t, c, f in _orders(n_orders):
        total += p + t + c + f
    gen.total = total
    index = {c: i for i, c in enumerate(V2_COLUMNS)}

    def row(**values: str) -> str:
        cells = [""] * len(V2_COLUMNS)
        for k, v in values.items():
            cells[index[k.replace("_", "-")]] = v
        return "\t".join(cells) + "\n"

    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("\t".join(V2_COLUMNS) + "\n")
        out.write(row(settlement_id=settlement_id, settlement_start_date="2026-01-01 00:00:00 UTC",
                      settlement_end_date="2026-01-15 00:00:00 UTC", deposit_date="2026-01-17 00:00:00 UTC",
                      total_amount=fmt(total), currency=currency))
        for oid, sku, p, t, c, f in _orders(n_orders):
            common = dict(settlement_id=settlement_id, transaction_type="Order", order_id=oid, merchant_order_id=oid,
                          shipment_id="S" + oid[-7:], marketplace_name="Amazon.com", fulfillment_id="AFN",
                          posted_date="01/05/26", posted_date_time="2026-01-05 10:00:00 UTC", sku=sku)
            out.write(row(**common, amount_type="ItemPrice", amount_description="Principal", amount=fmt(p),
                          quantity_purchased="1"))
            out.write(row(**common, amount_type="ItemPrice", amount_description="Tax", amount=fmt(t)))
            out.write(row(**common, amount_type="ItemFees", amount_description="Commission", amount=fmt(c)))
            out.write(row(**common, amount_type="ItemFees", amount_description="FBAPerUnitFulfillmentFee",
                          amount=fmt(f)))
            if keep_orders:
                gen.orders.append((oid, sku, p + t))
    return gen


def seed_sales_orders(engine, channel: str, orders: list[tuple[str, str, Decimal]], currency: str = "USD",
                      batch: int = 5000) -> None:
    """Book an ERP sales order per generated order (bulk, straight into the embedded ERP's table)."""
    from adapters import sql as db

    rows = []
    with engine.begin() as conn:
        for n, (oid, sku, total) in enumerate(orders):
            rows.append(dict(id=f"SO-G{n:09d}", external_ref=f"order:{channel}:{oid}", channel=channel,
                             external_order_id=oid, currency=currency, net_total=total, tax_total=Decimal(0),
                             grand_total=total, status="invoiced",
                             lines=[{"line_id": "1", "channel_sku": sku, "quantity": 1, "net": str(total),
                                     "tax": "0"}]))
            if len(rows) >= batch:
                conn.execute(db.sales_orders.insert(), rows)
                rows.clear()
        if rows:
            conn.execute(db.sales_orders.insert(), rows)


if __name__ == "__main__":  # python -m tests.settlement_gen OUT LINES
    import sys

    g = generate_settlement(sys.argv[1], int(sys.argv[2]), keep_orders=False)
    print(f"{g.line_count} lines, settlement {g.settlement_id}, total {g.total} {g.currency}")
