"""Correlation ids, log context and Prometheus metrics shared by the API and the worker.

A correlation id is minted (or taken from `X-Correlation-Id`) when a webhook arrives, travels in a Temporal
header to the workflow and from there to every activity (and so every adapter call), and is bound into every
structlog event on the way, with `workflow_id`, `run_id`, `activity`, `channel` and `external_id`.
"""

from __future__ import annotations

import contextvars
import time
import uuid
from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any, Protocol

import structlog
import temporalio.activity
import temporalio.api.common.v1
import temporalio.client
import temporalio.converter
import temporalio.worker
import temporalio.workflow
from prometheus_client import Counter, Gauge, Histogram

from activities.errors import transient_error
from canonical.vendor_errors import VendorUnavailable

HEADER_KEY = "retailflow-correlation-id"
HTTP_HEADER = "X-Correlation-Id"
correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)


def new_correlation_id() -> str:
    return uuid.uuid4().hex


# -- metrics -------------------------------------------------------------------------------------------
WEBHOOKS = Counter("retailflow_webhooks_total", "Webhook deliveries by source and outcome", ["source", "outcome"])
WEBHOOK_DUPLICATES = Counter("retailflow_webhook_duplicates_total", "Duplicate webhook deliveries", ["source"])
QUARANTINED = Counter("retailflow_quarantined_total", "Deliveries kept in quarantine", ["source", "status_code"])
ACTIVITY_FAILURES = Counter("retailflow_activity_failures_total", "Activity attempts that failed",
                            ["activity", "error_type", "channel"])
ACTIVITY_RETRIES = Counter("retailflow_activity_retries_total", "Activity attempts after the first",
                           ["activity", "channel"])
ACTIVITY_SECONDS = Histogram("retailflow_activity_seconds", "Activity attempt duration", ["activity"])
ORDER_MILESTONE_SECONDS = Histogram(
    "retailflow_order_milestone_seconds", "Time from intake to each order milestone", ["milestone", "channel"],
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 72 * 3600),
)


SHOPIFY_COST_AVAILABLE = Gauge("retailflow_shopify_cost_available", "Points left in a shop's GraphQL Admin API "
                                "cost bucket (extensions.cost.throttleStatus), as last seen", ["shop"])
SHOPIFY_WEBHOOK_VERSION_MISMATCH = Counter(
    "retailflow_shopify_webhook_version_mismatch_total", "Shopify webhooks whose X-Shopify-API-Version is not the "
    "configured Admin API version", ["received", "configured"])
SHOPIFY_COST_MAXIMUM = Gauge("retailflow_shopify_cost_maximum", "Size of a shop's GraphQL cost bucket", ["shop"])


def observe_shopify_cost(shop: str, status: Any) -> None:
    """Each GraphQL answer's throttle status: what back-pressure and alerts read (docs/vendors.md)."""
    SHOPIFY_COST_AVAILABLE.labels(shop=shop).set(float(status.available))
    SHOPIFY_COST_MAXIMUM.labels(shop=shop).set(float(status.maximum))


def observe_order_milestone(milestone: str, channel: str, seconds: float) -> None:
    """What `OpsActivities` calls when an order reaches a milestone (the worker injects it)."""
    ORDER_MILESTONE_SECONDS.labels(milestone, channel).observe(seconds)


PARKED_RUNS = Gauge("retailflow_parked_runs", "Runs waiting for an analyst (from the status projection)", ["kind"])
NEGATIVE_FREE = Gauge("retailflow_inventory_negative_free_rows", "Item/location rows whose free stock (on hand − "
                      "reserved − allocated) is below zero; lasting rows mean units promised or sold that are not there")


# -- Temporal header propagation (client → workflow → activity) -----------------------------------------
class _InputWithHeaders(Protocol):
    headers: Mapping[str, temporalio.api.common.v1.Payload]


def _set_header(input: _InputWithHeaders, converter: temporalio.converter.PayloadConverter) -> None:
    value = correlation_id.get()
    if value:
        input.headers = {**input.headers, HEADER_KEY: converter.to_payload(value)}


@contextmanager
def _from_header(input: _InputWithHeaders, converter: temporalio.converter.PayloadConverter):
    payload = input.headers.get(HEADER_KEY)
    token = correlation_id.set(converter.from_payload(payload, str)) if payload else None
    try:
        yield
    finally:
        if token is not None:
            correlation_id.reset(token)


