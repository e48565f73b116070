"""The workflow sandbox every retailflow worker runs its workflows in (and the bench's bare worker, so the
baseline runs the same Worker configuration).

Temporal's Python sandbox re-imports a workflow's module, and every module it imports that is not passed through,
for each new run: 35 ms of CPU and ~230 KiB per `OrderFulfillment` instance on the bench machine (6 ms and 41 KiB
for the bench's bare workflow), paid at every start and at every replay after a cache eviction
(docs/benchmarks.md). The platform's workflow modules and everything they import are deterministic code with
immutable module state (constants, frozensets, classes), and the activities, canonical models and helpers were
already passed through (`workflow.unsafe.imports_passed_through`), so the sandbox passes every module through
(`SandboxRestrictions.with_passthrough_all_modules`, the SDK's setting for exactly this): modules are imported once
per process. The trade, measured in tests/workflows/test_workflow_sandbox.py: a module imported once
sees the real `datetime`, `time` and `random`, not the sandbox's restricted proxies, so the sandbox no longer refuses
a wall-clock call at run time. What keeps such calls out instead: tests/unit/test_workflow_sandbox.py checks the
source of every workflow module for the clock, randomness, I/O and threads (they must go through `workflow.now()`,
`workflow.uuid4()`, `workflow.random()`, `workflow.sleep()`) and for module or class state a run could change; the
workflow tests (tests/workflows) and the replay tests (tests/replay) run every workflow under the SDK's default,
stricter sandbox, which refuses them at run time.
"""

from __future__ import annotations

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

RESTRICTIONS = SandboxRestrictions.default.with_passthrough_all_modules()


def workflow_runner() -> SandboxedWorkflowRunner:
    return SandboxedWorkflowRunner(restrictions=RESTRICTIONS)
