"""Domains on their own task queues and a partner's steps on its rate-limited queue, on the dev server with the
real worker processes' builders (`build_domain_workers`, `build_partner_workers`), API and embedded adapters: the
sample order runs on the orders queue with its ERP sales order step on the partner queue; a stock event starts
InventorySync on the inventory queue."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import httpx
import pytest
import uvicorn
from temporalio.api.enums.v1 import EventType

from adapters.wms.local import run_shipper
from api.app import create_app
from retailflow.catalog import DEMO_CATALOG, import_catalog
from retailflow.devstack import _ApiServer
from runtime.registry import build_adapters
from runtime.settings import Settings
from tests.auth import headers, make_key
from tests.integration.conftest import SECRET, Stack, free_port
from tests.integration.test_inventory import FAST, _event, _stop_syncs
from worker import build_domain_workers, build_partner_workers

pytestmark = pytest.mark.integration


async def test_domains_and_partner_steps_run_on_their_own_queues(dev_env, engine):
    base = f"tq-{uuid.uuid4().hex[:8]}"
    port = free_port()
    settings = Settings(
        database_url=str(engine.url.render_as_string(hide_password=False)), task_queue=f"{base}-orders",
        domain_task_queues={"inventory": f"{base}-inventory", "returns": f"{base}-returns"},
        activity_task_queues={"create_sales_order": f"{base}-erp", "cancel_sales_order": f"{base}-erp"},
        partner_activity_rate_limits={f"{base}-erp": 50}, api_port=port, shopify_webhook_secret=SECRET,
        local_wms_ship_after_seconds=0.3, local_wms_poll_seconds=0.2)
    adapters = build_adapters(settings, engine)
    adapters.inventory.policies = FAST
    import_catalog(adapters.erp, DEMO_CATALOG)
    app = create_app(settings, engine=engine, client=dev_env.client)
    server = _ApiServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    api_task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    stop = asyncio.Event()
    shipper = asyncio.create_task(run_shipper(adapters.wms, settings.effective_api_base_url,
                                              settings.local_wms_webhook_secret.get_secret_value(),
                                              poll_seconds=0.2, stop=stop))
    workers = [*build_domain_workers(dev_env.client, adapters, settings),
               *build_partner_workers(dev_env.client, adapters, settings.partner_activity_rate_limits,
                                      settings=settings)]
    assert sorted(w.task_queue for w in workers) == [f"{base}-erp", f"{base}-inventory", f"{base}-orders",
                                                      f"{base}-returns"]
    sku = f"TQ-{uuid.uuid4().hex[:6]}"
    try:
        async with contextlib.AsyncExitStack() as running, httpx.AsyncClient(
                base_url=settings.effective_api_base_url, timeout=30, headers=headers(make_key(engine))) as http:
            for w in workers:
                await running.enter_async_context(w)
            stack = Stack(client=dev_env.client, http=http, settings=settings, adapters=adapters, engine=engine)
            body, external_id = stack.order_body()
            assert (await stack.send_shopify(body)).status_code == 202
            done = await stack.wait_status("shopify", external_id, {"completed"})
            handle = dev_env.client.get_workflow_handle(done["workflow_id"])
            assert (await handle.describe()).task_queue == f"{base}-orders"
            scheduled = {}
            async for event in handle.fetch_history_events():
                if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                    attrs = event.activity_task_scheduled_event_attributes
                    scheduled[attrs.activity_type.name] = attrs.task_queue.name
            assert scheduled["create_sales_order"] == f"{base}-erp"  # the partner's rate-limited queue
            assert scheduled["reserve_stock"] == scheduled["create_invoice"] == f"{base}-orders"

            resp = await http.post("/inventory/events", json={"events": [_event(sku, f"{sku}-r1", "receipt", 3)]})
            assert resp.status_code == 202, resp.text
            sync = dev_env.client.get_workflow_handle(f"inventory:{sku}")
            assert (await sync.describe()).task_queue == f"{base}-inventory"
    finally:
        await _stop_syncs(type("S", (), {"client": dev_env.client})(), [sku])
        stop.set()
        await shipper
        server.should_exit = True
        await api_task
