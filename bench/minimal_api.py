"""The intake's minimal-handler baseline: the least a uvicorn + FastAPI process must do to take a Shopify
`orders/create` webhook and start the order — and nothing more.

`POST /webhooks/shopify`: read the body, check `X-Shopify-Hmac-Sha256` (base64 HMAC-SHA256 of the raw body with the
shared secret, compared in constant time, as Shopify documents it) — 401 if it does not match —, parse the JSON,
map it to the canonical order (the workflow's input must be the one the real intake starts: the same type, the
same bytes) and `client.start_workflow("OrderFulfillment", ...)` under the order's workflow id, on a client with
the platform's data converter and payload codec; 202, or 200 when the workflow already exists.

What it leaves out is what the platform adds: the delivery store (dedupe by webhook id, quarantine), the replay
window, the store directory, search attributes and summaries on the start, held cancels and early shipments, the
middleware. `python -m bench.minimal_api --port P` serves it the way `bench.api_server` serves the real API (the
same `uvicorn.Config` defaults, one process, its own event loop) and prints `READY` once listening; settings from
RETAILFLOW_* (the Temporal address, the task queue, RETAILFLOW_SHOPIFY_WEBHOOK_SECRET)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

PATH = "/webhooks/shopify"


def signature_ok(body: bytes, header: str | None, secret: bytes) -> bool:
    """Shopify's check: base64(HMAC-SHA256(secret, raw body)) == X-Shopify-Hmac-Sha256, in constant time."""
    if not header:
        return False
    try:
        given = base64.b64decode(header.strip(), validate=True)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(hmac.new(secret, body, hashlib.sha256).digest(), given)


StartFn = Callable[[Any, str], Awaitable[bool]]  # (workflow input, workflow id) -> started (False: it existed)


def create_app(secret: str, start: StartFn) -> FastAPI:
    from adapters.marketplace.shopify import map_order
    from canonical.fulfillment import OrderFulfillmentInput

    key = secret.encode("utf-8")
    app = FastAPI(title="bench minimal intake")

    @app.post(PATH)
    async def shopify_webhook(request: Request) -> JSONResponse:
        body = await request.body()
        if not signature_ok(body, request.headers.get("x-shopify-hmac-sha256"), key):
            return JSONResponse({"detail": "invalid X-Shopify-Hmac-Sha256"}, status_code=401)
        try:
            order = map_order(json.loads(body, parse_float=Decimal), channel="shopify")
        except ValueError as exc:  # not JSON, or not an order (ShopifyMappingError is a ValueError)
            return JSONResponse({"detail": str(exc)[:300]}, status_code=422)
        wf_id = order.workflow_id
        started = await start(OrderFulfillmentInput(order=order), wf_id)
        return JSONResponse({"workflow_id": wf_id, "duplicate": not started}, status_code=202 if started else 200)

    return app


def temporal_start(client, task_queue: str) -> StartFn:
    from temporalio.exceptions import WorkflowAlreadyStartedError

    async def start(inp, wf_id: str) -> bool:
        try:
            await client.start_workflow("OrderFulfillment", inp, id=wf_id, task_queue=task_queue)
        except WorkflowAlreadyStartedError:
            return False
        return True

    return start


async def main(args: argparse.Namespace) -> None:
    from temporalio.client import Client

    from bench.api_server import serve_until_stopped
    from runtime.codec import data_converter, keyring_from_settings
    from runtime.settings import Settings

    settings = Settings(api_host="127.0.0.1", api_port=args.port)
    secrets = settings.shopify_webhook_secrets
    if not secrets:
        raise SystemExit("RETAILFLOW_SHOPIFY_WEBHOOK_SECRET is not set")
    # connected once at start-up (the real API connects on its first request; its warm-up requests cover that)
    client = await Client.connect(settings.temporal_address,
                                  data_converter=data_converter(keyring_from_settings(settings)))
    app = create_app(secrets[0].get_secret_value(), temporal_start(client, settings.task_queue))
    # served as bench.api_server serves the real API (the same uvicorn.Config and process layout)
    await serve_until_stopped(app, settings.api_host, settings.api_port, "the minimal API")

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args()))
