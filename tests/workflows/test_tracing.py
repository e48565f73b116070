"""OpenTelemetry by setting: with RETAILFLOW_OTEL_ENABLED the start, the workflow run and each activity are spans."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client

from canonical.fulfillment import OrderFulfillmentInput
from canonical.order import Address, Money, Order, OrderLine, Shipment, ShipmentLine
from retailflow.catalog import DEMO_CATALOG, import_catalog
from runtime.registry import build_adapters
from runtime.settings import Settings
from runtime.tracing import configure_tracer_provider, tracing_interceptors
from worker import build_worker
from workflows.order_fulfillment import OrderFulfillment


def test_tracing_is_off_by_default():
    assert tracing_interceptors(Settings()) == []


async def test_spans_for_start_run_and_activities(ts_env, engine):
    settings = Settings(otel_enabled=True)
    exporter = InMemorySpanExporter()
    configure_tracer_provider(settings, exporter=exporter)
    config = ts_env.client.config()
    config["interceptors"] = [*config["interceptors"], *tracing_interceptors(settings)]
    client = Client(**config)
    adapters = build_adapters(settings, engine)
    import_catalog(adapters.erp, DEMO_CATALOG)
    order = Order(channel="shopify", external_order_id=f"trace-{uuid.uuid4().hex[:8]}", created_at=datetime.now(UTC),
                  currency="USD", taxes_included=False,
                  shipping_address=Address(line1="1 Main St", city="Louisville", region="KY", postal_code="40003",
                                           country="US"),
                  lines=[OrderLine(line_id="1", channel_sku="SKU2006-001", quantity=1,
                                   unit_price=Money.of("89.99", "USD"))])
    queue = f"trace-{uuid.uuid4()}"
    async with build_worker(client, adapters, task_queue=queue):
        handle = await client.start_workflow(OrderFulfillment.run, OrderFulfillmentInput(order=order),
                                             id=order.workflow_id, task_queue=queue)
        await handle.signal(OrderFulfillment.shipment, Shipment(
            shipment_id="s-1", shipped_at=datetime.now(UTC), lines=[ShipmentLine(channel_sku="SKU2006-001",
                                                                                  quantity=1)]))
        result = await handle.result()
    assert result.status == "completed"
    names = {span.name for span in exporter.get_finished_spans()}
    assert "StartWorkflow:OrderFulfillment" in names
    assert "RunWorkflow:OrderFulfillment" in names
    for activity in ("reserve_stock", "create_sales_order", "commit_tax"):
        assert f"RunActivity:{activity}" in names, sorted(names)
