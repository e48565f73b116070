"""Turn a workflow history into a business audit trail: steps with time, attempts, canonical inputs and
outputs and errors; analyst signals and updates with actor and reason; status changes; compensation."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

from fastapi import HTTPException
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHistory
from temporalio.converter import PayloadConverter
from temporalio.service import RPCError, RPCStatusCode

from api.auth import Principal
from api.masking import for_principal

UNDO_ACTIVITIES = {"release_stock", "void_tax", "cancel_sales_order", "cancel_wms_release",
                   "notify_channel_cancelled"}


class AuditEntry(BaseModel):
    time: datetime
    kind: str  # workflow | step | signal | update | status | timer
    name: str
    summary: str | None = None
    state: str | None = None
    attempt: int | None = None
    actor: str | None = None
    reason: str | None = None
    error: str | None = None
    compensation: bool = False
    input: Any = None
    output: Any = None
    finished: datetime | None = None


def _payloads(payloads) -> Any:
    values: list[Any] = []
    for p in payloads:
        encoding = p.metadata.get("encoding", b"").decode()
        if encoding == "binary/null" or not p.data:
            values.append(None)
        elif encoding.startswith("json/"):
            values.append(json.loads(p.data))
        else:
            values.append(f"<{encoding or 'binary'} payload, {len(p.data)} bytes>")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def _summary(event: HistoryEvent) -> str | None:
    if event.HasField("user_metadata") and event.user_metadata.HasField("summary"):
        value = _payloads([event.user_metadata.summary])
        return value if isinstance(value, str) else None
    return None


def _when(event: HistoryEvent) -> datetime:
    return event.event_time.ToDatetime().replace(tzinfo=__import__("datetime").UTC)


def _actor(value: Any) -> tuple[str | None, str | None]:
    if isinstance(value, dict):
        return value.get("actor"), value.get("reason")
    return None, None


ANALYST_ACTIONS = ("retry", "skip", "cancel", "resume")


def _action(name: str, value: Any) -> str:
    """What the analyst did: the `act` update (and an `act`-style signal) carries it in its `action`; the
    retry/skip/cancel signals are named after it."""
    if isinstance(value, dict) and value.get("action") in ANALYST_ACTIONS:
        return str(value["action"])
    return name


def build_trail(history: WorkflowHistory) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    by_scheduled: dict[int, AuditEntry] = {}
    updates: dict[str, AuditEntry] = {}
    for event in history.events:
        et = event.event_type
        attrs: Any  # each event type has its own attributes message
        entry: AuditEntry | None
        if et == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            attrs = event.workflow_execution_started_event_attributes
            entries.append(AuditEntry(time=_when(event), kind="workflow", name="started",
                                      summary=attrs.workflow_type.name, input=_payloads(attrs.input.payloads)))
        elif et == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            summary = _summary(event)
            entry = AuditEntry(time=_when(event), kind="step", name=attrs.activity_type.name, summary=summary,
                               state="scheduled", input=_payloads(attrs.input.payloads),
                               compensation=bool(summary and summary.startswith("Undo:"))
                               or attrs.activity_type.name in UNDO_ACTIVITIES)
            by_scheduled[event.event_id] = entry
            entries.append(entry)
        elif et == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attrs = event.activity_task_started_event_attributes
            if (entry := by_scheduled.get(attrs.scheduled_event_id)) is not None:
                entry.attempt = attrs.attempt
                entry.state = "started"
                if attrs.HasField("last_failure") and attrs.last_failure.message:
                    entry.error = f"earlier attempt: {attrs.last_failure.message}"
        elif et == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            attrs = event.activity_task_completed_event_attributes
            if (entry := by_scheduled.get(attrs.scheduled_event_id)) is not None:
                entry.state, entry.finished = "completed", _when(event)
                entry.output = _payloads(attrs.result.payloads)
        elif et == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
            attrs = event.activity_task_failed_event_attributes
            if (entry := by_scheduled.get(attrs.scheduled_event_id)) is not None:
                entry.state, entry.finished = "failed", _when(event)
                failure = attrs.failure
                kind = failure.application_failure_info.type if failure.HasField("application_failure_info") else ""
                entry.error = f"{kind + ': ' if kind else ''}{failure.message}"
        elif et == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
            attrs = event.activity_task_timed_out_event_attributes
            if (entry := by_scheduled.get(attrs.scheduled_event_id)) is not None:
                entry.state, entry.finished, entry.error = "timed_out", _when(event), attrs.failure.message
        elif et == EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED:
            attrs = event.activity_task_canceled_event_attributes
            if (entry := by_scheduled.get(attrs.scheduled_event_id)) is not None:
                entry.state, entry.finished = "cancelled", _when(event)
        elif et == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            attrs = event.workflow_execution_signaled_event_attributes
            value = _payloads(attrs.input.payloads)
            actor, reason = _actor(value)
            entries.append(AuditEntry(time=_when(event), kind="signal", name=_action(attrs.signal_name, value),
                                      actor=actor, reason=reason, input=value))
        elif et == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            attrs = event.workflow_execution_update_accepted_event_attributes
            request = attrs.accepted_request
            value = _payloads(request.input.args.payloads)
            actor, reason = _actor(value)
            entry = AuditEntry(time=_when(event), kind="update", name=_action(request.input.name, value), actor=actor,
                               reason=reason, state="accepted", input=value)
            updates[attrs.protocol_instance_id] = entry
            entries.append(entry)
        elif et == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            attrs = event.workflow_execution_update_completed_event_attributes
            if (entry := updates.get(attrs.meta.update_id)) is not None:
                entry.state, entry.finished = "completed", _when(event)
                if attrs.outcome.HasField("failure"):
                    entry.state, entry.error = "failed", attrs.outcome.failure.message
                else:
                    entry.output = _payloads(attrs.outcome.success.payloads)
        elif et == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
            if "OrderStatus" in fields:
                status = str(json.loads(fields["OrderStatus"].data))
                last = next((e for e in reversed(entries) if e.kind == "status"), None)
                if last is None or last.name != status:
                    entries.append(AuditEntry(time=_when(event), kind="status", name=status))
        elif et == EventType.EVENT_TYPE_TIMER_STARTED:
            attrs = event.timer_started_event_attributes
            entries.append(AuditEntry(time=_when(event), kind="timer", name=_summary(event) or "timer",
                                      state="started", summary=f"{attrs.start_to_fire_timeout.ToSeconds()}s"))
        elif et == EventType.EVENT_TYPE_TIMER_FIRED:
            entries.append(AuditEntry(time=_when(event), kind="timer", name="timer fired", state="fired"))
        elif et == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            attrs = event.workflow_execution_completed_event_attributes
            entries.append(AuditEntry(time=_when(event), kind="workflow", name="completed",
                                      output=_payloads(attrs.result.payloads)))
        elif et == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
            attrs = event.workflow_execution_failed_event_attributes
            entries.append(AuditEntry(time=_when(event), kind="workflow", name="failed", error=attrs.failure.message))
        elif et == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
            entries.append(AuditEntry(time=_when(event), kind="workflow", name="cancelled"))
        elif et == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
            attrs = event.workflow_execution_cancel_requested_event_attributes
            entries.append(AuditEntry(time=_when(event), kind="signal", name="cancel_requested",
                                      actor=attrs.identity or None, reason=attrs.cause or None))
    return entries


CSV_COLUMNS = ["time", "kind", "name", "summary", "state", "attempt", "actor", "reason", "error", "compensation",
               "finished", "input", "output"]
_JSON_COLUMNS = ("input", "output")  # the step's canonical input and output, as compact JSON in one cell


def to_csv(entries: list[AuditEntry]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for e in entries:
        row = e.model_dump(mode="json")
        for k in _JSON_COLUMNS:
            value = row.get(k)
            row[k] = None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        writer.writerow({k: row.get(k) for k in CSV_COLUMNS})
    return out.getvalue()


def audit_answer(entries: list[AuditEntry], format: str, principal: Principal):
    """The audit trail as `principal` may read it (personal data masked below analyst), as JSON or CSV."""
    if not principal.sees_personal_data():
        entries = [AuditEntry.model_validate(e) for e in for_principal(principal, entries)]
    if format == "csv":
        return PlainTextResponse(to_csv(entries), media_type="text/csv")
    return entries


async def decode_history(client: Client, history: WorkflowHistory) -> WorkflowHistory:
    """The history with the payloads the trail reads opened by the client's payload codec (runtime/codec.py: the
    server keeps them encrypted), in place; unchanged without a codec."""
    codec = client.data_converter.payload_codec
    if codec is None:
        return history
    for event in history.events:
        containers = []
        if event.HasField("workflow_execution_started_event_attributes"):
            containers.append(event.workflow_execution_started_event_attributes.input)
        elif event.HasField("activity_task_scheduled_event_attributes"):
            containers.append(event.activity_task_scheduled_event_attributes.input)
        elif event.HasField("activity_task_completed_event_attributes"):
            containers.append(event.activity_task_completed_event_attributes.result)
        elif event.HasField("workflow_execution_signaled_event_attributes"):
            containers.append(event.workflow_execution_signaled_event_attributes.input)
        elif event.HasField("workflow_execution_update_accepted_event_attributes"):
            containers.append(event.workflow_execution_update_accepted_event_attributes.accepted_request.input.args)
        elif event.HasField("workflow_execution_completed_event_attributes"):
            containers.append(event.workflow_execution_completed_event_attributes.result)
        elif event.HasField("workflow_execution_update_completed_event_attributes"):
            outcome = event.workflow_execution_update_completed_event_attributes.outcome
            if outcome.HasField("success"):
                containers.append(outcome.success)
        for container in containers:
            if container.payloads:
                decoded = await codec.decode(list(container.payloads))
                del container.payloads[:]
                container.payloads.extend(decoded)
        for failure in _failures(event):
            await codec.decode_failure(failure)
            _open_failure(failure, client.data_converter.payload_converter)
        if event.HasField("user_metadata") and event.user_metadata.HasField("summary"):
            (summary,) = await codec.decode([event.user_metadata.summary])
            event.user_metadata.summary.CopyFrom(summary)
    return history


def _failures(event: HistoryEvent) -> list[Failure]:
    """The failures of an event the trail reads (their messages are sealed: runtime/codec.py)."""
    found = []
    if event.HasField("activity_task_started_event_attributes"):
        attrs = event.activity_task_started_event_attributes
        if attrs.HasField("last_failure"):
            found.append(attrs.last_failure)
    elif event.HasField("activity_task_failed_event_attributes"):
        found.append(event.activity_task_failed_event_attributes.failure)
    elif event.HasField("activity_task_timed_out_event_attributes"):
        found.append(event.activity_task_timed_out_event_attributes.failure)
    elif event.HasField("workflow_execution_failed_event_attributes"):
        found.append(event.workflow_execution_failed_event_attributes.failure)
    elif event.HasField("workflow_execution_update_completed_event_attributes"):
        outcome = event.workflow_execution_update_completed_event_attributes.outcome
        if outcome.HasField("failure"):
            found.append(outcome.failure)
    return found


def _open_failure(failure: Failure, payload_converter: PayloadConverter) -> None:
    """Put a decoded failure's message (and its causes') back where the trail reads it, as Temporal's
    DefaultFailureConverter does when it turns a failure into an exception."""
    while True:
        if failure.HasField("encoded_attributes"):
            try:
                attributes = payload_converter.from_payloads([failure.encoded_attributes])[0]
            except Exception:  # noqa: BLE001 -- not the attributes the converter writes: leave the failure as it is
                attributes = None
            if isinstance(attributes, dict) and isinstance(attributes.get("message"), str):
                failure.message = attributes["message"]
        if not failure.HasField("cause"):
            return
        failure = failure.cause


async def fetch_audit(client: Client, workflow_id: str) -> list[AuditEntry]:
    try:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(404, f"no workflow {workflow_id}") from None
        raise HTTPException(503, f"Temporal is unavailable: {exc.message}") from None
    return build_trail(await decode_history(client, history))
