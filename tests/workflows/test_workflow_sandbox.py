"""The production workers pass every module through the sandbox (runtime/workflow_sandbox.py): a workflow module is
imported once per process, so it sees the real `datetime` — the sandbox's restricted proxies are not in its globals.
The workflow tests and the replay tests run the workflows under the SDK's default sandbox, which refuses the wall
clock; tests/unit/test_workflow_sandbox.py checks the workflow modules' source for such calls and for shared state."""

from __future__ import annotations

import uuid
from datetime import datetime

from temporalio import workflow
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import RestrictedWorkflowAccessError

from runtime.workflow_sandbox import workflow_runner


@workflow.defn(name="TriesTheWallClock")
class TriesTheWallClock:
    def __init__(self) -> None:
        self.calls = 0

    @workflow.run
    async def run(self) -> str:
        self.calls += 1
        try:
            datetime.now()
        except RestrictedWorkflowAccessError:
            return f"refused after {self.calls} call(s)"
        return f"allowed after {self.calls} call(s)"


async def _two_runs(ts_env, **worker_options) -> list[str]:
    queue = f"sandbox-{uuid.uuid4().hex[:6]}"
    async with Worker(ts_env.client, task_queue=queue, workflows=[TriesTheWallClock], **worker_options):
        return [await ts_env.client.execute_workflow(TriesTheWallClock.run, id=f"clock-{queue}-{i}", task_queue=queue)
                for i in range(2)]


async def test_the_default_sandbox_of_the_workflow_tests_refuses_the_wall_clock(ts_env):
    assert await _two_runs(ts_env) == ["refused after 1 call(s)", "refused after 1 call(s)"]


async def test_the_production_runner_does_not_reimport_so_the_source_checks_guard_it(ts_env):
    # the trade made in runtime/workflow_sandbox.py, measured: the clock is not refused at run time any more (so the
    # source checks in tests/unit/test_workflow_sandbox.py are what keep it out), and each run still starts from a
    # fresh workflow instance
    assert await _two_runs(ts_env, workflow_runner=workflow_runner()) == ["allowed after 1 call(s)", "allowed after 1 call(s)"]
