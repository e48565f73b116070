"""`retailflow vendors versions`: the vendor API versions this deployment speaks and their documented sunsets."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

import typer

vendors_app = typer.Typer(help="Vendor adapters: API versions and their sunset dates.", no_args_is_help=True)


@vendors_app.command("versions")
def vendors_versions(
    today: Annotated[str | None, typer.Option(help="Evaluate as of this day (YYYY-MM-DD); default today, UTC")
                     ] = None,
) -> None:
    """List vendor, API, version, sunset and status (ok / warn within 90 days / past); exit 1 if any is past."""
    from canonical.vendor_versions import WARN_DAYS, days_left, lifecycle
    from runtime.settings import Settings
    from runtime.vendor_versions import declared_versions

    try:
        as_of = date.fromisoformat(today) if today else datetime.now(UTC).date()
    except ValueError:
        typer.secho(f"--today: not a YYYY-MM-DD date: {today!r}", fg="red", err=True)
        raise typer.Exit(2) from None
    versions = declared_versions(Settings())
    rows = [("VENDOR", "API", "VERSION", "SUNSET", "STATUS")]
    past = 0
    for v in versions:
        status = lifecycle(v, as_of)
        past += status == "past"
        left = days_left(v, as_of)
        shown = status if left is None else f"{status} ({left} days)" if left > 0 else f"{status} ({-left} days ago)"
        rows.append((v.vendor, v.api, v.version, v.sunset.isoformat() if v.sunset else "-", shown))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    typer.echo(f"as of {as_of.isoformat()}; warn = sunset within {WARN_DAYS} days; sources: "
               "canonical/vendor_versions.py declarations in each adapter")
    for v in versions:
        if v.note:
            typer.echo(f"  {v.vendor} {v.version}: {v.note} ({v.source})")
    if past:
        typer.secho(f"{past} configured vendor API version(s) past their sunset", fg="red", err=True)
        raise typer.Exit(1)
