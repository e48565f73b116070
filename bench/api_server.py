"""The API as `retailflow api` serves it (uvicorn, `api.app.create_app`, settings from RETAILFLOW_*), in a
bench subprocess that prints `READY` once listening (py-spy attaches to it from outside to profile it)."""

from __future__ import annotations

import argparse
import asyncio
import signal

import uvicorn

from api.app import create_app
from retailflow.devstack import _ApiServer
from runtime.settings import Settings


async def main(args: argparse.Namespace) -> None:
    from bench import experiments

    experiments.apply()
    settings = Settings(api_host="127.0.0.1", api_port=args.port)
    server = _ApiServer(uvicorn.Config(create_app(settings), host=settings.api_host, port=settings.api_port))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
            raise SystemExit("the API did not start")
        await asyncio.sleep(0.05)
    print("READY", flush=True)
    await task


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args()))
