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
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
import temporalio.activity
import temporalio.api.common.v1
import temporalio.client
import temporalio.converter
import temporalio.exceptions
import temporalio.worker
import temporalio.workflow
from prometheus_client import Counter, Gauge, Histogram

from activities.errors import transient_error
from canonical.vendor_errors import VendorRateLimited, VendorUnavailable
from runtime.breakers import CURRENT_QUEUE
from runtime.breakers import REPORTS as BREAKER_REPORTS

_log = structlog.get_logger(__name__)
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
ORDERS_BURST_DEMOTED = Counter("retailflow_orders_burst_demoted_total", "Orders started one priority lower because "
                               "their store was above RETAILFLOW_ORDER_BURST_PER_MINUTE", ["channel"])
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


# -- business SLOs (issue 19; alerts: runtime/alerts.py, meanings and runbooks: docs/operations.md) -------------
# latency buckets from a second to three days: the SLO thresholds (settings, `slo_*_seconds`) fall between them
_SLO_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 2 * 3600, 4 * 3600, 12 * 3600,
                24 * 3600, 72 * 3600)
ORDER_INGESTION_SECONDS = Histogram(
    "retailflow_order_ingestion_seconds", "Order webhook received by the API → its order workflow started in "
    "Temporal (new orders only; duplicates and signals are not counted)", ["channel"], buckets=_SLO_BUCKETS)
ERP_BOOKING_SECONDS = Histogram(
    "retailflow_order_erp_booking_seconds", "Order workflow started → its ERP sales order booked "
    "(create_sales_order succeeded), parked time included", ["channel"], buckets=_SLO_BUCKETS)
INVENTORY_PUBLICATION_SECONDS = Histogram(
    "retailflow_inventory_publication_seconds", "Availability publication issued (publish_availability first "
    "scheduled) → the channel acknowledged it, retries and Retry-After waits included", ["channel"],
    buckets=_SLO_BUCKETS)
INVENTORY_PUBLICATIONS = Counter("retailflow_inventory_publications_total", "Availability publications by "
                                 "channel and outcome (published | failed attempt)", ["channel", "outcome"])
SHIPMENT_CONFIRMATION_SECONDS = Histogram(
    "retailflow_shipment_confirmation_seconds", "Warehouse shipped (the shipment's shipped_at) → the channel "
    "confirmed the shipment (confirm_shipment succeeded)", ["channel"], buckets=_SLO_BUCKETS)
PARKED_RUNS_BY_REASON = Gauge("retailflow_parked_runs_by_reason", "Runs waiting for an analyst by kind and reason "
                              "(the step that parked, or `other`), from the status projection", ["kind", "reason"])
PARKED_OLDEST_AGE = Gauge("retailflow_parked_run_oldest_age_seconds", "Age of the oldest run waiting for an "
                          "analyst, by kind and reason (since it was parked)", ["kind", "reason"])
UNMATCHED_SETTLEMENT_LINES = Gauge("retailflow_settlement_unmatched_lines", "Settlement lines in open exceptions "
                                   "(not resolved, settlement not cancelled), by provider and exception kind",
                                   ["provider", "kind"])
QUARANTINE_OPEN = Gauge("retailflow_quarantine_open", "Quarantined deliveries not resolved (not replayed "
                        "successfully), by source", ["source"])
QUARANTINE_REPLAYS = Counter("retailflow_quarantine_replays_total", "Quarantine replays by source and outcome "
                             "(resolved | failed)", ["source", "outcome"])
PARTNER_BREAKER_STATE = Gauge("retailflow_partner_breaker_state", "A partner's circuit breaker: 0 closed, "
                              "0.5 half-open, 1 open", ["partner"])
BREAKER_STATES = {"closed": 0.0, "half_open": 0.5, "half-open": 0.5, "open": 1.0}


def set_partner_breaker_state(partner: str, state: str) -> None:
    """What a partner's circuit breaker calls on each transition: "closed", "half_open" or "open"."""
    try:
        value = BREAKER_STATES[state]
    except KeyError:
        raise ValueError(f"unknown breaker state {state!r}: one of closed, half_open, open") from None
    PARTNER_BREAKER_STATE.labels(partner=partner).set(value)


# the webhook sources whose deliveries start order workflows (the warehouse's and ShipStation's signal them; Amazon
# orders arrive through the poll): add a source here when it starts orders
ORDER_INTAKE_SOURCES = frozenset({"shopify"})


