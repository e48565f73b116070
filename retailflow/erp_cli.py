"""`retailflow erp …`: ERP coexistence (docs/erp-migration.md) — the dual-run parity report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

erp_app = typer.Typer(help="ERP coexistence: routing, dual-run parity.", no_args_is_help=True)

PROCESSES = ("orders", "invoices", "credit_notes", "journals", "stock")


def parity_markdown(process: str, days: list[dict[str, Any]], rows: list[dict[str, Any]], *, unchecked: int = 0,
                    day: str | None = None) -> str:
    """The parity report: a table per day (equal / different / accepted), then each key that is not equal with
    its differences, the system of record's value beside the shadow's."""
    if day is not None:
        days = [d for d in days if d["day"] == day]
    lines = [f"# Dual-run parity: {process}", ""]
    total = {k: sum(d[k] for d in days) for k in ("equal", "different", "accepted")}
    checked = sum(total.values())
    lines += [f"{checked} business key(s) compared: {total['equal']} equal, {total['different']} different, "
              f"{total['accepted']} accepted" + (f"; {unchecked} posted but not compared yet." if unchecked else "."),
              ""]
    if not days:
        lines += ["No dual-run documents were compared" + (f" on {day}." if day else " yet."), ""]
        return "\n".join(lines)
    lines += ["| day | compared | equal | different | accepted |", "| --- | ---: | ---: | ---: | ---: |"]
    for d in days:
        lines.append(f"| {d['day']} | {d['equal'] + d['different'] + d['accepted']} | {d['equal']} | "
                     f"{d['different']} | {d['accepted']} |")
    lines.append("")
    open_rows = [r for r in rows if r["status"] != "equal" and (day is None or r["day"] == day)]
    if open_rows:
        lines += ["## Differences", ""]
    for r in open_rows:
        rec, sh = r.get("record_document") or {}, r.get("shadow_document") or {}
        lines += [f"### {r['business_key']} ({r['day']}, {r['status']})", "",
                  f"System of record {rec.get('erp', '?')} `{rec.get('document_id', '—')}`, shadow "
                  f"{sh.get('erp', '?')} `{sh.get('document_id', '—')}`"
                  + (f"; accepted: {r['note']}" if r["status"] == "accepted" and r.get("note") else ""), "",
                  "| field | system of record | shadow |", "| --- | --- | --- |"]
        for diff in r["differences"]:
            lines.append(f"| {_cell(diff['field'])} | {_cell(diff.get('record'))} | {_cell(diff.get('shadow'))} |")
        for failure in r.get("shadow_failures") or []:
            lines.append(f"| shadow failure | | {_cell(failure.get('failure'))} |")
        lines.append("")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return "—" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


@erp_app.command("parity-report")
def parity_report_cmd(
    process: Annotated[str, typer.Option(help=f"One of: {', '.join(PROCESSES)}")] = "orders",
    day: Annotated[str | None, typer.Option(help="Only this UTC day (YYYY-MM-DD), the day the keys were posted")]
    = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the Markdown here (default: stdout)")]
    = None,
) -> None:
    """The dual-run parity report by day, in Markdown: how many business keys were equal, different or accepted,
    and each difference with both ERPs' values side by side (what ParityCheck recorded)."""
    from adapters.erp.route_store import ErpRouteStore
    from adapters.sql import make_engine
    from runtime.settings import get_settings

    if process not in PROCESSES:
        raise typer.BadParameter(f"one of: {', '.join(PROCESSES)}", param_hint="--process")
    engine = make_engine(get_settings().effective_database_url)
    try:
        store = ErpRouteStore(engine)
        text = parity_markdown(process, store.parity_by_day(process), store.parity(process, day=day, limit=100_000),
                               unchecked=store.unchecked(process), day=day)
    finally:
        engine.dispose()
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        typer.echo(f"wrote {out}")


@erp_app.command("parity-check")
def parity_check_cmd(
    process: Annotated[str, typer.Option(help=f"One of: {', '.join(PROCESSES)}")] = "orders",
    lookback_days: Annotated[int, typer.Option(min=1, help="Keys posted in the last N days")] = 7,
    wait: Annotated[bool, typer.Option(help="Wait for the run and print its counts (a difference parks it: "
                                            "the wait ends with the analyst's decision)")] = False,
) -> None:
    """Start a ParityCheck now (the Schedules in schedules.toml start them daily): it compares each dual-run
    business key's documents on both ERPs, records the verdicts and parks differences for an analyst."""
    import asyncio

    from runtime.cluster import connect_client
    from runtime.settings import get_settings
    from starters.parity import start_parity_check
    from workflows.parity_check import ParityCheckInput

    if process not in PROCESSES:
        raise typer.BadParameter(f"one of: {', '.join(PROCESSES)}", param_hint="--process")
    settings = get_settings()

    async def go():
        client = await connect_client(settings)
        handle = await start_parity_check(client, ParityCheckInput(process=process, lookback_days=lookback_days),
                                          task_queue=settings.queue_for("finance"))
        return handle.id, (await handle.result() if wait else None)

    try:
        wf_id, result = asyncio.run(go())
    except Exception as exc:  # Temporal away, an unknown namespace... in one line
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"started {wf_id}")
    if result is not None:
        typer.echo(f"{result.checked} compared: {result.equal} equal, {result.accepted} accepted, "
                   f"{result.different} left different, {result.pending} not posted yet")
