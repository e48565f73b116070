"""Click-and-collect and ship-from-store on the dev server with the real worker composition (issue 20, item 3): the
store node is `pos:store`, served by the embedded POS (`worker.sourcing_activities`: `pos_store_fulfillments`); the
store staff confirm the pick and the pick-up (or the shipment) through the API with an API key, which signals the
order; the order completes with one channel confirmation, its units taken from the store."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import pytest_asyncio

from adapters.marketplace.shopify import map_order
from canonical.order import order_workflow_id
from starters.orders import start_order
from tests.integration.conftest import _running_stack
from workflows.order_fulfillment import OrderFulfillment

pytestmark = pytest.mark.integration

NETWORK = """
[[node]]
id = "STORE-1"
kind = "store"
location = "STORE-1"
adapter = "pos:store"
channels = ["*"]
ship_to = ["*"]
capacity_per_day = 40
cutoff = 17:00:00
time_zone = "America/New_York"
cost_per_shipment = { amount = "3.00", currency = "USD" }
rank = 1

[[node]]
id = "WH-MAIN"
kind = "warehouse"
location = "MAIN"
adapter = "wms:local"
channels = ["*"]
ship_to = ["*"]
capacity_per_day = 1000
cutoff = 15:00:00
time_zone = "America/New_York"
cost_per_shipment = { amount = "5.00", currency = "USD" }
rank = 2

[[policy]]
channel = "shopify"
nodes = ["STORE-1", "WH-MAIN"]
allow_split = true
max_splits = 1
"""


@pytest_asyncio.fixture
async def pos_stack(dev_env, engine, tmp_path):
    network = tmp_path / "fulfillment.toml"
    network.write_text(NETWORK)
    async with _running_stack(dev_env, engine, data_dir=tmp_path, split_fulfillment_channels=["shopify"],
                              fulfillment_network_file=network) as stack:
        yield stack


def _stock_the_store(stack) -> str:
    """Only the store has the sample order's items (the ERP reserves where most is free); an aviator item of this
    test's own."""
    erp = stack.adapters.erp
    aviator = f"AVIATOR-{uuid.uuid4().hex[:8]}"
    erp.upsert_item(aviator, "Aviator sunglasses", Decimal("89.99"), "USD")
    erp.map_sku("shopify", "SKU2006-001", aviator)
    for item, qty in ((aviator, 1), ("FURN-LOUNGER", 2), ("FURN-COFFEE-TABLE", 2)):
        erp.set_on_hand(item, "STORE-1", qty)
        erp.set_on_hand(item, "MAIN", 0)
    return aviator


async def _store_release(handle):
    for _ in range(300):
        split = await handle.query(OrderFulfillment.sourcing)
        if split.releases and split.releases[0].state == "released":
            return split.releases[0]
        await asyncio.sleep(0.2)
    raise AssertionError(f"never released to the store: {split}")


async def test_click_and_collect_with_the_embedded_pos_on_the_dev_server(pos_stack):
    stack = pos_stack
    aviator = _stock_the_store(stack)
    body, ext = stack.order_body()
    order = map_order(json.loads(body)).model_copy(update={"pickup_store": "STORE-1", "shipping_address": None})
    assert order.billing_address is not None
    await start_order(stack.client, stack.settings, order)
    handle = stack.client.get_workflow_handle(order_workflow_id("shopify", ext))
    release = await _store_release(handle)
    assert release.node_id == "STORE-1" and release.adapter == "pos:store"

    listed = (await stack.http.get("/pos/stores/STORE-1/fulfillments")).json()
    mine = next(f for f in listed if f["ref"] == release.ref)
    assert (mine["kind"], mine["state"]) == ("PICKUP", "PROPOSED")
    picked = await stack.http.post(f"/pos/stores/STORE-1/fulfillments/{release.ref}/picked")
    assert picked.status_code == 202, picked.text
    for _ in range(100):
        if (await handle.query(OrderFulfillment.sourcing)).releases[0].state == "prepared":
            break
        await asyncio.sleep(0.1)
    collected = await stack.http.post(f"/pos/stores/STORE-1/fulfillments/{release.ref}/collected")
    assert collected.status_code == 202, collected.text

    done = await stack.wait_status("shopify", ext, {"completed"}, timeout=90)
    assert done["status"] == "completed"
    [confirmation] = [u for u in stack.adapters.marketplace.updates("shopify", ext) if u["kind"] == "shipment"]
    shipment = confirmation["payload"]  # the channel's fulfillment of a collected order: no carrier, no tracking
    assert shipment["tracking_number"] is None and shipment["carrier"] is None, shipment
    assert shipment["shipment_id"] == "STORE-1:1:collected"
    status = await handle.query(OrderFulfillment.status)
    steps = {s.name: s.detail for s in status.steps}
    assert steps["store_picked"].startswith(f"{stack.admin_actor}: store STORE-1 picked")
    assert steps["store_collected"].startswith(f"{stack.admin_actor}: the customer collected")
    assert stack.adapters.erp.stock_levels(aviator)["STORE-1"] == {"on_hand": 0, "reserved": 0}


