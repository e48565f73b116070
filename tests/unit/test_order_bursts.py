"""starters/bursts.py: a store's orders above its rate start one priority lower (issue 19)."""

from __future__ import annotations

from starters.bursts import BurstMeter, meter_for
from workflows.priorities import FINANCE, ORDERS, ORDERS_BURST, RETURNS, priority_for


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_store_within_its_rate_keeps_order_priority_and_a_burst_is_demoted():
    clock = Clock()
    meter = BurstMeter(per_minute=60, allowance=3, clock=clock)  # 1 order/s, 3 at once
    assert [meter.take("shop-a") for _ in range(5)] == [True, True, True, False, False]
    assert meter.take("shop-b")  # another store has its own bucket
    clock.t += 1.0  # one second refills one order
    assert meter.take("shop-a") and not meter.take("shop-a")
    clock.t += 60  # a quiet minute refills the bucket, never above the allowance
    assert [meter.take("shop-a") for _ in range(4)] == [True, True, True, False]


def test_a_steady_store_at_its_rate_is_never_demoted():
    clock = Clock()
    meter = BurstMeter(per_minute=30, allowance=2, clock=clock)
    for _ in range(100):
        assert meter.take("shop")
        clock.t += 2.0  # 30 a minute


def test_zero_turns_metering_off_and_the_meter_is_one_per_process():
    meter = BurstMeter(per_minute=0, allowance=1)
    assert all(meter.take("shop") for _ in range(1000))
    assert meter_for(30, 10) is meter_for(30, 10)


def test_burst_priority_sits_between_returns_and_finance():
    assert ORDERS < RETURNS < ORDERS_BURST < FINANCE
    assert priority_for("orders_burst", "shop").priority_key == ORDERS_BURST == 3
