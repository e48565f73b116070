"""`retailflow deploy …`: Worker Deployment Versioning by hand (docs/deployment.md, "Safe deploys")."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

deploy_app = typer.Typer(help="Safe deploys: the Worker Deployment's current and ramping versions.",
                         no_args_is_help=True)


def _run(coro_fn):
    from runtime.cluster import connect_client
    from runtime.settings import get_settings

    settings = get_settings()

    async def main():
        client = await connect_client(settings)
        return await coro_fn(client, settings)

    try:
        return asyncio.run(main())
    except Exception as exc:  # the server's refusal (unknown version, no pollers) in one line
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@deploy_app.command("set-current")
def set_current_cmd(build_id: Annotated[str | None, typer.Argument(
        help="Build id (default this package's version, RETAILFLOW_WORKER_BUILD_ID)")] = None) -> None:
    """Make BUILD_ID the current version: new runs start on it, auto-upgrade runs move to it, pinned runs (orders,
    returns) finish where they started. Also the rollback: set the previous build id current again."""
    from runtime.deployments import set_current, wait_propagated

    async def go(client, settings):
        build = build_id or settings.effective_worker_build_id
        await set_current(client, settings.worker_deployment_name, build)
        await wait_propagated(client, settings.worker_deployment_name)  # in effect on every partition
        return build

    typer.echo(f"current version: {_run(go)}")


@deploy_app.command("ramp")
def ramp_cmd(build_id: str, percentage: Annotated[float, typer.Argument(min=0, max=100)]) -> None:
    """Send PERCENTAGE % of new runs to BUILD_ID (a canary) before making it current."""
    from runtime.deployments import set_ramping

    async def go(client, settings):
        await set_ramping(client, settings.worker_deployment_name, build_id, percentage)

    _run(go)
    typer.echo(f"ramping {build_id}: {percentage:g} % of new runs")


@deploy_app.command("status")
def status_cmd() -> None:
    """The deployment's current and ramping versions and the versions that have polled."""
    from runtime.deployments import describe

    async def go(client, settings):
        return await describe(client, settings.worker_deployment_name)

    s = _run(go)
    typer.echo(f"deployment {s.name}: current {s.current_build_id or '-'}, ramping "
               f"{s.ramping_build_id or '-'} ({s.ramp_percentage:g} %), versions {', '.join(s.versions) or '-'}")
