"""The API as `retailflow api` serves it (uvicorn, `api.app.create_app`, settings from RETAILFLOW_*), in a
bench subprocess that prints `READY` once listening (py-spy attaches to it from outside to profile it)."""

from __future__ import annotations

import argparse
import asyncio
import signal

import uvicorn

from retailflow.devstack import _ApiServer


async def serve_until_stopped(app, host: str, port: int, what: str = "the API") -> None:
    """Serve `app` with uvicorn's defaults (httptools, access log, one process), print `READY` once listening, and
    stop on SIGINT/SIGTERM: every API process the bench starts is served the same way."""
    server = _ApiServer(uvicorn.Config(app, host=host, port=port))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
            raise SystemExit(f"{what} did not start")
        await asyncio.sleep(0.05)
    print("READY", flush=True)
    await task


async def main(args: argparse.Namespace) -> None:
    # imported here, not at the top: bench.minimal_api serves with this module and must not load the API
    from api.app import create_app
    from bench import experiments
    from runtime.settings import Settings

    experiments.apply()
    settings = Settings(api_host="127.0.0.1", api_port=args.port)
    await serve_until_stopped(create_app(settings), settings.api_host, settings.api_port)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args()))
