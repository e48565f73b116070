"""The platform database (PostgreSQL) refusing connections during intake: the API reaches PostgreSQL through a
loopback TCP proxy the test cuts (open connections reset, new ones refused) and restores, three times, while
orders arrive. The test is a retrying sender (as Shopify is: a 5xx or no answer is sent again). Every delivery is
either acknowledged (2xx) and kept — its order runs to the end — or answered 5xx (503 with Retry-After, never a
500) and sent again; none is acknowledged and lost. The worker talks to PostgreSQL directly."""

from __future__ import annotations

import asyncio
import os
import random
import time

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.faults.harness import CuttableProxy, SendLog, new_ids, running_stack, send_orders, workflow_id
from tests.faults.invariants import check
from tests.reliability import record

pytestmark = pytest.mark.faults

ORDERS = 30
RATE = 4.0
CUTS = 3
CUT_SECONDS = 1.5
SEED = 1506


async def test_platform_database_refusing_connections_during_intake(temporal_server, tmp_path):
    pg = os.environ.get("RETAILFLOW_TEST_DATABASE_URL")
    if not pg:
        print("SKIP: the database-refusal fault needs PostgreSQL: set RETAILFLOW_TEST_DATABASE_URL (CI sets it)")
        pytest.skip("RETAILFLOW_TEST_DATABASE_URL not set: the database-refusal fault needs PostgreSQL (CI sets it)")
    rng = random.Random(SEED)
    ids = new_ids(ORDERS)
    target = make_url(pg)
    proxy = CuttableProxy(target.host or "127.0.0.1", target.port or 5432)
    t0 = time.monotonic()
    cuts: list[str] = []
    try:
        with running_stack(tmp_path, temporal_server, require_postgres=True, api_database_port=proxy.port,
                           RETAILFLOW_LOCAL_WMS_SHIP_AFTER_SECONDS="0.5") as stack:
            log = SendLog()
            sending = asyncio.create_task(send_orders(stack, ids, log=log, rate=RATE, deadline_s=90))
            for _ in range(CUTS):
                await asyncio.sleep(rng.uniform(0.8, 1.5))
                await asyncio.to_thread(proxy.cut)
                cuts.append(f"{time.monotonic() - t0:.1f}s")
                await asyncio.sleep(CUT_SECONDS)
                await asyncio.to_thread(proxy.restore)
            await sending
            client = await stack.client()
            accepted = {workflow_id(e) for e in log.acked}
            outcome = await check(stack.engine, client, accepted, initial_stock=stack.initial_stock,
                                  settle_timeout=150)
            with stack.engine.connect() as conn:
                kept = {r.workflow_id for r in conn.execute(text(
                    "SELECT workflow_id FROM webhook_deliveries WHERE source = 'shopify'"))}
    finally:
        proxy.close()
    unkept = sorted(accepted - kept)  # acknowledged, but the intake store has no record of the delivery
    figures = {"orders": ORDERS, "faults": CUTS, "deliveries": log.attempts, "acked": len(log.acked),
               "5xx": log.server_errors, "503": log.statuses.get(503, 0), "500": log.code_500,
               "no_answer": log.statuses.get(None, 0), **outcome.figures(),
               "seconds": round(time.monotonic() - t0, 1)}
    lost = len(outcome.lost) + len(unkept) + len(set(ids) - set(log.acked))
    figures["lost"] = lost
    clean = not (lost or outcome.doubled or outcome.problems or log.code_500)
    record("faults/test_database_refusal.py::test_platform_database_refusing_connections_during_intake",
           category="fault",
           injects=f"the API's PostgreSQL connections reset and refused {CUTS} times ({CUT_SECONDS:g} s each, at "
                   f"{', '.join(cuts)}) through a cuttable loopback proxy while {ORDERS} orders arrive",
           figures=figures,
           invariant="every delivery acknowledged (2xx) and kept — recorded and its order completed — or "
                     "answered 503 and retried by the sender; never 500, never acknowledged and lost",
           result="pass" if clean else f"FAIL: lost {lost} {outcome.lost[:2]} {unkept[:2]} 500s {log.code_500}")
    assert log.server_errors > 0, f"no delivery met the outage: the fault did not bite ({log.statuses})"
    assert log.code_500 == 0, f"a 500 during the outage: {log.statuses}"
    assert set(log.acked) == set(ids) and not log.given_up, log.statuses
    assert not unkept, f"acknowledged but not recorded: {unkept[:5]}"
    outcome.assert_clean()
    assert len(outcome.completed) == ORDERS, outcome.figures()
