"""Task-queue priority and fairness on the dev server (issue 19): workflows started by the platform's own starters
(starters/orders.py, starters/settlements.py: workflows/priorities.py) on one shared task queue, backlogged while no
worker runs, then served by a worker with one slot. Same-name stand-ins of OrderFulfillment and
SettlementReconciliation record the order their activities run in (activities inherit their workflow's priority).

- Priority: orders started *after* a backlog of reconciliations run first (FIFO would run them last).
- Fairness: a second shop's orders, started after a burst of the first shop's, are served in turn with it, not
  after the whole burst (FIFO within a priority would serve them last).

The server runs with one task-queue partition (priority and fairness hold per partition; with several, ordering
is approximate) and `matching.enableFairness` (what deploy/temporal/dynamicconfig sets)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import pytest
import pytest_asyncio
from temporalio import activity, workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from adapters.marketplace.shopify import map_order
from canonical.finance import SettlementInput
from canonical.fulfillment import OrderFulfillmentInput
from runtime.codec import data_converter
from runtime.settings import Settings
from starters.orders import start_order
from starters.settlements import start_reconciliation
from tests.conftest import fixture_bytes
from tests.integration.conftest import CODEC_KEYRING
from worker import temporal_cli_path
from workflows import search_attributes as sa

pytestmark = pytest.mark.integration

RAN: list[str] = []


@activity.defn(name="record_run")
def record_run(label: str) -> None:
    RAN.append(label)


@workflow.defn(name="OrderFulfillment", sandboxed=False)
class OrderStandIn:
    @workflow.run
    async def run(self, inp: OrderFulfillmentInput) -> None:
        await workflow.execute_activity(record_run, f"order:{inp.order.channel}",
                                        start_to_close_timeout=timedelta(seconds=30))


@workflow.defn(name="SettlementReconciliation", sandboxed=False)
class ReconciliationStandIn:
    @workflow.run
    async def run(self, inp: SettlementInput) -> None:
        await workflow.execute_activity(record_run, f"settlement:{inp.provider}",
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


async def serve_backlog(env, task_queue: str, expected: int, timeout: float = 60) -> list[str]:
    RAN.clear()
    async with Worker(env.client, task_queue=task_queue, workflows=[OrderStandIn, ReconciliationStandIn],
                      activities=[record_run], max_concurrent_workflow_tasks=1, max_concurrent_activities=1,
                      activity_executor=__import__("concurrent.futures").futures.ThreadPoolExecutor(1)):
        deadline = asyncio.get_running_loop().time() + timeout
        while len(RAN) < expected and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
    assert len(RAN) == expected, RAN
    return list(RAN)


async def test_order_intake_runs_ahead_of_a_reconciliation_backlog(env):
    settings = Settings(_env_file=None, task_queue=f"prio-{uuid.uuid4().hex[:8]}")
    for n in range(8):  # finance's backlog first
        await start_reconciliation(env.client, settings, SettlementInput(provider="amazon", settlement_id=f"S{n}",
                                                                         source="r.txt"))
    for _ in range(2):  # then two orders
        await start_order(env.client, settings, order("shopify"))
    ran = await serve_backlog(env, settings.task_queue, 10)
    assert ran[:2] == ["order:shopify"] * 2, ran  # FIFO would put them last


async def test_a_burst_of_one_shop_does_not_starve_another(env):
    settings = Settings(_env_file=None, task_queue=f"fair-{uuid.uuid4().hex[:8]}")
    for _ in range(12):  # shop A's flash sale
        await start_order(env.client, settings, order("shop-a"))
    for _ in range(3):  # shop B's usual trickle, after it
        await start_order(env.client, settings, order("shop-b"))
    ran = await serve_backlog(env, settings.task_queue, 15)
    served_b = [i for i, label in enumerate(ran) if label == "order:shop-b"]
    assert len(served_b) == 3 and max(served_b) < 9, ran  # interleaved with A's; FIFO would serve B at 12-14


# -- a burst of one shop, on sticky queues ---------------------------------------------------------------------------
# Fairness keys order the shared backlog only: a running order's next task goes to the sticky queue of the worker that
# caches it, first come first served within a priority. starters/bursts.py demotes a store's orders above its rate
# one priority level; priority does reach the sticky queue, so a second shop's orders keep their latency.

@activity.defn(name="step")
async def step() -> None:
    return None


@workflow.defn(name="OrderFulfillment", sandboxed=False)
class StepsStandIn:
    """An order's shape: eight steps, each workflow task ~10 ms of worker CPU."""

    @workflow.run
    async def run(self, inp: OrderFulfillmentInput) -> None:
        for _ in range(8):
            x = 0
            for i in range(150_000):
                x += i
            await workflow.execute_activity(step, start_to_close_timeout=timedelta(seconds=60))


async def _latency(env, settings: Settings, channel: str) -> float:
    loop = asyncio.get_running_loop()
    t = loop.time()
    wf_id, _ = await start_order(env.client, settings, order(channel))
    await env.client.get_workflow_handle(wf_id).result()
    return loop.time() - t


async def _second_shop_during_burst(env, per_minute: float) -> tuple[float, float, int]:
    """(shop B's median latency quiet, during shop A's burst of 150 orders, A's orders demoted)."""
    from runtime.observability import ORDERS_BURST_DEMOTED

    settings = Settings(_env_file=None, task_queue=f"burst-{uuid.uuid4().hex[:8]}", order_burst_per_minute=per_minute,
                        order_burst_allowance=6)  # B's six orders all fit
    shop_a = f"shop-a-{uuid.uuid4().hex[:6]}"
    async with Worker(env.client, task_queue=settings.task_queue, workflows=[StepsStandIn], activities=[step],
                      max_concurrent_workflow_tasks=2):
        quiet = sorted([await _latency(env, settings, "shop-b") for _ in range(3)])[1]
        burst = await asyncio.gather(*(start_order(env.client, settings, order(shop_a)) for _ in range(150)))
        await asyncio.sleep(0.5)  # the burst's tasks are queued and running
        during = sorted([await _latency(env, settings, "shop-b") for _ in range(3)])[1]
        await asyncio.gather(*(env.client.get_workflow_handle(wf_id).result() for wf_id, _ in burst))
    return quiet, during, int(ORDERS_BURST_DEMOTED.labels(channel=shop_a)._value.get())


async def test_a_shops_burst_runs_behind_a_second_shop_on_sticky_queues(env):
    quiet, during, demoted = await _second_shop_during_burst(env, per_minute=6)
    off_quiet, off_during, off_demoted = await _second_shop_during_burst(env, per_minute=0)
    print(f"burst demotion on: B quiet {quiet:.2f}s during {during:.2f}s ({demoted} of A's 150 demoted); "
          f"off: quiet {off_quiet:.2f}s during {off_during:.2f}s")
    assert demoted >= 140 and off_demoted == 0
    # without demotion B waits behind the burst's sticky tasks at each step (the control shows the test can fail)
    assert off_during > 2 * max(off_quiet, 0.2) and off_during > 2 * during, (off_quiet, off_during, during)
    # with demotion B stays near its quiet figure; the bound leaves room for a loaded machine (CI's 2 cores run the
    # server, the worker and the burst together) — the 2x goal itself is measured by the peak simulation
    assert during <= 3 * quiet + 1.0, (quiet, during)
