"""`retailflow schedules apply [FILE]`, `retailflow settlements reconcile FILE --provider amazon` and
`retailflow settlements fetch --provider amazon`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

schedules_app = typer.Typer(help="Temporal Schedules from schedules.toml / schedules.yaml.", no_args_is_help=True)
settlements_app = typer.Typer(help="Settlement reconciliation (SettlementReconciliation).", no_args_is_help=True)


def _settings():
    from retailflow.logging import configure_logging
    from runtime.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    return settings


async def _client(settings):
    from runtime.cluster import connect_client

    try:
        return await connect_client(settings)
    except Exception as exc:
        typer.secho(f"Temporal at {settings.temporal_address} is unavailable: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None


@schedules_app.command("apply")
def schedules_apply(
    file: Annotated[Path | None, typer.Argument(help="Default: schedules.yaml / .yml / .toml in the current folder")
                    ] = None,
) -> None:
    """Create or update every schedule of the file (idempotent; a paused schedule stays paused)."""
    from pydantic import ValidationError

    from retailflow.schedules import apply_schedules, default_file, load_schedules

    settings = _settings()
    try:
        path = file or default_file()
        entries = load_schedules(path)
    except (FileNotFoundError, ValueError, ValidationError) as exc:
        typer.secho(f"invalid schedules file: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None

    async def main() -> list[tuple[str, str]]:
        client = await _client(settings)
        from worker import workflow_queues

        return await apply_schedules(client, entries, task_queue=settings.task_queue,
                                     workflow_queues=workflow_queues(settings))

    for schedule_id, what in asyncio.run(main()):
        typer.echo(f"{what:8} {schedule_id}")
    typer.echo(f"{len(entries)} schedule(s) from {path}; see them in the Web UI's Schedules page")


QUERY_ATTEMPTS = 40  # status queries (0.5 s apart) that may fail in a row before the command gives up


@settlements_app.command("reconcile")
def settlements_reconcile(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The settlement report")],
    provider: Annotated[str, typer.Option(help="amazon, shopify, amazon-de ...")] = "amazon",
    channel: Annotated[str | None, typer.Option(help="Sales channel of the orders; default from the provider")
                       ] = None,
    wait: Annotated[bool, typer.Option(help="Follow it with a progress bar and print the result")] = True,
) -> None:
    """Reconcile one report by hand: starts SettlementReconciliation (id settlement:{provider}:{settlement_id}) on
    the running worker, shows its progress and prints the result (or where it parked).

    Exit codes: 0 posted (also "already posted"), 3 parked for a person (needs attention: act through the API or
    the Web UI), 1 a real failure (the run failed, was cancelled, or Temporal is unreachable), 2 an unreadable
    file."""
    from adapters.marketplace.settlement_reports import peek_settlement
    from canonical.finance import SettlementInput

    settings = _settings()
    path = file.resolve()
    try:
        header = peek_settlement(provider, path)
    except Exception as exc:  # SettlementFileInvalid and friends
        typer.secho(f"{file}: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    if channel is None and settings.store_directory().by_channel(provider) is not None:
        channel = provider  # a store's own payouts (RETAILFLOW_STORES): its channel is the provider's name
    inp = SettlementInput(provider=provider, settlement_id=header.settlement_id, source=str(path), channel=channel)
    typer.echo(f"settlement {header.settlement_id}: deposit {header.total} {header.currency} → {inp.workflow_id}")
    asyncio.run(_run_reconcile(settings, inp, path.stat().st_size, wait))


@settlements_app.command("fetch")
def settlements_fetch(
    provider: Annotated[str, typer.Option(help="amazon, shopify, amazon-de ...")] = "amazon",
    channel: Annotated[str | None, typer.Option(help="Sales channel of the orders; default from the provider")
                       ] = None,
) -> None:
    """Run the provider's SettlementFetch now (what its schedule runs): list the provider's reports — with the
    Amazon SP-API adapter, download the new ones from the Reports API first — and start a SettlementReconciliation
    for each settlement not reconciled yet. Prints what was started."""
    from canonical.finance import FetchSettlementsResult
    from starters.settlements import fetch_settlements_now

    settings = _settings()

    async def main() -> FetchSettlementsResult:
        return await fetch_settlements_now(await _client(settings), settings, provider=provider, channel=channel)

    result = asyncio.run(main())
    typer.echo(json.dumps(result.model_dump(mode="json"), indent=2))


async def _run_reconcile(settings, inp, size: int, wait: bool) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from temporalio.client import WorkflowExecutionStatus

    from canonical.finance import SettlementView
    from starters.settlements import start_reconciliation

    client = await _client(settings)
    handle = await start_reconciliation(client, settings, inp)
    if not wait:
        typer.echo(f"started {inp.workflow_id}")
        return
    console = Console()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=console) as progress:
        stage = progress.add_task("staging", total=size or 1)
        steps = progress.add_task("reconciling", total=6)
        order = ["stage", "match", "classify", "check_totals", "build_journal", "post_journal"]
        unreadable = 0
        while True:
            desc = await handle.describe()
            for pending in desc.raw_description.pending_activities:
                if pending.heartbeat_details.payloads:
                    details = (await client.data_converter.decode(pending.heartbeat_details.payloads))[0]
                    if isinstance(details, dict):
                        progress.update(stage, completed=details.get("bytes", 0),
                                        description=f"staging {details.get('lines', 0):,} lines")
            try:
                view = await handle.query("status", result_type=SettlementView)
                unreadable = 0
            except Exception as exc:  # a run between tasks answers later; one that cannot be read never does
                view, unreadable = None, unreadable + 1
                if unreadable >= QUERY_ATTEMPTS:
                    progress.stop()
                    console.print(f"[red]failed[/]: the run does not answer its status query ({exc}); check that "
                                  "this command has the worker's codec keys (RETAILFLOW_CODEC_KEYS, the same data "
                                  "directory) and that a worker is running")
                    raise typer.Exit(1) from None
            if view is not None:
                if view.step in order:
                    progress.update(steps, completed=order.index(view.step), description=f"{view.step}")
                if view.line_count is not None:  # staged: the whole file is in the database
                    progress.update(stage, completed=size or 1, description=f"staged {view.line_count:,} lines")
                if view.status.value == "needs_attention":
                    progress.stop()
                    console.print(f"[yellow]needs attention[/]: {view.reason}")
                    console.print(f"Inspect: GET /settlements/{inp.provider}/{inp.settlement_id}; act: POST "
                                  f"/settlements/{inp.provider}/{inp.settlement_id}/actions/(retry|skip|cancel)")
                    raise typer.Exit(3)
            if desc.status != WorkflowExecutionStatus.RUNNING:
                if desc.status == WorkflowExecutionStatus.COMPLETED:  # it may end between two polls
                    progress.update(stage, completed=size or 1)
                    progress.update(steps, completed=6, description="done")
                break
            await asyncio.sleep(0.5)
    try:
        result = await handle.result()
    except Exception as exc:
        console.print(f"[red]failed[/]: {exc}")
        raise typer.Exit(1) from None
    console.print_json(json.dumps(result.model_dump(mode="json", exclude={"exceptions"})))
    if result.status != "posted":  # cancelled by an analyst: nothing was posted
        console.print(f"[red]{result.status}[/]: nothing posted")
        raise typer.Exit(1)
    console.print(f"[green]{result.status}[/]: {result.matched_count} matched, "
                  f"{result.unmatched_settlement_count} unmatched, journal {result.erp_journal_id}"
                  f"{' (posted now)' if result.journal_posted_now else ' (already posted)'}")
