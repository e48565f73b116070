"""A partner whose quota is per shop (Shopify's Admin API: per store access token) on the dev server (issue 19):
the partner queue's per-fairness-key rate (RETAILFLOW_PARTNER_FAIRNESS_KEY_RATE_LIMITS, set by
runtime.breakers.apply_partner_key_rates as every worker does at start) holds each shop to its own rate, so one
shop's burst is spread over time in its own lane and a second shop's call is not queued behind it.

Orders are started by the platform's starter (starters/orders.py: the fairness key is the order's channel, the
shop); a same-name stand-in of OrderFulfillment sends its one step to the partner queue without any priority of
its own, as workflows/runbook.py does: the activity inherits its workflow's fairness key (Temporal's rule), which is
what the server limits per key. The partner worker has plenty of slots and a queue-wide limit well above the
per-shop one: without the per-key rate, shop A's burst is served at once (the first test fails).

The breaker's queue-rate updates (open: 0, half-open, closed) carry only the queue's rate: the per-key default
they leave in the server's config is checked on the server's answer to each."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
import uuid
from datetime import timedelta

import pytest
import pytest_asyncio
from temporalio import activity, workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.breakers import set_queue_rate
from adapters.marketplace.shopify import map_order
from canonical.fulfillment import OrderFulfillmentInput
from runtime.breakers import apply_partner_key_rates
from runtime.codec import data_converter
from runtime.settings import Settings
from starters.orders import start_order
from tests.conftest import fixture_bytes
from tests.integration.conftest import CODEC_KEYRING
from worker import temporal_cli_path
from workflows import search_attributes as sa

pytestmark = pytest.mark.integration

PER_SHOP = 1.0  # activities/second per shop
QUEUE_RATE = 50.0  # the partner queue's own limit: far above one shop's
BURST = 8  # shop A's flash sale
CALLS: list[tuple[str, float]] = []  # (shop, when the partner call ran)


@activity.defn(name="call_partner")
def call_partner(shop: str) -> None:
    CALLS.append((shop, time.monotonic()))


@workflow.defn(name="OrderFulfillment", sandboxed=False)
class OrderStandIn:
    @workflow.run
    async def run(self, inp: OrderFulfillmentInput) -> None:
        queue = inp.activity_task_queues["call_partner"]
        await workflow.execute_activity(call_partner, inp.order.channel, task_queue=queue,
                                        start_to_close_timeout=timedelta(seconds=30))


@pytest_asyncio.fixture(scope="module")
async def env():
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli_path(), data_converter=data_converter(CODEC_KEYRING),
        search_attributes=sa.ALL,
        dev_server_extra_args=["--log-level", "error",
                               "--dynamic-config-value", "matching.enableFairness=true",
                               "--dynamic-config-value", "matching.numTaskqueueReadPartitions=1",
                               "--dynamic-config-value", "matching.numTaskqueueWritePartitions=1"])
    try:
        yield env
    finally:
        await env.shutdown()


def order(channel: str):
    payload = json.loads(fixture_bytes("shopify", "webhook_orders_create_sample_v2024.json"))
    payload["id"] = int(uuid.uuid4().int % 10**17)
    return map_order(payload, channel=channel)


def partner_settings(*, per_shop: float | None) -> Settings:
    tag = uuid.uuid4().hex[:8]
    partner = f"partner-{tag}"
    return Settings(_env_file=None, task_queue=f"orders-{tag}", partner_activity_rate_limits={partner: QUEUE_RATE},
                    partner_fairness_key_rate_limits={partner: per_shop} if per_shop else {},
                    activity_task_queues={"call_partner": partner})


async def burst_then_one(env, settings: Settings) -> tuple[list[float], float, float]:
    """Shop A's burst, then one order of shop B; returns A's call times and B's (from B's start)."""
    CALLS.clear()
    partner = next(iter(settings.partner_activity_rate_limits))
    pool = concurrent.futures.ThreadPoolExecutor(16)
    async with Worker(env.client, task_queue=settings.task_queue, workflows=[OrderStandIn]), \
            Worker(env.client, task_queue=partner, activities=[call_partner], activity_executor=pool,
                   max_concurrent_activities=16, max_task_queue_activities_per_second=QUEUE_RATE):
        for _ in range(BURST):
            await start_order(env.client, settings, order("shop-a"))
        await asyncio.sleep(0.3)  # A's burst is on the partner queue first
        b_started = time.monotonic()
        await start_order(env.client, settings, order("shop-b"))
        deadline = time.monotonic() + 40
        while len(CALLS) < BURST + 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    assert len(CALLS) == BURST + 1, CALLS
    a_times = sorted(t for shop, t in CALLS if shop == "shop-a")
    (b_time,) = [t for shop, t in CALLS if shop == "shop-b"]
    return a_times, b_started, b_time


async def test_a_shops_burst_is_held_to_its_rate_and_another_shop_is_not_queued_behind_it(env):
    settings = partner_settings(per_shop=PER_SHOP)
    applied = await apply_partner_key_rates(env.client, settings)
    assert applied == settings.partner_fairness_key_rate_limits
    a_times, b_started, b_time = await burst_then_one(env, settings)

    span = a_times[-1] - a_times[0]
    print(f"shop A: {[round(t - a_times[0], 2) for t in a_times]}; shop B after {b_time - b_started:.2f}s")
    # BURST calls at 1/s, allowing the limiter's initial burst of a couple of tokens: at least ~BURST-3 seconds
    assert span >= BURST - 3, f"shop A served too fast for {PER_SHOP}/s: {span:.1f}s for {BURST} calls"
    assert span <= 3 * BURST, f"shop A served far below its rate: {span:.1f}s"
    for n, t in enumerate(a_times):  # never ahead of the rate: n calls within n/rate seconds plus the burst
        assert t - a_times[0] >= (n - 2) / PER_SHOP - 0.5, (n, t - a_times[0])
    assert b_time - b_started < 3.0, f"shop B waited {b_time - b_started:.1f}s behind shop A's burst"
    assert sum(1 for t in a_times if t > b_time) >= BURST // 2, "B ran after most of A's burst"


async def test_without_the_per_shop_rate_the_burst_goes_out_at_the_queue_rate(env):
    """The control: the same burst with no per-key rate leaves at the queue's rate, within a second or two — a
    shop's quota would be spent at once (what the per-key rate prevents)."""
    a_times, _, _ = await burst_then_one(env, partner_settings(per_shop=None))
    assert a_times[-1] - a_times[0] < 2.0, a_times


