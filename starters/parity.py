"""Starting a ParityCheck by hand (`retailflow erp parity-check`; Schedules start them otherwise, schedules.toml):
`parity-check:<process>:<UTC time>` on the finance domain's task queue (docs/erp-migration.md)."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio.client import Client, WorkflowHandle

from workflows.parity_check import ParityCheckInput, ParityCheckResult

PARITY_CHECK_WORKFLOW = "ParityCheck"


async def start_parity_check(client: Client, inp: ParityCheckInput, *, task_queue: str,
                             now: datetime | None = None) -> WorkflowHandle:
    """Compare the dual-run documents of `inp.process` now."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    return await client.start_workflow(PARITY_CHECK_WORKFLOW, inp, id=f"parity-check:{inp.process}:{stamp}",
                                       task_queue=task_queue, result_type=ParityCheckResult,
                                       static_summary=f"Compare the dual-run {inp.process} on both ERPs")
