"""Worker Deployment Versioning on the dev server (issue 19, safe deploys): two versions of the worker side by side,
built with the platform's own `worker_deployment_config` (RETAILFLOW_WORKER_VERSIONING) and running stand-ins that
carry the real workflows' declared behaviour (OrderFulfillment PINNED, SettlementReconciliation AUTO_UPGRADE).
After `set_current` moves to v2: the order started on v1 finishes on v1, the reconciliation started on v1 moves
to v2 at its next task, a new order starts on v2. A rollback (`set_current` v1) sends new runs back to v1."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from datetime import timedelta

import pytest
import pytest_asyncio
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from runtime.deployments import describe, set_current, wait_propagated
from runtime.settings import Settings
from worker import first_version_current, temporal_cli_path, versioned_workflows, worker_deployment_config
from workflows.order_fulfillment import OrderFulfillment
from workflows.settlement_reconciliation import SettlementReconciliation

pytestmark = pytest.mark.integration

# what the platform's versioned worker declares for the real workflow types (worker.versioned_workflows)
PINNED, AUTO = (workflow._Definition.must_from_class(w).versioning_behavior
                for w in versioned_workflows([OrderFulfillment, SettlementReconciliation]))


class Build:
    """Which worker's version ran the task: activities of a versioned workflow run on its version's workers."""

    def __init__(self, build: str) -> None:
        self.build = build

    @activity.defn(name="which_build")
    def which(self) -> str:
        return self.build


class _Waits:
    def __init__(self) -> None:
        self.go = False

    @workflow.signal
    def proceed(self) -> None:
        self.go = True

    async def _run(self) -> str:
        await workflow.wait_condition(lambda: self.go)
        return await workflow.execute_activity("which_build", result_type=str,
                                               start_to_close_timeout=timedelta(seconds=20))


@workflow.defn(name="OrderFulfillment", versioning_behavior=PINNED, sandboxed=False)  # type: ignore[arg-type]
class OrderStandIn(_Waits):
    @workflow.run
    async def run(self) -> str:
        return await self._run()


@workflow.defn(name="SettlementReconciliation", versioning_behavior=AUTO, sandboxed=False)
class ReconciliationStandIn(_Waits):
    @workflow.run
    async def run(self) -> str:
        return await self._run()


@pytest_asyncio.fixture(scope="module")
async def env():
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=temporal_cli_path(),
                                                dev_server_extra_args=["--log-level", "error"])
    try:
        yield env
    finally:
        await env.shutdown()


def worker(client: Client, settings: Settings, build: str) -> Worker:
    config = worker_deployment_config(settings.model_copy(update={"worker_build_id": build}))
    assert config is not None
    return Worker(client, task_queue=settings.task_queue, workflows=[OrderStandIn, ReconciliationStandIn],
                  activities=[Build(build).which], deployment_config=config,
                  activity_executor=concurrent.futures.ThreadPoolExecutor(2))


async def until(predicate, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def current_is(client: Client, deployment: str, build: str, tries: int = 50) -> None:
    for _ in range(tries):  # the version exists once its worker has polled
        try:
            await set_current(client, deployment, build)
            await wait_propagated(client, deployment)  # until then a task may still go to the previous version
            return
        except Exception:  # noqa: BLE001 - not registered yet
            await asyncio.sleep(0.2)
    await set_current(client, deployment, build)
    await wait_propagated(client, deployment)


async def test_pinned_orders_finish_on_their_version_while_new_runs_go_to_the_current_one(env):
    assert worker_deployment_config(Settings(_env_file=None)) is None  # off by default (the embedded stack)
    name = f"rf-{uuid.uuid4().hex[:6]}"
    settings = Settings(_env_file=None, task_queue=f"ver-{name}", worker_versioning=True, worker_deployment_name=name)
    client = env.client
    async with worker(client, settings, "v1"):
        # the first deploy: the worker makes its own version current (nothing would run otherwise)
        await first_version_current(client, settings.model_copy(update={"worker_build_id": "v1"}))
        assert (await describe(client, name)).current_build_id == "v1"
        order = await client.start_workflow("OrderFulfillment", id=f"o1-{name}", task_queue=settings.task_queue)
        recon = await client.start_workflow("SettlementReconciliation", id=f"r1-{name}",
                                            task_queue=settings.task_queue)

        async def started() -> bool:
            return all([(await h.describe()).raw_description.workflow_execution_info.history_length > 2
                        for h in (order, recon)])
        await until(started)
        async with worker(client, settings, "v2"):  # the rainbow: v2 up beside v1
            await first_version_current(client, settings.model_copy(update={"worker_build_id": "v2"}), attempts=3)
            assert (await describe(client, name)).current_build_id == "v1"  # a later version waits for a person
            await current_is(client, name, "v2")
            state = await describe(client, name)
            assert state.current_build_id == "v2" and {"v1", "v2"} <= set(state.versions)
            await order.signal("proceed")
            await recon.signal("proceed")
            assert await order.result() == "v1"  # pinned: finished on the version it started on
            assert await recon.result() == "v2"  # auto-upgrade: moved to the current version
            new = await client.start_workflow("OrderFulfillment", id=f"o2-{name}", task_queue=settings.task_queue)
            await new.signal("proceed")
            assert await new.result() == "v2"
            await current_is(client, name, "v1")  # rollback
            back = await client.start_workflow("OrderFulfillment", id=f"o3-{name}", task_queue=settings.task_queue)
            await back.signal("proceed")
            assert await back.result() == "v1"
