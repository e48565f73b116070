"""The worker process SIGKILLed at random points (seeded) while a few hundred orders run, then started again:
nothing acknowledged is lost, nothing is done twice.

`retailflow worker` runs as a real subprocess (with its embedded WMS shipper); the API is another process, so intake
goes on while the worker is down. An activity the dead worker was running is retried by Temporal after its
start-to-close timeout (60 s), so the test lasts at least the last kill plus a minute."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from tests.faults.harness import SendLog, new_ids, running_stack, send_orders, workflow_id
from tests.faults.invariants import check
from tests.reliability import record

pytestmark = pytest.mark.faults

ORDERS = 150
KILLS = 4
RATE = 6.0  # orders/s: intake goes on through the kills
SEED = 1501


@pytest.mark.timeout(480)  # on a loaded machine the runs take long to drain; `check` gives up on a stall
async def test_worker_sigkilled_at_random_points(temporal_server, tmp_path):
    rng = random.Random(SEED)
    ids = new_ids(ORDERS)
    t0 = time.monotonic()
    with running_stack(tmp_path, temporal_server) as stack:
        client = await stack.client()
        log = SendLog()
        sending = asyncio.create_task(send_orders(stack, ids, log=log, rate=RATE, deadline_s=150))
        kills: list[float] = []
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            stack.worker.kill()
            kills.append(round(time.monotonic() - t0, 1))
            await asyncio.sleep(rng.uniform(0.0, 0.5))
            await asyncio.to_thread(stack.start_worker)
        await sending
        print(f"sent by {time.monotonic() - t0:.1f}s: {dict(log.statuses)}")
        accepted = {workflow_id(e) for e in log.acked}
        outcome = await check(stack.engine, client, accepted, initial_stock=stack.initial_stock, settle_timeout=300)
    seconds = round(time.monotonic() - t0, 1)
    figures = {"orders": ORDERS, "faults": KILLS, "acked": len(log.acked), "5xx": log.server_errors,
               "500": log.code_500, **outcome.figures(), "seconds": seconds}
    result = "pass" if not (outcome.lost or outcome.doubled or outcome.problems) and len(log.acked) == ORDERS \
        else f"FAIL: {outcome.lost[:2]} {outcome.doubled[:2]} {outcome.problems[:2]}"
    record("faults/test_worker_kill.py::test_worker_sigkilled_at_random_points", category="fault",
           injects=f"{KILLS} SIGKILLs of `retailflow worker` at seeded random points (seed {SEED}, at "
                   f"{', '.join(f'{k}s' for k in kills)}), each followed by a restart",
           figures=figures,
           invariant="every acknowledged order completed or is parked; one sales order, invoice, delivery, "
                     "warehouse release, tax commit, channel confirmation per order; stock ledger consistent",
           result=result)
    assert len(log.acked) == ORDERS, f"not every order was acknowledged: {log.statuses}"
    outcome.assert_clean()
    assert len(outcome.completed) == ORDERS and not outcome.parked, outcome.figures()
