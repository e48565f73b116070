"""`retailflow simulate peak`: a peak day against the vendor sandboxes, through the real intake.

The simulation starts the platform on the vendors profile (`make run-vendors`'s adapters) in its production shape,
each part its own process on free ports with a fresh data dir — the Temporal dev server, the vendor sandboxes
(`retailflow-sandbox`: the vendors are outside the platform, and on 2 cores they must not share its interpreter),
`retailflow worker`, `retailflow api` — then drives it as the vendors would:

* **Shopify** creates orders in the shop and sends each as a signed `orders/create` webhook to the API (the
  sandbox redelivers a refused webhook with the same webhook id, as Shopify does);
* **Amazon** holds orders that the platform's order poll finds (a second store, a second fairness key);
* **ERPNext** throttles at a fixed quota (a token bucket: 429 with Retry-After beyond it);
* **a marketplace fails** for a window (its Admin API answers 503; its webhooks keep coming);
* one **hot item** is scarce, so the burst competes for the last units.

The load follows a profile of phases (a steady rate, then 10× for a while, then steady again), then waits until
every order has finished or waits visibly for an analyst. What is reported is read afterwards from the records,
never from the driver's own beliefs: each order's Temporal history (when it started, was booked in the ERP,
released to the warehouse, confirmed to the channel, completed or parked), the platform's metrics (inventory
publication delay), the breakers (`GET /ops/breakers`), the sandboxes' fault counts, and the vendors' own documents
(ERPNext sales orders, delivery notes, invoices and bins; ShipStation orders; Shopify fulfillments) for the
invariants: **0 lost** (every order sent is completed or parked, visibly), **0 doubled** (one ERP sales order,
delivery note, invoice, warehouse order and channel fulfillment per order), **0 oversold** (no bin ever reserved
more than it held, none negative).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Iterator
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from runtime.settings import Settings
from sandbox import DEFAULT_PORTS

ROOT = Path(__file__).resolve().parents[1]
SHOPIFY_SAMPLE = ROOT / "tests" / "fixtures" / "shopify" / "webhook_orders_create_sample_v2024.json"
ERP_ACTIVITIES = ("resolve_skus", "reserve_stock", "release_stock", "create_sales_order", "cancel_sales_order", "amend_sales_order",
                  "reduce_reservation", "resource_stock", "post_delivery", "create_invoice")
# the marketplace steps of orders and returns, routed per channel (`confirm_shipment@amazon`): each marketplace has
# its own partner queue and breaker, so one marketplace's outage holds only its own confirmations (InventorySync's
# publish_availability is not routed: it runs on the inventory queue)
CHANNEL_ACTIVITIES = ("confirm_shipment", "notify_channel_cancelled")
ERP_QUEUE = "retailflow-erp"
CHANNEL_QUEUES = {"shopify": "retailflow-shopify", "amazon": "retailflow-amazon"}
MILESTONES = {"booked": "create_sales_order", "released": "release_to_wms", "confirmed": "confirm_shipment"}


# -- the profile ------------------------------------------------------------------------------------------------
class Phase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    seconds: float = Field(gt=0, le=3600)
    shopify_per_second: float = Field(default=0.0, ge=0, le=200)
    amazon_per_second: float = Field(default=0.0, ge=0, le=200)
    inventory_per_second: float = Field(default=0.0, ge=0, le=200, description="Stock events (warehouse "
                                        "receipts and store sales) through POST /inventory/events")
    burst: bool = Field(default=False, description="The peak phase (the drain time counts from its end)")


class Outage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vendor: Literal["shopify", "amazon", "erpnext", "avatax", "shipstation"]
    at_seconds: float = Field(ge=0, description="Since the load started")
    seconds: float = Field(gt=0, le=3600)


class HotItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_code: str = "SUN-AVIATOR"
    units: int = Field(ge=0, description="Units on hand when the load starts (the rest is issued out of stock)")


class PeakProfile(BaseModel):
    """A peak day: the load by phase and what goes wrong at the vendors. Built in (`PROFILES`) or a TOML file."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    phases: list[Phase] = Field(min_length=1)
    erp_quota_per_second: float | None = Field(default=None, gt=0, description="ERPNext's quota (requests/s)")
    erp_quota_burst: int = Field(default=25, ge=1, description="Requests the quota's bucket holds (a second's "
                                 "worth by default: a quota per second, not a ban on concurrency)")
    outages: list[Outage] = Field(default_factory=list)
    hot_item: HotItem | None = None
    drain_timeout_seconds: float = Field(default=300, gt=0, le=7200)
    ship_after_seconds: float = Field(default=1.0, ge=0, description="The warehouse (ShipStation) ships after")
    amazon_poll_seconds: int = Field(default=2, ge=1)
    breaker_failure_threshold: int = Field(default=3, ge=1)
    breaker_open_seconds: float = Field(default=10.0, gt=0)
    partner_rates: dict[str, float] = Field(
        default_factory=lambda: {ERP_QUEUE: 8.0, **{q: 20.0 for q in CHANNEL_QUEUES.values()}},
        description="Dispatch rate (activities/s) of the partner queues while their breakers are closed, as an "
                    "operator sets them (RETAILFLOW_PARTNER_ACTIVITY_RATE_LIMITS): the ERP's at about its quota "
                    "over the ~3 requests an ERP step makes; 429s beyond it cut it further (AIMD)")
    worker_workflow_tasks: int | None = Field(
        default=None, ge=1, le=1000, description="Workflow tasks the worker takes at once "
        "(RETAILFLOW_WORKER_MAX_CONCURRENT_WORKFLOW_TASKS; default the platform's)")
    worker_sticky_seconds: float | None = Field(
        default=None, gt=0, le=600, description="RETAILFLOW_WORKER_STICKY_QUEUE_TIMEOUT_SECONDS (default the "
        "platform's)")
    seed: int = 7

    @model_validator(mode="after")
    def _one_burst(self) -> PeakProfile:
        if sum(p.burst for p in self.phases) > 1:
            raise ValueError("at most one phase is the burst")
        return self

    @property
    def load_seconds(self) -> float:
        return sum(p.seconds for p in self.phases)

    def expected_orders(self) -> dict[str, int]:
        return {"shopify": sum(round(p.seconds * p.shopify_per_second) for p in self.phases),
                "amazon": sum(round(p.seconds * p.amazon_per_second) for p in self.phases)}


