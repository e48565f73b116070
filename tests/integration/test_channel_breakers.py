"""A circuit breaker per marketplace (RETAILFLOW_ACTIVITY_TASK_QUEUES' `<activity>@<channel>` routes), on the dev
server with the real worker builders (`build_domain_workers`, `build_partner_workers`), the API, the embedded
adapters and the breaker relay: Amazon's shipment confirmations go to Amazon's partner queue, every other channel's
to the plain `confirm_shipment` route (Shopify's queue). Amazon's Admin API fails: its breaker opens and holds its
queue, while a Shopify order's confirmation still goes out at once on its own queue and the order completes; when
Amazon answers again the held confirmation goes out and the Amazon order completes too, each confirmed once.

Without the channel routes both confirmations would share the plain route's queue (the peak simulation's
`retailflow-channels`): Amazon's failures would open that queue's breaker and hold Shopify's confirmation with it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime

import httpx
import pytest
import uvicorn
from temporalio.api.enums.v1 import EventType

from adapters.marketplace.local import LocalMarketplace
from adapters.wms.local import run_shipper
from api.app import create_app
from canonical.breakers import BreakerView
from canonical.money import Money
from canonical.order import Address, Order, OrderLine, Shipment
from canonical.vendor_errors import VendorUnavailable
from retailflow.catalog import DEMO_CATALOG, import_catalog
from retailflow.devstack import _ApiServer
from runtime.breakers import REPORTS, breaker_id, relay_breaker_reports
from runtime.registry import build_adapters
from runtime.settings import Settings
from starters.orders import start_order
from tests.auth import headers, make_key
from tests.integration.conftest import SECRET, Stack, free_port
from worker import build_domain_workers, build_partner_workers

pytestmark = pytest.mark.integration

AMAZON = {"down": True, "attempts": 0}


class AmazonDown(LocalMarketplace):
    """The embedded marketplace, with Amazon's confirmations refused as its API does while it is down (503)."""

    def confirm_shipment(self, channel: str, external_order_id: str, shipment: Shipment) -> None:
        if channel == "amazon":
            AMAZON["attempts"] += 1
            if AMAZON["down"]:
                raise VendorUnavailable("amazon answered 503 Service Unavailable to POST /orders/v0/orders/"
                                        f"{external_order_id}/shipmentConfirmation", vendor="amazon", status=503)
        super().confirm_shipment(channel, external_order_id, shipment)


def amazon_order(external_id: str) -> Order:
    return Order(channel="amazon", external_order_id=external_id, order_number=external_id,
                 created_at=datetime.now(UTC), currency="USD", taxes_included=False,
                 shipping_address=Address(name="A Buyer", line1="410 Terry Ave N", city="Seattle", region="WA",
                                          postal_code="98109", country="US"),
                 lines=[OrderLine(line_id="1", channel_sku="AMZ-AVIATOR-BLK", name="Aviator sunglasses", quantity=1,
                                  unit_price=Money.of("89.99", "USD"))])


async def until(what: str, check, timeout: float = 30.0):
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            last = await check()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - the breaker may not exist yet
            last = exc
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} never happened; last: {last!r}")


async def confirm_queues(client, workflow_id: str) -> list[str]:
    """The task queue of each confirm_shipment the run scheduled, from its history."""
    queues = []
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == "confirm_shipment":
                queues.append(attrs.task_queue.name)
    return queues


