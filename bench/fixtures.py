"""Bench inputs: the published Shopify orders/create sample under fresh ids, its canonical order and shipment."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from functools import lru_cache

from adapters.marketplace import shopify
from bench.procs import ROOT
from canonical.order import Order, Shipment, ShipmentLine

ORDER_FIXTURE = ROOT / "tests" / "fixtures" / "shopify" / "webhook_orders_create_sample_v2024.json"
STOCK_PER_SKU = 5_000_000


@lru_cache
def _template() -> tuple[bytes, bytes]:
    body = ORDER_FIXTURE.read_bytes()
    original = re.search(rb'"id"\s*:\s*(\d+)', body).group(1)
    return body, original


def external_id(run: int, i: int) -> str:
    """A Shopify-sized (> 2^53) unique numeric id for order `i` of bench run `run`."""
    return str(9 * 10**17 + run * 10**9 + i)


def shopify_body(ext_id: str) -> bytes:
    """The sample order with every occurrence of its id replaced, so it stays self-consistent."""
    body, original = _template()
    return body.replace(original, ext_id.encode())


def canonical_order(ext_id: str, channel: str = "shopify") -> Order:
    return shopify.map_order(shopify.loads(shopify_body(ext_id)), channel=channel)


def full_shipment(order: Order) -> Shipment:
    return Shipment(shipment_id=f"ship-{order.external_order_id}", carrier="UPS",
                    tracking_number=f"1Z{order.external_order_id[-10:]}", shipped_at=datetime.now(UTC),
                    lines=[ShipmentLine(line_id=line.line_id, channel_sku=line.channel_sku, quantity=line.quantity)
                           for line in order.lines if line.requires_shipping])


def catalog_text() -> str:
    """The demo catalog with enough stock that no bench order parks for lack of it."""
    from retailflow.catalog import DEMO_CATALOG

    lines = DEMO_CATALOG.read_text().splitlines()
    out = [lines[0]]
    for line in lines[1:]:
        cols = line.split(",")
        cols[5] = str(STOCK_PER_SKU)
        out.append(",".join(cols))
    return "\n".join(out) + "\n"


def webhook_headers(body: bytes, secret: str, webhook_id: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Shopify-Topic": "orders/create",
            "X-Shopify-Webhook-Id": webhook_id, "X-Shopify-Hmac-Sha256": shopify.compute_hmac(body, secret)}


def payload_size() -> int:
    return len(json.dumps(json.loads(_template()[0])))