PROFILES: dict[str, PeakProfile] = {
    # CI (tests/integration/test_simulate_peak.py): ~3 minutes on 2 cores
    "ci": PeakProfile(
        name="ci", description="steady 0.4 Shopify orders/s, then 10× (4/s) for 20 s, then steady, with an Amazon "
                               "order every 3 s and stock events throughout; ERPNext at 25 requests/s; "
                               "Shopify's Admin API down for 20 s; 70 units of the hot item for 96 orders",
        phases=[Phase(name="steady", seconds=20, shopify_per_second=0.4, amazon_per_second=0.3,
                      inventory_per_second=0.5),
                Phase(name="burst 10×", seconds=20, shopify_per_second=4.0, amazon_per_second=0.3,
                      inventory_per_second=5.0, burst=True),
                Phase(name="steady again", seconds=20, shopify_per_second=0.4, amazon_per_second=0.3,
                      inventory_per_second=0.5)],
        erp_quota_per_second=25, outages=[Outage(vendor="shopify", at_seconds=25, seconds=20)],
        hot_item=HotItem(units=70), drain_timeout_seconds=240),
    # by hand (docs/operations.md "Peak simulation"): ~10 minutes on 2 cores
    "peak": PeakProfile(
        name="peak", description="steady 0.2 Shopify orders/s for 2 min, then 10× (2/s) for 5 min, then steady for "
                                 "2 min, with an Amazon order every 3 s and stock events throughout; ERPNext at 50 "
                                 "requests/s; Shopify's Admin API down for a minute; 500 units of the hot item for "
                                 "~650 orders",
        phases=[Phase(name="steady", seconds=120, shopify_per_second=0.2, amazon_per_second=0.3,
                      inventory_per_second=0.5),
                Phase(name="burst 10×", seconds=300, shopify_per_second=2.0, amazon_per_second=0.3,
                      inventory_per_second=5.0, burst=True),
                Phase(name="steady again", seconds=120, shopify_per_second=0.2, amazon_per_second=0.3,
                      inventory_per_second=0.5)],
        erp_quota_per_second=50, erp_quota_burst=50, outages=[Outage(vendor="shopify", at_seconds=180, seconds=60)],
        partner_rates={ERP_QUEUE: 16.0, **{q: 20.0 for q in CHANNEL_QUEUES.values()}},
        hot_item=HotItem(units=500), drain_timeout_seconds=900),
}


def load_profile(name_or_path: str) -> PeakProfile:
    """A built-in profile by name, or a TOML file of PeakProfile's fields (`[[phases]]` tables)."""
    if name_or_path in PROFILES:
        return PROFILES[name_or_path]
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(f"unknown profile {name_or_path!r}: one of {', '.join(PROFILES)} or a TOML file")
    data = tomllib.loads(path.read_text())
    data.setdefault("name", path.stem)
    return PeakProfile.model_validate(data)


# -- the stack ----------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _temporal_port() -> int:
    """A free port whose +10 and +20 (the dev server's HTTP and metrics ports, retailflow/devstack.py) are free."""
    for _ in range(50):
        port = free_port()
        if port < 65500 and not any(_port_open(port + d) for d in (10, 20)):
            return port
    raise RuntimeError("no free port for the Temporal dev server")


