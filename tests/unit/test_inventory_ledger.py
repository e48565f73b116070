"""The inventory ledger on SQLite and PostgreSQL: idempotent by source event id, cycle counts applied in time
order whatever the arrival order, transfers, the ATS formula, and the embedded ERP reserving from it."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import delete

from adapters import sql as db
from adapters.erp.local import LocalErp
from adapters.inventory.ledger import InventoryLedger, availability_of
from canonical.errors import OutOfStock
from canonical.fulfillment import ResolvedLine
from canonical.inventory import (
    ChannelInventoryPolicy,
    InventoryEvent,
    InventoryEventBatch,
    StockLevel,
    StockSnapshotLine,
)

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def ev(sid: str, kind: str, qty: int, minutes: float, *, sku: str = "CHAIR", location: str = "MAIN",
       to: str | None = None) -> InventoryEvent:
    return InventoryEvent(source="wms", source_event_id=sid, kind=kind, sku=sku, location=location, quantity=qty,
                          occurred_at=T0 + timedelta(minutes=minutes), counterpart_location=to)


@pytest.fixture
def ledger(engine) -> InventoryLedger:
    return InventoryLedger(engine, policies={"shopify": ChannelInventoryPolicy(locations=["MAIN"])})


def level(ledger: InventoryLedger, location: str = "MAIN", sku: str = "CHAIR") -> StockLevel:
    return next(lv for lv in ledger.levels(sku) if lv.location == location)


def test_a_replayed_event_changes_nothing(ledger):
    first = ledger.apply_event(ev("r1", "receipt", 10, 0))
    again = ledger.apply_event(ev("r1", "receipt", 10, 0))
    assert first.applied and not again.applied
    assert level(ledger).on_hand == 10
    assert [m["source_event_id"] for m in ledger.movements("CHAIR")] == ["r1"]


def test_each_kind_moves_the_right_bucket(ledger):
    ledger.apply_events([
        ev("r", "receipt", 20, 0), ev("s", "sale", 2, 1), ev("a", "adjustment", -1, 2), ev("d", "damage", 3, 3),
        ev("res", "reservation", 4, 4), ev("rel", "release", 1, 5), ev("al", "allocation", 2, 6),
    ])
    lv = level(ledger)
    assert (lv.on_hand, lv.reserved, lv.allocated, lv.damaged) == (20 - 2 - 1 - 3, 4 - 1 - 2, 2, 3)


def test_a_transfer_is_in_transit_at_its_destination_until_received(ledger):
    ledger.apply_events([ev("r", "receipt", 10, 0), ev("out", "transfer_out", 4, 1, to="STORE-1")])
    assert level(ledger).on_hand == 6
    store = level(ledger, "STORE-1")
    assert (store.on_hand, store.in_transit) == (0, 4)
    ledger.apply_event(ev("in", "transfer_in", 4, 30, location="STORE-1"))
    store = level(ledger, "STORE-1")
    assert (store.on_hand, store.in_transit) == (4, 0)


def test_an_event_older_than_the_latest_count_is_applied_in_time_order(ledger):
    ledger.apply_event(ev("r", "receipt", 5, 0))  # 09:00
    ledger.apply_event(ev("count-1", "cycle_count", 20, 120))  # 11:00 the count says 20
    late = ledger.apply_event(ev("sale-late", "sale", 3, 90))  # 10:30, reported after the count
    assert late.applied and late.superseded_by_count and level(ledger).on_hand == 20  # the count saw it
    ledger.apply_event(ev("sale-after", "sale", 2, 150))  # 11:30
    assert level(ledger).on_hand == 18
    stale = ledger.apply_event(ev("count-0", "cycle_count", 100, 105))  # an older count arriving late
    assert stale.superseded_by_count and level(ledger).on_hand == 18
    ledger.apply_event(ev("count-2", "cycle_count", 30, 135))  # 11:15, counted before the 11:30 sale
    assert level(ledger).on_hand == 28
    assert level(ledger).last_count_at == T0 + timedelta(minutes=135)


def test_bad_events_are_refused():
    with pytest.raises(ValidationError):
        ev("x", "receipt", 0, 0)
    with pytest.raises(ValidationError):
        ev("x", "sale", -1, 0)
    with pytest.raises(ValidationError):
        ev("x", "transfer_out", 1, 0)  # no destination
    with pytest.raises(ValidationError):
        InventoryEvent(source="wms", source_event_id="x", kind="receipt", sku="A", location="M", quantity=1,
                       occurred_at=datetime(2026, 1, 1))  # naive
    with pytest.raises(ValidationError):
        InventoryEventBatch(events=[])


# -- availability to sell -------------------------------------------------------------------------------------
def _lv(location: str, on_hand: int, reserved: int = 0, allocated: int = 0) -> StockLevel:
    return StockLevel(sku="CHAIR", location=location, on_hand=on_hand, reserved=reserved, allocated=allocated)


def test_ats_is_the_eligible_free_stock_less_safety_stock_times_the_share_floored():
    levels = [_lv("MAIN", 20, 3, 2), _lv("STORE", 10, 1), _lv("OUTLET", 50)]
    policy = ChannelInventoryPolicy(locations=["MAIN", "STORE"], safety_stock=2, share=Decimal("0.5"))
    a = availability_of(levels, "amazon", policy)
    assert a.ats == 10 and a.locations == ["MAIN", "STORE"] and (a.on_hand, a.reserved, a.allocated) == (30, 4, 2)
    assert availability_of(levels, "x", policy.model_copy(update={"share": Decimal("0.33")})).ats == 6  # 6.6 → 6
    assert availability_of(levels, "x", ChannelInventoryPolicy()).ats == 20 - 5 + 9 + 50  # all locations
    assert availability_of([_lv("MAIN", 3, 5)], "x", ChannelInventoryPolicy()).ats == 0  # floored at zero
    assert availability_of([_lv("MAIN", 5)], "x", ChannelInventoryPolicy(safety_stock=5)).ats == 0


def test_the_ledger_computes_ats_per_configured_channel(engine):
    ledger = InventoryLedger(engine, policies={
        "shopify": ChannelInventoryPolicy(locations=["MAIN"], backorder=True),
        "amazon": ChannelInventoryPolicy(locations=["MAIN", "STORE"], share=Decimal("0.5"), safety_stock=1)})
    ledger.apply_events([ev("r1", "receipt", 10, 0), ev("r2", "receipt", 7, 0, location="STORE"),
                         ev("res", "reservation", 3, 1)])
    by_channel = {a.channel: a for a in ledger.availability("CHAIR")}
    assert by_channel["shopify"].ats == 7 and by_channel["shopify"].backorder
    assert by_channel["amazon"].ats == 6  # floor(((10-3-1) + (7-1)) * 0.5)
    assert ledger.allows_backorder("shopify") and not ledger.allows_backorder("amazon")


# -- the embedded ERP reserves from the ledger --------------------------------------------------------------
def _erp(engine) -> LocalErp:
    erp = LocalErp(engine)
    erp.upsert_item("CHAIR", "Chair", Decimal("10"), "USD")
    return erp


def _line(qty: int) -> list[ResolvedLine]:
    return [ResolvedLine(line_id="1", channel_sku="CH", item_code="CHAIR", quantity=qty)]


def test_erp_reservations_and_releases_are_ledger_movements(engine, ledger):
    erp = _erp(engine)
    erp.set_on_hand("CHAIR", "MAIN", 5)
    erp.reserve("order:shopify:1", _line(2), allow_backorder=False)
    assert level(ledger).reserved == 2 and ledger.availability("CHAIR")[0].ats == 3
    ledger.apply_event(InventoryEvent(source="pos", source_event_id="pos-sale", kind="sale", sku="CHAIR",
                                      location="MAIN", quantity=2, occurred_at=datetime.now(UTC)))  # a POS sale
    with pytest.raises(OutOfStock):
        erp.reserve("order:shopify:2", _line(2), allow_backorder=False)
    erp.release_reservation("order:shopify:1")
    kinds = [(m["kind"], m["d_on_hand"], m["d_reserved"]) for m in ledger.movements("CHAIR")]
    assert kinds == [("cycle_count", 5, 0), ("reservation", 0, 2), ("sale", -2, 0), ("release", 0, -2)]
    assert erp.stock_levels("CHAIR") == {"MAIN": {"on_hand": 3, "reserved": 0}}


def test_allocated_units_are_not_free_to_reserve(engine, ledger):
    erp = _erp(engine)
    ledger.apply_events([ev("r", "receipt", 4, 0), ev("res", "reservation", 3, 1), ev("al", "allocation", 3, 2)])
    with pytest.raises(OutOfStock, match="short by 1"):
        erp.reserve("order:shopify:3", _line(2), allow_backorder=False)


# -- drift -------------------------------------------------------------------------------------------------
def test_compare_with_a_snapshot_finds_each_difference(ledger):
    ledger.apply_events([ev("r", "receipt", 10, 0), ev("r2", "receipt", 3, 0, location="STORE")])
    snap = ledger.save_snapshot([StockSnapshotLine(sku="CHAIR", location="MAIN", on_hand=8),
                                 StockSnapshotLine(sku="CHAIR", location="STORE", on_hand=3),
                                 StockSnapshotLine(sku="CHAIR", location="BACK", on_hand=1)])
    diffs = {(d.location, d.difference) for d in ledger.compare(snap)}
    assert diffs == {("MAIN", -2), ("BACK", 1)}
    fix = ledger.adjust_to("CHAIR", "MAIN", 8, source="drift", source_event_id="drift:1:CHAIR:MAIN",
                           expected_on_hand=10)
    assert fix.applied and level(ledger).on_hand == 8
    assert not ledger.adjust_to("CHAIR", "MAIN", 8, source="drift", source_event_id="drift:1:CHAIR:MAIN").applied


# -- property: a shuffled, duplicated stream ends where the clean stream does -----------------------------------
KINDS = ["receipt", "sale", "adjustment", "cycle_count", "reservation", "release", "damage", "transfer_out",
         "transfer_in", "allocation"]


@st.composite
def streams(draw) -> list[InventoryEvent]:
    n = draw(st.integers(min_value=1, max_value=25))
    out = []
    for i in range(n):
        kind = draw(st.sampled_from(KINDS))
        loc = draw(st.sampled_from(["MAIN", "STORE"]))
        qty = draw(st.integers(min_value=0 if kind == "cycle_count" else 1, max_value=30))
        if kind in ("adjustment", "allocation") and draw(st.booleans()):
            qty = -qty
        minute = draw(st.integers(min_value=0, max_value=40))  # ties on purpose
        other = "STORE" if loc == "MAIN" else "MAIN"
        out.append(ev(f"e{i}", kind, qty, minute, location=loc, to=other if kind == "transfer_out" else None))
    return out


def _state(engine) -> dict:
    with engine.connect() as conn:
        return {(r.item_code, r.location): (r.on_hand, r.reserved, r.allocated, r.in_transit, r.damaged)
                for r in conn.execute(db.inventory_levels.select())}


def _reset(engine) -> None:
    with engine.begin() as conn:
        for t in (db.inventory_levels, db.inventory_movements, db.inventory_counts, db.inventory_outbox):
            conn.execute(delete(t))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=streams(), seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_a_shuffled_duplicated_stream_ends_in_the_same_ledger_as_the_clean_one(engine, events, seed):
    ledger = InventoryLedger(engine)
    _reset(engine)
    ledger.apply_events(sorted(events, key=lambda e: (e.occurred_at, e.source_event_id)))
    clean = _state(engine)
    _reset(engine)
    rng = random.Random(seed)
    messy = events + rng.sample(events, k=rng.randint(0, len(events)))
    rng.shuffle(messy)
    results = ledger.apply_events(messy)
    assert sum(r.applied for r in results) == len(events)
    assert _state(engine) == clean


def test_the_channel_backorder_policy_decides_what_an_order_may_do():
    from runtime.settings import Settings
    from starters.orders import channel_allows_backorder

    s = Settings(allow_backorder=False, inventory_channels={"pos": {"backorder": True}, "web": {}})
    assert channel_allows_backorder(s, "pos")
    assert not channel_allows_backorder(s, "web") and not channel_allows_backorder(s, "other")
    assert channel_allows_backorder(Settings(allow_backorder=True, inventory_channels={}), "web")
