"""Dual-run end to end on the time-skipping server (issue 21, part 2, "Done when"): real OrderFulfillment runs with
the real activities — which call the ERP port as always — over the routing ERP: the embedded ERP is the system of
record, the ERPNext sandbox the shadow. 20 orders post to both and ParityCheck finds 20 equal sales orders and
invoices; after a cut-over (the worker restarted with a new routing file) a running order finishes on the legacy
ERP and a new one books on the cloud ERP only."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from datetime import UTC, datetime

import pytest
from temporalio.worker import Worker

from activities.ops import OpsActivities
from activities.orders import OrderActivities
from activities.parity import ParityActivities
from adapters.erp.local import LocalErp
from adapters.erp.routing import RoutingErp
from adapters.ports import Adapters
from adapters.sql import create_schema, make_engine
from canonical.erp_routing import ErpRoute
from canonical.fulfillment import OrderFulfillmentInput
from canonical.order import Order, OrderStatus, Shipment, ShipmentLine
from runtime.erp_routing import build_routing_erp, parse_routing
from runtime.registry import build_adapters
from runtime.settings import Settings
from sandbox.common import ServedApp
from sandbox.erpnext import create_app
from tests import dual_run as dr
from workflows.order_fulfillment import OrderFulfillment
from workflows.parity_check import ParityCheck, ParityCheckInput


@pytest.fixture(scope="module")
def served():
    with ServedApp(create_app(api_key=dr.API_KEY, api_secret=dr.API_SECRET)) as s:
        yield s


@pytest.fixture
def platform(tmp_path, served):
    dr.seed_erpnext(served.base_url)
    engine = make_engine(f"sqlite:///{tmp_path / 'rf.db'}")
    create_schema(engine)
    settings = Settings(_env_file=None, erpnext_base_url=served.base_url, erpnext_api_key=dr.API_KEY,
                        erpnext_api_secret=dr.API_SECRET)
    adapters = build_adapters(settings, engine)
    dr.seed_local(LocalErp(engine))
    routers: list[RoutingErp] = []

    def with_routing(toml: str) -> Adapters:
        import tomllib

        router = build_routing_erp(settings, engine, parse_routing(tomllib.loads(toml)))
        routers.append(router)
        return Adapters(erp=router, wms=adapters.wms, tax=adapters.tax, marketplace=adapters.marketplace,
                        projection=adapters.projection, inventory=adapters.inventory)

    yield with_routing
    for router in routers:
        router.close()
    engine.dispose()


def _worker(env, adapters: Adapters, queue: str, *, cache: bool = True) -> Worker:
    # no cache: a worker that stops mid-run leaves no sticky queue behind for the next one to wait out
    return Worker(env.client, task_queue=queue, workflows=[OrderFulfillment, ParityCheck],
                  max_cached_workflows=1000 if cache else 0,
                  activities=[*OrderActivities(adapters).all(), *OpsActivities(adapters.projection).all(),
                              *ParityActivities(adapters.erp).all()],
                  activity_executor=concurrent.futures.ThreadPoolExecutor(16))


async def _start(env, order: Order, queue: str):
    return await env.client.start_workflow(OrderFulfillment.run, OrderFulfillmentInput(order=order),
                                           id=order.workflow_id, task_queue=queue)


async def _until(handle, status: OrderStatus, timeout: float = 60):
    deadline = asyncio.get_running_loop().time() + timeout
    view = None
    while asyncio.get_running_loop().time() < deadline:
        view = await handle.query(OrderFulfillment.status)
        if view.status == status:
            return view
        await asyncio.sleep(0.1)
    raise AssertionError(f"{handle.id} never {status}: {view.status if view else None} {view.reason if view else ''}")


async def _released(projection, workflow_id: str, timeout: float = 60) -> None:
    """Released, read from the status projection, not by a query: after the workers roll, a poll the stopped worker
    left open on the test server may swallow a query task (the query then waits out its deadline)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        rows, _ = projection.list(status="released", limit=1000)
        if any(r["workflow_id"] == workflow_id for r in rows):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workflow_id} never released")


