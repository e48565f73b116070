"""Backorder waits (issue 20, adapters/inventory/backorders.py over `backorder_waits`), on SQLite and PostgreSQL (the
`engine` fixture): the sourcing activity writes a wait per item of each backordered line and removes it when a later
plan places the line; a receipt applied by InventorySync's activity finds the orders waiting for the item at that
location; an order that ends forgets its waits; a receipt that lands while the plan is made is not missed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.testing import ActivityEnvironment

from activities.inventory import ApplyEventsInput, InventoryActivities, OrderKeysInput
from activities.sourcing import SourcingActivities
from adapters.inventory.backorders import BackorderBook
from adapters.inventory.ledger import InventoryLedger
from adapters.ports import Adapters
from canonical.inventory import BackorderWait, ChannelInventoryPolicy, InventoryEvent
from canonical.sourcing import SourcingRequest
from tests.unit.test_sourcing import NETWORK, line

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)
ORDER_A, ORDER_B = "order:shopify:A1", "order:shopify:B2"
SHOPIFY_LOCATIONS = ["STORE-001", "SUP-ACME", "WH-BER", "WH-NYC"]  # the shopify policy's nodes in fulfillment.toml


def event(sid: str, kind: str, sku: str, location: str, qty: int, minute: int = 0) -> InventoryEvent:
    return InventoryEvent(source="wms", source_event_id=sid, kind=kind, sku=sku, location=location, quantity=qty,
                          occurred_at=T0 + timedelta(minutes=minute))


def wait(order: str, line_id: str, item: str, qty: int = 1, locations=("WH-BER",)) -> BackorderWait:
    return BackorderWait(order_key=order, line_id=line_id, item_code=item, channel="shopify", quantity=qty,
                         locations=list(locations))


def test_the_book_replaces_a_plans_lines_finds_them_by_item_and_location_and_forgets_an_order(engine):
    book = BackorderBook(engine)
    book.replace(ORDER_A, ["1", "2"], [wait(ORDER_A, "1", "LED-BULB", 4), wait(ORDER_A, "2", "DESK-LAMP")])
    book.replace(ORDER_B, ["1"], [wait(ORDER_B, "1", "LED-BULB", 2, locations=())])  # [] : anywhere
    assert [(w.order_key, w.line_id, w.quantity) for w in book.waiting_for("LED-BULB", "WH-BER")] == [
        (ORDER_A, "1", 4), (ORDER_B, "1", 2)]
    assert [w.order_key for w in book.waiting_for("LED-BULB", "WH-NYC")] == [ORDER_B]  # A's nodes are not there
    assert book.waiting_for("FLOOR-LAMP", "WH-BER") == []
    first = {w.line_id: w.since for w in book.of_order(ORDER_A)}

    # a later plan of line 1 only: it is placed (no wait); line 2 is untouched; backordered again, `since` is kept
    book.replace(ORDER_A, ["1"], [])
    assert [(w.line_id, w.item_code) for w in book.of_order(ORDER_A)] == [("2", "DESK-LAMP")]
    book.replace(ORDER_A, ["2"], [wait(ORDER_A, "2", "DESK-LAMP", 3)])
    again = book.of_order(ORDER_A)
    assert [(w.line_id, w.quantity) for w in again] == [("2", 3)] and again[0].since == first["2"]

    assert book.forget(ORDER_A) == 1 and book.of_order(ORDER_A) == []
    assert [w.order_key for w in book.all()] == [ORDER_B]


def _ledger(engine) -> InventoryLedger:
    return InventoryLedger(engine, policies={"shopify": ChannelInventoryPolicy(safety_stock=0)})


def test_plan_sourcing_writes_a_wait_per_item_of_a_backordered_kit_and_removes_it_once_placed(engine):
    ledger = _ledger(engine)
    book = BackorderBook(engine)
    ledger.apply_events([event("r1", "receipt", "DESK-LAMP", "WH-BER", 5),
                         event("r2", "receipt", "LED-BULB", "WH-BER", 1)])
    acts = SourcingActivities(ledger, NETWORK, backorders=book)
    env = ActivityEnvironment()
    kit = SourcingRequest(order_key=ORDER_A, channel="shopify", ship_to_country="DE", lines=[
        line("1", "DESK-SET", 2), line("2", "DESK-LAMP", 1)])
    plan = env.run(acts.plan_sourcing, kit)
    assert [b.line_id for b in plan.backordered] == ["1"] and plan.allocations[0].line_ids == ["2"]
    # the kit line waits for each of its components (2 lamps, 4 bulbs), at the shopify policy's locations
    assert [(w.line_id, w.item_code, w.quantity, w.locations) for w in book.of_order(ORDER_A)] == [
        ("1", "DESK-LAMP", 2, SHOPIFY_LOCATIONS), ("1", "LED-BULB", 4, SHOPIFY_LOCATIONS)]

    ledger.apply_event(event("r3", "receipt", "LED-BULB", "WH-BER", 3, 1))
    placed = env.run(acts.plan_sourcing, kit.model_copy(update={"lines": [line("1", "DESK-SET", 2)]}))
    assert placed.backordered == [] and placed.node_ids == ["WH-BER"]
    assert book.of_order(ORDER_A) == []

    # the same activity without a book (the tests' stand-in ledgers) writes nothing
    SourcingActivities(ledger, NETWORK).plan_sourcing(kit.model_copy(update={"order_key": ORDER_B}))
    assert book.of_order(ORDER_B) == []


def _inventory(engine, ledger) -> InventoryActivities:
    return InventoryActivities(Adapters(erp=None, wms=None, tax=None, marketplace=None,  # type: ignore[arg-type]
                                        inventory=ledger))


def test_a_receipt_applied_by_the_sync_names_each_order_waiting_for_the_item_at_that_location(engine):
    ledger = _ledger(engine)
    book = BackorderBook(engine)
    book.replace(ORDER_A, ["1", "2"], [wait(ORDER_A, "1", "LED-BULB", 4), wait(ORDER_A, "2", "LED-BULB", 1)])
    book.replace(ORDER_B, ["3"], [wait(ORDER_B, "3", "LED-BULB", 2, locations=("WH-BER", "WH-NYC"))])
    acts = _inventory(engine, ledger)
    env = ActivityEnvironment()
    summary = env.run(acts.apply_inventory_events, ApplyEventsInput(events=[
        event("wms:rcpt-1", "receipt", "LED-BULB", "WH-BER", 24),
        event("wms:rcpt-2", "receipt", "LED-BULB", "WH-NYC", 5),  # only B plans on WH-NYC
        event("wms:sale-1", "sale", "LED-BULB", "WH-BER", 1),  # on-hand down: nobody is told
        event("wms:rcpt-3", "receipt", "DESK-LAMP", "WH-BER", 5),  # nobody waits for lamps
    ]))
    assert [(r.order_key, r.event_id, r.item_code, r.quantity, r.location) for r in summary.backorder_receipts] == [
        (ORDER_A, "wms:rcpt-1", "LED-BULB", 24, "WH-BER"), (ORDER_B, "wms:rcpt-1", "LED-BULB", 24, "WH-BER"),
        (ORDER_B, "wms:rcpt-2", "LED-BULB", 5, "WH-NYC")]  # one per order, however many of its lines wait

    # a transfer in and a count up raise on-hand too; a replayed receipt tells no one again
    moved = env.run(acts.apply_inventory_events, ApplyEventsInput(events=[
        event("wms:rcpt-1", "receipt", "LED-BULB", "WH-BER", 24),
        event("wms:xfer-1", "transfer_in", "LED-BULB", "WH-NYC", 2, 5),
        event("wms:count-1", "cycle_count", "LED-BULB", "WH-BER", 40, 6)]))
    assert [(r.order_key, r.event_id) for r in moved.backorder_receipts] == [
        (ORDER_B, "wms:xfer-1"), (ORDER_A, "wms:count-1"), (ORDER_B, "wms:count-1")]

    assert env.run(acts.forget_backorders, OrderKeysInput(keys=[ORDER_A, "order:shopify:gone"])) == 2
    assert [w.order_key for w in book.all()] == [ORDER_B]


class _ReceiptDuringThePlan(BackorderBook):
    """A receipt committed after plan_sourcing read the stock and before it wrote its waits: the sync's lookup
    (right after the receipt) found no wait for it."""

    def __init__(self, engine, ledger: InventoryLedger) -> None:
        super().__init__(engine)
        self.ledger = ledger
        self.found: list[list[BackorderWait]] = []

    def replace(self, order_key, line_ids, waits) -> None:
        if not self.found:
            self.ledger.apply_event(event("wms:rcpt-race", "receipt", "LED-BULB", "WH-BER", 10))
            self.found.append(self.waiting_for("LED-BULB", "WH-BER"))
        super().replace(order_key, line_ids, waits)


def test_a_receipt_landing_while_the_plan_is_made_is_not_missed(engine):
    ledger = _ledger(engine)
    book = _ReceiptDuringThePlan(engine, ledger)
    acts = SourcingActivities(ledger, NETWORK, backorders=book)
    request = SourcingRequest(order_key=ORDER_A, channel="shopify", ship_to_country="DE",
                              lines=[line("1", "LED-BULB", 4)])
    plan = ActivityEnvironment().run(acts.plan_sourcing, request)
    assert book.found == [[]]  # the receipt's lookup found nobody waiting
    assert plan.backordered == [] and plan.node_ids == ["WH-BER"]  # the stock read again: planned again, placed
    assert book.of_order(ORDER_A) == []


def test_an_analyst_lists_the_orders_waiting_for_an_item(engine):
    from fastapi.testclient import TestClient

    from adapters.platform.api_keys import ApiKeyStore
    from api.app import create_app
    from runtime.settings import Settings
    from tests.auth import headers

    BackorderBook(engine).replace(ORDER_A, ["2"], [wait(ORDER_A, "2", "LED-BULB", 4)])
    http = TestClient(create_app(Settings(_env_file=None), engine=engine), raise_server_exceptions=False)
    _, viewer = ApiKeyStore(engine).create("vic", "viewer")
    listed = http.get("/inventory/LED-BULB/backorders", headers=headers(viewer))
    assert listed.status_code == 200, listed.text
    assert [(w["order_key"], w["line_id"], w["quantity"], w["locations"]) for w in listed.json()] == [
        (ORDER_A, "2", 4, ["WH-BER"])]
    assert http.get("/inventory/LED-BULB/backorders?location=WH-NYC", headers=headers(viewer)).json() == []
    assert http.get("/inventory/LED-BULB/backorders").status_code == 401


def test_the_worker_keeps_the_waits_of_what_it_plans_and_can_forget_them(tmp_path):
    """The composition root wires the book: the worker's plan_sourcing writes waits in the platform database, and
    the worker registers forget_backorders (the order's last step after a backorder)."""
    import worker
    from adapters.sql import create_schema, make_engine
    from runtime.registry import build_adapters
    from runtime.settings import Settings

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'rf.db'}", split_fulfillment_channels=["shopify"])
    engine = make_engine(settings.database_url)
    create_schema(engine)
    adapters = build_adapters(settings, engine)
    plan = next(fn for fn in worker.sourcing_activities(adapters, settings) if fn.__name__ == "plan_sourcing")
    request = SourcingRequest(order_key=ORDER_A, channel="shopify", ship_to_country="DE",
                              lines=[line("1", "LED-BULB", 4)])
    assert [b.line_id for b in ActivityEnvironment().run(plan, request).backordered] == ["1"]
    assert [(w.line_id, w.item_code) for w in BackorderBook(engine).of_order(ORDER_A)] == [("1", "LED-BULB")]
    assert "forget_backorders" in {fn.__name__ for fn in worker.worker_activities(adapters, settings)}