async def test_the_breakers_queue_rate_updates_keep_the_per_shop_rate(env):
    settings = partner_settings(per_shop=PER_SHOP)
    partner = next(iter(settings.partner_activity_rate_limits))
    async with Worker(env.client, task_queue=partner, activities=[call_partner],
                      activity_executor=concurrent.futures.ThreadPoolExecutor(1)):
        await apply_partner_key_rates(env.client, settings)
        for rate, why in ((0.0, "breaker open"), (0.2, "breaker half_open"), (QUEUE_RATE, "breaker closed"),
                          (None, "limit lifted")):
            config = await set_queue_rate(env.client, partner, rate, why)
            assert config.fairness_keys_rate_limit_default.rate_limit.requests_per_second == pytest.approx(PER_SHOP), \
                (why, config)
            if rate is not None:
                assert config.queue_rate_limit.rate_limit.requests_per_second == pytest.approx(rate), (why, config)


def test_a_per_shop_rate_needs_a_partner_queue_and_a_positive_rate():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="not a partner queue"):
        Settings(_env_file=None, partner_fairness_key_rate_limits={"retailflow-shopify": 2})
    with pytest.raises(ValidationError, match="positive"):
        Settings(_env_file=None, partner_activity_rate_limits={"retailflow-shopify": 10},
                 partner_fairness_key_rate_limits={"retailflow-shopify": 0})