class CorrelationInterceptor(temporalio.client.Interceptor, temporalio.worker.Interceptor):
    """Carries the correlation id in Temporal headers; binds log context and counts activity outcomes."""

    def __init__(self, payload_converter: temporalio.converter.PayloadConverter | None = None) -> None:
        self._converter = payload_converter or temporalio.converter.default().payload_converter

    def intercept_client(self, next: temporalio.client.OutboundInterceptor) -> temporalio.client.OutboundInterceptor:
        return _ClientOutbound(next, self._converter)

    def intercept_activity(self, next: temporalio.worker.ActivityInboundInterceptor):
        return _ActivityInbound(next)

    def workflow_interceptor_class(self, input: temporalio.worker.WorkflowInterceptorClassInput):
        return _WorkflowInbound


class _ClientOutbound(temporalio.client.OutboundInterceptor):
    def __init__(self, next, converter) -> None:
        super().__init__(next)
        self._converter = converter

    async def start_workflow(self, input: temporalio.client.StartWorkflowInput):
        _set_header(input, self._converter)
        return await super().start_workflow(input)

    async def signal_workflow(self, input: temporalio.client.SignalWorkflowInput) -> None:
        _set_header(input, self._converter)
        await super().signal_workflow(input)

    async def start_workflow_update(self, input: temporalio.client.StartWorkflowUpdateInput):
        _set_header(input, self._converter)
        return await super().start_workflow_update(input)


def _channel_of(workflow_id: str) -> str:
    parts = workflow_id.split(":")
    return parts[1] if len(parts) >= 3 else ""


class _ActivityInbound(temporalio.worker.ActivityInboundInterceptor):
    async def execute_activity(self, input: temporalio.worker.ExecuteActivityInput) -> Any:
        info = temporalio.activity.info()
        channel = _channel_of(info.workflow_id or "")
        with _from_header(input, temporalio.activity.payload_converter()):
            bound = {"workflow_id": info.workflow_id, "run_id": info.workflow_run_id,
                     "activity": info.activity_type, "attempt": info.attempt, "channel": channel,
                     "external_id": (info.workflow_id or "").split(":", 2)[-1],
                     "correlation_id": correlation_id.get()}
            if info.attempt > 1:
                ACTIVITY_RETRIES.labels(info.activity_type, channel).inc()
            started = time.perf_counter()
            with structlog.contextvars.bound_contextvars(**bound):
                try:
                    try:
                        return await self.next.execute_activity(input)
                    except VendorUnavailable as exc:  # any activity: a vendor's transient fault is retried
                        raise transient_error(exc) from exc
                except BaseException as exc:
                    error_type = getattr(exc, "type", None) or type(exc).__name__
                    ACTIVITY_FAILURES.labels(info.activity_type, error_type, channel).inc()
                    raise
                finally:
                    ACTIVITY_SECONDS.labels(info.activity_type).observe(time.perf_counter() - started)


class _WorkflowInbound(temporalio.worker.WorkflowInboundInterceptor):
    def init(self, outbound: temporalio.worker.WorkflowOutboundInterceptor) -> None:
        self.next.init(_WorkflowOutbound(outbound))

    async def execute_workflow(self, input: temporalio.worker.ExecuteWorkflowInput) -> Any:
        with _from_header(input, temporalio.workflow.payload_converter()):
            return await self.next.execute_workflow(input)

    async def handle_signal(self, input: temporalio.worker.HandleSignalInput) -> None:
        with _from_header(input, temporalio.workflow.payload_converter()):
            return await self.next.handle_signal(input)

    async def handle_update_handler(self, input: temporalio.worker.HandleUpdateInput) -> Any:
        with _from_header(input, temporalio.workflow.payload_converter()):
            return await self.next.handle_update_handler(input)


class _WorkflowOutbound(temporalio.worker.WorkflowOutboundInterceptor):
    def start_activity(self, input: temporalio.worker.StartActivityInput):
        _set_header(input, temporalio.workflow.payload_converter())
        return self.next.start_activity(input)

    def start_local_activity(self, input: temporalio.worker.StartLocalActivityInput):
        _set_header(input, temporalio.workflow.payload_converter())
        return self.next.start_local_activity(input)

    async def start_child_workflow(self, input: temporalio.worker.StartChildWorkflowInput):
        _set_header(input, temporalio.workflow.payload_converter())
        return await self.next.start_child_workflow(input)

    async def signal_external_workflow(self, input: temporalio.worker.SignalExternalWorkflowInput) -> None:
        _set_header(input, temporalio.workflow.payload_converter())
        return await self.next.signal_external_workflow(input)
