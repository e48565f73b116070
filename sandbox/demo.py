"""Demo data for the vendor sandboxes, put in through the vendors' own APIs (as one would set up a real tenant).

* ERPNext: the retailflow custom fields (`ErpNext.ensure_custom_fields`), one Customer per channel, an Item per
  catalog item code whose *Customer Items* map each channel SKU (`Item Customer Detail`: customer = the channel's
  customer, ``ref_code`` = the channel SKU — how adapters/erp/erpnext.py resolves SKUs), and its stock as a
  Material Receipt Stock Entry per item into the configured warehouse. The catalog is the embedded demo catalog
  (retailflow/demo_catalog.csv: every SKU of the Shopify samples) plus sandbox/demo_catalog_amazon.csv (the Amazon
  demo order's seller SKUs). Idempotent: what exists is left alone.
* Shopify: the README's sample order (tests/fixtures/shopify/webhook_orders_create_sample_v2024.json) in the shop,
  so `retailflow shopify send` of that file is an order the shop knows (fulfillments and refunds go to it), and a
  product variant per Shopify SKU of the catalog (inventory publication sets their levels).
* Amazon: `amazon_order` builds a merchant-fulfilled, unshipped order in the shape of the published SP-API
  sandbox payloads (getOrders TEST_CASE_200 row, getOrderItems), with a fresh id and today's dates.
"""

from __future__ import annotations

import csv
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import structlog

from runtime.settings import Settings

log = structlog.get_logger(__name__)

ROOT = Path(__file__).resolve().parents[1]
AMAZON_CATALOG = Path(__file__).with_name("demo_catalog_amazon.csv")
SHOPIFY_SAMPLE = ROOT / "tests" / "fixtures" / "shopify" / "webhook_orders_create_sample_v2024.json"
SEED_REF = "sandbox-demo-stock"


@dataclass
class SeedReport:
    custom_fields: int = 0
    customers: list[str] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    stock_entries: int = 0
    shopify_orders: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{len(self.items)} new ERPNext item(s)", f"{len(self.customers)} customer(s)",
                 f"{self.stock_entries} stock receipt(s)"]
        if self.shopify_orders:
            parts.append(f"Shopify order(s) {', '.join(self.shopify_orders)}")
        return ", ".join(parts)


def catalog_rows(paths: list[Path] | None = None) -> list[dict[str, str]]:
    from retailflow.catalog import DEMO_CATALOG

    rows: list[dict[str, str]] = []
    for path in paths or [Path(DEMO_CATALOG), AMAZON_CATALOG]:
        with open(path, newline="") as f:
            rows += [{k: (v or "").strip() for k, v in r.items()} for r in csv.DictReader(f)]
    return rows


def seed_erpnext(settings: Settings, rows: list[dict[str, str]] | None = None) -> SeedReport:
    """Customers, items with their channel SKUs, and stock in ERPNext (the sandbox or a real site)."""
    from adapters.erp.erpnext import REF, ErpNext

    rows = catalog_rows() if rows is None else rows
    erp = ErpNext.from_settings(settings)
    report = SeedReport()
    try:
        report.custom_fields = erp.ensure_custom_fields()
        for channel in sorted({r["channel"] for r in rows}):
            customer = erp.customer_for(channel)
            if erp.get_doc("Customer", customer) is None:
                erp.insert("Customer", {"customer_name": customer, "customer_type": "Company",
                                        "customer_group": "Commercial", "territory": "All Territories"}, submit=False)
                report.customers.append(customer)
        items: dict[str, dict[str, Any]] = {}
        for r in rows:
            item = items.setdefault(r["item_code"], {
                "item_code": r["item_code"], "item_name": r["name"], "item_group": "Products", "stock_uom": "Nos",
                "is_stock_item": 1, "standard_rate": r["unit_price"], "on_hand": int(r["on_hand"]),
                "customer_items": []})
            if r["channel_sku"] != r["item_code"]:
                item["customer_items"].append({"customer_name": erp.customer_for(r["channel"]),
                                               "ref_code": r["channel_sku"]})
        for code, item in items.items():
            on_hand = item.pop("on_hand")
            if erp.get_doc("Item", code) is None:
                erp.insert("Item", {**item, "standard_rate": float(Decimal(item["standard_rate"]))}, submit=False)
                report.items.append(code)
            ref = f"{SEED_REF}:{code}"
            if on_hand > 0 and erp.find("Stock Entry", [[REF, "=", ref]]) is None:
                erp.insert("Stock Entry", {
                    "stock_entry_type": "Material Receipt", "purpose": "Material Receipt", "company": erp.company,
                    REF: ref, "remarks": "retailflow sandbox demo stock",
                    "items": [{"item_code": code, "qty": on_hand, "t_warehouse": erp.warehouse}]})
                report.stock_entries += 1
    finally:
        erp.close()
    return report


def seed_shopify_order(settings: Settings, body: bytes, *, notify: bool = False) -> str:
    """Put a Shopify order (an orders/create payload) into the Shopify sandbox; `notify` also sends it to the
    platform as a signed orders/create webhook. Returns the order id."""
    resp = httpx.post(f"{settings.shopify_admin_base_url}/_admin/orders", params={"notify": str(notify).lower()},
                      content=body, headers={"Content-Type": "application/json"}, timeout=30)
    resp.raise_for_status()
    return str(resp.json()["order_id"])


