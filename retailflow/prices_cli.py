"""`retailflow prices import FILE.csv`: price changes and promotions from a spreadsheet, through the API (docs/pricing.md).

One row per line: `change_set_id, item_code, channel, currency, amount, compare_at, effective_from, effective_to,
kind, promotion_id, reason` (`compare_at`, `effective_to`, `kind` (default `price`), `promotion_id` may be empty;
times ISO 8601 with a zone). Rows of one `change_set_id` are one change set (one approval, one PricePublication
run); its reason is the first non-empty one. Every row is checked here first (the same rules as the API, with the
row number); then each set is sent to `POST /prices/changes` with a progress bar, as the principal of
RETAILFLOW_API_KEY (an analyst, finance or admin key: the requester recorded). A set the API refuses (an overlap
with an accepted one: 409; a currency that is not the channel's: 422) is reported with why; the others go on.
Exit status 1 when a row or a set was refused, 2 when the API cannot be reached or refuses the key.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from canonical.pricing import PriceChange

prices_app = typer.Typer(help="Price changes and promotions (docs/pricing.md).", no_args_is_help=True)

COLUMNS = ("change_set_id", "item_code", "channel", "currency", "amount", "compare_at", "effective_from",
           "effective_to", "kind", "promotion_id", "reason")
REQUIRED = ("change_set_id", "item_code", "channel", "currency", "amount", "effective_from")


def read_change_sets(path: Path) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The file's change sets (change set id → API body), in file order, and the rows refused (with why)."""
    sets: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise typer.BadParameter(f"{path}: missing column(s) {', '.join(missing)}; the columns are "
                                     f"{', '.join(COLUMNS)}")
        for n, row in enumerate(reader, start=2):
            values = {k: (v or "").strip() for k, v in row.items() if k in COLUMNS}
            line = {k: v for k, v in values.items() if k not in ("change_set_id", "reason") and v}
            try:
                PriceChange.model_validate(line)
            except ValidationError as exc:
                problems += [f"row {n}: {e['msg']}" for e in exc.errors()]
                continue
            cs_id = values.get("change_set_id") or ""
            if not cs_id:
                problems.append(f"row {n}: no change_set_id")
                continue
            entry = sets.setdefault(cs_id, {"change_set_id": cs_id, "reason": "", "lines": []})
            entry["reason"] = entry["reason"] or values.get("reason", "")
            entry["lines"].append(line)
    for cs_id, entry in sets.items():
        if not entry["reason"]:
            problems.append(f"change set {cs_id}: no reason in any of its rows")
    return sets, problems


@prices_app.command("import")
def import_cmd(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                                    help="CSV with the columns " + ", ".join(COLUMNS))],
               dry_run: Annotated[bool, typer.Option("--dry-run", help="Check the rows; send nothing")] = False) -> None:
    """Send each change set of FILE.csv to the API (each starts its PricePublication, waiting for approval)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from retailflow.cli import ApiCallError, api_request
    from runtime.settings import get_settings

    sets, problems = read_change_sets(file)
    console = Console(stderr=True)
    for p in problems:
        console.print(f"[red]refused[/] {p}")
    if problems:
        console.print(f"{len(problems)} problem(s): nothing sent; fix the file and import it again")
        raise typer.Exit(1)
    lines = sum(len(s["lines"]) for s in sets.values())
    if dry_run:
        typer.echo(f"{len(sets)} change set(s), {lines} line(s): valid (nothing sent)")
        return
    settings = get_settings()
    accepted, refused = [], []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("price change sets", total=len(sets))
        for cs_id, body in sets.items():
            progress.update(task, description=f"sending {cs_id}")
            try:
                answer = api_request(settings, "POST", "/prices/changes", json_body=body).json()
                accepted.append(answer["workflow_id"])
            except ApiCallError as exc:
                text = str(exc)
                if "answered 4" not in text:  # unreachable, or the key refused: no use going on
                    progress.stop()
                    typer.secho(f"error: {text}", fg="red", err=True)
                    raise typer.Exit(2) from None
                refused.append(f"{cs_id}: {text}")
            progress.advance(task)
    for wf in accepted:
        typer.echo(f"started {wf} (waiting for approval)")
    for r in refused:
        typer.secho(f"refused {r}", fg="red", err=True)
    typer.echo(f"{len(accepted)} of {len(sets)} change set(s) started, {len(refused)} refused")
    if refused:
        raise typer.Exit(1)
