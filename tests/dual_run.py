"""Shared by the dual-run tests (issue 21, part 2): the embedded ERP as the system of record and the ERPNext sandbox
as the shadow (the cloud ERP being migrated to), the same catalog on both, and the ERP steps an order takes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from adapters.erp.local import LocalErp
from adapters.erp.routing import RoutingErp
from adapters.erp.shadow import ShadowErpNext
from canonical.money import Money
from canonical.order import Order, Shipment, ShipmentLine, TaxQuote, TaxQuoteLine

API_KEY, API_SECRET = "rf-dual-run-key", "rf-dual-run-secret"
WH = "Stores - RD"
TAX_ACCOUNT = "Sales Tax Payable - RD"

# the default route: everything on the legacy (embedded) ERP; orders and invoices in dual-run with the cloud
ROUTING_TOML = """
[erps.legacy]
adapter = "local"

[erps.cloud]
adapter = "erpnext"

[[route]]
record = "legacy"

[[route]]
process = "orders"
record = "legacy"
shadow = "cloud"

[[route]]
process = "invoices"
record = "legacy"
shadow = "cloud"
"""

# the cut-over: orders and invoices now post to the cloud ERP only
CUT_OVER_TOML = """
[erps.legacy]
adapter = "local"

[erps.cloud]
adapter = "erpnext"

[[route]]
record = "legacy"

[[route]]
process = "orders"
record = "cloud"

[[route]]
process = "invoices"
record = "cloud"
"""

ITEMS = {"CHAIR": Decimal("49.99"), "LAMP": Decimal("19.95"), "RUG": Decimal("120.00")}


def shadow_erp(base_url: str) -> ShadowErpNext:
    return ShadowErpNext(base_url, API_KEY, SecretStr(API_SECRET), company="Retailflow Demo", warehouse=WH,
                         tax_account=TAX_ACCOUNT, shipping_account="Freight and Forwarding Charges - RD", timeout=10)


def seed_local(erp: LocalErp) -> None:
    for code, price in ITEMS.items():
        erp.upsert_item(code, code.title(), price, "USD")
        erp.map_sku("shopify", f"SKU-{code}", code)
        erp.set_on_hand(code, "MAIN", 1000)


def seed_erpnext(base_url: str) -> None:
    httpx.post(f"{base_url}/_admin/reset").raise_for_status()
    erp = shadow_erp(base_url)
    for code in ITEMS:
        erp.insert("Item", {"item_code": code, "customer_items": [{"customer_name": "shopify",
                                                                    "ref_code": f"SKU-{code}"}]}, submit=False)
    erp.insert("Stock Entry", {"stock_entry_type": "Material Receipt", "company": "Retailflow Demo", "items": [
        {"item_code": code, "qty": 1000, "t_warehouse": WH} for code in ITEMS]})
    erp.close()


def order(n: int, *, channel: str = "shopify") -> Order:
    codes = list(ITEMS)
    a, b = codes[n % 3], codes[(n + 1) % 3]
    return Order.model_validate({
        "channel": channel, "external_order_id": f"{9000 + n}", "created_at": datetime.now(UTC).isoformat(),
        "currency": "USD", "taxes_included": False, "customer": {"email": f"c{n}@example.com"},
        "shipping_address": {"line1": "1 Main St", "city": "Irvine", "region": "CA", "postal_code": "92615",
                             "country": "US"},
        "lines": [{"line_id": "L1", "channel_sku": f"SKU-{a}", "quantity": 1 + n % 3,
                   "unit_price": {"amount": str(ITEMS[a]), "currency": "USD"}},
                  {"line_id": "L2", "channel_sku": f"SKU-{b}", "quantity": 1,
                   "unit_price": {"amount": str(ITEMS[b]), "currency": "USD"}}],
        "shipping_lines": [{"title": "Ground", "price": {"amount": "5.00", "currency": "USD"}}]})


def tax_for(o: Order) -> TaxQuote:
    lines = [TaxQuoteLine(line_id=x.line_id, taxable_amount=x.net, rate="0.0725",
                          tax=Money.of((x.net.amount * Decimal("0.0725")).quantize(Decimal("0.01")), "USD"))
             for x in o.lines]
    total = sum((x.tax for x in lines), Money.zero("USD"))
    return TaxQuote(transaction_code=o.workflow_id, currency="USD", jurisdiction="US-CA", taxes_included=False,
                    lines=lines, shipping_tax=Money.zero("USD"), total_tax=total)


def post_order(router: RoutingErp, o: Order, *, invoice: bool = True) -> str:
    """The ERP steps of OrderFulfillment, in its order: resolve, reserve, book, deliver, invoice."""
    key = o.workflow_id
    lines = router.resolve_skus(o)
    router.reserve(key, lines, allow_backorder=False)
    router.create_sales_order(key, o, lines, tax_for(o))
    if invoice:
        shipment = Shipment(shipment_id=f"{key}:1", shipped_at=datetime.now(UTC),
                            lines=[ShipmentLine(line_id=x.line_id, channel_sku=x.channel_sku, quantity=x.quantity)
                                   for x in o.lines])
        router.post_delivery(key, shipment, lines)
        router.create_invoice(key)
    return key


def change_shadow_tax(app: Any, key: str, delta: Decimal = Decimal("1.00")) -> str:
    """Someone changed the tax line of the shadow ERP's sales order for `key` (as a mis-set tax template would):
    the sandbox document itself is edited, its totals kept consistent. Returns the sales order's name."""
    sandbox = app.state.sandbox
    with sandbox.store.lock:
        for doc in sandbox.docs("Sales Order").values():
            if doc.get("po_no") == key and doc.get("docstatus") == 1:
                row = next(t for t in doc["taxes"] if t["account_head"] == TAX_ACCOUNT)
                row["tax_amount"] += delta
                doc["total_taxes_and_charges"] += delta
                doc["grand_total"] += delta
                doc["rounded_total"] = doc["grand_total"]
                return str(doc["name"])
    raise AssertionError(f"no submitted sales order {key} in the shadow ERP")


def write(tmp_path: Path, text: str, name: str = "erp_routing.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path
