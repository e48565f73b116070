"""The one place each workflow is started or signalled: id from the business key, input built from settings,
search attributes, summaries, task queue. Used by the API, the CLI, the worker's relays and (injected by the
composition root) the activities that start other workflows. Nothing here runs at import time."""

from __future__ import annotations

from typing import Any, Protocol

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


async def workflow_started(client: Client, workflow_id: str) -> bool:
    """Whether a workflow of this id has ever run (running or closed)."""
    try:
        await client.get_workflow_handle(workflow_id).describe()
        return True
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise TemporalUnavailable(str(exc)) from exc


class HeldEvents(Protocol):
    """Where the intake keeps signals that overtook their workflow (adapters/platform/intake_store.py)."""

    def held_events(self, workflow_id: str) -> list[dict[str, Any]]: ...
    def event_applied(self, event_id: int, workflow_id: str) -> None: ...


async def deliver_held(client: Client, store: HeldEvents, workflow_id: str) -> int:
    """Signal a workflow that has just started with what arrived for it before it ran (a shipment before its order,
    a receipt before its return), in the order it arrived; how many were delivered. One that cannot be delivered
    yet (the run closed meanwhile) stays held, with its quarantined copy, for an analyst."""
    import asyncio

    delivered = 0
    for event in await asyncio.to_thread(store.held_events, workflow_id):
        if not await signal_workflow(client, workflow_id, event["signal"], event["payload"]):
            break
        await asyncio.to_thread(store.event_applied, event["id"], workflow_id)
        delivered += 1
    return delivered
