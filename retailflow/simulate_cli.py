"""`retailflow simulate peak`: a peak day against the vendor sandboxes (sandbox/peak.py; docs/operations.md
"Peak simulation"). A non-production harness: it imports sandbox/ lazily, so the image's CLI (which ships
without it) still loads and says so if asked to simulate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

simulate_app = typer.Typer(help="Non-production harnesses: a peak day against the vendor sandboxes.",
                           no_args_is_help=True)


@simulate_app.command("peak")
def peak_cmd(
    profile: Annotated[str, typer.Option(help="A built-in profile (`ci`: ~3 min, `peak`: ~10 min on 2 cores) or "
                                              "a TOML file of the profile's fields")] = "ci",
    report: Annotated[Path | None, typer.Option(help="Write the Markdown report to this file")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        help="Keep the run's data here (Temporal, database, stack.log); default a temporary folder")] = None,
    quiet: Annotated[bool, typer.Option(help="No live progress display")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the per-order figures as JSON")] = None,
) -> None:
    """Start the platform on the vendor sandboxes (as `make run-vendors`, on free ports), drive it through the
    real intake at the profile's rates with ERP throttling and a marketplace outage, then report latency
    p50/p95/p99, backlog and drain time, inventory publication delay, breaker trips and the invariants
    (0 lost, 0 doubled, 0 oversold). Exits 1 when an invariant fails."""
    try:
        from sandbox.peak import load_profile, render_markdown, run_peak
    except ImportError:  # the production image ships without the sandboxes
        typer.echo("error: the vendor sandboxes are not installed here (sandbox/): run it from a source checkout "
                   "(`make venv`)", err=True)
        raise typer.Exit(2) from None
    from retailflow.logging import configure_logging

    configure_logging("WARNING", False)  # the run's own logs are the subprocesses' (stack.log); here, the display
    try:
        chosen = load_profile(profile)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--profile") from None
    result = run_peak(chosen, data_dir=data_dir, quiet=quiet)
    text = render_markdown(result)
    typer.echo(text)
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(text)
    if json_out is not None:
        import dataclasses
        import json

        json_out.write_text(json.dumps([dataclasses.asdict(o) for o in result.orders], indent=1))
    if not result.invariants.clean:
        raise typer.Exit(1)
