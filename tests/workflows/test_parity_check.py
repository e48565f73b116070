"""ParityCheck on the time-skipping server with the real activities: the embedded ERP is the system of record, the
ERPNext sandbox the shadow, the routing ERP built from a routing file (runtime/erp_routing.py). 20 dual-run orders compare
equal; a changed tax line in the shadow ERP parks the run with both documents side by side until an analyst
retries (after a fix) or accepts it; the Markdown report shows it by day."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.worker import Worker

from activities.ops import OpsActivities
from activities.parity import ParityActivities
from adapters.erp.routing import RoutingErp
from adapters.ports import Adapters
from adapters.sql import create_schema, make_engine
from canonical.fulfillment import AnalystAction
from retailflow.erp_cli import parity_markdown
from runtime.erp_routing import build_routing_erp, load_routing
from runtime.registry import build_adapters
from runtime.settings import Settings
from sandbox.common import ServedApp
from sandbox.erpnext import create_app
from tests import dual_run as dr
from workflows.parity_check import ParityCheck, ParityCheckInput

WHO = AnalystAction(actor="ana@example.com", reason="the shadow's tax template was fixed")


@pytest.fixture(scope="module")
def served():
    with ServedApp(create_app(api_key=dr.API_KEY, api_secret=dr.API_SECRET)) as s:
        yield s


@pytest.fixture
def adapters(tmp_path, served):
    with dual_run_adapters(tmp_path, served) as adapters:
        yield adapters


@contextlib.contextmanager
def dual_run_adapters(tmp_path: Path, served: ServedApp) -> Iterator[Adapters]:
    """The platform's adapters over a fresh SQLite database, the ERP the router of the dual-run routing file (also
    what tests/replay/record.py records the parity history with)."""
    dr.seed_erpnext(served.base_url)
    engine = make_engine(f"sqlite:///{tmp_path / 'rf.db'}")
    create_schema(engine)
    settings = Settings(_env_file=None, erpnext_base_url=served.base_url, erpnext_api_key=dr.API_KEY,
                        erpnext_api_secret=dr.API_SECRET)
    adapters = build_adapters(settings, engine)
    adapters.erp = build_routing_erp(settings, engine, load_routing(dr.write(tmp_path, dr.ROUTING_TOML)))
    assert isinstance(adapters.erp, RoutingErp)
    dr.seed_local(adapters.erp.erps["legacy"])  # type: ignore[arg-type]
    try:
        yield adapters
    finally:
        adapters.erp.close()
        engine.dispose()


async def _parked(handle) -> dict:
    for _ in range(200):
        status = await handle.query(ParityCheck.status)
        if status["status"] in ("needs_attention", "completed"):
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"never parked: {status}")


async def _run(env, adapters, scenario=None, process: str = "orders"):
    queue = f"parity-{uuid.uuid4().hex[:8]}"
    async with Worker(env.client, task_queue=queue, workflows=[ParityCheck],
                      activities=[*ParityActivities(adapters.erp).all(), *OpsActivities(adapters.projection).all()],
                      activity_executor=concurrent.futures.ThreadPoolExecutor(4)):
        handle = await env.client.start_workflow(ParityCheck.run, ParityCheckInput(process=process),
                                                 id=f"parity-check:{process}:{uuid.uuid4().hex[:8]}", task_queue=queue)
        if scenario is not None:
            await scenario(handle)
        result = await handle.result()
        return result, await handle.query(ParityCheck.status)


async def test_twenty_dual_run_orders_are_equal_and_the_report_says_so(ts_env, adapters):
    router: RoutingErp = adapters.erp
    keys = [dr.post_order(router, dr.order(n)) for n in range(20)]
    result, _ = await _run(ts_env, adapters)
    assert (result.checked, result.equal, result.different, result.accepted) == (20, 20, 0, 0)
    invoices, _ = await _run(ts_env, adapters, process="invoices")
    assert (invoices.checked, invoices.equal) == (20, 20)
    days = router.store.parity_by_day("orders")
    report = parity_markdown("orders", days, router.store.parity("orders"))
    assert "20 business key(s) compared: 20 equal, 0 different, 0 accepted." in report
    assert f"| {days[0]['day']} | 20 | 20 | 0 | 0 |" in report and "## Differences" not in report
    again, _ = await _run(ts_env, adapters)  # equal keys are settled: the next scheduled run has nothing to do
    assert again.checked == 0 and sorted(r["business_key"] for r in router.store.parity("orders")) == sorted(keys)


async def test_a_changed_tax_line_in_the_shadow_parks_with_both_documents_until_a_retry_finds_it_fixed(
        ts_env, adapters, served):
    router: RoutingErp = adapters.erp
    keys = [dr.post_order(router, dr.order(n)) for n in range(3)]
    dr.change_shadow_tax(served.app, keys[1], Decimal("2.50"))

    async def scenario(handle):
        status = await _parked(handle)
        assert status["status"] == "needs_attention", status
        [parked] = status["parked"]
        assert parked["business_key"] == keys[1] and parked["record_erp"] == "legacy"
        assert [d["field"] for d in parked["differences"]] == ["tax_total", "grand_total"]
        side = {row["field"]: (row["record"], row["shadow"]) for row in parked["side_by_side"]}
        rec, sh = side["tax_total"]
        assert Decimal(sh) - Decimal(rec) == Decimal("2.50")
        assert parked["record"]["erp"] == "legacy" and parked["shadow"]["erp"] == "cloud"
        assert parked["shadow"]["shadow"] is True
        listed = {r["workflow_id"]: r for r in adapters.projection.list(needs_attention=True)[0]}
        assert keys[1] in listed[handle.id]["reason"] and "tax_total" in listed[handle.id]["reason"]
        report = parity_markdown("orders", router.store.parity_by_day("orders"), router.store.parity("orders"))
        assert f"### {keys[1]}" in report and "| tax_total |" in report
        await handle.signal(ParityCheck.retry, WHO)  # nothing fixed yet: parks again
        await asyncio.sleep(0.5)
        assert (await _parked(handle))["status"] == "needs_attention"
        dr.change_shadow_tax(served.app, keys[1], Decimal("-2.50"))  # the shadow's document is corrected
        await handle.signal(ParityCheck.retry, WHO)

    result, status = await _run(ts_env, adapters, scenario)
    assert (result.checked, result.equal, result.different, result.accepted) == (3, 3, 0, 0)
    assert [r["status"] for r in router.store.parity("orders")] == ["equal"] * 3
    assert status["status"] == "completed" and len(status["history"]) == 2


async def test_an_accepted_difference_is_recorded_with_who_and_why_and_not_compared_again(ts_env, adapters, served):
    router: RoutingErp = adapters.erp
    keys = [dr.post_order(router, dr.order(n)) for n in range(2)]
    dr.change_shadow_tax(served.app, keys[0], Decimal("0.01"))

    async def scenario(handle):
        await _parked(handle)
        await handle.signal(ParityCheck.skip, AnalystAction(actor="fin@example.com", reason="rounding, accepted"))

    result, _ = await _run(ts_env, adapters, scenario)
    assert (result.equal, result.accepted) == (1, 1)
    [row] = router.store.parity("orders", status="accepted")
    assert row["business_key"] == keys[0] and "fin@example.com" in row["note"] and "rounding" in row["note"]
    again, _ = await _run(ts_env, adapters)
    assert again.checked == 0


async def test_the_starter_runs_a_parity_check_on_the_queue_it_is_given(ts_env, adapters):
    from starters.parity import start_parity_check

    router: RoutingErp = adapters.erp
    for n in range(2):
        dr.post_order(router, dr.order(n))
    queue = f"parity-{uuid.uuid4().hex[:8]}"
    async with Worker(ts_env.client, task_queue=queue, workflows=[ParityCheck],
                      activities=[*ParityActivities(adapters.erp).all(), *OpsActivities(adapters.projection).all()],
                      activity_executor=concurrent.futures.ThreadPoolExecutor(4)):
        handle = await start_parity_check(ts_env.client, ParityCheckInput(process="orders"), task_queue=queue)
        result = await handle.result()
    assert handle.id.startswith("parity-check:orders:") and (result.checked, result.equal) == (2, 2)
