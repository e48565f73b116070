"""Store sales and online orders share one stock (issue 17), on SQLite and PostgreSQL: a store sale that lands
on reserved units takes them back from the open reservations at that item and location, newest first, in the
sale's transaction; replays change nothing; the ERP's own deliveries are left alone; what reservations cannot
cover shows up in `negative_free`; concurrent store sales and reservations never leave free stock below zero nor
take a reservation twice. And the store buffer is held back from the online channels."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from adapters import sql as db
from adapters.erp.local import LocalErp
from adapters.inventory.ledger import InventoryLedger, availability_of, shortfall_event_id
from adapters.pos.stock import PosStock
from adapters.sql.inventory import inventory_shortfalls
from canonical.errors import OutOfStock
from canonical.fulfillment import ResolvedLine
from canonical.inventory import ChannelInventoryPolicy, InventoryEvent, StockLevel
from canonical.order import Shipment, ShipmentLine
from canonical.pos import PosLine, PosTransaction, Tender

STORE = "STORE-1"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ORDERS = [f"order:shopify:{c}" for c in "ABCDEFGHIJ"]


def sale(sid: str, qty: int = 1, *, source: str = "pos:STORE-1", minutes: float = 60, sku: str = "LAMP",
         location: str = STORE) -> InventoryEvent:
    return InventoryEvent(source=source, source_event_id=sid, kind="sale", sku=sku, location=location,
                          quantity=qty, occurred_at=T0 + timedelta(minutes=minutes), reference=sid)


def receipt(sid: str, qty: int, *, location: str = STORE) -> InventoryEvent:
    return InventoryEvent(source="wms", source_event_id=sid, kind="receipt", sku="LAMP", location=location,
                          quantity=qty, occurred_at=T0)


def line(qty: int = 1) -> list[ResolvedLine]:
    return [ResolvedLine(line_id="1", channel_sku="LAMP", item_code="LAMP", quantity=qty)]


@pytest.fixture
def erp(engine) -> LocalErp:
    erp = LocalErp(engine)
    erp.upsert_item("LAMP", "Lamp", Decimal("25.00"), "USD")
    return erp


@pytest.fixture
def ledger(engine) -> InventoryLedger:
    return InventoryLedger(engine, policies={"shopify": ChannelInventoryPolicy(locations=[STORE])})


def level(ledger: InventoryLedger, location: str = STORE):
    return next(lv for lv in ledger.levels("LAMP") if lv.location == location)


def reservations(engine) -> dict[str, tuple[int, str]]:
    r = db.reservations
    with engine.connect() as conn:
        return {row.reservation_key: (row.quantity, row.status) for row in conn.execute(
            select(r.c.reservation_key, r.c.quantity, r.c.status).where(r.c.item_code == "LAMP"))}


@pytest.fixture
def all_reserved(engine, erp, ledger):
    """10 units at the store, reserved by orders A..J (created in that order)."""
    ledger.apply_event(receipt("rcpt", 10))
    for key in ORDERS:
        erp.reserve(key, line(), allow_backorder=False)
    lv = level(ledger)
    assert (lv.on_hand, lv.reserved, lv.free) == (10, 10, 0)
    return ledger


def test_store_sales_take_the_newest_reservations_first(engine, erp, all_reserved):
    ledger = all_reserved
    first = ledger.apply_event(sale("pos:T1:1"))
    batch = ledger.apply_events([sale("pos:T2:1", minutes=61), sale("pos:T3:1", minutes=62)])
    taken = [s for r in [first, *batch] for s in r.shortfalls]
    assert [(s.reservation_key, s.quantity, s.cause_event_id) for s in taken] == [
        ("order:shopify:J", 1, "pos:T1:1"), ("order:shopify:I", 1, "pos:T2:1"), ("order:shopify:H", 1, "pos:T3:1")]
    assert {(s.cause_source, s.store, s.location, s.item_code) for s in taken} == {
        ("pos:STORE-1", STORE, STORE, "LAMP")}
    assert taken[0].occurred_at == T0 + timedelta(minutes=60)
    lv = level(ledger)
    assert (lv.on_hand, lv.reserved, lv.free) == (7, 7, 0)
    held = reservations(engine)
    assert [held[k] for k in ORDERS[-3:]] == [(0, "released")] * 3
    assert all(held[k] == (1, "open") for k in ORDERS[:7])
    # the ledger records a release per reservation, referenced to the order, with a derived id
    releases = [(m["source_event_id"], m["d_reserved"], m["reference"], m["source"])
                for m in ledger.movements("LAMP") if m["kind"] == "release"]
    assert releases == [(shortfall_event_id("pos:T1:1", "order:shopify:J"), -1, "order:shopify:J", "shortfall"),
                        (shortfall_event_id("pos:T2:1", "order:shopify:I"), -1, "order:shopify:I", "shortfall"),
                        (shortfall_event_id("pos:T3:1", "order:shopify:H"), -1, "order:shopify:H", "shortfall")]
    rows = ledger.shortfalls()
    assert [(r["cause_event_id"], r["reservation_key"], r["quantity"], r["notified_at"]) for r in rows] == [
        ("pos:T3:1", "order:shopify:H", 1, None), ("pos:T2:1", "order:shopify:I", 1, None),
        ("pos:T1:1", "order:shopify:J", 1, None)]
    assert ledger.negative_free() == []
    # the units lost are really gone from the order: a release gives back only what is left (nothing)
    erp.release_reservation("order:shopify:J")
    assert level(ledger).reserved == 7


def test_a_replayed_store_sale_changes_nothing(engine, all_reserved):
    ledger = all_reserved
    assert ledger.apply_event(sale("pos:T1:1", 2)).shortfalls
    before = (level(ledger), reservations(engine), len(ledger.movements("LAMP")), len(ledger.shortfalls()))
    again = ledger.apply_event(sale("pos:T1:1", 2))
    in_batch = ledger.apply_events([sale("pos:T1:1", 2), sale("pos:T1:1", 2, minutes=99)])
    assert not again.applied and again.shortfalls == []
    assert [r.applied for r in in_batch] == [False, False] and all(r.shortfalls == [] for r in in_batch)
    assert (level(ledger), reservations(engine), len(ledger.movements("LAMP")), len(ledger.shortfalls())) == before


def test_one_sale_spreads_over_several_reservations_and_a_partly_held_one(engine, erp, ledger):
    ledger.apply_event(receipt("rcpt", 6))
    erp.reserve("order:A", line(2), allow_backorder=False)
    erp.reserve("order:B", line(3), allow_backorder=False)  # the newest
    result = ledger.apply_event(sale("pos:T1:1", 5))  # free was 1: 4 units come from reservations
    assert [(s.reservation_key, s.quantity) for s in result.shortfalls] == [("order:B", 3), ("order:A", 1)]
    assert reservations(engine) == {"order:A": (1, "open"), "order:B": (0, "released")}
    lv = level(ledger)
    assert (lv.on_hand, lv.reserved, lv.free) == (1, 1, 0)


def test_erp_sales_consume_their_own_reservation_and_are_left_alone(engine, erp, all_reserved):
    ledger = all_reserved
    # a delivery of order A: the ERP's own sale, consuming A's reservation
    shipment = Shipment(shipment_id="SH-1", carrier="ups", tracking_number="1Z", shipped_at=T0,
                        lines=[ShipmentLine(line_id="1", channel_sku="LAMP", quantity=1)])
    erp.post_delivery("order:shopify:A", shipment, line())
    assert reservations(engine)["order:shopify:A"] == (1, "consumed")
    lv = level(ledger)
    assert (lv.on_hand, lv.reserved, lv.free) == (9, 9, 0)
    # an ERP-sourced sale event that leaves free negative takes nothing from anyone
    result = ledger.apply_event(sale("erp:delivery:x", 1, source="erp"))
    assert result.applied and result.shortfalls == []
    assert all(q == 1 for q, _ in reservations(engine).values())
    assert ledger.shortfalls() == [] and ledger.negative_free() == [("LAMP", STORE, -1)]


def test_a_sale_beyond_every_reservation_leaves_the_hole_and_negative_free_reports_it(engine, erp, all_reserved):
    ledger = all_reserved
    result = ledger.apply_event(sale("pos:BIG:1", 12))  # 10 reserved, 10 on hand: 2 units the ledger never had
    assert sum(s.quantity for s in result.shortfalls) == 10
    assert [s.reservation_key for s in result.shortfalls] == list(reversed(ORDERS))
    lv = level(ledger)
    assert (lv.on_hand, lv.reserved, lv.allocated) == (-2, 0, 0)  # on-hand stays what the sale made it
    assert ledger.negative_free() == [("LAMP", STORE, -2)]
    with pytest.raises(OutOfStock):
        erp.reserve("order:shopify:K", line(), allow_backorder=False)
    ledger.apply_event(receipt("found", 2))
    assert ledger.negative_free() == []


def test_allocated_units_are_never_taken(engine, erp, ledger):
    ledger.apply_event(receipt("rcpt", 4))
    erp.reserve("order:A", line(2), allow_backorder=False)
    erp.reserve("order:B", line(2), allow_backorder=False)
    # the warehouse got order B's units (allocation: reserved → allocated); its ERP row still says 2 open
    ledger.apply_event(InventoryEvent(source="wms", source_event_id="alloc-B", kind="allocation", sku="LAMP",
                                      location=STORE, quantity=2, occurred_at=T0, reference="order:B"))
    result = ledger.apply_event(sale("pos:T1:1", 3))
    # only the 2 units still reserved in the ledger can be taken back; the allocated 2 stay with the warehouse
    assert sum(s.quantity for s in result.shortfalls) == 2
    lv = level(ledger)
    assert (lv.on_hand, lv.reserved, lv.allocated) == (1, 0, 2)
    assert ledger.negative_free() == [("LAMP", STORE, -1)]


def test_a_sale_that_fits_in_free_stock_takes_nothing_and_an_old_hole_is_not_this_sales(engine, erp, ledger):
    ledger.apply_event(receipt("rcpt", 5))
    erp.reserve("order:A", line(3), allow_backorder=False)
    assert ledger.apply_event(sale("pos:T1:1", 2)).shortfalls == []  # free 2 → 0
    assert ledger.apply_event(sale("pos:T2:1", 1)).shortfalls[0].quantity == 1  # free −1 → A gives 1
    assert reservations(engine)["order:A"] == (2, "open")
    # sales at another location do not touch the store's reservations
    ledger.apply_event(receipt("rcpt-main", 1, location="MAIN"))
    assert ledger.apply_event(sale("pos:T3:1", 2, location="MAIN")).shortfalls == []
    assert reservations(engine)["order:A"] == (2, "open")
    assert ledger.negative_free() == [("LAMP", "MAIN", -1)]


def test_pos_stock_reports_the_shortfalls_of_its_sales(engine, erp, all_reserved):
    erp.map_sku("pos", "LAMP-POS", "LAMP")
    at = T0 + timedelta(hours=2)
    txn = PosTransaction(pos_transaction_id="T9", store_id="S1", business_date=at.date(), kind="sale",
                         lines=[PosLine(sku="LAMP-POS", quantity=2, unit_price="25.00")],
                         tenders=[Tender(type="cash", amount="50.00")], occurred_at=at, currency="USD")
    stock = PosStock(engine, all_reserved)
    applied, replayed, shortfalls = stock.apply_with_shortfalls("S1", STORE, [txn])
    assert (applied, replayed) == (1, 0)
    assert [(s.reservation_key, s.quantity, s.cause_event_id, s.cause_source) for s in shortfalls] == [
        ("order:shopify:J", 1, "pos:T9:1", "pos:S1"), ("order:shopify:I", 1, "pos:T9:1", "pos:S1")]
    assert stock.apply_with_shortfalls("S1", STORE, [txn]) == (0, 1, [])


def test_shortfall_rows_are_unique_per_sale_and_reservation(engine, all_reserved):
    all_reserved.apply_event(sale("pos:T1:1"))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(inventory_shortfalls.insert().values(
            cause_source="pos", cause_event_id="pos:T1:1", reservation_key="order:shopify:J", item_code="LAMP",
            location=STORE, quantity=1, occurred_at=T0, created_at=T0))


def test_a_long_sale_id_still_gives_a_bounded_deterministic_release_id():
    long_id = "x" * 255
    sid = shortfall_event_id(long_id, "order:" + "y" * 200)
    assert len(sid) <= 255 and sid == shortfall_event_id(long_id, "order:" + "y" * 200)
    assert sid != shortfall_event_id(long_id, "order:" + "y" * 199)


# -- concurrency (PostgreSQL: row locks; SQLite serializes writers anyway) -----------------------------------
def test_concurrent_store_sales_and_reservations_never_oversell_or_double_take(engine, erp, ledger):
    """20 units, 10 already reserved; then at once 14 more orders try to reserve and 20 store sales of 1 unit land:
    the store sells all 20, so every reservation that got a unit must give it back, exactly once."""
    units, sales, orders = 20, 20, 14
    ledger.apply_event(receipt("rcpt", units))
    for n in range(10):
        erp.reserve(f"order:pre{n}", line(), allow_backorder=False)
    barrier = threading.Barrier(orders + sales)
    outcome: Counter[str] = Counter({"reserved": 10})
    shortfalls = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def order(n: int) -> None:
        barrier.wait()
        try:
            erp.reserve(f"order:{n}", line(), allow_backorder=False)
            with lock:
                outcome["reserved"] += 1
        except OutOfStock:
            with lock:
                outcome["out_of_stock"] += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def store_sale(n: int) -> None:
        barrier.wait()
        try:
            result = ledger.apply_event(sale(f"pos:C{n}:1", 1, minutes=60 + n))
            with lock:
                shortfalls.extend(result.shortfalls)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=order, args=(n,)) for n in range(orders)]
    threads += [threading.Thread(target=store_sale, args=(n,)) for n in range(sales)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert outcome["reserved"] + outcome["out_of_stock"] == orders + 10
    lv = level(ledger)
    assert (lv.on_hand, lv.reserved, lv.free) == (0, 0, 0)
    assert ledger.negative_free() == []
    held = reservations(engine)
    # never double-taken: each reservation that got a unit lost exactly that one unit, once
    lost = Counter(s.reservation_key for s in shortfalls)
    assert set(lost.values()) == {1}
    assert sorted(lost) == sorted(k for k in held) and len(lost) == outcome["reserved"] >= 10
    assert all(v == (0, "released") for v in held.values())
    assert len(ledger.shortfalls(limit=1000)) == len(shortfalls)


# -- the store buffer -----------------------------------------------------------------------------------------
def test_the_store_buffer_is_held_back_from_online_channels(engine, erp):
    policies = {"shopify": ChannelInventoryPolicy(locations=["MAIN", STORE]),
                "amazon": ChannelInventoryPolicy(locations=[STORE], location_buffers={STORE: 1})}
    ledger = InventoryLedger(engine, policies=policies, store_buffers={STORE: 3})
    ledger.apply_events([receipt("r1", 10), receipt("r2", 5, location="MAIN")])
    ats = {a.channel: a.ats for a in ledger.availability("LAMP")}
    assert ats == {"shopify": 5 + 10 - 3, "amazon": 10 - 1}  # a policy's own buffer for a location wins
    erp.reserve("order:A", line(8), allow_backorder=False)  # reserve picks the freest location: the store, 10
    ats = {a.channel: a.ats for a in ledger.availability("LAMP")}
    assert ats == {"shopify": 5 + 2 - 3, "amazon": 1}
    # the buffer is per location, not per channel total; ATS still floors at zero
    lv = [StockLevel(sku="LAMP", location=STORE, on_hand=2), StockLevel(sku="LAMP", location="MAIN", on_hand=4)]
    policy = ChannelInventoryPolicy(location_buffers={STORE: 5, "MAIN": 1})
    assert availability_of(lv, "shopify", policy).ats == 0
    assert availability_of(lv, "shopify", ChannelInventoryPolicy(location_buffers={STORE: 1})).ats == 5
    with pytest.raises(ValueError):
        ChannelInventoryPolicy(location_buffers={STORE: -1})


def test_store_buffers_setting_reads_json(monkeypatch):
    from runtime.settings import InventorySettings

    monkeypatch.setenv("RETAILFLOW_INVENTORY_STORE_BUFFERS", '{"STORE-1": 2, "STORE-2": 0}')
    assert InventorySettings().inventory_store_buffers == {"STORE-1": 2, "STORE-2": 0}
    monkeypatch.setenv("RETAILFLOW_INVENTORY_STORE_BUFFERS", '{"STORE-1": -2}')
    with pytest.raises(ValueError):
        InventorySettings()