async def _ship(handle, order: Order, *, released: bool = False):
    if not released:
        await _until(handle, OrderStatus.RELEASED)
    await handle.signal(OrderFulfillment.shipment, Shipment(
        shipment_id=f"S-{order.external_order_id}", carrier="UPS", shipped_at=datetime.now(UTC),
        lines=[ShipmentLine(line_id=x.line_id, channel_sku=x.channel_sku, quantity=x.quantity) for x in order.lines]))
    result = await handle.result()
    assert result.status == OrderStatus.COMPLETED, result


async def test_twenty_orders_post_to_both_erps_and_parity_finds_them_equal(ts_env, platform):
    adapters = platform(dr.ROUTING_TOML)
    router: RoutingErp = adapters.erp  # type: ignore[assignment]
    queue = f"dual-{uuid.uuid4().hex[:8]}"
    orders = [dr.order(n).model_copy(update={"external_order_id": f"{uuid.uuid4().hex[:10]}"}) for n in range(20)]
    async with _worker(ts_env, adapters, queue):
        handles = [await _start(ts_env, o, queue) for o in orders]
        await asyncio.gather(*(_ship(h, o) for h, o in zip(handles, orders, strict=True)))
        results = {}
        for process in ("orders", "invoices"):
            results[process] = await ts_env.client.execute_workflow(
                ParityCheck.run, ParityCheckInput(process=process), id=f"parity-check:{process}:{uuid.uuid4().hex[:6]}",
                task_queue=queue)
    cloud = router.shadows["cloud"]
    for o in orders:
        assert router.store.pinned("orders", o.workflow_id) == ErpRoute(record="legacy", shadow="cloud")
        assert cloud.booked_order(o.workflow_id) is not None  # the shadow got it too
    assert router.store.shadow_failures() == []
    for process in ("orders", "invoices"):
        assert (results[process].checked, results[process].equal, results[process].different) == (20, 20, 0), process
    assert router.store.parity_by_day("orders")[0]["equal"] == 20


async def test_a_cut_over_moves_new_orders_only_and_a_running_one_finishes_where_it_started(ts_env, platform):
    before = platform(dr.ROUTING_TOML)
    queue = f"cut-{uuid.uuid4().hex[:8]}"
    running = dr.order(1).model_copy(update={"external_order_id": uuid.uuid4().hex[:10]})
    new = dr.order(2).model_copy(update={"external_order_id": uuid.uuid4().hex[:10]})
    async with _worker(ts_env, before, queue, cache=False):
        handle = await _start(ts_env, running, queue)
        await _until(handle, OrderStatus.RELEASED)  # booked, waiting for its shipment when the workers roll
    after = platform(dr.CUT_OVER_TOML)
    async with _worker(ts_env, after, queue):
        new_handle = await _start(ts_env, new, queue)
        await _ship(handle, running, released=True)
        await _released(after.projection, new.workflow_id)
        await _ship(new_handle, new, released=True)
    router: RoutingErp = after.erp  # type: ignore[assignment]
    legacy, cloud = router.erps["legacy"], router.erps["cloud"]
    assert router.store.pinned("orders", running.workflow_id) == ErpRoute(record="legacy", shadow="cloud")
    assert router.store.pinned("invoices", running.workflow_id) == ErpRoute(record="legacy", shadow="cloud")
    assert router.store.pinned("orders", new.workflow_id) == ErpRoute(record="cloud")
    assert legacy.booked_order(running.workflow_id).status == "invoiced"
    assert legacy.booked_order(new.workflow_id) is None
    assert cloud.booked_order(new.workflow_id) is not None
    assert cloud.find("Sales Order", [["po_no", "=", new.workflow_id]]).get("retailflow_shadow") is None  # record
