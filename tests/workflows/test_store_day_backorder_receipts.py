"""A POS return puts an item back on the store's shelf (issue 20, backorders wait for a receipt): StoreDay applies it
(the real POS and inventory activities over a SQLite ledger) and signals `stock_received` to each order with a
backordered line waiting for the item at that store (table `backorder_waits`), here a stand-in named
"OrderFulfillment"; the waits of an order that is gone are removed, and a sale tells no one."""

from __future__ import annotations

import concurrent.futures
import uuid
from datetime import date, timedelta

from temporalio import workflow
from temporalio.worker import Worker

from activities.sourcing import StockReceived
from adapters.inventory.backorders import BackorderBook
from canonical.inventory import BackorderWait
from canonical.pos import PosLine, PosTransaction, StoreDayInput, Tender
from tests.workflows.test_inventory_shortfall_signals import STORE, T0, World
from workflows.inventory_sync import InventorySync
from workflows.store_day import StoreDay


@workflow.defn(name="OrderFulfillment", sandboxed=False)  # a test stand-in for the order workflow
class BackorderedOrder:
    def __init__(self) -> None:
        self.got: list[StockReceived] = []

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal
    def stock_received(self, receipt: StockReceived) -> None:
        self.got.append(receipt)

    @workflow.query
    def receipts(self) -> list[StockReceived]:
        return self.got


def _txn(w: World, txn_id: str, kind: str, qty: int) -> PosTransaction:
    return PosTransaction(pos_transaction_id=f"{w.sku}-{txn_id}", store_id="AMS01", business_date=date(2026, 11, 2),
                          kind=kind, lines=[PosLine(sku=w.sku, quantity=qty, unit_price="25.00")],
                          tenders=[Tender(type="cash", amount=f"{25 * qty}.00")],
                          occurred_at=T0 + timedelta(hours=1), currency="USD")


async def test_a_pos_return_tells_the_orders_whose_backorder_waits_for_the_item_at_that_store(ts_env, tmp_path):
    w = World(ts_env, tmp_path)
    book = BackorderBook(w.engine)
    waiting, gone, elsewhere = (f"order:shopify:{uuid.uuid4().hex[:6]}" for _ in range(3))
    for key, where in ((waiting, [STORE, "MAIN"]), (gone, [STORE]), (elsewhere, ["WH-BER"])):
        book.replace(key, ["1"], [BackorderWait(order_key=key, line_id="1", item_code=w.sku, channel="shopify",
                                                quantity=2, locations=where)])
    async with Worker(ts_env.client, task_queue=w.queue, workflows=[InventorySync, StoreDay, BackorderedOrder],
                      activities=[*w.inventory.all(), *w.pos.all(), w.standins.record_run_status()],
                      activity_executor=concurrent.futures.ThreadPoolExecutor(8)):
        orders = {k: await ts_env.client.start_workflow(BackorderedOrder.run, id=k, task_queue=w.queue)
                  for k in (waiting, elsewhere)}
        inp = StoreDayInput(store_id="AMS01", business_date=date(2026, 11, 2), location=STORE, legal_entity="main")
        day = await ts_env.client.start_workflow(
            StoreDay.run, inp, id=f"{inp.workflow_id}:{w.sku}", task_queue=w.queue, start_signal="transactions",
            start_signal_args=[[_txn(w, "R1", "return", 2), _txn(w, "S1", "sale", 1)]])  # the sale takes no reservation
        for _ in range(40):
            summary = await day.query(StoreDay.status)
            if any(s.name == "backorder_receipt" for s in summary.steps):
                break
            await ts_env.sleep(1)
        step = next(s for s in summary.steps if s.name == "backorder_receipt")
        got = {k: await h.query(BackorderedOrder.receipts) for k, h in orders.items()}
        for h in [day, *orders.values()]:
            await h.terminate()
    assert got[elsewhere] == []  # its nodes are not at the store
    assert [(r.event_id, r.item_code, r.quantity, r.location) for r in got[waiting]] == [
        (f"pos:{w.sku}-R1:1", w.sku, 2, STORE)]  # the return, not the sale
    assert step.state == "failed" and f"told 1 order(s) {waiting}" in (step.detail or "")
    assert f"not told: {gone}" in (step.detail or "")
    assert book.of_order(gone) == [] and len(book.of_order(waiting)) == 1  # the order removes its own when it ends
