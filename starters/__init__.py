"""The one place each workflow is started or signalled: id from the business key, input built from settings,
search attributes, summaries, task queue. Used by the API, the CLI, the worker's relays and (injected by the
composition root) the activities that start other workflows. Nothing here runs at import time."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode


class TemporalUnavailable(Exception):
    """Temporal did not answer (the caller says 503 and keeps or quarantines the input)."""


async def signal_workflow(client: Client, workflow_id: str, signal: str, arg: Any) -> bool:
    """Signal a running workflow; False if there is none (never started, or already closed)."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        desc = await handle.describe()
        if desc.status != WorkflowExecutionStatus.RUNNING:
            return False
        await handle.signal(signal, arg)
        return True
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise TemporalUnavailable(str(exc)) from exc