def observe_intake(source: str, outcome: Any, seconds: float) -> None:
    """Every webhook the API answered (api/intake/pipeline.py `receive`): counters by source and status, and the
    ingestion lag of a delivery that started a new order workflow (`seconds`: since the request arrived)."""
    body = outcome.body
    if body.get("duplicate"):
        WEBHOOK_DUPLICATES.labels(source).inc()
    if body.get("quarantine_id"):
        QUARANTINED.labels(source, str(outcome.status_code)).inc()
    WEBHOOKS.labels(source, str(outcome.status_code)).inc()
    workflow_id = body.get("workflow_id")
    started = (outcome.status_code == 202 and body.get("duplicate") is False
               and not {"signalled", "held", "quarantine_id"} & set(body))  # a signal, a held event: no start
    if (source in ORDER_INTAKE_SOURCES and started and isinstance(workflow_id, str)
            and workflow_id.startswith("order:")):
        ORDER_INGESTION_SECONDS.labels(_channel_of(workflow_id)).observe(max(seconds, 0.0))


def observe_replay(source: str, resolved: bool) -> None:
    """A quarantined delivery run through intake again (POST /ops/quarantine/{id}/replay)."""
    QUARANTINE_REPLAYS.labels(source, "resolved" if resolved else "failed").inc()


def refresh_platform_gauges(engine: Any, now: datetime | None = None) -> None:
    """The gauges read from the platform database, set on each /metrics scrape: parked runs (by kind; by kind and
    reason, with the oldest's age), unmatched settlement lines, open quarantine, negative free stock. A label
    set that no longer has rows is set to 0 rather than left at its last value."""
    from adapters.inventory.ledger import InventoryLedger
    from adapters.platform.projection import StatusProjection

    now = now or datetime.now(UTC)
    projection = StatusProjection(engine)
    _set_all(PARKED_RUNS, {(kind,): n for kind, n in projection.parked_counts().items()})
    summary = projection.parked_summary()
    _set_all(PARKED_RUNS_BY_REASON, {(p.kind, p.reason): p.count for p in summary})
    _set_all(PARKED_OLDEST_AGE, {(p.kind, p.reason): max((now - p.oldest).total_seconds(), 0.0) for p in summary})
    _set_all(UNMATCHED_SETTLEMENT_LINES, _unmatched_settlement_lines(engine))
    _set_all(QUARANTINE_OPEN, _open_quarantine(engine))
    NEGATIVE_FREE.set(len(InventoryLedger(engine).negative_free(limit=10_000)))


def _set_all(gauge: Gauge, values: Mapping[tuple[str, ...], float]) -> None:
    seen = {labels for labels, _ in _label_values(gauge)}
    for labels in seen - set(values):
        gauge.labels(*labels).set(0)
    for labels, value in values.items():
        gauge.labels(*labels).set(value)


def _label_values(gauge: Gauge) -> list[tuple[tuple[str, ...], float]]:
    names = gauge._labelnames  # prometheus_client has no public accessor for a metric's label names
    return [(tuple(s.labels[n] for n in names), s.value)
            for metric in gauge.collect() for s in metric.samples]


def _unmatched_settlement_lines(engine: Any) -> dict[tuple[str, ...], float]:
    from sqlalchemy import func, select

    from adapters import sql as db

    e, s = db.settlement_exceptions, db.settlements
    query = (select(s.c.provider, e.c.kind, func.coalesce(func.sum(e.c.line_count), 0))
             .join(s, s.c.settlement_key == e.c.settlement_key)
             .where(e.c.resolution.is_(None), s.c.status != "cancelled").group_by(s.c.provider, e.c.kind))
    with engine.connect() as conn:
        return {(provider, kind): float(n) for provider, kind, n in conn.execute(query).all()}


def _open_quarantine(engine: Any) -> dict[tuple[str, ...], float]:
    from sqlalchemy import func, select

    from adapters import sql as db

    q = db.quarantine
    with engine.connect() as conn:
        rows = conn.execute(select(q.c.source, func.count()).where(q.c.resolved.is_(False))
                            .group_by(q.c.source)).all()
    return {(source,): float(n) for source, n in rows}


# activities whose success is a business milestone, observed by the activity interceptor below (so no activity
# needs a metrics callback); create_sales_order's start carries the workflow's start time in a header
WORKFLOW_STARTED_HEADER = "retailflow-workflow-started"
_NEEDS_WORKFLOW_START = frozenset({"create_sales_order"})


