"""The `retailflow` command line (typer)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Annotated

import typer

from retailflow.logging import configure_logging
from runtime.settings import Settings

app = typer.Typer(help="retailflow: durable Temporal workflows for retail orders.", no_args_is_help=True)
catalog_app = typer.Typer(help="The embedded ERP's catalog.", no_args_is_help=True)
shopify_app = typer.Typer(help="Shopify helpers.", no_args_is_help=True)
db_app = typer.Typer(help="The platform database.", no_args_is_help=True)
ops_app = typer.Typer(help="Analysts' operations: bulk retry, audit trails.", no_args_is_help=True)
app.add_typer(ops_app, name="ops")
app.add_typer(catalog_app, name="catalog")
app.add_typer(shopify_app, name="shopify")
app.add_typer(db_app, name="db")
from retailflow.returns_cli import returns_app  # noqa: E402

app.add_typer(returns_app, name="returns")
from retailflow.inventory_cli import inventory_app  # noqa: E402

app.add_typer(inventory_app, name="inventory")
from retailflow.finance_cli import schedules_app, settlements_app  # noqa: E402

app.add_typer(schedules_app, name="schedules")
app.add_typer(settlements_app, name="settlements")
from retailflow.vendors_cli import vendors_app  # noqa: E402

app.add_typer(vendors_app, name="vendors")
from retailflow.deploy_cli import deploy_app  # noqa: E402

app.add_typer(deploy_app, name="deploy")
from retailflow.simulate_cli import simulate_app  # noqa: E402

app.add_typer(simulate_app, name="simulate")
from retailflow.erp_cli import erp_app  # noqa: E402

app.add_typer(erp_app, name="erp")
from retailflow.prices_cli import prices_app  # noqa: E402

app.add_typer(prices_app, name="prices")
# The vendor sandboxes have their own entry point, `retailflow-sandbox` (sandbox/cli.py): the product CLI never
# imports sandbox/ at load, so the image, which ships without it, runs `retailflow api` and `retailflow worker`.


def _settings(**overrides) -> Settings:
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    configure_logging(settings.log_level, settings.log_json)
    return settings


def _production_ready(settings: Settings) -> None:
    """RETAILFLOW_ENV=production: refuse to start with a default or empty secret, naming each setting."""
    from runtime.settings import ProductionConfigError

    try:
        settings.check_production()
    except ProductionConfigError as exc:
        typer.secho("refusing to start with RETAILFLOW_ENV=production:", fg="red", err=True)
        for problem in exc.problems:
            typer.secho(f"  {problem}", fg="red", err=True)
        raise typer.Exit(2) from None


def _migrated(settings: Settings) -> None:
    """Bring the platform database to the head migration (Alembic owns the schema; processes never create
    tables themselves). Serialized across processes, so replicas may start together; off with
    RETAILFLOW_MIGRATE_ON_START=false where a release job runs `retailflow db upgrade` instead."""
    from retailflow.migrate import MigrationError, upgrade_database

    try:
        upgrade_database(settings.effective_database_url)
    except MigrationError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None


@app.command()
def dev(
    data_dir: Annotated[Path, typer.Option(help="Where Temporal's and the platform's SQLite files live")] = Path(".data"),
    temporal_port: Annotated[int, typer.Option(help="Temporal frontend (gRPC) port")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Temporal Web UI port")] = 8233,
    api_port: Annotated[int, typer.Option(help="retailflow API port")] = 8000,
    demo: Annotated[bool, typer.Option(help="Load the demo catalog (covers every SKU of the Shopify samples)")] = False,
    sandbox: Annotated[bool, typer.Option(
        help="Also serve the vendor sandboxes (AvaTax, ERPNext, Shopify, Amazon, ShipStation) on "
             "RETAILFLOW_SANDBOX_PORTS; Ctrl-C stops them too")] = False,
    profile: Annotated[str, typer.Option(
        help="Adapters: `embedded` (default) or `vendors` (Shopify + Amazon channels, ERPNext, AvaTax, "
             "ShipStation over HTTP; with --sandbox pointed at the sandboxes, which are seeded with the demo "
             "catalog)")] = "embedded",
) -> None:
    """Run the whole platform: Temporal dev server + Web UI, database, worker, API (and the vendor sandboxes)."""
    from retailflow.devstack import run_dev
    from retailflow.profiles import PROFILES, apply_profile

    if profile not in PROFILES:
        raise typer.BadParameter(f"one of: {', '.join(PROFILES)}", param_hint="--profile")
    settings = _settings(data_dir=data_dir, api_port=api_port, temporal_address=f"localhost:{temporal_port}")
    settings = apply_profile(settings, profile, sandbox=sandbox)
    try:
        asyncio.run(run_dev(settings, temporal_port=temporal_port, ui_port=ui_port, demo=demo, sandbox=sandbox,
                            profile=profile))
    except KeyboardInterrupt:  # stopped while starting (Ctrl-C, SIGTERM, SIGHUP): cleaned up on the way out
        raise typer.Exit(0) from None
    except RuntimeError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None


@app.command()
def worker() -> None:
    """Run the worker alone against an existing Temporal (RETAILFLOW_TEMPORAL_ADDRESS)."""
    import signal

    from worker import run_worker

    settings = _settings()
    _production_ready(settings)
    if settings.migrate_on_start:
        _migrated(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, stop=stop)

    asyncio.run(main())


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
) -> None:
    """Run the API alone against an existing Temporal (RETAILFLOW_TEMPORAL_ADDRESS)."""
    import signal

    import uvicorn

    from api.app import create_app
    from retailflow.devstack import _ApiServer

    settings = _settings(api_host=host, api_port=port)
    _production_ready(settings)
    if settings.migrate_on_start:
        _migrated(settings)
    server = _ApiServer(uvicorn.Config(create_app(settings), host=settings.api_host, port=settings.api_port))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
        await server.serve()

    asyncio.run(main())


@catalog_app.command("import")
def catalog_import(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]) -> None:
    """Upsert items, the SKU cross-reference and stock from a CSV with header
    channel,channel_sku,item_code,name,location,on_hand,unit_price,currency."""
    from adapters.erp.local import LocalErp
    from adapters.sql import make_engine
    from retailflow.catalog import import_catalog

    settings = _settings()
    _migrated(settings)
    engine = make_engine(settings.effective_database_url)
    try:
        report = import_catalog(LocalErp(engine, default_location=settings.default_location), file)
    except ValueError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None
    if report.errors:
        for err in report.errors:
            typer.secho(err, fg="red", err=True)
        typer.secho(f"nothing imported: {len(report.errors)} bad row(s)", fg="red", err=True)
        raise typer.Exit(2)
    typer.echo(f"imported {report.rows} row(s), {len(report.items)} item(s)")


@catalog_app.command("map-sku")
def catalog_map_sku(
    channel: Annotated[str, typer.Argument(help="e.g. shopify")],
    channel_sku: Annotated[str, typer.Argument(help="The SKU as the channel sends it")],
    item_code: Annotated[str, typer.Argument(help="An existing ERP item")],
) -> None:
    """Map one channel SKU to an existing ERP item (stock untouched)."""
    from sqlalchemy import select

    from adapters import sql as db
    from adapters.erp.local import LocalErp
    from adapters.sql import make_engine

    settings = _settings()
    _migrated(settings)
    engine = make_engine(settings.effective_database_url)
    with engine.connect() as conn:
        if conn.execute(select(db.items.c.item_code).where(db.items.c.item_code == item_code)).first() is None:
            typer.secho(f"no ERP item {item_code!r}; import it first", fg="red", err=True)
            raise typer.Exit(2)
    LocalErp(engine).map_sku(channel, channel_sku, item_code)
    typer.echo(f"{channel} {channel_sku} → {item_code}")


@db_app.command("init")
def db_init() -> None:
    """Create or upgrade the platform database tables (idempotent; the same as `db upgrade` to head)."""
    settings = _settings()
    _migrated(settings)
    typer.echo(f"database ready: {settings.effective_database_url.split('@')[-1]}")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
) -> None:
    """Apply the schema migrations (Alembic) to RETAILFLOW_DATABASE_URL; run before new workers and API."""
    from retailflow.migrate import MigrationError, upgrade_database

    settings = _settings()
    try:
        result = upgrade_database(settings.effective_database_url, revision)
    except MigrationError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None
    adopted = " (adopted a `db init` database)" if result.adopted else ""
    typer.echo(f"database at revision {result.after} (was {result.before}){adopted}: "
               f"{settings.effective_database_url.split('@')[-1]}")


@shopify_app.command("webhooks")
def shopify_webhooks(
    check: Annotated[bool, typer.Option("--check", help="Only report; exit 1 when a topic is missing")] = False,
    channel: Annotated[list[str] | None, typer.Option(help="A Shopify channel (default: every one routed to Shopify)")] = None,
) -> None:
    """Create (or check) one webhook subscription per topic the intake serves, at RETAILFLOW_API_BASE_URL's
    /webhooks/shopify, through the GraphQL Admin API (webhookSubscriptionCreate)."""
    from adapters.sql import make_engine
    from runtime.settings import get_settings
    from runtime.shopify_webhooks import intake_uri, sync_webhooks

    settings = get_settings()
    engine = make_engine(settings.effective_database_url)
    try:
        result = sync_webhooks(settings, engine, check_only=check, channels=channel or None)
    except Exception as exc:  # a vendor refusal or a configuration error: said in one line
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    if not result:
        typer.echo("no channel is routed to Shopify (RETAILFLOW_MARKETPLACE_ADAPTERS)", err=True)
        raise typer.Exit(2)
    typer.echo(f"intake: {intake_uri(settings)}")
    for ch, topics in result.items():
        for topic, outcome in topics.items():
            typer.echo(f"{ch}\t{topic}\t{outcome}")
    if any(o == "missing" for topics in result.values() for o in topics.values()):
        raise typer.Exit(1)


@shopify_app.command("install")
def shopify_install(
    shop: Annotated[str, typer.Argument(help="The shop, name.myshopify.com (one of RETAILFLOW_STORES or "
                                             "RETAILFLOW_SHOPIFY_SHOP_DOMAIN)")],
) -> None:
    """Print the link a merchant opens to install the app on SHOP (Shopify's authorize page; valid 10 minutes).
    Shopify redirects to the API's /shopify/oauth/callback, which stores the shop's token sealed."""
    from adapters.marketplace.shopify_oauth import OAuthRefused
    from runtime.settings import get_settings
    from runtime.shopify_auth import install_link

    settings = get_settings()
    try:
        link = install_link(settings, shop)
    except OAuthRefused as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(link)
    if settings.shopify_app_auth != "authorization_code":
        typer.echo("note: RETAILFLOW_SHOPIFY_APP_AUTH is not authorization_code; the stored token is used only "
                   "once it is", err=True)


@shopify_app.command("shops")
def shopify_shops() -> None:
    """The shops whose app token is stored: grant, scopes, expiry (never the token)."""
    from adapters.sql import make_engine
    from runtime.settings import get_settings
    from runtime.shopify_auth import token_store

    settings = get_settings()
    engine = make_engine(settings.effective_database_url)
    try:
        rows = token_store(settings, engine).shops()
    finally:
        engine.dispose()
    if not rows:
        typer.echo("no shop has installed the app (retailflow shopify install SHOP)")
        return
    for r in rows:
        expires = r.expires_at.isoformat() if r.expires_at else "never"
        typer.echo(f"{r.shop}\t{r.grant}\texpires {expires}\t{','.join(sorted(r.scopes))}")


@shopify_app.command("send")
def shopify_send(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="Raw webhook body")],
    topic: Annotated[str, typer.Option(help="X-Shopify-Topic")] = "orders/create",
    url: Annotated[str | None, typer.Option(help="Webhook URL; default the local API")] = None,
    webhook_id: Annotated[str | None, typer.Option(help="X-Shopify-Webhook-Id; default a new uuid")] = None,
    as_new_order: Annotated[bool, typer.Option(
        help="Give the order a fresh id (the sample is one order; without this a second send is a duplicate)")] = False,
) -> None:
    """Send a file as a signed Shopify webhook (signed with RETAILFLOW_SHOPIFY_WEBHOOK_SECRET)."""
    import re
    import secrets

    import httpx

    from adapters.marketplace.shopify import compute_hmac

    settings = _settings()
    body = file.read_bytes()
    if as_new_order:
        match = re.search(rb'"id"\s*:\s*(\d+)', body)
        if match is None:
            typer.secho("no top-level numeric \"id\" in the body", fg="red", err=True)
            raise typer.Exit(2)
        new_id = str(secrets.randbelow(9 * 10**17) + 10**17).encode()
        body = body.replace(match.group(1), new_id)
    target = url or f"{settings.effective_api_base_url}/webhooks/shopify"
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": compute_hmac(body, settings.shopify_webhook_secret.get_secret_value()),
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Shopify-Shop-Domain": "retailflow-dev.myshopify.com",
        "X-Shopify-API-Version": settings.shopify_admin_api_version,
    }
    resp = httpx.post(target, content=body, headers=headers, timeout=30)
    typer.echo(f"HTTP {resp.status_code}")
    try:
        typer.echo(json.dumps(resp.json(), indent=2))
    except ValueError:
        typer.echo(resp.text)
    if resp.status_code >= 400:
        raise typer.Exit(1)


@ops_app.command("retry")
def ops_retry(
    query: Annotated[str, typer.Option(help="Temporal visibility query, e.g. 'NeedsAttention = true AND Channel = \"shopify\"'")],
    reason: Annotated[str, typer.Option(help="Why (recorded in each history)")],
    dry_run: Annotated[bool, typer.Option(help="List what would be retried, change nothing")] = False,
) -> None:
    """Retry every parked run the query finds, through the workflow's validated `act` update.

    Needs an `analyst` or `admin` API key in RETAILFLOW_API_KEY, like the API's retry action: the actor recorded in
    each history is that key's principal (`key:<name>`), never a name typed on the command line."""
    from rich.progress import track
    from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError

    from canonical.access import PERSONAL_DATA_ROLES
    from canonical.ops import AnalystRequest
    from runtime.cluster import connect_client

    settings = _settings()
    actor = _cli_principal(settings, allowed=PERSONAL_DATA_ROLES, action="retry runs")

    async def main() -> tuple[int, list[str]]:
        client = await connect_client(settings)
        full_query = f"({query}) AND ExecutionStatus = 'Running'"
        ids = [w.id async for w in client.list_workflows(full_query)
               if w.status == WorkflowExecutionStatus.RUNNING]
        if dry_run:
            return 0, ids
        retried, refused = 0, []
        for wf_id in track(ids, description="retrying"):
            try:
                await client.get_workflow_handle(wf_id).execute_update(
                    "act", AnalystRequest(action="retry", actor=actor, reason=reason))
                retried += 1
            except WorkflowUpdateFailedError as exc:
                refused.append(f"{wf_id}: {getattr(exc.cause, 'message', exc.cause)}")
        return retried, refused

    retried, detail = asyncio.run(main())
    if dry_run:
        typer.echo("\n".join(detail) or "nothing matches")
        return
    typer.echo(f"retried {retried} run(s)")
    for line in detail:
        typer.secho(f"refused {line}", fg="yellow")


def _api_headers(settings: Settings) -> dict[str, str]:
    key = settings.api_key.get_secret_value().strip() if settings.api_key is not None else ""
    return {"Authorization": f"Bearer {key}"} if key else {}


class ApiCallError(Exception):
    """An API call that did not succeed, said in one line with what to do (the CLI prints it, exit status 2)."""


def _detail(resp) -> str:
    try:
        body = resp.json()
    except ValueError:
        body = resp.text
    detail = body.get("detail", body) if isinstance(body, dict) else body
    text = detail if isinstance(detail, str) else json.dumps(detail, separators=(",", ":"))
    return " ".join(text.split())[:300]


def api_request(settings: Settings, method: str, path: str, *, params: dict | None = None,
                json_body: dict | None = None, timeout: float = 30.0):
    """The CLI's one way to call the API (RETAILFLOW_API_BASE_URL, RETAILFLOW_API_KEY). A refused connection, a
    timeout, 401, 403 and any other 4xx/5xx raise ApiCallError with one line naming the fix; no traceback."""
    import httpx

    base = settings.effective_api_base_url.rstrip("/")
    headers = _api_headers(settings)
    try:
        resp = httpx.request(method, f"{base}{path}", params=params, json=json_body, headers=headers, timeout=timeout)
    except httpx.TimeoutException:
        raise ApiCallError(f"the API at {base} did not answer within {timeout:g}s: is it up? `make run` "
                           "(or set RETAILFLOW_API_BASE_URL)") from None
    except httpx.TransportError:
        raise ApiCallError(f"cannot reach the API at {base}: is it up? `make run` "
                           "(or set RETAILFLOW_API_BASE_URL)") from None
    if resp.status_code == 401:
        if not headers:
            raise ApiCallError("the API wants a key: export RETAILFLOW_API_KEY=<an analyst or admin key> (the key "
                               "`make run` printed, or `retailflow keys create --name you --role analyst`)")
        raise ApiCallError("the API refused the key (unknown, expired or revoked): set RETAILFLOW_API_KEY to an "
                           "analyst or admin key (`retailflow keys create`)")
    if resp.status_code == 403:
        raise ApiCallError(f"the API refused the key for {method} {path} ({_detail(resp)}): set RETAILFLOW_API_KEY "
                           "to an analyst or admin key (`retailflow keys create`)")
    if resp.status_code >= 400:
        raise ApiCallError(f"the API answered {resp.status_code} to {method} {path}: {_detail(resp)}")
    return resp


def _api_json(settings: Settings, method: str, path: str, **kwargs):
    """`api_request`'s JSON answer; an ApiCallError ends the command with its line on stderr, exit status 2."""
    try:
        return api_request(settings, method, path, **kwargs).json()
    except ApiCallError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None


def parse_age(text: str):
    """`90s`, `45m`, `2h`, `3d` (a bare number is minutes) as a timedelta."""
    import re
    from datetime import timedelta

    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if match is None:
        raise typer.BadParameter(f"{text!r}: expected e.g. 30m, 2h, 1d", param_hint="--older-than")
    unit = {"s": "seconds", "m": "minutes", "": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _short_reason(run: dict) -> str:
    """The reason without the suggested action the workflow appends to it (`<reason>. <action>`)."""
    reason, action = run.get("reason") or "", run.get("suggested_action") or ""
    if action and reason.endswith(f". {action}"):
        reason = reason[: -len(action) - 2]
    return " ".join(reason.split())


def _reason_label(reason: str) -> str:
    """The step that parked the run ("resolve_skus: unknown SKU …" → resolve_skus), as /metrics labels parked
    runs; a reason of another form counts as itself."""
    import re

    match = re.match(r"([a-z][a-z0-9_]{0,63}):", reason)
    return match.group(1) if match else (reason[:60] or "-")


def needs_attention_table(runs: list[dict], now) -> str:
    """Parked runs oldest first (workflow id, kind, channel/store, reason, parked since, age), then the counts by
    reason (the step that parked: the reason up to its first colon)."""
    from collections import Counter
    from datetime import datetime

    def since(run: dict):
        return datetime.fromisoformat(run["parked_since"].replace("Z", "+00:00"))

    runs = sorted(runs, key=lambda r: (since(r), r["workflow_id"]))
    header = ("WORKFLOW ID", "KIND", "CHANNEL/STORE", "PARKED SINCE", "AGE", "REASON")
    rows = [(r["workflow_id"], r["kind"], r.get("channel") or "-",
             since(r).isoformat(timespec="seconds"), _age((now - since(r)).total_seconds()),
             _short_reason(r)[:100] or "-") for r in runs]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = ["  ".join([*(str(c).ljust(w) for c, w in zip(row[:-1], widths, strict=True)), str(row[-1])]).rstrip()
             for row in [header, *rows]]
    counts = Counter(_reason_label(_short_reason(r)) for r in runs)
    lines.append("")
    lines.append(f"{len(runs)} parked run(s)" + (": by reason" if counts else ""))
    lines.extend(f"  {n:>5}  {reason}" for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return "\n".join(lines)


@ops_app.command("needs-attention")
def ops_needs_attention(
    channel: Annotated[str | None, typer.Option(help="Only this channel or store, e.g. shopify")] = None,
    older_than: Annotated[str | None, typer.Option(help="Only runs parked longer than this: 30m, 2h, 1d")] = None,
    kind: Annotated[str | None, typer.Option(help="Only this kind of run: order, return, settlement, …")] = None,
) -> None:
    """The parked runs (GET /ops/needs-attention), oldest first, with their reason and age, then counts by reason.
    Any API key will do (viewer and up): RETAILFLOW_API_KEY."""
    from datetime import UTC, datetime

    settings = _settings()
    now = datetime.now(UTC)
    params: dict[str, str | int] = {"limit": 1000}
    if channel:
        params["channel"] = channel
    if kind:
        params["kind"] = kind
    if older_than:
        params["parked_before"] = (now - parse_age(older_than)).isoformat()
    runs: list[dict] = []
    while True:  # every page: the API answers at most 1000 at a time
        page = _api_json(settings, "GET", "/ops/needs-attention", params={**params, "offset": len(runs)})
        runs.extend(page)
        if len(page) < 1000:
            break
    if not runs:
        typer.echo("no parked runs" + (f" on {channel}" if channel else "")
                   + (f" parked longer than {older_than}" if older_than else ""))
        return
    typer.echo(needs_attention_table(runs, now))


@ops_app.command("prune-quarantine")
def ops_prune_quarantine(
    days: Annotated[int | None, typer.Option(help="Retention; default RETAILFLOW_QUARANTINE_RETENTION_DAYS")] = None,
) -> None:
    """Delete quarantined copies that are resolved, and deliveries refused for their signature, older than the
    retention; keep at most RETAILFLOW_QUARANTINE_UNSIGNED_MAX_ROWS refused signatures. Authentic deliveries
    not yet taken are never deleted. Safe to run from cron or a Temporal Schedule."""
    from datetime import UTC, datetime, timedelta

    from adapters.platform.intake_store import IntakeStore
    from adapters.sql import make_engine

    settings = _settings()
    retention = days if days is not None else settings.quarantine_retention_days
    if retention < 1:
        raise typer.BadParameter("--days must be at least 1")
    _migrated(settings)
    counts = IntakeStore(make_engine(settings.effective_database_url)).prune(
        older_than=datetime.now(UTC) - timedelta(days=retention),
        unsigned_max_rows=settings.quarantine_unsigned_max_rows)
    typer.echo(f"deleted {counts['resolved']} resolved and {counts['unsigned']} refused-signature quarantined "
               f"deliveries (retention {retention} days)")


@ops_app.command("alert-rules")
def ops_alert_rules(
    out: Annotated[Path | None, typer.Option("--out", help="Write the rules file here instead of stdout")] = None,
) -> None:
    """The Prometheus alert rules of the business SLOs, from the settings (RETAILFLOW_SLO_*; docs/operations.md).
    With the default settings this is deploy/prometheus/alerts.yml."""
    from runtime.alerts import render_rules
    from runtime.settings import ObservabilitySettings

    text = render_rules(ObservabilitySettings())
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text)
    typer.echo(f"wrote {out}", err=True)


@ops_app.command("audit")
def ops_audit(
    workflow_id: Annotated[str, typer.Argument(help="e.g. order:shopify:820982911946154508")],
    format: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
    output: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout")] = None,
) -> None:
    """The business audit trail of one run (from its Temporal history), as CSV for finance or JSON."""
    from api.audit import build_trail, decode_history, to_csv
    from runtime.cluster import connect_client

    settings = _settings()

    async def main():
        client = await connect_client(settings)
        return build_trail(await decode_history(client, await client.get_workflow_handle(workflow_id).fetch_history()))

    entries = asyncio.run(main())
    if format == "csv":
        text = to_csv(entries)
    elif format == "json":
        text = json.dumps([e.model_dump(mode="json") for e in entries], indent=2)
    else:
        raise typer.BadParameter("format must be csv or json")
    if output:
        output.write_text(text)
        typer.echo(f"wrote {len(entries)} entries to {output}")
    else:
        typer.echo(text)


keys_app = typer.Typer(help="The API's keys (README \"Access\"): create, list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _cli_principal(settings: Settings, *, allowed, action: str) -> str:
    """The principal of RETAILFLOW_API_KEY, verified against the platform database's keys (as the API does), for
    a command that acts on runs directly through Temporal; exits 1 without a valid key of an allowed role."""
    key = settings.api_key.get_secret_value().strip() if settings.api_key is not None else ""
    if not key:
        typer.secho(f"to {action}, export RETAILFLOW_API_KEY=<an analyst or admin key> (the key `retailflow dev` "
                    "printed, or one from `retailflow keys create`): its name is recorded as the actor",
                    fg="red", err=True)
        raise typer.Exit(1)
    record = _key_store(settings).verify(key)
    if record is None:
        typer.secho("RETAILFLOW_API_KEY is not an active key of this platform (unknown, expired or revoked)",
                    fg="red", err=True)
        raise typer.Exit(1)
    if record.role not in allowed:
        typer.secho(f"key {record.name!r} has role {record.role.value}; to {action} it takes "
                    f"{' or '.join(sorted(r.value for r in allowed))}", fg="red", err=True)
        raise typer.Exit(1)
    return f"key:{record.name}"


def _key_store(settings: Settings):
    from adapters.platform.api_keys import ApiKeyStore
    from adapters.sql import make_engine

    _migrated(settings)
    return ApiKeyStore(make_engine(settings.effective_database_url))


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A unique name; the actor recorded is key:<name>")],
    role: Annotated[str, typer.Option(help="store, viewer, analyst, finance or admin")],
    expires_in_days: Annotated[int | None, typer.Option(min=1, help="Expire after this many days; default never")] = None,
    store: Annotated[list[str] | None, typer.Option(
        "--store", help="A store key's store id (fulfillment.toml's node id, e.g. STORE-001); repeat it for more "
                        "stores. Required with --role store, refused with the other roles")] = None,
) -> None:
    """Create an API key in the platform database and print it, once (only its SHA-256 digest is kept)."""
    from datetime import UTC, datetime, timedelta

    settings = _settings()
    expires_at = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    try:
        record, key = _key_store(settings).create(name, role, expires_at=expires_at, stores=store or None)
    except ValueError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(key)
    scope = f"stores {', '.join(record.stores)}, " if record.stores else ""
    typer.secho(f"key {record.name!r}, role {record.role.value}, {scope}"
                f"{'expires ' + record.expires_at.isoformat(timespec='seconds') if record.expires_at else 'no expiry'}"
                "; shown once, it cannot be shown again", err=True)


@keys_app.command("list")
def keys_list() -> None:
    """The keys: name, role, state, created, expires, last used, a store key's stores (never the secret)."""
    settings = _settings()
    records = _key_store(settings).list()
    if not records:
        typer.echo("no keys (retailflow keys create --name NAME --role ROLE)")
        return

    def when(value) -> str:
        return value.isoformat(timespec="seconds") if value else "-"

    typer.echo(f"{'NAME':<32} {'ROLE':<8} {'STATE':<8} {'CREATED':<26} {'EXPIRES':<26} {'LAST USED':<26} STORES")
    for r in records:
        typer.echo(f"{r.name:<32} {r.role.value:<8} {r.state():<8} {when(r.created_at):<26} "
                   f"{when(r.expires_at):<26} {when(r.last_used_at):<26} {','.join(r.stores) or '-'}")


@keys_app.command("revoke")
def keys_revoke(name: Annotated[str, typer.Argument(help="The key's name")]) -> None:
    """Revoke a key at once: the next request with it answers 401."""
    settings = _settings()
    record = _key_store(settings).revoke(name)
    if record is None:
        typer.secho(f"no key named {name!r}", fg="red", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {record.name!r} ({record.role.value}) at {record.revoked_at.isoformat(timespec='seconds')}"
               if record.revoked_at else f"{name!r} is not revoked")


def unreachable_service(exc: BaseException) -> str | None:
    """One line with the fix for a command that could not reach the API or Temporal (any command that calls them
    without `api_request`, e.g. `shopify send`, `returns`, `ops retry`); None for any other error."""
    import httpx

    settings = Settings()
    if isinstance(exc, httpx.TransportError):
        where = f"{exc.request.url.scheme}://{exc.request.url.netloc.decode()}" if _has_request(exc) \
            else settings.effective_api_base_url
        if isinstance(exc, httpx.TimeoutException):
            return f"the API at {where} did not answer in time: is it up? `make run`"
        return f"cannot reach the API at {where}: is it up? `make run`"
    if isinstance(exc, RuntimeError) and str(exc).startswith("Failed client connect"):
        return (f"cannot reach Temporal at {settings.temporal_address}: is it up? `make run` "
                "(or set RETAILFLOW_TEMPORAL_ADDRESS)")
    return None


def _has_request(exc) -> bool:
    try:
        exc.request  # noqa: B018 -- httpx raises RuntimeError when the error carries no request
    except RuntimeError:
        return False
    return True


def main() -> None:
    """The `retailflow` console script. Once a command has finished and its output is flushed, the process ends
    with `os._exit`: the Temporal client's Rust runtime threads can abort CPython's finalization of a short-lived
    client process ("Fatal Python error: PyGILState_Release", temporalio/sdk-python#300), which would turn a
    successful `retailflow ops audit` into exit status -6. Long-running commands have shut down by then."""
    import os
    import sys

    code: int = 0
    try:
        app()
    except SystemExit as exc:  # typer always ends with sys.exit
        if isinstance(exc.code, str):
            sys.stderr.write(exc.code + "\n")
            code = 1
        else:
            code = exc.code or 0
    except Exception as exc:  # noqa: BLE001 -- an unreachable service is one line with the fix, not a traceback
        line = unreachable_service(exc)
        if line is None:
            raise
        sys.stderr.write(f"error: {line}\n")
        code = 2
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