async def test_ship_from_store_through_the_shopify_webhook_and_the_store_staff(pos_stack):
    stack = pos_stack
    _stock_the_store(stack)
    body, ext = stack.order_body()
    assert (await stack.send_shopify(body)).status_code in (200, 202)
    handle = stack.client.get_workflow_handle(order_workflow_id("shopify", ext))
    release = await _store_release(handle)
    url = f"/pos/stores/STORE-1/fulfillments/{release.ref}"
    assert (await stack.http.post(f"{url}/collected")).status_code == 409  # a shipment is shipped, not collected
    assert (await stack.http.post(f"{url}/picked")).status_code == 202
    shipped = await stack.http.post(f"{url}/shipped", json={"carrier": "UPS", "tracking_number": "1Z999"})
    assert shipped.status_code == 202, shipped.text
    done = await stack.wait_status("shopify", ext, {"completed"}, timeout=90)
    assert done["status"] == "completed"
    [confirmation] = [u for u in stack.adapters.marketplace.updates("shopify", ext) if u["kind"] == "shipment"]
    assert (confirmation["payload"]["carrier"], confirmation["payload"]["tracking_number"]) == ("UPS", "1Z999")


async def test_a_store_sale_that_takes_a_ship_from_store_orders_units_re_sources_them_to_the_warehouse(pos_stack):
    """The Done-when of issue 20 through the POS role: the store node is `pos:store`; the store sells the order's
    last aviator over the counter before its staff pick; the aviator is re-sourced to the warehouse, the store ships
    the rest, and the order completes with two channel confirmations."""
    stack = pos_stack
    erp = stack.adapters.erp
    aviator = _stock_the_store(stack)
    erp.map_sku("pos", "SKU2006-001", aviator)
    body, ext = stack.order_body()
    assert (await stack.send_shopify(body)).status_code in (200, 202)
    handle = stack.client.get_workflow_handle(order_workflow_id("shopify", ext))
    release = await _store_release(handle)
    assert (release.node_id, release.adapter, len(release.line_ids)) == ("STORE-1", "pos:store", 3)
    assert erp.stock_levels(aviator)["STORE-1"]["reserved"] == 1
    erp.set_on_hand(aviator, "MAIN", 5)  # the warehouse has aviators again

    resp = await stack.http.post("/inventory/events", json={"events": [{
        "source": "pos", "source_event_id": f"sale-{ext}", "kind": "sale", "sku": aviator,
        "location": "STORE-1", "quantity": 1, "occurred_at": datetime.now(UTC).isoformat()}]})
    assert resp.status_code in (200, 202), resp.text
    for _ in range(150):
        split = await handle.query(OrderFulfillment.sourcing)
        if any(r.node_id == "WH-MAIN" for r in split.releases):
            break
        await asyncio.sleep(0.2)
    moved = [r for r in split.releases if r.node_id == "WH-MAIN"]
    assert moved and [ln.item_code for ln in moved[0].lines] == [aviator], split
    store = [r for r in split.releases if r.node_id == "STORE-1" and r.state not in ("cancelled", "refused")]
    assert len(store) == 1 and aviator not in {ln.item_code for ln in store[0].lines}, split

    listed = {f["ref"]: f for f in (await stack.http.get("/pos/stores/STORE-1/fulfillments")).json()}
    assert store[0].ref in listed, listed
    url = f"/pos/stores/STORE-1/fulfillments/{store[0].ref}"
    assert (await stack.http.post(f"{url}/picked")).status_code == 202
    shipped = await stack.http.post(f"{url}/shipped", json={"carrier": "UPS", "tracking_number": "1Z-STORE"})
    assert shipped.status_code == 202, shipped.text

    done = await stack.wait_status("shopify", ext, {"completed"}, timeout=120)
    assert done["status"] == "completed"
    confirmations = [u for u in stack.adapters.marketplace.updates("shopify", ext) if u["kind"] == "shipment"]
    assert len(confirmations) == 2, confirmations
    assert erp.stock_levels(aviator)["MAIN"] == {"on_hand": 4, "reserved": 0}
    assert erp.stock_levels(aviator)["STORE-1"]["on_hand"] == 0