@dataclass
class PeakStack:
    """The platform in its production shape, on free ports with a fresh data dir, each part its own process: the
    Temporal dev server, the vendor sandboxes (`retailflow-sandbox`, as the vendors are outside the platform), the
    worker (`retailflow worker`) and the API (`retailflow api`), on the vendors profile's adapters."""

    profile: PeakProfile
    data_dir: Path
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    admin_key: str = ""
    log_path: Path = Path()

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    def url(self, sandbox: str) -> str:
        return f"http://127.0.0.1:{self.ports[sandbox]}"

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.ports['temporal']}"

    def settings(self) -> Settings:
        """What every process of the run is configured with: the vendors profile on the sandboxes' ports."""
        from retailflow.profiles import apply_profile

        p = self.profile
        queues = {**{a: ERP_QUEUE for a in ERP_ACTIVITIES},
                  **{f"{a}@{channel}": q for channel, q in CHANNEL_QUEUES.items() for a in CHANNEL_ACTIVITIES}}
        slots: dict[str, Any] = ({"worker_max_concurrent_workflow_tasks": p.worker_workflow_tasks}
                                 if p.worker_workflow_tasks else {})
        if p.worker_sticky_seconds:
            slots["worker_sticky_queue_timeout_seconds"] = p.worker_sticky_seconds
        base = Settings(
            _env_file=None, data_dir=self.data_dir, api_port=self.ports["api"], api_host="127.0.0.1",
            temporal_address=self.temporal_address, sandbox_host="127.0.0.1",
            sandbox_ports={name: self.ports[name] for name in DEFAULT_PORTS},
            sandbox_ship_after_seconds=p.ship_after_seconds, amazon_poll_interval_seconds=p.amazon_poll_seconds,
            partner_activity_rate_limits=p.partner_rates, activity_task_queues=queues,
            breaker_failure_threshold=p.breaker_failure_threshold, breaker_open_seconds=p.breaker_open_seconds,
            **slots,
            worker_metrics_port=self.ports["metrics"], temporal_sdk_metrics_port=self.ports["sdk_metrics"],
            # short publish windows, so a minutes-long run publishes often enough to measure the delay
            inventory_channels={"shopify": {"publish_window_seconds": 5}, "amazon": {"publish_window_seconds": 10}})
        return apply_profile(base, "vendors", sandbox=True)

    def env(self) -> dict[str, str]:
        """The run's settings as the RETAILFLOW_ variables the subprocesses read."""
        settings = self.settings()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RETAILFLOW_")}
        for name in settings.model_fields_set:
            value = getattr(settings, name)
            if hasattr(value, "get_secret_value"):
                value = value.get_secret_value()
            if isinstance(value, BaseModel):
                value = value.model_dump(mode="json")
            if isinstance(value, dict):
                value = {k: (v.model_dump(mode="json") if isinstance(v, BaseModel) else v) for k, v in value.items()}
            env[f"RETAILFLOW_{name.upper()}"] = (json.dumps(value) if isinstance(value, dict | list)
                                                 else str(value).lower() if isinstance(value, bool) else str(value))
        env.update({"RETAILFLOW_LOG_JSON": "true", "RETAILFLOW_LOG_LEVEL": "WARNING",
                    "RETAILFLOW_MIGRATE_ON_START": "false"})
        return env

    def _spawn(self, name: str, *args: str) -> None:
        cli = str(Path(sys.executable).with_name(args[0]))
        log = open(self.log_path, "a")  # noqa: SIM115 - lives as long as the process
        self.procs[name] = subprocess.Popen([cli, *args[1:]], cwd=ROOT, env=self.env(), stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def _wait_ports(self, ports: list[int], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(_port_open(p) for p in ports):
            dead = [n for n, proc in self.procs.items() if proc.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start ({', '.join(dead) or 'timed out'}; see {self.log_path}):\n"
                                   f"{self.log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.3)

    def start(self, timeout: float = 120) -> PeakStack:
        from adapters.platform.api_keys import ApiKeyStore
        from adapters.sql import make_engine
        from retailflow.devstack import start_temporal
        from retailflow.migrate import upgrade_database
        from runtime.codec import keyring_from_settings
        from sandbox.demo import seed_demo
        from worker import temporal_cli_path

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.ports = {"temporal": _temporal_port(), **{k: free_port() for k in
                      ("ui", "api", "metrics", "sdk_metrics", *DEFAULT_PORTS)}}
        self.log_path = self.data_dir / "stack.log"
        self.log_path.write_text("")
        settings = self.settings()
        try:
            self.procs["temporal"] = start_temporal(temporal_cli_path(), self.data_dir, self.ports["temporal"],
                                                    self.ports["ui"], timeout=timeout)
            self._spawn("sandboxes", "retailflow-sandbox")
            self._wait_ports([self.ports[n] for n in DEFAULT_PORTS], "the vendor sandboxes", timeout)
            upgrade_database(settings.effective_database_url)
            keyring_from_settings(settings)  # the dev codec key, made once before two processes would race for it
            engine = make_engine(settings.effective_database_url)
            try:
                _, self.admin_key = ApiKeyStore(engine).create(f"peak-{secrets.token_hex(3)}", "admin")
            finally:
                engine.dispose()
            seed_demo(settings)  # ERPNext's catalog and stock, the Shopify sample order and variants
            self._spawn("worker", "retailflow", "worker")
            self._spawn("api", "retailflow", "api")
            self._wait_ports([self.ports["api"], self.ports["metrics"]], "the worker and the API", timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        from retailflow.devstack import stop_process

        for name in ("api", "worker", "sandboxes"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        temporal = self.procs.pop("temporal", None)
        if temporal is not None:
            stop_process(temporal)


# -- the load -----------------------------------------------------------------------------------------------------
@dataclass
class Sent:
    workflow_id: str
    channel: str
    phase: str
    at: float  # wall clock (epoch seconds): when the customer checked out
    status: int | None = None  # Shopify: the webhook's last answer; Amazon: the sandbox's
    lines: dict[str, int] = field(default_factory=dict)


def shopify_order(template: dict[str, Any], order_id: int, n: int) -> dict[str, Any]:
    """The published orders/create sample as a new order: its own id, number and line ids, today's dates."""
    order = deepcopy(template)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    order.update(id=order_id, name=f"#P{n}", order_number=900000 + n, created_at=now, updated_at=now,
                 processed_at=now, admin_graphql_api_id=f"gid://shopify/Order/{order_id}",
                 confirmation_number=f"P{n:07d}", token=secrets.token_hex(16))
    for i, line in enumerate(order.get("line_items") or [], start=1):
        line["id"] = order_id * 10 + i
        line["admin_graphql_api_id"] = f"gid://shopify/LineItem/{line['id']}"
    return order


class Driver:
    """Sends the profile's orders on schedule, each send its own task (a slow answer never holds the schedule)."""

    # the items (ERPNext item codes) each order takes: the Shopify sample's three lines, Amazon's one
    SHOPIFY_ITEMS = {"SUN-AVIATOR": 1, "FURN-LOUNGER": 1, "FURN-COFFEE-TABLE": 1}
    AMAZON_ITEMS = {"ACC-CASE-LEATHER": 1}

    def __init__(self, stack: PeakStack, profile: PeakProfile) -> None:
        self.stack, self.profile = stack, profile
        self.sent: list[Sent] = []
        self.pending: set[asyncio.Task] = set()
        self.template = json.loads(SHOPIFY_SAMPLE.read_bytes())
        self.shopify_lines = {"SKU2006-001": 1, "SKU2006-020": 1, "SKU2006-035": 1}
        self.amazon_lines = [("AMZ-CASE-LEATHER", 1, "24.99")]
        self.phase = ""
        self.t0 = 0.0
        self.inventory_sent: list[int | None] = []  # each stock event's answer (202) or None
        base = int(time.time()) % 10_000_000
        self._ids = iter(range(base * 1000, base * 1000 + 10_000_000))

    async def _shopify(self, http: httpx.AsyncClient, n: int) -> None:
        order_id = 5_000_000_000_000 + next(self._ids)
        rec = Sent(f"order:shopify:{order_id}", "shopify", self.phase, time.time(),
                   lines=dict(self.SHOPIFY_ITEMS))
        self.sent.append(rec)
        body = shopify_order(self.template, order_id, n)
        try:
            resp = await http.post(f"{self.stack.url('shopify')}/_admin/orders",
                                   params={"notify": "true", "retries": "6"}, json=body, timeout=120)
            rec.status = resp.json().get("webhook_status") if resp.status_code == 201 else resp.status_code
        except (httpx.HTTPError, ValueError):
            rec.status = None

    async def _amazon(self, http: httpx.AsyncClient) -> None:
        from sandbox.demo import amazon_order

        body = amazon_order(lines=self.amazon_lines)
        rec = Sent(f"order:amazon:{body['order']['AmazonOrderId']}", "amazon", self.phase, time.time(),
                   lines=dict(self.AMAZON_ITEMS))
        self.sent.append(rec)
        try:
            resp = await http.post(f"{self.stack.url('amazon')}/_admin/orders", json=body, timeout=60)
            rec.status = resp.status_code
        except httpx.HTTPError:
            rec.status = None

    async def _inventory(self, http: httpx.AsyncClient, n: int) -> None:
        """A warehouse receipt (3 units) or a store sale (1), in turn, of items the channels list."""
        item = ("FURN-LOUNGER", "ACC-CASE-LEATHER")[n % 2]
        kind, source, qty = (("receipt", "wms", 3), ("sale", "pos", 1))[(n // 2) % 2]
        event = {"source": source, "source_event_id": f"peak-{kind}-{n}-{secrets.token_hex(4)}", "kind": kind,
                 "sku": item, "location": "MAIN", "quantity": qty,
                 "occurred_at": datetime.now(UTC).isoformat(timespec="milliseconds")}
        try:
            resp = await http.post(f"{self.stack.api}/inventory/events", json={"events": [event]}, timeout=60,
                                   headers={"Authorization": f"Bearer {self.stack.admin_key}"})
            self.inventory_sent.append(resp.status_code)
        except httpx.HTTPError:
            self.inventory_sent.append(None)

    async def run(self, http: httpx.AsyncClient) -> None:
        self.t0 = time.monotonic()
        start = 0.0
        n = 0
        for phase in self.profile.phases:
            self.phase = phase.name
            for channel, rate in (("shopify", phase.shopify_per_second), ("amazon", phase.amazon_per_second),
                                  ("inventory", phase.inventory_per_second)):
                count = round(phase.seconds * rate)
                for k in range(count):  # evenly spaced: `count` orders over the phase
                    due = start + (k + 0.5) * phase.seconds / count
                    self.pending.add(asyncio.ensure_future(self._at(due, channel, http, n := n + 1)))
            await asyncio.sleep(max(0.0, start + phase.seconds - (time.monotonic() - self.t0)))
            start += phase.seconds
        await asyncio.gather(*self.pending)

    async def _at(self, due: float, channel: str, http: httpx.AsyncClient, n: int) -> None:
        await asyncio.sleep(max(0.0, due - (time.monotonic() - self.t0)))
        if channel == "shopify":
            await self._shopify(http, n)
        elif channel == "amazon":
            await self._amazon(http)
        else:
            await self._inventory(http, n)


async def schedule_outages(stack: PeakStack, profile: PeakProfile, http: httpx.AsyncClient, t0: float) -> None:
    """Each outage: at its time the vendor's API answers 503 until it ends (the vendor's webhooks still go out)."""
    for outage in sorted(profile.outages, key=lambda o: o.at_seconds):
        await asyncio.sleep(max(0.0, outage.at_seconds - (time.monotonic() - t0)))
        current = (await http.get(f"{stack.url(outage.vendor)}/_admin/faults")).json()
        until = datetime.now(UTC) + timedelta(seconds=outage.seconds)
        faults = {**current.get("faults", {}), "*": {"outage_until": until.isoformat(), "retry_after_seconds": 2},
                  "WEBHOOK *": {}}
        (await http.put(f"{stack.url(outage.vendor)}/_admin/faults", json={"faults": faults})).raise_for_status()


# -- reading the vendors ------------------------------------------------------------------------------------------
class Vendors:
    """The sandboxes read through the vendors' own APIs with the credentials the platform uses."""

    def __init__(self, stack: PeakStack, http: httpx.AsyncClient) -> None:
        s = Settings()
        self.stack, self.http, self.s = stack, http, s
        self.erp_auth = {"Authorization": f"token {s.erpnext_api_key}:{s.erpnext_api_secret.get_secret_value()}"}
        self.shopify_auth = {"X-Shopify-Access-Token": s.shopify_admin_access_token.get_secret_value()}
        self.shipstation_auth = (s.shipstation_api_key.get_secret_value(), s.shipstation_api_secret.get_secret_value())

    async def erp_list(self, doctype: str, fields: list[str]) -> list[dict[str, Any]]:
        resp = await self.http.get(f"{self.stack.url('erpnext')}/api/resource/{doctype}", headers=self.erp_auth,
                                   params={"fields": json.dumps(fields), "limit_page_length": "0"}, timeout=60)
        resp.raise_for_status()
        return list(resp.json()["data"])

    async def bins(self) -> dict[str, tuple[Decimal, Decimal]]:
        rows = await self.erp_list("Bin", ["item_code", "warehouse", "actual_qty", "reserved_qty"])
        return {f"{r['item_code']}@{r['warehouse']}": (Decimal(str(r["actual_qty"])), Decimal(str(r["reserved_qty"])))
                for r in rows}

    async def set_stock(self, item_code: str, units: int, *, at_least: bool = False) -> None:
        """Bring an item's stock to `units`: a Material Issue down (the hot item is scarce, as a stock count would
        find it) or a Material Receipt up; with `at_least`, only up (the other items: enough for every order)."""
        from adapters.erp.erpnext import REF

        bins = await self.bins()
        key = next((k for k in bins if k.startswith(f"{item_code}@")), None)
        if key is None:
            raise RuntimeError(f"ERPNext has no stock of {item_code}")
        actual, warehouse = bins[key][0], key.split("@", 1)[1]
        if actual == units or (at_least and actual >= units):
            return
        purpose, row = (("Material Issue", {"s_warehouse": warehouse}) if actual > units
                        else ("Material Receipt", {"t_warehouse": warehouse}))
        body = {"stock_entry_type": purpose, "purpose": purpose, "docstatus": 1,
                REF: f"peak-stock:{item_code}", "remarks": "retailflow simulate peak: stock for the profile",
                "items": [{"item_code": item_code, "qty": float(abs(actual - units)), **row}]}
        resp = await self.http.post(f"{self.stack.url('erpnext')}/api/resource/Stock Entry", headers=self.erp_auth,
                                    json=body, timeout=60)
        resp.raise_for_status()

    async def fault_counts(self, name: str) -> dict[str, int]:
        return dict((await self.http.get(f"{self.stack.url(name)}/_admin/fault-counts")).json())

    async def request_counts(self, name: str) -> dict[str, int]:
        return dict((await self.http.get(f"{self.stack.url(name)}/_admin/request-counts")).json())

    async def shipstation_orders(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        page = 1
        while True:
            resp = await self.http.get(f"{self.stack.url('shipstation')}/orders", auth=self.shipstation_auth,
                                       params={"page": page, "pageSize": 500}, timeout=60)
            resp.raise_for_status()
            data = resp.json()
            for o in data.get("orders", []):
                counts[str(o.get("orderKey") or o.get("orderNumber"))] += 1
            if page >= int(data.get("pages") or 1):
                return counts
            page += 1

    async def shopify_fulfillments(self, order_ids: list[str]) -> dict[str, int]:
        version = self.s.shopify_admin_api_version
        gate = asyncio.Semaphore(8)

        async def one(order_id: str) -> tuple[str, int]:
            async with gate:
                resp = await self.http.get(f"{self.stack.url('shopify')}/admin/api/{version}/orders/{order_id}/"
                                           "fulfillments.json", headers=self.shopify_auth, timeout=60)
                return order_id, len(resp.json().get("fulfillments", [])) if resp.status_code == 200 else -1

        return dict(await asyncio.gather(*(one(o) for o in order_ids)))


# -- reading the platform -----------------------------------------------------------------------------------------
@dataclass
class OrderTimes:
    """One order's milestones (epoch seconds) from its Temporal history."""

    workflow_id: str
    channel: str
    phase: str
    sent: float
    started: float | None = None
    booked: float | None = None
    released: float | None = None
    confirmed: float | None = None
    shipped_signal: float | None = None
    completed: float | None = None
    parked: float | None = None
    status: str = "missing"  # COMPLETED | RUNNING | FAILED | … | missing
    needs_attention: bool = False
    reason: str | None = None

    @property
    def handled(self) -> float | None:
        """When the platform was done with the order's intake: released to the warehouse, or parked visibly."""
        marks = [t for t in (self.released, self.parked) if t is not None]
        return min(marks) if marks else None


def milestones_from_history(history: Any, rec: Sent) -> OrderTimes:
    """Read an order's milestones from its history's events (event types and times; no payload is decoded)."""
    from temporalio.api.enums.v1 import EventType

    out = OrderTimes(rec.workflow_id, rec.channel, rec.phase, rec.at)
    scheduled: dict[int, str] = {}
    for e in history.events:
        t = e.event_time.ToDatetime(tzinfo=UTC).timestamp()
        kind = e.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            out.started = t
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[e.event_id] = e.activity_task_scheduled_event_attributes.activity_type.name
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            name = scheduled.get(e.activity_task_completed_event_attributes.scheduled_event_id)
            for milestone, activity_name in MILESTONES.items():
                if name == activity_name and getattr(out, milestone) is None:
                    setattr(out, milestone, t)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            if e.workflow_execution_signaled_event_attributes.signal_name == "shipment" and out.shipped_signal is None:
                out.shipped_signal = t
        elif kind == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
            if "NeedsAttention" in fields and fields["NeedsAttention"].data.strip() == b"true" and out.parked is None:
                out.parked = t
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            out.completed = t
    return out


async def read_orders(client: Any, sent: list[Sent]) -> list[OrderTimes]:
    from temporalio.service import RPCError

    gate = asyncio.Semaphore(12)

    async def one(rec: Sent) -> OrderTimes:
        async with gate:
            handle = client.get_workflow_handle(rec.workflow_id)
            try:
                desc = await handle.describe()
                times = milestones_from_history(await handle.fetch_history(), rec)
            except RPCError:
                return OrderTimes(rec.workflow_id, rec.channel, rec.phase, rec.at)
            raw = desc.raw_description.workflow_execution_info.search_attributes.indexed_fields
            times.needs_attention = "NeedsAttention" in raw and raw["NeedsAttention"].data.strip() == b"true"
            times.status = desc.status.name if desc.status else "?"
            return times

    return list(await asyncio.gather(*(one(r) for r in sent)))


async def parked_reasons(http: httpx.AsyncClient, stack: PeakStack) -> dict[str, str]:
    """Workflow id → why it is parked, as an analyst reads it (`GET /ops/needs-attention`, the status projection)."""
    out: dict[str, str] = {}
    while True:
        resp = await http.get(f"{stack.api}/ops/needs-attention", params={"limit": 1000, "offset": len(out)},
                              headers={"Authorization": f"Bearer {stack.admin_key}"}, timeout=60)
        resp.raise_for_status()
        page = resp.json()
        out.update({run["workflow_id"]: run.get("reason") or "" for run in page})
        if len(page) < 1000:
            return out


async def count_settled(client: Any, ids: list[str]) -> tuple[int, int, int]:
    """(completed or otherwise closed, parked, still running unparked) over `ids`, from Temporal's visibility."""
    closed = parked = 0
    known: set[str] = set()
    async for wf in client.list_workflows("WorkflowType = 'OrderFulfillment'"):
        if wf.id not in ids:
            continue
        known.add(wf.id)
        attrs = wf.search_attributes or {}
        if wf.status is not None and wf.status.name != "RUNNING":
            closed += 1
        elif attrs.get("NeedsAttention") in ([True], True):
            parked += 1
    return closed, parked, len(ids) - closed - parked


def histogram_quantiles(metrics_text: str, name: str, label: str, qs: tuple[float, ...] = (0.5, 0.95, 0.99)
                        ) -> dict[str, dict[str, float]]:
    """Prometheus' histogram_quantile over a text exposition: per `label` value, each quantile (linear inside the
    bucket it falls in, as Prometheus does), plus `count`."""
    buckets: dict[str, list[tuple[float, float]]] = {}
    pattern = re.compile(rf'^{re.escape(name)}_bucket\{{(.*)\}} (\S+)$')
    for line in metrics_text.splitlines():
        m = pattern.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        le = math.inf if labels["le"] == "+Inf" else float(labels["le"])
        buckets.setdefault(labels.get(label, ""), []).append((le, float(m.group(2))))
    out: dict[str, dict[str, float]] = {}
    for key, rows in buckets.items():
        rows.sort()
        total = rows[-1][1] if rows else 0.0
        figures = {"count": total}
        for q in qs:
            figures[f"p{round(q * 100)}"] = _bucket_quantile(q, rows, total)
        out[key] = figures
    return out


def _bucket_quantile(q: float, rows: list[tuple[float, float]], total: float) -> float:
    if total == 0:
        return math.nan
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in rows:
        if count >= rank:
            if math.isinf(le):
                return prev_le  # Prometheus answers the highest finite bound
            if count == prev_count:
                return le
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return prev_le


# -- figures ------------------------------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..1); NaN of nothing."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def spread(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": percentile(values, 0.5), "p95": percentile(values, 0.95),
            "p99": percentile(values, 0.99), "max": max(values) if values else math.nan}


def backlog_series(orders: list[OrderTimes], t0: float, until: float, step: float = 0.5) -> list[tuple[float, int]]:
    """(seconds since t0, orders sent and not yet handled — released to the warehouse or parked) every `step`."""
    sent = sorted(o.sent for o in orders)
    done = sorted(o.handled for o in orders if o.handled is not None)
    out, i, j = [], 0, 0
    t = t0
    while t <= until:
        while i < len(sent) and sent[i] <= t:
            i += 1
        while j < len(done) and done[j] <= t:
            j += 1
        out.append((round(t - t0, 3), i - j))
        t += step
    return out


def drain_seconds(series: list[tuple[float, int]], burst_end: float, level: int) -> float | None:
    """Seconds from the burst's end until the backlog is back at `level` (the quiet backlog); None if never."""
    for t, n in series:
        if t >= burst_end and n <= level:
            return round(t - burst_end, 1)
    return None


@dataclass
class Invariants:
    lost: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    oversold: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.doubled or self.oversold)


@dataclass
class PeakReport:
    profile: PeakProfile
    started_at: datetime
    machine: str
    orders: list[OrderTimes]
    t0: float
    series: list[tuple[float, int]]
    burst: tuple[float, float] | None
    inventory: dict[str, dict[str, float]]
    shipment_confirmation: dict[str, dict[str, float]]
    publications: dict[str, float]
    breakers: list[dict[str, Any]]
    faults: dict[str, dict[str, int]]
    invariants: Invariants
    max_overcommit: Decimal
    hot_item: dict[str, Any]
    intake_refused: int
    wall_seconds: float
    inventory_events: tuple[int, int] = (0, 0)  # (sent, accepted 202)
    erp_requests: dict[str, int] = field(default_factory=dict)  # ERPNext requests by endpoint (the sandbox's count)
    erp_load: list[tuple[float, int]] = field(default_factory=list)  # (epoch s, ERPNext requests so far), sampled

    def erp_rate_peak(self) -> float:
        """The highest ERPNext request rate over any 5 s of the run (requests/s)."""
        best = 0.0
        for i, (t, n) in enumerate(self.erp_load):
            for t2, n2 in self.erp_load[i + 1:]:
                if t2 - t >= 5:
                    best = max(best, (n2 - n) / (t2 - t))
                    break
        return best

    # -- derived figures ---------------------------------------------------------------------------------------
    def latency(self, channel: str | None = None, phases: set[str] | None = None, *, start: str = "sent",
                end: str = "released") -> dict[str, float]:
        values = [getattr(o, end) - getattr(o, start) for o in self.orders
                  if (channel is None or o.channel == channel) and (phases is None or o.phase in phases)
                  and getattr(o, end) is not None and getattr(o, start) is not None]
        return spread(values)

    @property
    def quiet_phases(self) -> set[str]:
        """The phases before the burst (after it, the backlog it left is still draining)."""
        out: set[str] = set()
        for p in self.profile.phases:
            if p.burst:
                return out
            out.add(p.name)
        return out

    @property
    def burst_phases(self) -> set[str]:
        return {p.name for p in self.profile.phases if p.burst}

    def fairness_ratio(self) -> float | None:
        """The second store's (Amazon's) p95 intake latency during the burst over its quiet figure."""
        quiet = self.latency("amazon", self.quiet_phases, start="started")["p95"]
        busy = self.latency("amazon", self.burst_phases, start="started")["p95"]
        if math.isnan(quiet) or math.isnan(busy) or quiet <= 0:
            return None
        return busy / quiet

    def backlog_peak(self) -> tuple[int, float]:
        n, t = max(((n, t) for t, n in self.series), default=(0, 0.0))
        return n, t

    def quiet_backlog(self) -> int:
        first = self.profile.phases[0]
        values = [n for t, n in self.series if t <= first.seconds] if not first.burst else [0]
        return int(percentile([float(v) for v in values], 0.95)) if values else 0

    def drain(self) -> float | None:
        if self.burst is None:
            return None
        return drain_seconds(self.series, self.burst[1], self.quiet_backlog())

    def counts(self) -> Counter[str]:
        c: Counter[str] = Counter()
        for o in self.orders:
            if o.status == "COMPLETED":
                c["completed"] += 1
            elif o.needs_attention:
                c["parked"] += 1
            else:
                c[o.status.lower()] += 1
        return c


def _s(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def render_markdown(r: PeakReport) -> str:
    p = r.profile
    expected = p.expected_orders()
    slots = p.worker_workflow_tasks or Settings.model_fields["worker_max_concurrent_workflow_tasks"].default
    sticky = p.worker_sticky_seconds or Settings.model_fields["worker_sticky_queue_timeout_seconds"].default
    lines = [f"### Peak simulation `{p.name}` — {r.started_at:%Y-%m-%d %H:%M} UTC, {r.machine}", "",
             f"`retailflow simulate peak --profile {p.name}`: {p.description}. "
             f"{len(r.orders)} orders ({expected['shopify']} Shopify webhooks, {expected['amazon']} Amazon orders "
             f"found by the order poll) through the real intake against the vendor sandboxes; "
             f"{r.wall_seconds:.0f} s in all; the worker takes {slots} workflow tasks at once, a workflow's next task "
             f"waits {sticky:g} s for the worker that has it cached.", "",
             "| phase | seconds | Shopify orders/s | Amazon orders/s | stock events/s |",
             "| --- | --- | --- | --- | --- |"]
    lines += [f"| {ph.name}{' (burst)' if ph.burst else ''} | {ph.seconds:g} | {ph.shopify_per_second:g} | "
              f"{ph.amazon_per_second:g} | {ph.inventory_per_second:g} |" for ph in p.phases]
    faults = []
    if p.erp_quota_per_second:
        total = sum(r.erp_requests.values())
        faults.append(f"ERPNext throttles at {p.erp_quota_per_second:g} requests/s (burst {p.erp_quota_burst}): "
                      f"{r.faults.get('erpnext', {}).get('quota', 0)} of {total} requests answered 429 "
                      f"({total / max(len(r.orders), 1):.1f} ERPNext requests per order; the busiest 5 s at "
                      f"{r.erp_rate_peak():.1f} requests/s)")
    for o in p.outages:
        faults.append(f"{o.vendor} answers 503 from {o.at_seconds:g} s for {o.seconds:g} s: "
                      f"{r.faults.get(o.vendor, {}).get('outage', 0)} requests refused")
    if p.hot_item:
        faults.append(f"hot item {p.hot_item.item_code}: {p.hot_item.units} units on hand for "
                      f"{r.hot_item.get('wanted', 0)} units ordered")
    lines += ["", "Faults: " + "; ".join(faults) + ".", "",
              "**Order latency** (seconds; *checkout → released to the warehouse*: from the Shopify checkout, or "
              "from the Amazon order's workflow start, which is after its poll, to the warehouse order):", "",
              "| orders | n | p50 | p95 | p99 | max |", "| --- | --- | --- | --- | --- | --- |"]
    after = {ph.name for ph in p.phases} - r.quiet_phases - r.burst_phases
    rows = [("Shopify, all", r.latency("shopify")), ("Shopify, before the burst", r.latency("shopify", r.quiet_phases)),
            ("Shopify, burst", r.latency("shopify", r.burst_phases)),
            ("Shopify, after the burst", r.latency("shopify", after)),
            ("Amazon (second store), before the burst", r.latency("amazon", r.quiet_phases, start="started")),
            ("Amazon (second store), during the burst", r.latency("amazon", r.burst_phases, start="started")),
            ("booked in the ERP (all, from checkout)", r.latency(end="booked")),
            ("shipment confirmed to the channel (warehouse shipped → confirmed)",
             r.latency(start="shipped_signal", end="confirmed")),
            # each marketplace's confirmations on its own partner queue: one's outage does not hold the other's
            *((f"… to {name} (its own queue, {CHANNEL_QUEUES[ch]})",
               r.latency(ch, start="shipped_signal", end="confirmed")) for ch, name in (("shopify", "Shopify"),
                                                                                       ("amazon", "Amazon"))),
            ("completed (all, from checkout; includes the warehouse's ship time)", r.latency(end="completed"))]
    lines += [f"| {name} | {f['n']} | {_s(f['p50'])} | {_s(f['p95'])} | {_s(f['p99'])} | {_s(f['max'])} |"
              for name, f in rows]
    ratio = r.fairness_ratio()
    peak_n, peak_t = r.backlog_peak()
    drain = r.drain()
    lines += ["",
              f"- **Second store during the burst**: Amazon's p95 is {ratio:.2f}× its quiet figure "
              f"({'within' if ratio <= 2 else 'NOT within'} the 2× goal)." if ratio is not None else
              "- **Second store during the burst**: too few Amazon orders to compare.",
              f"- **Backlog** (orders sent, not yet released or parked): {r.quiet_backlog()} in the quiet phase "
              f"(p95), peak {peak_n} at {peak_t:.0f} s; **drain time** after the burst: "
              + (f"{drain:.1f} s." if drain is not None else "did not drain within the run."),
              f"- **Intake**: {r.intake_refused} Shopify webhooks not accepted after the sandbox's redeliveries."]
    inv = ", ".join(f"{ch or '?'} p50 {_s(f['p50'])} / p95 {_s(f['p95'])} / p99 {_s(f['p99'])} "
                    f"({int(f['count'])} publications)" for ch, f in sorted(r.inventory.items())) or "none"
    lines.append(f"- **Inventory publication delay** (publication issued → the channel acknowledged it; "
                 f"retailflow_inventory_publication_seconds, bucket-interpolated as Prometheus does) for "
                 f"{r.inventory_events[0]} stock events ({r.inventory_events[1]} accepted) and the orders' "
                 f"reservations: {inv}; failed attempts {int(r.publications.get('failed', 0))}.")
    brk = "; ".join(f"{b['queue']}: {b['trips']} trip(s), now {b['state']}" for b in r.breakers) or "none"
    lines.append(f"- **Breakers** (one partner queue per marketplace, so one marketplace's breaker holds only its own "
                 f"channel steps): {brk}.")
    c = r.counts()
    lines += ["", "**Invariants**, read from the records afterwards (Temporal histories, ERPNext, ShipStation, "
              "Shopify):", "", "| invariant | result |", "| --- | --- |",
              f"| lost (sent, neither completed nor parked visibly) | **{len(r.invariants.lost)}** |",
              f"| doubled (a second sales order, delivery note, invoice, warehouse order or fulfillment) | "
              f"**{len(r.invariants.doubled)}** |",
              f"| oversold (a bin reserving more than it holds, sampled every second; a negative bin) | "
              f"**{len(r.invariants.oversold)}** (largest over-commitment {r.max_overcommit}) |",
              f"| outcome | {', '.join(f'{n} {k}' for k, n in sorted(c.items()))} |"]
    if p.hot_item:
        lines.append(f"| hot item {p.hot_item.item_code} | {r.hot_item.get('delivered', 0)} delivered of "
                     f"{p.hot_item.units} on hand; {r.hot_item.get('short_orders', 0)} orders parked short |")
    reasons = Counter(re.sub(r"\d+", "N", o.reason or "no reason given")[:100] for o in r.orders if o.needs_attention)
    if reasons:
        lines.append("| parked, by reason | " + "; ".join(f"{n} × {why}" for why, n in reasons.most_common(6)) + " |")
    for label, items in (("lost", r.invariants.lost), ("doubled", r.invariants.doubled),
                         ("oversold", r.invariants.oversold)):
        if items:
            lines.append(f"\n{label}: " + "; ".join(items[:10]))
    return "\n".join(lines) + "\n"


# -- the run ------------------------------------------------------------------------------------------------------
class Progress:
    """The live view (rich): phase, orders sent / settled / parked, backlog, breakers."""

    def __init__(self, profile: PeakProfile, quiet: bool = False) -> None:
        self.profile, self.quiet = profile, quiet
        self.state: dict[str, Any] = {}
        self._live: Any = None

    def __enter__(self) -> Progress:
        if not self.quiet:
            from rich.live import Live

            self._live = Live(self._render(), refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(*exc)

    def update(self, **state: Any) -> None:
        self.state.update(state)
        if self._live is not None:
            self._live.update(self._render())
        elif not self.quiet:
            print(state)

    def _render(self) -> Any:
        from rich.table import Table

        s = self.state
        table = Table(title=f"retailflow simulate peak — {self.profile.name}", show_header=False)
        table.add_row("stage", str(s.get("stage", "starting the platform")))
        table.add_row("elapsed", f"{s.get('elapsed', 0):.0f} s of {self.profile.load_seconds:.0f} s load")
        table.add_row("phase", str(s.get("phase", "")))
        table.add_row("orders sent", str(s.get("sent", 0)))
        table.add_row("finished / parked / in flight",
                      f"{s.get('closed', 0)} / {s.get('parked', 0)} / {s.get('running', 0)}")
        table.add_row("breakers", str(s.get("breakers", "")))
        table.add_row("ERPNext 429s / outage 503s", f"{s.get('quota', 0)} / {s.get('outage', 0)}")
        return table


async def _sample(stack: PeakStack, vendors: Vendors, http: httpx.AsyncClient, driver: Driver, progress: Progress,
                  stop: asyncio.Event, bins_seen: list[dict[str, tuple[Decimal, Decimal]]], client: Any,
                  erp_load: list[tuple[float, int]]) -> None:
    headers = {"Authorization": f"Bearer {stack.admin_key}"}
    tick = 0
    while not stop.is_set():
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            erp_load.append((time.time(), sum((await vendors.request_counts("erpnext")).values())))
            bins_seen.append(await vendors.bins())
            brk = (await http.get(f"{stack.api}/ops/breakers", headers=headers, timeout=10)).json()
            erp = await vendors.fault_counts("erpnext")
            outage = 0
            for vendor in sorted({o.vendor for o in stack.profile.outages}):
                outage += (await vendors.fault_counts(vendor)).get("outage", 0)
            state = {"elapsed": time.monotonic() - driver.t0 if driver.t0 else 0, "phase": driver.phase,
                     "sent": len(driver.sent), "quota": erp.get("quota", 0), "outage": outage,
                     "breakers": ", ".join(f"{b['queue']} {b['state']} ({b['trips']} trips)" for b in brk)}
            if tick % 5 == 0:  # visibility every few seconds: it is the heaviest read
                ids = [s.workflow_id for s in driver.sent]
                closed, parked, running = await count_settled(client, ids)
                state.update(closed=closed, parked=parked, running=running)
            progress.update(**state)
        tick += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)


async def simulate(profile: PeakProfile, data_dir: Path, *, quiet: bool = False) -> PeakReport:
    from temporalio.client import Client

    started_at = datetime.now(UTC)
    wall0 = time.monotonic()
    stack = PeakStack(profile, data_dir)
    progress = Progress(profile, quiet=quiet)
    with progress:
        try:
            # in the main thread, not a worker thread: a SIGTERM during the start (run_peak makes it a
            # KeyboardInterrupt) lands in it, and what was started is stopped (PeakStack.start, the finally below)
            stack.start()
            return await _simulate(stack, progress, started_at, wall0, Client)
        finally:
            progress.update(stage="stopping the platform")
            await asyncio.to_thread(stack.stop)


async def _simulate(stack: PeakStack, progress: Progress, started_at: datetime, wall0: float, client_cls: Any
                    ) -> PeakReport:
    profile = stack.profile
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        vendors = Vendors(stack, http)
        client = await client_cls.connect(stack.temporal_address)
        progress.update(stage="preparing the vendors")
        # every item the orders take but the hot one is there for every order (and the store sales): only the
        # hot item is short, so an order parked short is the hot item's, and the report can say so
        expected = profile.expected_orders()
        wanted: Counter[str] = Counter()
        for item, qty in Driver.SHOPIFY_ITEMS.items():
            wanted[item] += qty * expected["shopify"]
        for item, qty in Driver.AMAZON_ITEMS.items():
            wanted[item] += qty * expected["amazon"]
        events = sum(round(ph.seconds * ph.inventory_per_second) for ph in profile.phases)
        for item in sorted(wanted):
            if not profile.hot_item or item != profile.hot_item.item_code:
                await vendors.set_stock(item, wanted[item] + events + 50, at_least=True)
        if profile.hot_item:
            await vendors.set_stock(profile.hot_item.item_code, profile.hot_item.units)
        if profile.erp_quota_per_second:
            quota = {"*": {"quota_per_second": profile.erp_quota_per_second, "quota_burst": profile.erp_quota_burst}}
            (await http.put(f"{stack.url('erpnext')}/_admin/faults", json={"faults": quota})).raise_for_status()
        bins_before = await vendors.bins()
        driver = Driver(stack, profile)
        stop = asyncio.Event()
        bins_seen: list[dict[str, tuple[Decimal, Decimal]]] = []
        erp_load: list[tuple[float, int]] = []
        progress.update(stage="load")
        sampler = asyncio.create_task(_sample(stack, vendors, http, driver, progress, stop, bins_seen, client,
                                              erp_load))
        t0_wall = time.time()
        load = asyncio.create_task(driver.run(http))
        await asyncio.sleep(0)
        outages = asyncio.create_task(schedule_outages(stack, profile, http, time.monotonic()))
        await load
        await outages
        progress.update(stage="draining: waiting until every order is finished or parked")
        ids = [s.workflow_id for s in driver.sent]
        deadline = time.monotonic() + profile.drain_timeout_seconds
        while time.monotonic() < deadline:
            closed, parked, running = await count_settled(client, ids)
            progress.update(closed=closed, parked=parked, running=running)
            if running == 0:
                break
            await asyncio.sleep(2)
        stop.set()
        await sampler
        progress.update(stage="reading the records")
        orders = await read_orders(client, driver.sent)
        reasons = await parked_reasons(http, stack)
        for o in orders:
            if o.needs_attention:
                o.reason = reasons.get(o.workflow_id)
        metrics = (await http.get(f"http://127.0.0.1:{stack.ports['metrics']}/metrics", timeout=30)).text
        breakers = (await http.get(f"{stack.api}/ops/breakers",
                                   headers={"Authorization": f"Bearer {stack.admin_key}"}, timeout=30)).json()
        faults = {name: await vendors.fault_counts(name) for name in DEFAULT_PORTS}
        erp_requests = await vendors.request_counts("erpnext")
        invariants, overcommit, hot = await check_invariants(vendors, driver.sent, orders, bins_before, bins_seen,
                                                             profile)
    burst = None
    start = 0.0
    for ph in profile.phases:
        if ph.burst:
            burst = (start, start + ph.seconds)
        start += ph.seconds
    until = max([o.handled or 0 for o in orders] + [t0_wall + profile.load_seconds]) + 1
    publications = {"failed": sum(v for k, v in _counter(metrics, "retailflow_inventory_publications_total",
                                                         "outcome").items() if k != "published")}
    return PeakReport(
        profile=profile, started_at=started_at, machine=f"{os.cpu_count()} cores, {sys.platform}",
        orders=orders, t0=t0_wall, series=backlog_series(orders, t0_wall, until), burst=burst,
        inventory=histogram_quantiles(metrics, "retailflow_inventory_publication_seconds", "channel"),
        shipment_confirmation=histogram_quantiles(metrics, "retailflow_shipment_confirmation_seconds", "channel"),
        publications=publications, breakers=breakers, faults=faults, invariants=invariants,
        max_overcommit=overcommit, hot_item=hot,
        intake_refused=sum(1 for s in driver.sent if s.channel == "shopify" and not (s.status and 200 <= s.status < 300)),
        wall_seconds=time.monotonic() - wall0, erp_requests=erp_requests, erp_load=erp_load,
        inventory_events=(len(driver.inventory_sent), sum(1 for c in driver.inventory_sent if c == 202)))


def _counter(metrics_text: str, name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in metrics_text.splitlines():
        if line.startswith(name + "{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line[len(name) + 1:line.rindex("}")]))
            out[labels.get(label, "")] = out.get(labels.get(label, ""), 0.0) + float(line.rsplit(" ", 1)[1])
    return out


async def check_invariants(vendors: Vendors, sent: list[Sent], orders: list[OrderTimes],
                           bins_before: dict[str, tuple[Decimal, Decimal]],
                           bins_seen: list[dict[str, tuple[Decimal, Decimal]]], profile: PeakProfile
                           ) -> tuple[Invariants, Decimal, dict[str, Any]]:
    from adapters.erp.erpnext import REF

    inv = Invariants()
    for o in orders:
        if o.status != "COMPLETED" and not (o.status == "RUNNING" and o.needs_attention):
            inv.lost.append(f"{o.workflow_id}: {o.status}{' (not parked)' if o.status == 'RUNNING' else ''}")
    ids = {s.workflow_id for s in sent}
    so = Counter(d.get("po_no") for d in await vendors.erp_list("Sales Order", ["po_no", "docstatus"])
                 if d.get("docstatus") == 1)
    dn = Counter(str(d.get(REF, "")).rsplit(":SHP-", 1)[0]
                 for d in await vendors.erp_list("Delivery Note", [REF, "docstatus"]) if d.get("docstatus") == 1)
    si = Counter(d.get(REF) for d in await vendors.erp_list("Sales Invoice", [REF, "docstatus", "is_return"])
                 if d.get("docstatus") == 1 and not d.get("is_return"))
    for what, counts in (("sales orders", so), ("delivery notes", dn), ("sales invoices", si)):
        inv.doubled += [f"{wf}: {n} {what}" for wf, n in sorted(counts.items()) if wf in ids and n > 1]
    ship = await vendors.shipstation_orders()
    inv.doubled += [f"{key}: {n} ShipStation orders" for key, n in sorted(ship.items()) if n > 1]
    shopify_ids = [s.workflow_id.rsplit(":", 1)[1] for s in sent if s.channel == "shopify"]
    for order_id, n in sorted((await vendors.shopify_fulfillments(shopify_ids)).items()):
        if n > 1:
            inv.doubled.append(f"shopify order {order_id}: {n} fulfillments")
    overcommit = Decimal(0)
    for sample in [*bins_seen, await vendors.bins()]:
        for key, (actual, reserved) in sample.items():
            overcommit = max(overcommit, reserved - actual)
            if actual < 0:
                inv.oversold.append(f"{key}: on hand {actual}")
            elif reserved > actual:
                inv.oversold.append(f"{key}: reserved {reserved} of {actual} on hand")
    inv.oversold = sorted(set(inv.oversold))
    hot: dict[str, Any] = {}
    if profile.hot_item:
        code = profile.hot_item.item_code
        hot_bin = next((k for k in bins_before if k.startswith(f"{code}@")), "")
        after = (await vendors.bins()).get(hot_bin, (Decimal(0), Decimal(0)))
        before = bins_before.get(hot_bin, (Decimal(0), Decimal(0)))
        hot = {"wanted": sum(s.lines.get(code, 0) for s in sent), "delivered": int(before[0] - after[0]),
               "short_orders": sum(1 for o in orders if o.needs_attention and o.released is None)}
        if before[0] - after[0] > profile.hot_item.units:
            inv.oversold.append(f"{code}: {before[0] - after[0]} delivered of {profile.hot_item.units} on hand")
    return inv, overcommit, hot


@contextlib.contextmanager
def data_dir_for(path: Path | None) -> Iterator[Path]:
    """The run's data dir: `path` (kept), or a fresh temporary one (removed after the run)."""
    import tempfile

    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="retailflow-peak-") as tmp:
        yield Path(tmp)


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_peak(profile: PeakProfile, *, data_dir: Path | None = None, quiet: bool = False) -> PeakReport:
    """Run the simulation. SIGTERM and SIGHUP (a `kill`, a closed terminal) end it as Ctrl-C does: the platform's
    processes, each in its own session, are stopped on the way out instead of being orphaned."""
    previous = {sig: signal.signal(sig, _interrupted) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        with data_dir_for(data_dir) as d:
            return asyncio.run(simulate(profile, d, quiet=quiet))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
