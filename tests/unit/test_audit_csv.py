"""The business audit trail (api/audit.py) of a history with a parked step and the analyst's actions: each action
row names the action (retry, skip, cancel, resume) with its actor and reason, and every row carries the step's
canonical input and output (README "For support analysts", **Audit**), in JSON and in the CSV for finance."""

from __future__ import annotations

import csv
import io
import json

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.converter import default

from api.audit import CSV_COLUMNS, audit_answer, build_trail, to_csv
from api.auth import Principal, Role
from canonical.ops import AnalystRequest, OrderCorrections

CONVERTER = default().payload_converter


def _event(event_id: int, event_type: EventType, **attrs) -> HistoryEvent:
    event = HistoryEvent(event_id=event_id, event_type=event_type, event_time=Timestamp(seconds=1_767_225_600 + event_id))
    for field, fill in attrs.items():
        fill(getattr(event, field))
    return event


def _payloads(container, *values) -> None:
    container.payloads.extend(CONVERTER.to_payloads(list(values)))


def _history() -> WorkflowHistory:
    E = EventType
    order = {"external_id": "1001", "customer": {"email": "ann@example.com", "first_name": "Ann"}}
    events = [
        _event(1, E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, workflow_execution_started_event_attributes=lambda a: (
            setattr(a.workflow_type, "name", "OrderFulfillment"), _payloads(a.input, order))),
        _event(5, E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, activity_task_scheduled_event_attributes=lambda a: (
            setattr(a.activity_type, "name", "resolve_skus"), _payloads(a.input, {"skus": ["SKU2006-35"]}))),
        _event(6, E.EVENT_TYPE_ACTIVITY_TASK_STARTED, activity_task_started_event_attributes=lambda a: (
            setattr(a, "scheduled_event_id", 5), setattr(a, "attempt", 1))),
        _event(7, E.EVENT_TYPE_ACTIVITY_TASK_FAILED, activity_task_failed_event_attributes=lambda a: (
            setattr(a, "scheduled_event_id", 5), setattr(a.failure, "message", "unknown SKU shopify/SKU2006-35"),
            setattr(a.failure.application_failure_info, "type", "UnknownSku"))),
        _event(10, E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
               workflow_execution_update_accepted_event_attributes=lambda a: (
                   setattr(a, "protocol_instance_id", "u1"), setattr(a.accepted_request.input, "name", "act"),
                   _payloads(a.accepted_request.input.args, AnalystRequest(
                       action="resume", actor="key:ana", reason="storefront typo",
                       corrections=OrderCorrections(sku_corrections={"SKU2006-35": "SKU2006-035"})
                   ).model_dump(mode="json")))),
        _event(11, E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
               workflow_execution_update_completed_event_attributes=lambda a: (
                   setattr(a.meta, "update_id", "u1"), _payloads(a.outcome.success, {"status": "resolving"}))),
        _event(12, E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
               workflow_execution_update_accepted_event_attributes=lambda a: (
                   setattr(a, "protocol_instance_id", "u2"), setattr(a.accepted_request.input, "name", "act"),
                   _payloads(a.accepted_request.input.args,
                             AnalystRequest(action="retry", actor="key:bob",
                                            reason="mapped SKU2006-35").model_dump(mode="json")))),
        _event(13, E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
               workflow_execution_update_completed_event_attributes=lambda a: (
                   setattr(a.meta, "update_id", "u2"), setattr(a.outcome.failure, "message", "nothing is parked"))),
        _event(14, E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, workflow_execution_signaled_event_attributes=lambda a: (
            setattr(a, "signal_name", "skip"), _payloads(a.input, {"actor": "you@example.com", "reason": "done by hand"}))),
        _event(15, E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, workflow_execution_signaled_event_attributes=lambda a: (
            setattr(a, "signal_name", "cancel"), _payloads(a.input, {"actor": "carol", "reason": "customer asked"}))),
        _event(20, E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, activity_task_scheduled_event_attributes=lambda a: (
            setattr(a.activity_type, "name", "create_invoice"), _payloads(a.input, {"sales_order": "SO-1"}))),
        _event(21, E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, activity_task_completed_event_attributes=lambda a: (
            setattr(a, "scheduled_event_id", 20), _payloads(a.result, {"invoice_id": "SINV-1", "total": "21.60"}))),
    ]
    return WorkflowHistory("order:shopify:1001", events)


def test_action_rows_name_the_action_with_actor_and_reason_in_json_and_csv():
    trail = build_trail(_history())
    actions = [(e.kind, e.name, e.actor, e.reason, e.state) for e in trail if e.kind in ("update", "signal")]
    assert actions == [("update", "resume", "key:ana", "storefront typo", "completed"),
                       ("update", "retry", "key:bob", "mapped SKU2006-35", "failed"),
                       ("signal", "skip", "you@example.com", "done by hand", None),
                       ("signal", "cancel", "carol", "customer asked", None)]
    resume = next(e for e in trail if e.name == "resume")
    assert resume.input["corrections"]["sku_corrections"] == {"SKU2006-35": "SKU2006-035"}
    assert resume.output == {"status": "resolving"}
    assert next(e for e in trail if e.name == "retry").error == "nothing is parked"

    rows = list(csv.DictReader(io.StringIO(to_csv(trail))))
    assert list(rows[0]) == CSV_COLUMNS and {"input", "output"} <= set(CSV_COLUMNS)
    by_name = {r["name"]: r for r in rows}
    assert "act" not in by_name
    for name, actor, reason in (("resume", "key:ana", "storefront typo"), ("retry", "key:bob", "mapped SKU2006-35"),
                                ("skip", "you@example.com", "done by hand"), ("cancel", "carol", "customer asked")):
        assert (by_name[name]["actor"], by_name[name]["reason"]) == (actor, reason)
    assert json.loads(by_name["resume"]["input"])["action"] == "resume"
    assert json.loads(by_name["resume"]["output"]) == {"status": "resolving"}
    # the steps carry their canonical input and output, as JSON in one cell
    assert json.loads(by_name["resolve_skus"]["input"]) == {"skus": ["SKU2006-35"]}
    assert by_name["resolve_skus"]["output"] == "" and by_name["resolve_skus"]["error"].startswith("UnknownSku: ")
    assert json.loads(by_name["create_invoice"]["input"]) == {"sales_order": "SO-1"}
    assert json.loads(by_name["create_invoice"]["output"]) == {"invoice_id": "SINV-1", "total": "21.60"}
    assert json.loads(by_name["started"]["input"])["external_id"] == "1001"


def test_the_csv_masks_personal_data_in_inputs_below_analyst_and_keeps_the_actor():
    trail = build_trail(_history())
    viewer = Principal(name="key:v", role=Role.viewer, via="api_key")
    analyst = Principal(name="key:a", role=Role.analyst, via="api_key")
    seen = audit_answer(trail, "csv", viewer).body.decode()
    whole = audit_answer(trail, "csv", analyst).body.decode()
    assert "ann@example.com" in whole and "Ann" in whole
    assert "ann@example.com" not in seen and '""first_name"":""Ann""' not in seen
    started = next(r for r in csv.DictReader(io.StringIO(seen)) if r["name"] == "started")
    assert json.loads(started["input"])["external_id"] == "1001"
    assert any(r["actor"] == "key:ana" for r in csv.DictReader(io.StringIO(seen)))
