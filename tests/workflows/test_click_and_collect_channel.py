"""A Shopify click-and-collect order reaches the store fulfillment path (issue 20, item 3) on the time-skipping
server: Shopify's published `orders/create` sample, unchanged, with the faithful pick-up fulfillment order at
location 655441491 (tests/fixtures/SOURCES.md) is mapped by the intake's mapping (`shopify.map_order` with the
network's pick-up locations) and run as tests/workflows/test_store_fulfillment.py runs its click-and-collect
order: planned on the store alone, released to it as a PICKUP store fulfillment, picked, collected, completed."""

from __future__ import annotations

import json

from adapters.marketplace import shopify
from canonical.order import OrderStatus
from canonical.sourcing import StoreFulfillmentState
from tests.conftest import fixture_bytes
from tests.workflows.test_split_fulfillment import _input, _run, _until
from tests.workflows.test_store_fulfillment import NETWORK, StoreFake, _engine, _staff, _store_state

SAMPLE = json.loads(fixture_bytes("shopify", "webhook_orders_create_sample_v2024.json"))
PICK_UP = json.loads(fixture_bytes("shopify", "rest_fulfillment_orders_pick_up_faithful.json"))
SKUS = [li["sku"] for li in SAMPLE["line_items"]]


async def test_a_shopify_pick_up_order_is_collected_at_its_store(ts_env, tmp_path):
    order = shopify.map_order({**SAMPLE, "fulfillment_orders": PICK_UP["fulfillment_orders"]},
                              pickup_locations={"655441491": "STORE-001"})
    assert order.pickup_store == "STORE-001" and order.shipping_address is None
    assert NETWORK.nodes_by_id()["STORE-001"].kind == "store"
    stock = {("STORE-001", sku): 2 for sku in SKUS} | {("WH-BER", sku): 50 for sku in SKUS}
    fake = StoreFake(_engine(tmp_path), stock=stock)
    inp = _input(order)
    seen: dict = {}

    async def during(handle):
        view, _ = await _until(handle, lambda v, s: _store_state(v) == "released", "released to the store")
        ref = view.releases[0].ref
        seen["ref"], seen["request"] = ref, fake.pos.fulfillment(ref)
        await _staff(fake, handle, ref, StoreFulfillmentState.PREPARED, "store:STORE-001:kim")
        await _until(handle, lambda v, s: _store_state(v) == "prepared", "picked")
        await _staff(fake, handle, ref, StoreFulfillmentState.COMPLETED, "store:STORE-001:kim")

    result, status, view = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.COMPLETED
    assert fake.arg("plan_sourcing").pickup_node == "STORE-001"
    assert [r.node_id for r in view.releases] == ["STORE-001"]  # not the warehouse, though it holds more stock
    request = seen["request"]
    assert request.kind.value == "PICKUP"
    assert sorted((ln.item_code, ln.quantity) for ln in request.lines) == [(sku, 1) for sku in sorted(SKUS)]
    assert seen["ref"] == f"{order.workflow_id}/STORE-001/1"
    assert fake.pos.fulfillment(seen["ref"]).state == StoreFulfillmentState.COMPLETED
