"""No oversell under real concurrency: two channels send 50 orders each at once for a SKU with 10 units.

Each order runs the order workflow's own reserve step (`OrderActivities.reserve_stock`, the activity, in an activity
context) on its own thread and database connection. Exactly 10 units are reserved; the other orders follow their
channel's policy: out of stock (the workflow parks as needs_attention) or a backorder."""

from __future__ import annotations

import threading
from collections import Counter
from decimal import Decimal

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.orders import OrderActivities, ReserveInput
from adapters import sql as db
from adapters.inventory.ledger import InventoryLedger
from canonical.fulfillment import ResolvedLine
from canonical.inventory import ChannelInventoryPolicy
from runtime.registry import build_adapters
from runtime.settings import Settings

ORDERS_PER_CHANNEL = 50
UNITS = 10


def _setup(engine):
    adapters = build_adapters(Settings(), engine)
    adapters.erp.upsert_item("LAMP", "Lamp", Decimal("25"), "USD")
    adapters.erp.set_on_hand("LAMP", "MAIN", UNITS)
    return OrderActivities(adapters)


def _storm(acts: OrderActivities, backorder: dict[str, bool]) -> list[tuple[str, str]]:
    """100 reservations released at once from 100 threads; (channel, outcome) per order."""
    start = threading.Barrier(2 * ORDERS_PER_CHANNEL)
    outcomes: list[tuple[str, str]] = []
    lock = threading.Lock()

    def order(channel: str, i: int) -> None:
        inp = ReserveInput(key=f"order:{channel}:{i}", allow_backorder=backorder[channel],
                           lines=[ResolvedLine(line_id="1", channel_sku="LAMP", item_code="LAMP", quantity=1)])
        start.wait()
        try:
            res = ActivityEnvironment().run(acts.reserve_stock, inp)
            outcome = "backordered" if sum(r.backordered for r in res.lines) else "reserved"
        except ApplicationError as err:
            assert err.non_retryable, err
            outcome = err.type or "?"
        with lock:
            outcomes.append((channel, outcome))

    threads = [threading.Thread(target=order, args=(ch, i)) for ch in backorder for i in range(ORDERS_PER_CHANNEL)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    return outcomes


def _reserved_units(engine) -> tuple[int, int]:
    with engine.connect() as conn:
        row = conn.execute(db.inventory_levels.select().where(db.inventory_levels.c.item_code == "LAMP")).one()
        res = conn.execute(db.reservations.select().where(db.reservations.c.item_code == "LAMP")).mappings().all()
    return row.reserved, sum(r["quantity"] for r in res)


@pytest.mark.timeout(240)
def test_two_channels_racing_for_ten_units_get_exactly_ten(engine):
    acts = _setup(engine)
    outcomes = _storm(acts, {"shopify": False, "amazon": False})
    assert len(outcomes) == 2 * ORDERS_PER_CHANNEL
    counts = Counter(outcome for _, outcome in outcomes)
    assert counts == {"reserved": UNITS, "OutOfStock": 2 * ORDERS_PER_CHANNEL - UNITS}
    assert _reserved_units(engine) == (UNITS, UNITS)
    ledger = InventoryLedger(engine, policies={"shopify": ChannelInventoryPolicy()})
    assert ledger.availability("LAMP")[0].ats == 0
    moves = [m for m in ledger.movements("LAMP") if m["kind"] == "reservation"]
    assert len(moves) == UNITS and sum(m["d_reserved"] for m in moves) == UNITS


@pytest.mark.timeout(240)
def test_a_backorder_channel_backorders_what_the_other_cannot_have(engine):
    acts = _setup(engine)
    outcomes = _storm(acts, {"shopify": True, "amazon": False})
    by_channel = Counter(outcomes)
    reserved = by_channel[("shopify", "reserved")] + by_channel[("amazon", "reserved")]
    assert reserved == UNITS
    assert by_channel[("shopify", "reserved")] + by_channel[("shopify", "backordered")] == ORDERS_PER_CHANNEL
    assert by_channel[("amazon", "reserved")] + by_channel[("amazon", "OutOfStock")] == ORDERS_PER_CHANNEL
    assert _reserved_units(engine) == (UNITS, UNITS)  # backorders hold no stock