def observe_activity_done(activity_type: str, channel: str, arg: Any, *, workflow_started: datetime | None,
                          scheduled: datetime | None, now: datetime | None = None) -> None:
    """A completed activity attempt that is a business milestone: ERP booked, shipment confirmed to the
    channel, availability published to the channel."""
    now = now or datetime.now(UTC)
    if activity_type == "create_sales_order" and workflow_started is not None:
        ERP_BOOKING_SECONDS.labels(channel).observe(max((now - workflow_started).total_seconds(), 0.0))
    elif activity_type == "confirm_shipment":
        shipment = getattr(arg, "shipment", None)
        shipped_at = getattr(shipment, "shipped_at", None)
        if isinstance(shipped_at, datetime):
            SHIPMENT_CONFIRMATION_SECONDS.labels(getattr(arg, "channel", None) or channel).observe(
                max((now - shipped_at).total_seconds(), 0.0))
    elif activity_type == "publish_availability":
        target = getattr(arg, "channel", None) or channel
        INVENTORY_PUBLICATIONS.labels(target, "published").inc()
        if scheduled is not None:
            INVENTORY_PUBLICATION_SECONDS.labels(target).observe(max((now - scheduled).total_seconds(), 0.0))


def observe_activity_failed(activity_type: str, arg: Any) -> None:
    if activity_type == "publish_availability":
        INVENTORY_PUBLICATIONS.labels(getattr(arg, "channel", None) or "", "failed").inc()


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
        converter = temporalio.activity.payload_converter()
        with _from_header(input, converter):
            bound = {"workflow_id": info.workflow_id, "run_id": info.workflow_run_id,
                     "activity": info.activity_type, "attempt": info.attempt, "channel": channel,
                     "external_id": (info.workflow_id or "").split(":", 2)[-1],
                     "correlation_id": correlation_id.get()}
            if info.attempt > 1:
                ACTIVITY_RETRIES.labels(info.activity_type, channel).inc()
            started = time.perf_counter()
            with structlog.contextvars.bound_contextvars(**bound):
                arg = input.args[0] if input.args else None
                try:
                    queue_token = CURRENT_QUEUE.set(info.task_queue)  # whose vendor answers carry rate headers
                    try:
                        result = await self.next.execute_activity(input)
                    except Exception as exc:
                        # a vendor's transient fault, raised as it is or already turned into Temporal's retryable
                        # error by the activity (`business_errors`): a partner down counts towards its breaker, a
                        # 429 (it is up and asks to wait) slows its queue
                        vendor = vendor_fault(exc)
                        if vendor is None:
                            raise
                        limited = isinstance(vendor, VendorRateLimited)
                        BREAKER_REPORTS.record(info.task_queue, ok=False, transient=not limited,
                                               rate_limited=limited, error=str(vendor))
                        if vendor is exc:  # any activity: a vendor's transient fault is retried
                            raise transient_error(vendor) from exc
                        raise
                    finally:
                        CURRENT_QUEUE.reset(queue_token)
                    BREAKER_REPORTS.record(info.task_queue, ok=True)
                except BaseException as exc:
                    error_type = getattr(exc, "type", None) or type(exc).__name__
                    ACTIVITY_FAILURES.labels(info.activity_type, error_type, channel).inc()
                    observe_activity_failed(info.activity_type, arg)
                    raise
                finally:
                    ACTIVITY_SECONDS.labels(info.activity_type).observe(time.perf_counter() - started)
                try:
                    observe_activity_done(info.activity_type, channel, arg,
                                          workflow_started=_workflow_started(input, converter),
                                          scheduled=info.scheduled_time)
                except Exception:  # a metric never fails the activity it observes
                    _log.exception("metrics.observe_failed", activity=info.activity_type)
                return result


def vendor_fault(exc: BaseException) -> VendorUnavailable | None:
    """The transient vendor fault behind an activity's exception: the fault itself, or the one a retryable
    ApplicationError was raised from (activities/errors.py `transient_error`)."""
    if isinstance(exc, VendorUnavailable):
        return exc
    if isinstance(exc, temporalio.exceptions.ApplicationError) and not exc.non_retryable \
            and isinstance(exc.__cause__, VendorUnavailable):
        return exc.__cause__
    return None


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


def _workflow_started(input: _InputWithHeaders, converter: temporalio.converter.PayloadConverter) -> datetime | None:
    payload = input.headers.get(WORKFLOW_STARTED_HEADER)
    if payload is None:
        return None
    try:
        return datetime.fromtimestamp(float(converter.from_payload(payload, float)), UTC)
    except Exception:  # a header we cannot read costs the observation, never the activity
        return None


class _WorkflowOutbound(temporalio.worker.WorkflowOutboundInterceptor):
    def start_activity(self, input: temporalio.worker.StartActivityInput):
        converter = temporalio.workflow.payload_converter()
        _set_header(input, converter)
        if input.activity in _NEEDS_WORKFLOW_START:  # deterministic: the run's start time, the same on replay
            input.headers = {**input.headers, WORKFLOW_STARTED_HEADER:
                             converter.to_payload(temporalio.workflow.info().start_time.timestamp())}
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
