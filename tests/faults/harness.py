"""The fault suite's processes, on loopback: a Temporal dev server on SQLite that can be stopped and started again
on the same file, `retailflow worker` and `retailflow api` as real subprocesses (so they can be SIGKILLed), the
platform database (the test PostgreSQL in a schema of its own when RETAILFLOW_TEST_DATABASE_URL is set, else a
SQLite file), and a sender that retries as a webhook vendor does (5xx or no answer: again, after Retry-After)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import Engine, create_engine, text

from adapters.marketplace.shopify import compute_hmac
from bench.procs import free_port, port_open
from retailflow.catalog import DEMO_CATALOG, import_catalog
from runtime.settings import SEARCH_ATTRIBUTES, Settings

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CLI = str(BIN / "retailflow")
SECRET = "faults-test-secret"
ORDER_FIXTURE = ROOT / "tests" / "fixtures" / "shopify" / "webhook_orders_create_sample_v2024.json"
SAMPLE_ID = b"820982911946154508"


def _die_with_parent() -> None:
    """preexec: the child gets SIGKILL when pytest dies, so no server or worker is left behind."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def temporal_cli() -> str:
    from worker import temporal_cli_path

    return temporal_cli_path()


class TemporalServer:
    """`temporal server start-dev` headless on fixed loopback ports with a SQLite file: `stop` (SIGTERM or
    SIGKILL) and `start` again continue on the same file and the same address."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.http_port, self.metrics_port = free_port(), free_port()
        self.db_file = workdir / "temporal.db"
        self.proc: subprocess.Popen | None = None
        self.restarts = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> TemporalServer:
        cmd = [temporal_cli(), "server", "start-dev", "--headless", "--db-filename", str(self.db_file),
               "--ip", "127.0.0.1", "--port", str(self.port), "--http-port", str(self.http_port),
               "--metrics-port", str(self.metrics_port), "--log-level", "error"]
        for name, kind in SEARCH_ATTRIBUTES.items():
            cmd += ["--search-attribute", f"{name}={kind}"]
        log = open(self.workdir / "temporal.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"temporal exited ({self.proc.returncode}); see {self.workdir / 'temporal.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"temporal did not listen on {self.port} within {timeout:.0f}s")
            time.sleep(0.2)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        deadline = time.monotonic() + 10
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)


class Service:
    """`retailflow worker` or `retailflow api` as a subprocess with the stack's environment; its output goes to
    a log file (never a pipe a busy process could block on)."""

    def __init__(self, command: str, env: dict[str, str], workdir: Path) -> None:
        self.command, self.env, self.workdir = command, env, workdir
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.log_path = workdir / f"{command}.log"

    def start(self) -> Service:
        self.starts += 1
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        log.write(f"\n==== start {self.starts}\n".encode())
        log.flush()
        self.proc = subprocess.Popen([CLI, self.command], cwd=ROOT, env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent)
        return self

    def log_tail(self, n: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""

    def wait_ready(self, marker: str | None = None, port: int | None = None, timeout: float = 60) -> None:
        """Until the log shows `marker` since the last start (the worker's `worker.started`) or `port` listens."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.command} exited ({self.proc.returncode}):\n{self.log_tail()}")
            if port is not None and port_open(port):
                return
            if marker is not None:
                current = self.log_path.read_text(errors="replace").rsplit(f"==== start {self.starts}\n", 1)[-1]
                if marker in current:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.command} not ready within {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no graceful hand-back of activities (a crashed host)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout: float = 20) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode


