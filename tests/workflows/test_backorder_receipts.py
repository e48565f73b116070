"""Backorders wait for a receipt (issue 20) on the time-skipping server: a split order backorders a line (the real
`plan_sourcing` over a real SQLite ledger writes its wait in `backorder_waits`), a receipt of the item goes into
InventorySync the way `POST /inventory/events` sends it (signal-with-start, the real inventory activities), and
InventorySync signals the order `stock_received`; the order releases the line with no hand-sent signal, ships and
completes, and forgets its waits. A receipt at a location none of the order's nodes is at tells it nothing; an
order that is gone has its waits removed by InventorySync."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import uuid
from datetime import timedelta

from temporalio.service import RPCError
from temporalio.worker import Worker

from activities.inventory import InventoryActivities
from activities.sourcing import NodeShipment, SourcingActivities
from adapters.inventory.backorders import BackorderBook
from adapters.inventory.ledger import InventoryLedger
from adapters.ports import Adapters
from adapters.sql import create_schema, make_engine
from canonical.inventory import BackorderWait, ChannelInventoryPolicy, InventoryEvent, inventory_workflow_id
from canonical.order import OrderStatus
from starters.inventory import start_inventory_sync
from tests.workflows.test_inventory_sync import RecordingMarket
from tests.workflows.test_split_fulfillment import (
    FOUR_LINES_BY_ID,
    NETWORK,
    NOW,
    STOCK,
    SplitFake,
    _by_node,
    _input,
    _order,
    _released,
    _shipment,
    _until,
)
from workflows.inventory_sync import InventorySync
from workflows.order_fulfillment import OrderFulfillment


class World:
    """The split order's stand-in node activities (tests/workflows/test_split_fulfillment.py), but sourcing over a real
    ledger with its backorder book, and the real inventory activities behind InventorySync."""

    def __init__(self, tmp_path) -> None:
        self.engine = make_engine(f"sqlite:///{tmp_path / 'retailflow.db'}")
        create_schema(self.engine)
        self.ledger = InventoryLedger(self.engine, policies={"shopify": ChannelInventoryPolicy()})
        self.book = BackorderBook(self.engine)
        self.ledger.apply_events([InventoryEvent(source="wms", source_event_id=f"seed:{loc}:{item}", kind="receipt",
                                                 sku=item, location=loc, quantity=qty, occurred_at=NOW)
                                  for (loc, item), qty in STOCK.items() if item != "LED-BULB"])  # no bulbs anywhere
        self.fake = SplitFake({})
        self.fake.sourcing = SourcingActivities(self.ledger, NETWORK, backorders=self.book)
        self.market = RecordingMarket()
        adapters = Adapters(erp=None, wms=None, tax=None, marketplace=self.market,  # type: ignore[arg-type]
                            inventory=self.ledger)
        self.inventory = InventoryActivities(adapters)
        self.queue = f"backorders-{uuid.uuid4().hex[:8]}"

    def worker(self, env) -> Worker:
        activities = [a for a in self.fake.all() if a.__name__ != "forget_backorders"] + self.inventory.all()
        return Worker(env.client, task_queue=self.queue, workflows=[OrderFulfillment, InventorySync],
                      activities=activities, activity_executor=concurrent.futures.ThreadPoolExecutor(4))

    def receipt(self, sid: str, location: str, quantity: int) -> InventoryEvent:
        return InventoryEvent(source="wms", source_event_id=sid, kind="receipt", sku="LED-BULB", location=location,
                              quantity=quantity, occurred_at=NOW + timedelta(hours=2))

    async def receive(self, env, event: InventoryEvent) -> None:  # what POST /inventory/events does
        await start_inventory_sync(env.client, sku=event.sku, events=[event], task_queue=self.queue)

    @contextlib.asynccontextmanager
    async def sync_ends(self, env):
        """The SKU's InventorySync is terminated however the test ends (the next test starts its own)."""
        try:
            yield
        finally:
            with contextlib.suppress(RPCError):
                await env.client.get_workflow_handle(inventory_workflow_id("LED-BULB")).terminate()

    async def applied(self, env, source_event_id: str) -> None:
        for _ in range(200):
            if any(m["source_event_id"] == source_event_id for m in self.ledger.movements("LED-BULB")):
                view = await env.client.get_workflow_handle(inventory_workflow_id("LED-BULB")).query(
                    InventorySync.status)
                if view.pending_events == 0:
                    return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{source_event_id} never applied")


