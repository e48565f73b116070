"""The Temporal dev server (SQLite persistence) stopped mid-run — once with SIGTERM, once with SIGKILL — and
started again on the same file and port: the worker and the API reconnect by themselves, intake answers 5xx while
the server is away (the sender retries), and no order is lost or doubled."""

from __future__ import annotations

import asyncio
import random
import signal
import time

import pytest

from tests.faults.harness import SendLog, TemporalServer, new_ids, running_stack, send_orders, workflow_id
from tests.faults.invariants import check
from tests.reliability import record

pytestmark = pytest.mark.faults

ORDERS = 24
SEED = 1502
DOWN_SECONDS = 2.0
RATE = 2.0  # orders/s: intake spans both outages


async def test_temporal_stopped_and_restarted_mid_run(tmp_path):
    rng = random.Random(SEED)
    ids = new_ids(ORDERS)
    temporal = TemporalServer(tmp_path).start()
    t0 = time.monotonic()
    stops: list[str] = []
    try:
        with running_stack(tmp_path, temporal) as stack:
            log = SendLog()
            sending = asyncio.create_task(send_orders(stack, ids, log=log, rate=RATE, deadline_s=120))
            met_intake = []
            for sig in (signal.SIGTERM, signal.SIGKILL):
                await asyncio.sleep(rng.uniform(1.5, 3.0))
                met_intake.append(not sending.done())  # the stop meets intake under way, not an idle stack
                await asyncio.to_thread(temporal.stop, sig)
                stops.append(f"{signal.Signals(sig).name} at {time.monotonic() - t0:.1f}s")
                await asyncio.sleep(DOWN_SECONDS)
                await asyncio.to_thread(temporal.start)
            await sending
            assert all(met_intake), f"a stop came after every order was sent: it did not meet intake {met_intake}"
            assert stack.worker.proc is not None and stack.worker.proc.poll() is None, stack.worker.log_tail()
            client = await stack.client()
            accepted = {workflow_id(e) for e in log.acked}
            outcome = await check(stack.engine, client, accepted, initial_stock=stack.initial_stock,
                                  settle_timeout=200)
    finally:
        temporal.stop()
    figures = {"orders": ORDERS, "faults": len(stops), "acked": len(log.acked), "5xx": log.server_errors,
               "500": log.code_500, "no_answer": log.statuses.get(None, 0), **outcome.figures(), "seconds": round(time.monotonic() - t0, 1)}
    clean = not (outcome.lost or outcome.doubled or outcome.problems) and len(log.acked) == ORDERS
    record("faults/test_temporal_restart.py::test_temporal_stopped_and_restarted_mid_run", category="fault",
           injects=f"the Temporal dev server (SQLite) stopped {' and '.join(stops)}, {DOWN_SECONDS:.0f} s down "
                   "each time, then started on the same file; worker and API not restarted",
           figures=figures,
           invariant="every order acknowledged (intake waits for Temporal or answers 5xx, never 2xx-and-dropped) "
                     "and completed; one of each ERP/WMS/tax/channel document; stock ledger consistent",
           result=outcome.verdict() if clean else f"FAIL: {len(log.acked)} of {ORDERS} acknowledged; {outcome.verdict()}")
    assert len(log.acked) == ORDERS and not log.given_up, log.statuses
    assert log.code_500 == 0, f"intake answered 500 while Temporal was away: {log.statuses}"
    outcome.assert_clean()
    assert len(outcome.completed) == ORDERS, outcome.figures()