@contextlib.contextmanager
def platform_database(tmp_path: Path, *, require_postgres: bool = False) -> Iterator[tuple[str, Engine]]:
    """(URL for the subprocesses, engine for the test's own reads): a fresh schema in the test PostgreSQL when
    RETAILFLOW_TEST_DATABASE_URL is set, else a SQLite file. The schema is created here (create_schema), so
    the processes start with RETAILFLOW_MIGRATE_ON_START=false."""
    from adapters.sql import create_schema, make_engine

    pg = os.environ.get("RETAILFLOW_TEST_DATABASE_URL")
    if require_postgres and not pg:
        raise RuntimeError("PostgreSQL required")
    if not pg:
        url = f"sqlite:///{tmp_path / 'platform.db'}"
        engine = make_engine(url)
        create_schema(engine)
        try:
            yield url, engine
        finally:
            engine.dispose()
        return
    schema = f"f_{uuid.uuid4().hex[:10]}"
    admin = make_engine(pg)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    from sqlalchemy.engine import make_url

    url = make_url(pg).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    engine = create_engine(pg, connect_args={"options": f"-csearch_path={schema}"}, pool_size=5, max_overflow=5)
    try:
        create_schema(engine)
        yield url, engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def stack_env(*, temporal: str, database_url: str, api_port: int, task_queue: str, data_dir: Path,
              **extra: str) -> dict[str, str]:
    """The environment the worker and the API share (the worker's embedded WMS posts shipments to the API). The
    rest of the environment passes through, as in the integration tier, so the processes and the test's own
    client (`Stack.client`) read the same settings (e.g. the payload codec's keys)."""
    env = dict(os.environ)
    env.pop("RETAILFLOW_ENV", None)
    env.update({
        "RETAILFLOW_TEMPORAL_ADDRESS": temporal, "RETAILFLOW_DATABASE_URL": database_url,
        "RETAILFLOW_TASK_QUEUE": task_queue, "RETAILFLOW_API_HOST": "127.0.0.1", "RETAILFLOW_API_PORT": str(api_port),
        "RETAILFLOW_DATA_DIR": str(data_dir), "RETAILFLOW_MIGRATE_ON_START": "false",
        "RETAILFLOW_SHOPIFY_WEBHOOK_SECRET": SECRET,
        "RETAILFLOW_LOCAL_WMS_SHIP_AFTER_SECONDS": "0.5", "RETAILFLOW_LOCAL_WMS_POLL_SECONDS": "0.3",
        "RETAILFLOW_INVENTORY_OUTBOX_POLL_SECONDS": "0",  # no InventorySync runs: orders only
        "RETAILFLOW_WORKER_METRICS_PORT": "0", "RETAILFLOW_TEMPORAL_SDK_METRICS_PORT": "0",
        "RETAILFLOW_LOG_JSON": "true", "RETAILFLOW_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    })
    env.update(extra)
    return env


@dataclass
class Stack:
    """One platform: Temporal, the worker and the API processes, the platform database."""

    workdir: Path
    temporal: TemporalServer
    database_url: str
    engine: Engine
    api_port: int
    task_queue: str
    env: dict[str, str]
    worker: Service
    api: Service
    initial_stock: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def settings(self) -> Settings:
        """Settings as the processes read them (for `runtime.cluster.connect_client` in the test)."""
        return Settings(temporal_address=self.temporal.address, database_url=self.database_url,
                        task_queue=self.task_queue)

    async def client(self):
        from runtime.cluster import connect_client

        return await connect_client(self.settings())

    def start_worker(self) -> None:
        self.worker.start()
        self.worker.wait_ready(marker="worker.started")

    def start_api(self) -> None:
        self.api.start()
        self.api.wait_ready(port=self.api_port)

    def stop(self) -> None:
        for svc in (self.api, self.worker):
            svc.stop()


@contextlib.contextmanager
def running_stack(tmp_path: Path, temporal: TemporalServer, *, require_postgres: bool = False,
                  api_database_port: int | None = None, **extra_env: str) -> Iterator[Stack]:
    """Worker and API processes on `temporal` and a fresh platform database with the demo catalog loaded.
    `api_database_port` points the API at another port on loopback (a proxy in front of the same database)."""
    with platform_database(tmp_path, require_postgres=require_postgres) as (url, engine):
        from adapters.erp.local import LocalErp

        import_catalog(LocalErp(engine, default_location="MAIN"), DEMO_CATALOG)
        api_port = free_port()
        queue = f"faults-{uuid.uuid4().hex[:8]}"
        env = stack_env(temporal=temporal.address, database_url=url, api_port=api_port,
                        task_queue=queue, data_dir=tmp_path, **extra_env)
        api_env = env
        if api_database_port is not None:
            from sqlalchemy.engine import make_url

            proxied = make_url(url).set(host="127.0.0.1", port=api_database_port)
            api_env = {**env, "RETAILFLOW_DATABASE_URL": proxied.render_as_string(hide_password=False)}
        stack = Stack(tmp_path, temporal, url, engine, api_port, queue, env,
                      Service("worker", {**env, "RETAILFLOW_LOG_LEVEL": "INFO"}, tmp_path),  # `worker.started`
                      Service("api", api_env, tmp_path),
                      initial_stock=stock_levels(engine))
        try:
            stack.api.start()
            stack.worker.start()  # both start at once; then wait for each
            stack.api.wait_ready(port=api_port)
            stack.worker.wait_ready(marker="worker.started")
            yield stack
        finally:
            stack.stop()


def stock_levels(engine: Engine) -> dict[tuple[str, str], int]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT item_code, location, on_hand FROM inventory_levels")).all()
    return {(r.item_code, r.location): r.on_hand for r in rows}


# -- the sender -------------------------------------------------------------------------------------------------
_BODY = ORDER_FIXTURE.read_bytes()


def order_body(external_id: str | None = None) -> tuple[bytes, str]:
    """The Shopify sample order under a fresh id (every occurrence, so it stays self-consistent)."""
    new_id = external_id or str(secrets.randbelow(9 * 10**17) + 10**17)
    return _BODY.replace(SAMPLE_ID, new_id.encode()), new_id


def cancel_body(external_id: str) -> bytes:
    payload = json.loads(order_body(external_id)[0])
    payload.update({"cancelled_at": "2026-01-01T00:00:00Z", "cancel_reason": "customer"})
    return json.dumps(payload).encode()


def shopify_headers(body: bytes, topic: str, webhook_id: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Shopify-Topic": topic, "X-Shopify-Webhook-Id": webhook_id,
            "X-Shopify-Hmac-Sha256": compute_hmac(body, SECRET)}


def workflow_id(external_id: str) -> str:
    return f"order:shopify:{external_id}"


@dataclass
class SendLog:
    """What a retrying sender saw: every attempt's status (None: no answer), and each delivery's outcome."""

    statuses: Counter = field(default_factory=Counter)
    acked: dict[str, int] = field(default_factory=dict)  # delivery key → the 2xx that acknowledged it
    given_up: list[str] = field(default_factory=list)
    attempts: int = 0

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s is not None and s >= 500)

    @property
    def code_500(self) -> int:
        return self.statuses.get(500, 0)


def _retry_after(resp: httpx.Response | None, default: float) -> float:
    if resp is None:
        return default
    raw = resp.headers.get("Retry-After", "")
    return min(float(raw), 5.0) if re.fullmatch(r"\d+(\.\d+)?", raw) else default


async def deliver(http: httpx.AsyncClient, log: SendLog, key: str, url: str, body: bytes, headers: dict[str, str],
                  *, deadline: float, retry_on: tuple[int, ...] = ()) -> int | None:
    """POST until acknowledged (2xx) or refused for good (a 4xx not in `retry_on`), retrying after a 5xx or no
    answer (after its Retry-After, at most 5 s) until `deadline` (loop time). Returns the final status."""
    loop = asyncio.get_running_loop()
    delay = 0.3
    while True:
        resp: httpx.Response | None = None
        log.attempts += 1
        try:
            resp = await http.post(url, content=body, headers=headers)
            status: int | None = resp.status_code
        except (httpx.HTTPError, OSError):
            status = None
        log.statuses[status] += 1
        if status is not None and 200 <= status < 300:
            log.acked[key] = status
            return status
        if status is not None and status < 500 and status not in retry_on:
            return status
        if loop.time() > deadline:
            log.given_up.append(key)
            return status
        await asyncio.sleep(_retry_after(resp, delay))
        delay = min(delay * 1.5, 2.0)


async def send_orders(stack: Stack, external_ids: list[str], *, log: SendLog, rate: float = 5.0,
                      deadline_s: float = 120) -> None:
    """Each order's orders/create, started at `rate` per second (so intake goes on through the faults), each
    delivered by a retrying sender."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=15) as http:
        async def one(i: int, eid: str) -> None:
            await asyncio.sleep(i / rate)
            body, _ = order_body(eid)
            await deliver(http, log, eid, "/webhooks/shopify", body,
                          shopify_headers(body, "orders/create", str(uuid.uuid4())), deadline=deadline)

        await asyncio.gather(*(one(i, e) for i, e in enumerate(external_ids)))


def new_ids(n: int) -> list[str]:
    """`n` fresh order ids, unique across tests and runs (the business key is the workflow id, and the tests share
    one Temporal server: a repeated id would be a duplicate of another test's order). The seeds make the faults'
    timing reproducible, not the ids."""
    return [str(secrets.randbelow(9 * 10**17) + 10**17) for _ in range(n)]


# -- vendor sandboxes -------------------------------------------------------------------------------------------
@dataclass
class Served:
    """A vendor sandbox served on a loopback port in this process, every request it answered counted."""

    name: str
    app: object
    base_url: str
    calls: list[tuple[float, str, str, int]] = field(default_factory=list)  # (monotonic, method, path, status)

    @property
    def injector(self):
        return self.app.state.fault_injector  # type: ignore[attr-defined]

    def count(self, *, status: int | None = None, since: float = 0.0, until: float = float("inf")) -> int:
        return sum(1 for t, _m, _p, s in self.calls if since <= t <= until and (status is None or s == status))


@contextlib.contextmanager
def served_sandbox(name: str, settings: Settings, *, seed: int = 0) -> Iterator[Served]:
    from sandbox.common import ServedApp
    from sandbox.stack import build_app

    app = build_app(name, settings, seed=seed)
    served = Served(name, app, "")

    @app.middleware("http")  # outermost: sees the injected faults too
    async def _count(request, call_next):  # noqa: ANN001, ANN202
        response = await call_next(request)
        if not request.url.path.startswith("/_admin"):
            served.calls.append((time.monotonic(), request.method, request.url.path, response.status_code))
        return response

    runner = ServedApp(app, host="127.0.0.1", port=0).start()
    served.base_url = runner.base_url
    try:
        yield served
    finally:
        runner.stop()


# -- a database connection you can cut ---------------------------------------------------------------------------
class CuttableProxy:
    """A loopback TCP proxy in front of a server (PostgreSQL), on its own thread and event loop. `cut()` closes
    every open connection and stops listening (new connections are refused: ECONNREFUSED); `restore()` listens
    again on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        import threading

        self.target = (target_host, target_port)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0
        self.cuts = 0
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._call(self._listen())

    def _call(self, coro):  # noqa: ANN001, ANN202
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._writers -= {writer, up_writer}

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()  # an RST, as when the server goes away
        self._writers.clear()

    def cut(self) -> None:
        self.cuts += 1
        self._call(self._cut())

    def restore(self) -> None:
        self._call(self._listen())

    def close(self) -> None:
        self._call(self._cut())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
