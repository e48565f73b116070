"""An in-process stand-in for temporalio's Client, for the fuzz tier (no server: the tier's budget is 90 s).

It does what a Temporal frontend does with what the API sends: every workflow input and signal argument is
encoded with the platform's real data converter (pydantic), so an input the SDK could not serialize fails here
as it would against a server; a workflow id starts once (a second start is WorkflowAlreadyStartedError;
signal-with-start signals the running one); a handle on a workflow that is not running answers NOT_FOUND.
`track_runs=False` makes every started run finish at once (as if retention already deleted it), so status reads
answer 404 and analyst actions 409 instead of waiting on a query no worker would answer."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from temporalio.client import WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from runtime.observability import CorrelationInterceptor


def _not_found(wf_id: str) -> RPCError:
    return RPCError(f"workflow not found for ID: {wf_id[:200]}", RPCStatusCode.NOT_FOUND, b"")


async def _encode(*values: Any) -> None:
    """Encode as the SDK would before sending (raises on what cannot travel)."""
    await pydantic_data_converter.encode(list(values))


class FakeHandle:
    def __init__(self, client: FakeTemporal, wf_id: str) -> None:
        self.client, self.id = client, wf_id

    def _running(self) -> None:
        if self.id not in self.client.running:
            raise _not_found(self.id)

    async def describe(self, **_: Any):
        self._running()
        return SimpleNamespace(status=WorkflowExecutionStatus.RUNNING, id=self.id)

    async def signal(self, signal: str, arg: Any = None, **_: Any) -> None:
        self._running()
        await _encode(arg)
        self.client.signals.append((self.id, signal))

    async def query(self, query: str, *args: Any, **_: Any):
        self._running()
        raise RPCError("query timed out: no worker is polling the task queue", RPCStatusCode.DEADLINE_EXCEEDED, b"")

    async def execute_update(self, update: str, arg: Any = None, **_: Any):
        await _encode(arg)
        self._running()
        raise RPCError("update timed out: no worker is polling the task queue", RPCStatusCode.DEADLINE_EXCEEDED,
                       b"")

    async def fetch_history(self, **_: Any):
        raise _not_found(self.id)

    async def terminate(self, *args: Any, **_: Any) -> None:
        self._running()
        self.client.running.discard(self.id)

    async def cancel(self, **_: Any) -> None:
        self._running()


class FakeTemporal:
    def __init__(self, *, track_runs: bool = True) -> None:
        self.track_runs = track_runs
        self.running: set[str] = set()
        self.starts: list[tuple[str, str]] = []
        self.signals: list[tuple[str, str]] = []

    def config(self) -> dict:
        return {"interceptors": [CorrelationInterceptor()]}

    def get_workflow_handle(self, workflow_id: str, **_: Any) -> FakeHandle:
        return FakeHandle(self, workflow_id)

    async def start_workflow(self, workflow: Any, arg: Any = None, *, id: str, **kwargs: Any) -> FakeHandle:
        await _encode(arg, *kwargs.get("start_signal_args", []), *kwargs.get("args", []))
        name = workflow if isinstance(workflow, str) else getattr(workflow, "__name__", str(workflow))
        if kwargs.get("start_signal") and id in self.running:  # signal-with-start on a running workflow
            self.signals.append((id, kwargs["start_signal"]))
            return FakeHandle(self, id)
        if id in self.running and str(kwargs.get("id_conflict_policy", "")).endswith("USE_EXISTING") is False:
            raise WorkflowAlreadyStartedError(id, name)
        self.starts.append((name, id))
        if kwargs.get("start_signal"):
            self.signals.append((id, kwargs["start_signal"]))
        if self.track_runs:
            self.running.add(id)
        return FakeHandle(self, id)

    async def execute_workflow(self, workflow: Any, arg: Any = None, *, id: str, **kwargs: Any) -> Any:
        await _encode(arg)
        raise RPCError("workflow execution timed out: no worker is polling the task queue",
                       RPCStatusCode.DEADLINE_EXCEEDED, b"")