def seed_demo(settings: Settings) -> SeedReport:
    """Everything the README's vendor walkthrough needs: the ERPNext catalog and the Shopify sample order."""
    report = seed_erpnext(settings)
    if SHOPIFY_SAMPLE.is_file():
        body = SHOPIFY_SAMPLE.read_bytes()
        order_id = json.loads(body)["id"]
        known = httpx.get(f"{settings.shopify_admin_base_url}/admin/api/{settings.shopify_admin_api_version}/orders/"
                          f"{order_id}.json", params={"fields": "id"}, timeout=30, headers={
                              "X-Shopify-Access-Token": settings.shopify_admin_access_token.get_secret_value()})
        if known.status_code == 404:  # a shop that has it already keeps it as it is (fulfilled, refunded…)
            report.shopify_orders.append(seed_shopify_order(settings, body))
        else:
            known.raise_for_status()
    skus = sorted({r["channel_sku"] for r in catalog_rows() if r.get("channel") == "shopify" and r.get("channel_sku")})
    if skus:  # the shop's variants of the catalog (inventory publication sets their levels); idempotent
        httpx.post(f"{settings.shopify_admin_base_url}/_admin/products", json=skus, timeout=30).raise_for_status()
    log.info("sandbox.demo_seeded", summary=report.summary())
    return report


def amazon_order_id() -> str:
    return f"{secrets.randbelow(900) + 100}-{secrets.randbelow(9_000_000) + 1_000_000}-" \
           f"{secrets.randbelow(9_000_000) + 1_000_000}"


def amazon_order(order_id: str | None = None, *, lines: list[tuple[str, int, str]] | None = None,
                 marketplace_id: str = "ATVPDKIKX0DER", tax_rate: str = "0.065",
                 now: datetime | None = None) -> dict[str, Any]:
    """`POST /_admin/orders` body of the Amazon sandbox: an Unshipped MFN order (the published sandbox row's
    fields) with one item per `(seller SKU, quantity, unit price)`, shipped to Seattle, WA (`tax_rate` is the
    ItemTax Amazon collected; WA's state rate by default)."""
    order_id = order_id or amazon_order_id()
    now = (now or datetime.now(UTC)).astimezone(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = lines or [("AMZ-AVIATOR-BLK", 1, "89.99")]
    items, total = [], Decimal(0)
    for n, (sku, qty, unit) in enumerate(lines, start=1):
        price = Decimal(unit) * qty
        tax = (price * Decimal(tax_rate)).quantize(Decimal("0.01"))
        total += price + tax
        items.append({
            "ASIN": f"B0SANDBOX{n:02d}", "OrderItemId": f"{int(order_id.replace('-', '')[-10:]) * 10 + n:014d}",
            "SellerSKU": sku, "Title": sku, "QuantityOrdered": qty, "QuantityShipped": 0,
            "ProductInfo": {"NumberOfItems": "1"},
            "ItemPrice": {"CurrencyCode": "USD", "Amount": str(price)},
            "ItemTax": {"CurrencyCode": "USD", "Amount": str(tax)},
            "PromotionDiscount": {"CurrencyCode": "USD", "Amount": "0.00"},
            "IsGift": "false", "ConditionId": "New", "ConditionSubtypeId": "New", "IsTransparency": False,
            "SerialNumberRequired": False})
    order = {
        "AmazonOrderId": order_id, "PurchaseDate": stamp, "LastUpdateDate": stamp, "OrderStatus": "Unshipped",
        "FulfillmentChannel": "MFN", "SalesChannel": "Amazon.com", "ShipServiceLevel": "Std US D2D Dom",
        "OrderTotal": {"CurrencyCode": "USD", "Amount": str(total)}, "NumberOfItemsShipped": 0,
        "NumberOfItemsUnshipped": sum(q for _, q, _ in lines), "PaymentMethod": "Other",
        "PaymentMethodDetails": ["Standard"], "IsReplacementOrder": False, "MarketplaceId": marketplace_id,
        "ShipmentServiceLevelCategory": "Standard", "OrderType": "StandardOrder", "IsBusinessOrder": False,
        "IsPrime": False, "IsGlobalExpressEnabled": False, "IsPremiumOrder": False, "IsSoldByAB": False,
        "IsISPU": False, "IsAccessPointOrder": False, "BuyerInfo": {"BuyerEmail": "buyer@marketplace.amazon.com"}}
    address = {"Name": "Sandbox Buyer", "AddressLine1": "2201 Westlake Ave", "City": "Seattle",
               "StateOrRegion": "WA", "PostalCode": "98121", "CountryCode": "US", "AddressType": "Residential"}
    return {"order": order, "items": items, "address": address}


def place_amazon_order(settings: Settings, body: dict[str, Any]) -> str:
    """Put an order into the Amazon sandbox; the platform's order poll (ChannelOrderPoll) finds it at its next poll."""
    resp = httpx.post(f"{settings.amazon_sp_base_url}/_admin/orders", content=json.dumps(body),
                      headers={"Content-Type": "application/json"}, timeout=30)
    resp.raise_for_status()
    return str(resp.json()["AmazonOrderId"])
