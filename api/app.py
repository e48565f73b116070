"""The FastAPI application factory. Nothing connects at import time; Temporal connects on first use."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine, text
from temporalio.client import Client

from api import errors
from api.auth import document_auth
from api.deps import EngineDep, TemporalConnector
from api.routers import codec, erp, ops, orders, shipstation, shopify_oauth, webhooks
from api.routers import inventory as inventory_router
from api.routers import pos as pos_router
from api.routers import prices as prices_router
from api.routers import returns as returns_router
from api.routers import settlements as settlements_router
from runtime.observability import HTTP_HEADER, correlation_id, new_correlation_id, refresh_platform_gauges
from runtime.settings import Settings, get_settings


class CorrelationMiddleware:
    """Take or mint a correlation id; it follows the request into Temporal headers and every log line, and
    goes back in the response header. A plain ASGI middleware: Starlette's `BaseHTTPMiddleware` costs a task
    and memory streams per request (docs/benchmarks.md)."""

    _header = HTTP_HEADER.lower().encode("latin-1")

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers", []) if k == self._header), None)
        cid = given.decode("latin-1") if given else new_correlation_id()
        raw = cid.encode("latin-1")

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*(h for h in message.get("headers", []) if h[0].lower() != self._header),
                                      (self._header, raw)]
            await send(message)

        token = correlation_id.set(cid)
        try:
            with structlog.contextvars.bound_contextvars(correlation_id=cid, path=scope.get("path", "")):
                await self.app(scope, receive, send_with_id)
        finally:
            correlation_id.reset(token)


class BodyLimitMiddleware:
    """413 for a request body over the limit, before it is read whole: at once from Content-Length, or while a
    chunked body streams in (buffered up to the limit, then handed on). Webhook routes stream with their own
    limit (RETAILFLOW_MAX_WEBHOOK_BYTES) and are left to it."""

    def __init__(self, app, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def _too_large(self, send) -> None:
        body = json.dumps({"detail": f"request body exceeds {self.limit} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith("/webhooks/") or \
                scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        length = next((v for k, v in scope.get("headers", []) if k == b"content-length"), None)
        if length is not None:
            if not length.isdigit() or int(length) > self.limit:
                await self._too_large(send)
                return
            await self.app(scope, receive, send)
            return
        chunks, size = [], 0
        while True:  # chunked: read at most the limit before the app sees anything
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await self._too_large(send)
                return
            if not message.get("more_body"):
                break
        buffered = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay():
            return buffered.pop() if buffered else await receive()

        await self.app(scope, replay, send)


def create_app(settings: Settings | None = None, *, engine: Engine | None = None,
               client: Client | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.check_production()  # RETAILFLOW_ENV=production: no published default or empty secret
    own_engine = engine is None

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from adapters.sql import make_engine

        if app.state.engine is None:  # the schema is Alembic's: `retailflow api` upgrades it first
            app.state.engine = make_engine(settings.effective_database_url)
        yield
        if own_engine and app.state.engine is not None:
            app.state.engine.dispose()

    app = FastAPI(
        title="retailflow",
        version="0.1.0",
        description="Webhook intake, order status and analyst operations for retailflow's Temporal workflows.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.temporal = TemporalConnector(settings, client)
    app.include_router(webhooks.router)
    app.include_router(orders.router)
    app.include_router(ops.router)
    app.include_router(erp.router)
    app.include_router(returns_router.router)
    app.include_router(inventory_router.router)
    app.include_router(settlements_router.router)  # finance (docs/finance.md)
    app.include_router(pos_router.router)  # POS store days and the Square webhook (docs/pos.md)
    app.include_router(prices_router.router)  # price and promotion publication (docs/pricing.md)
    app.include_router(shipstation.router)  # ShipStation SHIP_NOTIFY (docs/vendors.md)
    app.include_router(shopify_oauth.router)  # the Shopify app install (OAuth; signed by Shopify, no API key)
    errors.install(app)  # 422/400 answers that hold any input (a lone surrogate, NaN, deep nesting): api/errors.py
    codec.install(app, settings)  # Temporal's codec server for the Web UI, its keys and CORS (docs/security.md)
    document_auth(app)  # credentials on every route but webhooks, /healthz, /metrics (api/auth.py)

    app.add_middleware(BodyLimitMiddleware, limit=settings.max_request_bytes)
    app.add_middleware(CorrelationMiddleware)

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    def metrics(engine: EngineDep) -> Response:
        refresh_platform_gauges(engine)  # parked runs, unmatched settlement lines, open quarantine, negative stock
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", tags=["ops"])
    def healthz(engine: EngineDep) -> dict:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"ok": True}

    return app
