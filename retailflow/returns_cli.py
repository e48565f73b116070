"""`retailflow returns …`: create a return, record a warehouse receipt, show its status (through the API)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated

import typer

returns_app = typer.Typer(help="Returns and refunds (ReturnToRefund).", no_args_is_help=True)


def _base(url: str | None) -> str:
    from runtime.settings import Settings

    return url or Settings().effective_api_base_url


def _parse(specs: list[str], *, with_condition: bool) -> list[dict]:
    lines = []
    for spec in specs:
        parts = spec.split(":")
        if len(parts) not in ((2, 3) if with_condition else (2,)) or not parts[1].isdigit():
            raise typer.BadParameter(f"{spec!r}: expected LINE_ID:QTY{'[:CONDITION]' if with_condition else ''}")
        line = {"line_id": parts[0], "quantity": int(parts[1])}
        if with_condition and len(parts) == 3:
            line["condition"] = parts[2]
        lines.append(line)
    return lines


def api_headers() -> dict[str, str]:
    """The credentials the CLI sends to the API: RETAILFLOW_API_KEY (README "Access")."""
    from runtime.settings import Settings

    key = Settings().api_key
    if key is None or not key.get_secret_value().strip():
        return {}
    return {"Authorization": f"Bearer {key.get_secret_value().strip()}"}


def _send(method: str, url: str, payload: dict | None = None) -> None:
    import httpx

    resp = httpx.request(method, url, json=payload, headers=api_headers(), timeout=30)
    if resp.status_code == 401 and not api_headers():
        typer.secho("the API wants credentials: export RETAILFLOW_API_KEY=<key> (the key `retailflow dev` "
                    "printed, or one from `retailflow keys create`)", fg="yellow", err=True)
    typer.echo(f"HTTP {resp.status_code}")
    try:
        typer.echo(json.dumps(resp.json(), indent=2))
    except ValueError:
        typer.echo(resp.text)
    if resp.status_code >= 400:
        raise typer.Exit(1)


@returns_app.command("create")
def returns_create(
    channel: str, external_order_id: str,
    lines: Annotated[list[str], typer.Argument(help="LINE_ID:QTY for each returned order line")],
    return_id: Annotated[str | None, typer.Option(help="The channel's return id; default a new one")] = None,
    reason: Annotated[str, typer.Option(help="damaged, wrong_item, not_as_described, no_longer_needed, other")] = "other",
    url: Annotated[str | None, typer.Option(help="API base URL; default the local API")] = None,
) -> None:
    """Start a return of LINE_ID:QTY … of an order (POST /returns)."""
    rid = return_id or f"R{uuid.uuid4().hex[:8].upper()}"
    payload = {"channel": channel, "return_id": rid, "external_order_id": external_order_id,
               "requested_at": datetime.now(UTC).isoformat(),
               "lines": [{**line, "reason": reason} for line in _parse(lines, with_condition=False)]}
    _send("POST", f"{_base(url)}/returns", payload)


@returns_app.command("receive")
def returns_receive(
    channel: str, return_id: str,
    lines: Annotated[list[str], typer.Argument(help="LINE_ID:QTY[:resellable|damaged|defective]")],
    receipt_id: Annotated[str | None, typer.Option(help="Warehouse receipt id; default a new one")] = None,
    url: Annotated[str | None, typer.Option(help="API base URL; default the local API")] = None,
) -> None:
    """Record what the warehouse received (POST /returns/{channel}/{return_id}/receipts)."""
    payload = {"receipt_id": receipt_id or f"RCPT-{uuid.uuid4().hex[:8].upper()}", "return_id": return_id,
               "received_at": datetime.now(UTC).isoformat(), "lines": _parse(lines, with_condition=True)}
    _send("POST", f"{_base(url)}/returns/{channel}/{return_id}/receipts", payload)


@returns_app.command("status")
def returns_status(channel: str, return_id: str,
                   url: Annotated[str | None, typer.Option(help="API base URL")] = None) -> None:
    """Show a return's status (GET /returns/{channel}/{return_id})."""
    _send("GET", f"{_base(url)}/returns/{channel}/{return_id}")
