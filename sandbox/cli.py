"""`retailflow-sandbox`: serve every vendor sandbox in `sandbox.APPS` (or some) on the ports settings give."""

from __future__ import annotations

import asyncio
import importlib
from typing import Annotated

import typer

sandbox_app = typer.Typer(help="Local vendor API sandboxes (AvaTax, ERPNext, Shopify, Amazon, ShipStation) with "
                          "fault injection: GET/PUT /_admin/faults, POST /_admin/reset on each.",
                          invoke_without_command=True, no_args_is_help=False)


def load_app(name: str, *, seed: int = 0):  # noqa: ANN201 - a FastAPI app
    """Build the sandbox app registered as `name` in sandbox.APPS, with its own seeded fault injector."""
    from sandbox import APPS
    from sandbox.faults import FaultInjector

    if name not in APPS:
        raise KeyError(f"unknown sandbox {name!r}; known: {', '.join(sorted(APPS))}")
    module, _, factory = APPS[name].partition(":")
    return getattr(importlib.import_module(module), factory)(injector=FaultInjector(seed=seed))


def ports(names: list[str]) -> dict[str, int]:
    from runtime.settings import get_settings
    from sandbox import DEFAULT_PORTS

    configured = get_settings().sandbox_ports
    out = {}
    for name in names:
        port = configured.get(name, DEFAULT_PORTS.get(name))
        if port is None:
            raise KeyError(f"no port for sandbox {name!r}: set RETAILFLOW_SANDBOX_PORTS")
        out[name] = port
    return out


async def serve(names: list[str], *, host: str, seed: int, edi_supplier: bool = False) -> None:
    import uvicorn

    from runtime.settings import get_settings
    from sandbox.stack import build_app

    servers = []
    for name, port in ports(names).items():
        config = uvicorn.Config(build_app(name, get_settings(), seed=seed), host=host, port=port, log_level="warning",
                                lifespan="on")
        servers.append(uvicorn.Server(config))
        typer.echo(f"{name:12s} http://{host}:{port}  (docs /docs, faults /_admin/faults)")
    edi = None
    if edi_supplier:
        from runtime.suppliers import supplier_drop_folder
        from sandbox.stack import start_edi_supplier

        edi = start_edi_supplier(get_settings(), seed=seed)
        typer.echo(f"{'edi-supplier':12s} {supplier_drop_folder(get_settings())}  (ACME: answers 850s with 855/856/810)")
    try:
        await asyncio.gather(*(s.serve() for s in servers))
    finally:
        if edi is not None:
            edi[1].set()


@sandbox_app.callback()
def sandbox_main(
    ctx: typer.Context,
    only: Annotated[list[str] | None, typer.Option("--only", help="Serve only these sandboxes (repeatable)")] = None,
    host: Annotated[str | None, typer.Option(help="Bind address; default RETAILFLOW_SANDBOX_HOST")] = None,
    seed: Annotated[int | None, typer.Option(help="Fault injection seed; default RETAILFLOW_SANDBOX_SEED")] = None,
) -> None:
    """Serve the vendor sandboxes until Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    from runtime.settings import get_settings
    from sandbox import APPS

    settings = get_settings()
    names = list(only) if only else list(APPS)
    unknown = [n for n in names if n not in APPS]
    if unknown:
        typer.secho(f"unknown sandbox(es): {', '.join(unknown)}; known: {', '.join(sorted(APPS))}", fg="red",
                    err=True)
        raise typer.Exit(2)
    try:
        asyncio.run(serve(names, host=host or settings.sandbox_host,
                          seed=settings.sandbox_seed if seed is None else seed,
                          edi_supplier=not only and not settings.supplier_sftp_host))
    except KeyboardInterrupt:
        pass


@sandbox_app.command("list")
def sandbox_list() -> None:
    """The registered sandboxes and their ports."""
    from sandbox import APPS

    for name, port in ports(list(APPS)).items():
        typer.echo(f"{name:12s} {port:5d}  {APPS[name]}")


def _vendor_settings():  # noqa: ANN202 - Settings
    """The settings with the sandboxes' base URLs (RETAILFLOW_SANDBOX_HOST/_PORTS), as `dev --sandbox` uses."""
    from retailflow.logging import configure_logging
    from retailflow.profiles import apply_profile
    from runtime.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    return apply_profile(settings, "vendors", sandbox=True)


