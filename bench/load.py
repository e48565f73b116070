"""Load generators, run as their own process so they do not share the measured process's CPU or GIL.

`python -m bench.load webhook --url U --secret S --run R --n N --concurrency C [--duplicates]`
    signed Shopify orders/create deliveries (unique order ids) to the intake; with `--duplicates` the same
    orders again, half under their original webhook id and half under a new one (both must be no-ops).
`python -m bench.load start --address A --task-queue Q --run R --n N --concurrency C [--via-start-order]`
    the bare baseline: `client.start_workflow` of the same workflow type with the same canonical input; with
    `--via-start-order`, the intake's own start function instead (where the intake's time goes: HTTP or start).
Both print `RESULT {json}`: elapsed seconds, latencies (s) and status counts. A short warm-up is not timed."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter

WARMUP = 20


async def _timed(n: int, concurrency: int, send) -> dict:
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def runner() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            t = time.perf_counter()
            try:
                status = await send(i)
            except Exception as exc:  # counted, the run goes on
                status = type(exc).__name__
            latencies.append(time.perf_counter() - t)
            statuses[str(status)] += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(runner() for _ in range(concurrency)))
    return {"elapsed": time.perf_counter() - t0, "latencies": latencies, "statuses": dict(statuses)}


async def webhook(args: argparse.Namespace) -> dict:
    import httpx

    from bench.fixtures import external_id, shopify_body, webhook_headers

    bodies = [shopify_body(external_id(args.run, i)) for i in range(args.n)]  # built before timing

    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=args.url, timeout=60, limits=limits) as http:
        async def send(i: int, webhook_id: str) -> int:
            b = bodies[i]
            resp = await http.post("/webhooks/shopify", content=b,
                                   headers=webhook_headers(b, args.secret, webhook_id))
            return resp.status_code

        for i in range(WARMUP):  # warm-up orders use their own ids
            bw = shopify_body(external_id(args.run + 500, i))
            await http.post("/webhooks/shopify", content=bw,
                            headers=webhook_headers(bw, args.secret, f"warm-{args.run}-{i}"))
        result = await _timed(args.n, args.concurrency, lambda i: send(i, f"wh-{args.run}-{i}"))
        if args.duplicates:
            # half redelivered under the same webhook id (delivery dedupe), half under a new one (workflow id)
            dup = await _timed(args.n, args.concurrency, lambda i: send(
                i, f"wh-{args.run}-{i}" if i % 2 == 0 else f"wh-{args.run}-{i}-again"))
            result["duplicates"] = {k: v for k, v in dup.items() if k != "latencies"}
            result["duplicates"]["latencies"] = dup["latencies"]
    result["warmup_run"] = args.run + 500
    return result


async def start(args: argparse.Namespace) -> dict:
    from temporalio.client import Client

    from bench.fixtures import canonical_order, external_id
    from canonical.fulfillment import OrderFulfillmentInput
    from runtime.codec import data_converter, keyring_from_settings
    from runtime.settings import Settings

    if args.via_start_order:
        return await _start_order_loop(args)
    # the platform's data converter with the payload codec (the orders carry customer data), without the
    # platform's interceptors: the bare start's cost
    client = await Client.connect(args.address, data_converter=data_converter(keyring_from_settings(Settings())))
    # the same canonical input the intake starts with, built before timing (mapping is the intake's cost)
    warm = [OrderFulfillmentInput(order=canonical_order(external_id(args.run + 500, i))) for i in range(WARMUP)]
    inputs = [OrderFulfillmentInput(order=canonical_order(external_id(args.run, i))) for i in range(args.n)]

    async def send(inp: OrderFulfillmentInput) -> str:
        await client.start_workflow("OrderFulfillment", inp, id=inp.order.workflow_id, task_queue=args.task_queue)
        return "started"

    for inp in warm:
        await send(inp)
    return await _timed(args.n, args.concurrency, lambda i: send(inputs[i]))


async def _start_order_loop(args: argparse.Namespace) -> dict:
    """The intake's own start, `starters.orders.start_order` (search attributes, static summary and details, the
    platform's client with its interceptors), in a loop: the intake minus HTTP, HMAC, mapping and dedupe."""
    from bench.fixtures import canonical_order, external_id
    from runtime.cluster import connect_client
    from runtime.settings import Settings
    from starters.orders import start_order

    settings = Settings(temporal_address=args.address, task_queue=args.task_queue, temporal_sdk_metrics_port=0,
                        worker_metrics_port=0)
    client = await connect_client(settings)
    warm = [canonical_order(external_id(args.run + 500, i)) for i in range(WARMUP)]
    orders = [canonical_order(external_id(args.run, i)) for i in range(args.n)]
    for order in warm:
        await start_order(client, settings, order)

    async def send(order) -> str:
        _, duplicate = await start_order(client, settings, order)
        return "duplicate" if duplicate else "started"

    return await _timed(args.n, args.concurrency, lambda i: send(orders[i]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["webhook", "start"])
    parser.add_argument("--url")
    parser.add_argument("--secret")
    parser.add_argument("--address")
    parser.add_argument("--task-queue")
    parser.add_argument("--run", type=int, required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duplicates", action="store_true")
    parser.add_argument("--via-start-order", action="store_true",
                        help="start: use the intake's `starters.orders.start_order` instead of a bare start_workflow")
    args = parser.parse_args()
    out = asyncio.run(webhook(args) if args.kind == "webhook" else start(args))
    print("RESULT " + json.dumps(out), flush=True)
