"""Inventory end to end on the dev server: a stock event batch through the API reaches each channel's
availability once; an order's reservation reaches it too (ERP movement → outbox relay → InventorySync)."""

from __future__ import annotations

import asyncio
import csv
import uuid
from datetime import UTC, datetime

import pytest
from temporalio.service import RPCError

from canonical.fulfillment import ResolvedLine
from canonical.inventory import ChannelInventoryPolicy
from retailflow.catalog import DEMO_CATALOG
from starters.inventory import relay_stock_changes

pytestmark = pytest.mark.integration

FAST = {"shopify": ChannelInventoryPolicy(locations=["MAIN"], publish_window_seconds=1, low_stock_threshold=5),
        "amazon": ChannelInventoryPolicy(locations=["MAIN"], share="0.5", safety_stock=2, publish_window_seconds=1)}


def _event(sku: str, sid: str, kind: str, qty: int) -> dict:
    return {"source": "wms", "source_event_id": sid, "kind": kind, "sku": sku, "location": "MAIN",
            "quantity": qty, "occurred_at": datetime.now(UTC).isoformat()}


async def _published(stack, sku: str, channel: str, want, timeout: float = 30) -> list[int]:
    deadline = asyncio.get_running_loop().time() + timeout
    seen: list[int] = []
    while asyncio.get_running_loop().time() < deadline:
        seen = [p["quantity"] for p in stack.adapters.marketplace.publications(sku, channel)]
        if want(seen):
            return seen
        await asyncio.sleep(0.2)
    raise AssertionError(f"{channel} publications of {sku}: {seen}")


async def _stop_syncs(stack, skus) -> None:
    for sku in skus:  # the dev server outlives this test's worker: end the syncs it started
        try:
            await stack.client.get_workflow_handle(f"inventory:{sku}").terminate()
        except RPCError:
            pass


async def test_an_event_batch_reaches_every_channel_once(stack):
    stack.adapters.inventory.policies = FAST
    sku = f"INV-{uuid.uuid4().hex[:8]}"
    try:
        batch = {"events": [_event(sku, f"{sku}-r1", "receipt", 12)]}
        resp = await stack.http.post("/inventory/events", json=batch)
        assert resp.status_code == 202, resp.text
        assert resp.json() == {"accepted": 1, "workflows": [f"inventory:{sku}"]}
        assert await _published(stack, sku, "shopify", lambda s: s == [12]) == [12]
        assert await _published(stack, sku, "amazon", lambda s: s == [5]) == [5]  # floor((12 - 2) × 0.5)

        # a replayed batch changes nothing; a sale to zero is published at once
        assert (await stack.http.post("/inventory/events", json=batch)).status_code == 202
        resp = await stack.http.post("/inventory/events", json={"events": [_event(sku, f"{sku}-s1", "sale", 12)]})
        assert resp.status_code == 202
        assert await _published(stack, sku, "shopify", lambda s: s[-1:] == [0]) == [12, 0]

        view = (await stack.http.get(f"/inventory/{sku}")).json()
        assert view["levels"][0]["on_hand"] == 0 and view["levels"][0]["location"] == "MAIN"
        assert {a["channel"]: a["ats"] for a in view["availability"]} == {"shopify": 0, "amazon": 0}
        told = (await stack.http.get(f"/inventory/{sku}/publications", params={"channel": "shopify"})).json()
        assert [p["quantity"] for p in told] == [0, 12]  # newest first
        moves = (await stack.http.get(f"/inventory/{sku}/movements")).json()
        assert [m["source_event_id"] for m in moves] == [f"{sku}-r1", f"{sku}-s1"]

        bad = await stack.http.post("/inventory/events", json={"events": [_event(sku, "x", "receipt", 0)]})
        assert bad.status_code == 422
        assert (await stack.http.post("/inventory/events", json={"events": []})).status_code == 422
        assert (await stack.http.get("/inventory/NO-SUCH-SKU")).status_code == 404
    finally:
        await _stop_syncs(stack, [sku])


async def test_an_orders_reservation_reaches_the_channels(stack):
    stack.adapters.inventory.policies = FAST
    skus = sorted({row["item_code"] for row in csv.DictReader(DEMO_CATALOG.open(encoding="utf-8"))})
    stop = asyncio.Event()
    relay = asyncio.create_task(relay_stock_changes(stack.client, stack.adapters.inventory, poll_seconds=0.2,
                                                    task_queue=stack.settings.task_queue, stop=stop))
    try:
        # the catalog import counted the stock: the relay tells each SKU's sync, which publishes it
        await _published(stack, "SUN-AVIATOR", "shopify", lambda s: s == [500])
        # the order workflow's reserve step (the ERP's reserve): a ledger movement in the same transaction
        stack.adapters.erp.reserve("order:shopify:inv-it", [ResolvedLine(
            line_id="1", channel_sku="SKU2006-001", item_code="SUN-AVIATOR", quantity=3)], allow_backorder=False)
        await _published(stack, "SUN-AVIATOR", "shopify", lambda s: s[-1:] == [497])
        stack.adapters.erp.release_reservation("order:shopify:inv-it")
        assert await _published(stack, "SUN-AVIATOR", "shopify", lambda s: s[-1:] == [500]) == [500, 497, 500]
    finally:
        stop.set()
        await relay
        await _stop_syncs(stack, skus)
