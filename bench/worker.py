"""A bench worker process: `python -m bench.worker --kind platform|baseline --address A --task-queue Q`.

`platform` is the real worker (`worker.build_worker` with `runtime.registry.build_adapters` on the platform
database; the embedded WMS shipper and the inventory relay are not started, the bench delivers shipments by
signal). `baseline` is the same Worker configuration (thread-pool executor of 32, 32 concurrent activities,
the same data converter and payload codec, the same workflow sandbox settings) running only the bare workflows (`bench.baseline`, `bench.inventory`). Prints `READY`
once polling; SIGINT/SIGTERM stop it. Profiling (py-spy) wraps the process from outside: `bench.procs`.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import signal

from temporalio.client import Client
from temporalio.worker import Worker

from bench.baseline import BareWorkflow, local_noop, noop
from bench.inventory import BareSync, apply_noop, compute_noop


async def main(args: argparse.Namespace) -> None:
    from bench import experiments

    experiments.apply()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    engine = None
    if args.kind == "platform":
        from adapters.sql import create_schema, make_engine
        from runtime.cluster import connect_client
        from runtime.registry import build_adapters
        from runtime.settings import Settings
        from worker import build_worker

        settings = Settings(temporal_address=args.address, task_queue=args.task_queue,
                            database_url=args.database_url, local_wms_enabled=False,
                            worker_metrics_port=0, temporal_sdk_metrics_port=0)
        engine = make_engine(settings.effective_database_url)
        create_schema(engine)
        client = await connect_client(settings)
        worker = build_worker(client, build_adapters(settings, engine), task_queue=args.task_queue)
    else:
        from runtime.codec import data_converter, keyring_from_settings
        from runtime.settings import Settings

        # the platform's data converter with its payload codec, as the platform worker and the bench client use
        # (a bare pydantic converter cannot read the sealed inputs the bench starts it with, and would be cheaper)
        client = await Client.connect(args.address, data_converter=data_converter(keyring_from_settings(Settings())))
        from runtime.workflow_sandbox import workflow_runner

        # the platform worker's Worker configuration: its sandbox settings too (modules imported once per process)
        worker = Worker(client, task_queue=args.task_queue, workflows=[BareWorkflow, BareSync],
                        activities=[noop, local_noop, apply_noop, compute_noop], workflow_runner=workflow_runner(),
                        activity_executor=concurrent.futures.ThreadPoolExecutor(max_workers=32),
                        max_concurrent_activities=32)
    async with worker:
        print("READY", flush=True)
        await stop.wait()
    if engine is not None:
        engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kind", choices=["platform", "baseline"], required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--database-url")
    asyncio.run(main(parser.parse_args()))