def _fail(exc: Exception) -> None:
    typer.secho(f"{type(exc).__name__}: {exc} (is the sandbox running? `retailflow dev --sandbox --profile vendors` "
                "or `retailflow-sandbox`)", fg="red", err=True)
    raise typer.Exit(1)


@sandbox_app.command("seed")
def sandbox_seed() -> None:
    """Seed running sandboxes with the demo data (ERPNext catalog, stock and SKU mapping; the Shopify sample order).
    `retailflow dev --sandbox --profile vendors` does this at start."""
    import httpx

    from sandbox.demo import seed_demo

    try:
        report = seed_demo(_vendor_settings())
    except (httpx.HTTPError, OSError) as exc:
        _fail(exc)
    typer.echo(f"seeded: {report.summary()}")


@sandbox_app.command("shopify-order")
def sandbox_shopify_order(
    file: Annotated[str, typer.Argument(help="A Shopify order (orders/create payload)")] =
        "tests/fixtures/shopify/webhook_orders_create_sample_v2024.json",
    as_new_order: Annotated[bool, typer.Option(help="Give the order a fresh id (and its lines fresh ids)")] = False,
) -> None:
    """Place an order in the Shopify sandbox; the shop sends it to the platform as a signed orders/create webhook."""
    import re
    import secrets
    from pathlib import Path

    import httpx

    from sandbox.demo import seed_shopify_order

    body = Path(file).read_bytes()
    if as_new_order:  # every id of the payload (order, line items…) is replaced consistently
        for old in sorted(set(re.findall(rb'"id"\s*:\s*(\d{6,})', body)), key=len, reverse=True):
            body = re.sub(rb"\b" + old + rb"\b", str(secrets.randbelow(9 * 10**17) + 10**17).encode(), body)
    try:
        order_id = seed_shopify_order(_vendor_settings(), body, notify=True)
    except (httpx.HTTPError, OSError) as exc:
        _fail(exc)
    typer.echo(f"Shopify order {order_id} placed; the platform runs it as order:shopify:{order_id}")


@sandbox_app.command("amazon-order")
def sandbox_amazon_order(
    line: Annotated[list[str] | None, typer.Option(
        "--line", help="SELLER_SKU:QUANTITY:UNIT_PRICE (repeatable); default AMZ-AVIATOR-BLK:1:89.99")] = None,
    order_id: Annotated[str | None, typer.Option(help="AmazonOrderId; default a fresh one")] = None,
) -> None:
    """Place a merchant-fulfilled order in the Amazon sandbox; the platform's order poll (ChannelOrderPoll) picks it up."""
    import httpx

    from sandbox.demo import amazon_order, place_amazon_order

    lines = []
    for spec in line or []:
        try:
            sku, qty, price = spec.rsplit(":", 2)
            lines.append((sku, int(qty), price))
        except ValueError:
            raise typer.BadParameter(f"{spec!r} is not SELLER_SKU:QUANTITY:UNIT_PRICE", param_hint="--line") from None
    try:
        placed = place_amazon_order(_vendor_settings(), amazon_order(order_id, lines=lines or None))
    except (httpx.HTTPError, OSError) as exc:
        _fail(exc)
    typer.echo(f"Amazon order {placed} placed; the next poll starts order:amazon:{placed}")


@sandbox_app.command("amazon-settlement")
def sandbox_amazon_settlement(
    commission_rate: Annotated[str, typer.Option(help="Referral fee share of the principal")] = "0.15",
) -> None:
    """Close an Amazon settlement cycle in the sandbox: what shipped and what was refunded since the last one
    becomes a V2 settlement report, listed by the Reports API (`retailflow settlements fetch --provider amazon`)."""
    import httpx

    settings = _vendor_settings()
    try:
        resp = httpx.post(f"{settings.amazon_sp_base_url}/_admin/settlements",
                          params={"commission_rate": commission_rate}, timeout=30)
        resp.raise_for_status()
    except (httpx.HTTPError, OSError) as exc:
        _fail(exc)
    body = resp.json()
    if not body.get("settlementId"):
        typer.echo(body.get("detail", "nothing to settle"))
        return
    typer.echo(f"settlement {body['settlementId']} (report {body['reportId']}): {body['lines']} line(s), deposit "
               f"{body['total']} USD; orders {', '.join(body['orders']) or '-'}; refunds "
               f"{', '.join(body['refunded_orders']) or '-'}")


def main() -> None:
    """The `retailflow-sandbox` console script (dev and test only; the product image does not ship sandbox/)."""
    sandbox_app(prog_name="retailflow-sandbox")
