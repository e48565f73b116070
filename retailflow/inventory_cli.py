"""`retailflow inventory …`: the drift reconciliation schedule, a reconciliation against a CSV snapshot, and
sending stock events (through the API) for demos."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

inventory_app = typer.Typer(help="Inventory: ledger, availability per channel, drift reconciliation.",
                            no_args_is_help=True)

DEFAULT_SCHEDULE_ID = "inventory-drift"


def _settings():
    from retailflow.logging import configure_logging
    from runtime.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    return settings


def parse_snapshot(text: str) -> tuple[list, list[str]]:
    """CSV with a header `sku,location,on_hand` (extra columns ignored); every bad row is reported."""
    from pydantic import ValidationError

    from canonical.inventory import StockSnapshotLine

    reader = csv.DictReader(io.StringIO(text))
    missing = {"sku", "location", "on_hand"} - set(reader.fieldnames or [])
    if missing:
        return [], [f"header lacks {', '.join(sorted(missing))} (expected sku,location,on_hand)"]
    rows, errors, seen = [], [], set()
    for lineno, raw in enumerate(reader, start=2):
        try:
            row = StockSnapshotLine(sku=raw["sku"] or "", location=raw["location"] or "",
                                    on_hand=(raw["on_hand"] or "").strip())
        except ValidationError as exc:
            errors.append(f"line {lineno}: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                                         for e in exc.errors()))
            continue
        if (row.sku, row.location) in seen:
            errors.append(f"line {lineno}: {row.sku} at {row.location} appears twice")
            continue
        seen.add((row.sku, row.location))
        rows.append(row)
    return rows, errors


@inventory_app.command("drift-schedule")
def drift_schedule(
    every: Annotated[int, typer.Option(help="Minutes between reconciliations")] = 60,
    threshold: Annotated[int | None, typer.Option(help="Units beyond which a difference parks")] = None,
    source: Annotated[str, typer.Option(help="Adapter whose stock_snapshot() to compare with: erp or wms")] = "erp",
    schedule_id: Annotated[str, typer.Option(help="The Temporal Schedule id")] = DEFAULT_SCHEDULE_ID,
    delete: Annotated[bool, typer.Option(help="Delete the schedule instead")] = False,
) -> None:
    """Create (or replace) the Temporal Schedule that runs InventoryDrift every EVERY minutes."""
    from temporalio.client import (
        ScheduleAlreadyRunningError,
        ScheduleUpdate,
    )

    from canonical.inventory import DriftInput
    from runtime.cluster import connect_client
    from starters.inventory import drift_schedule as build_drift_schedule

    if every <= 0:
        raise typer.BadParameter("--every must be a positive number of minutes")
    settings = _settings()
    drift = DriftInput(source=source, threshold=settings.inventory_drift_threshold if threshold is None else threshold)
    schedule = build_drift_schedule(drift, schedule_id=schedule_id, every=timedelta(minutes=every),
                              task_queue=settings.queue_for("inventory"))

    async def main() -> str:
        client = await connect_client(settings)
        handle = client.get_schedule_handle(schedule_id)
        if delete:
            await handle.delete()
            return f"deleted schedule {schedule_id}"
        try:
            await client.create_schedule(schedule_id, schedule)
            return f"created schedule {schedule_id}: InventoryDrift every {every} min (threshold {drift.threshold})"
        except ScheduleAlreadyRunningError:
            await handle.update(lambda _current: ScheduleUpdate(schedule=schedule))  # replace it wholesale
            return f"updated schedule {schedule_id}: InventoryDrift every {every} min (threshold {drift.threshold})"

    typer.echo(asyncio.run(main()))


@inventory_app.command("snapshot")
def snapshot(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV sku,location,on_hand")],
    threshold: Annotated[int | None, typer.Option(help="Units beyond which a difference parks")] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the reconciliation and print its result")] = True,
) -> None:
    """Reconcile the ledger against a stock snapshot (CSV): differences within the threshold are corrected,
    bigger ones park for an analyst (retry/approve/skip/cancel signals on the workflow)."""
    from adapters.inventory.ledger import InventoryLedger
    from adapters.sql import make_engine
    from canonical.inventory import DriftInput
    from retailflow.migrate import upgrade_database
    from runtime.cluster import connect_client
    from starters.inventory import start_drift

    settings = _settings()
    rows, errors = parse_snapshot(file.read_text(encoding="utf-8-sig"))
    if errors:
        for e in errors:
            typer.secho(e, fg="red", err=True)
        raise typer.Exit(2)
    upgrade_database(settings.effective_database_url)
    engine = make_engine(settings.effective_database_url)
    snapshot_id = InventoryLedger(engine).save_snapshot(rows, f"csv-{file.stem}-{uuid.uuid4().hex[:8]}")
    engine.dispose()
    drift = DriftInput(snapshot_id=snapshot_id,
                       threshold=settings.inventory_drift_threshold if threshold is None else threshold)

    async def main() -> str:
        client = await connect_client(settings)
        handle = await start_drift(client, drift, task_queue=settings.queue_for("inventory"), label=file.name)
        if not wait:
            return f"started {handle.id}"
        typer.echo(f"started {handle.id}; waiting (a difference over the threshold parks it for an analyst)…")
        result = await handle.result()
        return json.dumps(result.model_dump(mode="json") if hasattr(result, "model_dump") else result, indent=2)

    typer.echo(asyncio.run(main()))