async def test_one_marketplaces_open_breaker_holds_only_its_own_confirmations(dev_env, engine):
    AMAZON.update(down=True, attempts=0)
    base = f"cb-{uuid.uuid4().hex[:8]}"
    amazon_q, shopify_q = f"{base}-amazon", f"{base}-shopify"
    port = free_port()
    settings = Settings(
        database_url=str(engine.url.render_as_string(hide_password=False)), task_queue=f"{base}-orders",
        activity_task_queues={"confirm_shipment@amazon": amazon_q, "confirm_shipment": shopify_q},
        partner_activity_rate_limits={amazon_q: 50, shopify_q: 50}, breaker_failure_threshold=3,
        breaker_open_seconds=3, breaker_probe_rate=1, api_port=port, shopify_webhook_secret=SECRET,
        local_wms_ship_after_seconds=0.3, local_wms_poll_seconds=0.2)
    assert settings.unserved_activity_queues() == []
    adapters = build_adapters(settings, engine)
    assert type(adapters.marketplace) is LocalMarketplace
    adapters.marketplace = AmazonDown(engine)
    import_catalog(adapters.erp, DEMO_CATALOG)
    adapters.erp.map_sku("amazon", "AMZ-AVIATOR-BLK", "SUN-AVIATOR")  # type: ignore[attr-defined]
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
    assert {amazon_q, shopify_q} <= {w.task_queue for w in workers}  # a partner worker per channel queue
    client = dev_env.client
    REPORTS.watch(set(settings.partner_activity_rate_limits))  # as run_worker does: a breaker per partner queue
    relay = asyncio.create_task(relay_breaker_reports(client, settings, stop=stop, interval=0.2))

    async def breaker(queue: str) -> BreakerView:
        return await client.get_workflow_handle(breaker_id(queue)).query("state", result_type=BreakerView)

    try:
        async with contextlib.AsyncExitStack() as running, httpx.AsyncClient(
                base_url=settings.effective_api_base_url, timeout=30, headers=headers(make_key(engine))) as http:
            for w in workers:
                await running.enter_async_context(w)
            stack = Stack(client=client, http=http, settings=settings, adapters=adapters, engine=engine)
            amazon_id = f"114-{uuid.uuid4().int % 10**7:07d}-{uuid.uuid4().int % 10**7:07d}"
            amazon_wf, duplicate = await start_order(client, settings, amazon_order(amazon_id))
            assert not duplicate

            async def amazon_open() -> bool:
                return (await breaker(amazon_q)).state == "open"
            await until("Amazon's breaker opening", amazon_open, timeout=60)

            # Amazon's queue is held; a Shopify order placed now is confirmed on its own queue at once
            body, shopify_id = stack.order_body()
            sent = asyncio.get_running_loop().time()
            assert (await stack.send_shopify(body)).status_code == 202
            done = await stack.wait_status("shopify", shopify_id, {"completed"}, timeout=30)
            took = asyncio.get_running_loop().time() - sent
            assert took < 20, f"the Shopify order took {took:.1f} s"
            assert [u["kind"] for u in adapters.marketplace.updates("shopify", shopify_id)] == ["shipment"]
            assert await confirm_queues(client, done["workflow_id"]) == [shopify_q]
            shopify_view = await breaker(shopify_q)
            assert (shopify_view.state, shopify_view.trips) == ("closed", 0), shopify_view

            # the Amazon order meanwhile waits on its confirmation: running, not parked, nothing confirmed
            amazon = await http.get(f"/orders/amazon/{amazon_id}")
            assert amazon.status_code == 200 and amazon.json()["status"] != "completed", amazon.json()
            assert amazon.json()["status"] != "needs_attention", amazon.json()
            pending = (await client.get_workflow_handle(amazon_wf).describe()).raw_description.pending_activities
            assert [p.activity_type.name for p in pending] == ["confirm_shipment"]
            assert (await breaker(amazon_q)).state in ("open", "half_open")
            assert adapters.marketplace.updates("amazon", amazon_id) == []

            AMAZON["down"] = False  # Amazon is back: the half-open probe (the held confirmation) closes the breaker
            await stack.wait_status("amazon", amazon_id, {"completed"}, timeout=90)

            async def amazon_closed() -> bool:
                return (await breaker(amazon_q)).state == "closed"
            await until("Amazon's breaker closing", amazon_closed)
            view = await breaker(amazon_q)
            assert view.trips >= 1 and "503" in (view.last_error or ""), view
            assert [u["kind"] for u in adapters.marketplace.updates("amazon", amazon_id)] == ["shipment"]
            assert set(await confirm_queues(client, amazon_wf)) == {amazon_q}
            assert (await breaker(shopify_q)).trips == 0
    finally:
        stop.set()
        await relay
        await shipper
        REPORTS.watch(set())
        for queue in (amazon_q, shopify_q):
            with contextlib.suppress(Exception):
                await client.get_workflow_handle(breaker_id(queue)).terminate("test over")
        server.should_exit = True
        await api_task