async def test_a_backordered_line_is_released_by_a_receipt_through_inventory_sync(ts_env, tmp_path):
    w = World(tmp_path)
    inp = _input(_order())
    order_id = inp.order.workflow_id
    async with w.worker(ts_env), w.sync_ends(ts_env):
        handle = await ts_env.client.start_workflow(OrderFulfillment.run, inp, id=order_id, task_queue=w.queue)
        before, _ = await _until(handle, _released, "released")
        assert [(b.line_id, b.item_code) for b in before.backordered] == [("2", "LED-BULB")]
        assert _by_node(before) == {"WH-BER": ("released", ["1", "3"], "wms:local"),
                                    "ACME": ("released", ["4"], "supplier:edi")}
        [waiting] = w.book.of_order(order_id)  # the sourcing activity wrote the wait
        assert (waiting.line_id, waiting.item_code, waiting.quantity, waiting.locations) == (
            "2", "LED-BULB", 4, ["SUP-ACME", "WH-BER", "WH-HAM"])

        # bulbs received where no node of the order is: applied and published, the order is not told
        await w.receive(ts_env, w.receipt("wms:asn-7:1", "WH-XYZ", 50))
        await w.applied(ts_env, "wms:asn-7:1")
        assert "stock_received" not in [s.name for s in (await handle.query(OrderFulfillment.status)).steps]

        # bulbs received at WH-BER: InventorySync tells the order, which plans line 2 again and releases it
        await w.receive(ts_env, w.receipt("wms:asn-8:1", "WH-BER", 24))
        after, status = await _until(handle, lambda v, s: not v.backordered and len(v.releases) == 3 and all(
            r.state == "released" for r in v.releases), "backorder released by the receipt")
        assert {(r.node_id, tuple(r.line_ids), r.state) for r in after.releases} == {
            ("WH-BER", ("1", "3"), "released"), ("ACME", ("4",), "released"), ("WH-BER", ("2",), "released")}
        received = [s.detail for s in status.steps if s.name == "stock_received"]
        assert received == ["24 × LED-BULB received at WH-BER (wms:asn-8:1); line(s) 2 planned again"]
        assert w.book.of_order(order_id) == []  # placed: it waits no more

        # the same receipt delivered again (a webhook retry) is a replay in the ledger: nobody is told twice
        await w.receive(ts_env, w.receipt("wms:asn-8:1", "WH-BER", 24))
        await w.applied(ts_env, "wms:asn-8:1")
        for r in after.releases:
            lines = [(lid, dict(FOUR_LINES_BY_ID)[lid], q) for lid, q in
                     ((lid, dict((ln.line_id, ln.quantity) for ln in r.lines)[lid]) for lid in r.line_ids)]
            await handle.signal(OrderFulfillment.node_shipment,
                                NodeShipment(release_ref=r.ref, shipment=_shipment(f"S-{r.ref[-1]}", *lines)))
        result = await handle.result()
        final = await handle.query(OrderFulfillment.status)
    assert result.status == OrderStatus.COMPLETED
    assert final.shipped_quantities == {"1": 1, "2": 4, "3": 1, "4": 1}
    assert [s.name for s in final.steps].count("stock_received") == 1
    assert "backorder_released" in [s.name for s in final.steps]
    assert w.fake.count()["plan_sourcing"] == 2  # the order's plan, then line 2's on the receipt


async def test_inventory_sync_removes_the_waits_of_an_order_that_is_gone(ts_env, tmp_path):
    w = World(tmp_path)
    gone = "order:shopify:gone-1"
    w.book.replace(gone, ["1"], [BackorderWait(order_key=gone, line_id="1", item_code="LED-BULB", channel="shopify",
                                               quantity=2, locations=["WH-BER"])])
    async with w.worker(ts_env), w.sync_ends(ts_env):
        await w.receive(ts_env, w.receipt("wms:asn-9:1", "WH-BER", 5))
        for _ in range(200):
            if not w.book.of_order(gone):
                break
            await asyncio.sleep(0.05)
    assert w.book.of_order(gone) == []
    assert any(m["source_event_id"] == "wms:asn-9:1" for m in w.ledger.movements("LED-BULB"))
