"""Fault injection for the vendor sandboxes: latency, 500/503, 429 with Retry-After, timeouts, outage windows,
duplicated and out-of-order webhook deliveries.

Faults are configured per endpoint, keyed by ``"METHOD /path/template"`` exactly as the route is declared in the
sandbox app (for example ``"POST /api/v2/transactions/create"`` or ``"GET /api/resource/{doctype}"``), with
``"*"`` as the fallback for every endpoint. Webhook faults use the key ``"WEBHOOK <topic>"`` (fallback
``"WEBHOOK *"``, then ``"*"``). ``quota_per_second`` is a fixed quota (a token bucket per key): beyond it a
request answers 429 with the Retry-After until its next token, as an ERP that throttles at a quota does. Draws come from one ``random.Random(seed)``, so a run with the same seed and the
same request sequence injects the same faults.

Configure at run time through the admin endpoints that ``install_faults`` adds to a sandbox app::

    GET  /_admin/faults                     -> {"seed": 0, "faults": {"*": {...}, "POST /x": {...}}}
    PUT  /_admin/faults   {"seed": 7, "faults": {"POST /api/v2/transactions/create": {"error_rate": 0.5}}}
    GET  /_admin/fault-counts               -> {"quota": 12, "outage": 40}: requests answered with each fault
    GET  /_admin/request-counts             -> {"GET /api/resource/{doctype}": 310}: requests per endpoint
    POST /_admin/reset                      -> faults cleared, counters and RNG re-seeded, sandbox state emptied

Admin endpoints themselves are never faulted.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.routing import Match

__all__ = [
    "ADMIN_PREFIX",
    "FaultConfig",
    "FaultDecision",
    "FaultInjector",
    "FaultsDocument",
    "WebhookDelivery",
    "WebhookResult",
    "deliver_webhooks",
    "install_faults",
]

ADMIN_PREFIX = "/_admin"
_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "WEBHOOK"}


class FaultConfig(BaseModel):
    """What goes wrong on one endpoint. All defaults: nothing goes wrong."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: int = Field(default=0, ge=0, le=600_000, description="Added to every response")
    error_rate: float = Field(default=0.0, ge=0, le=1, description="Share of requests answered 500 or 503")
    error_statuses: list[int] = Field(default_factory=lambda: [500, 503], min_length=1,
                                      description="Statuses drawn from for error_rate")
    rate_limit_every: int = Field(default=0, ge=0, description="Every Nth request answers 429; 0 off")
    quota_per_second: float = Field(default=0.0, ge=0, description="A fixed quota (a token bucket of this rate, "
                                    "burst `quota_burst`): a request beyond it answers 429 with the Retry-After "
                                    "until the next token, as a throttling ERP does; 0 off")
    quota_burst: int = Field(default=1, ge=1, description="Requests the quota's bucket holds when full")
    retry_after_seconds: float = Field(default=1.0, ge=0, description="Retry-After of 429 (and outage 503)")
    timeout_rate: float = Field(default=0.0, ge=0, le=1,
                                description="Share of requests that stall past the client's timeout")
    timeout_seconds: float = Field(default=30.0, ge=0, le=3600,
                                   description="How long a stalled request sleeps before it is processed anyway")
    outage_until: datetime | None = Field(default=None, description="UTC; every request before it answers 503")
    duplicate_webhooks: bool = Field(default=False, description="Every webhook is delivered twice")
    out_of_order_webhooks: bool = Field(default=False, description="A batch of webhooks arrives out of order")

    @field_validator("error_statuses")
    @classmethod
    def _server_errors(cls, v: list[int]) -> list[int]:
        if any(s < 500 or s > 599 for s in v):
            raise ValueError("error_statuses must be 5xx")
        return v

    @field_validator("outage_until")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("outage_until must be timezone-aware (UTC)")
        return v.astimezone(UTC) if v is not None else None

    def in_outage(self, now: datetime | None = None) -> bool:
        return self.outage_until is not None and (now or datetime.now(UTC)) < self.outage_until


def _check_key(key: str) -> str:
    if key == "*":
        return key
    method, sep, path = key.partition(" ")
    if not sep or method.upper() not in _METHODS or not (path.startswith("/") or path == "*"
                                                          or method.upper() == "WEBHOOK"):
        raise ValueError(f"fault key {key!r} must be '*' or 'METHOD /path/template' (or 'WEBHOOK <topic>')")
    return f"{method.upper()} {path}"


class FaultsDocument(BaseModel):
    """Body of ``PUT /_admin/faults`` and answer of ``GET /_admin/faults``."""

    model_config = ConfigDict(extra="forbid")

    seed: int | None = None
    faults: dict[str, FaultConfig] = Field(default_factory=dict)

    @field_validator("faults")
    @classmethod
    def _keys(cls, v: dict[str, FaultConfig]) -> dict[str, FaultConfig]:
        return {_check_key(k): c for k, c in v.items()}


@dataclass(frozen=True)
class FaultDecision:
    """What the middleware does with one request."""

    key: str
    latency_s: float = 0.0
    stall_s: float = 0.0  # a timeout: sleep this long, then process the request anyway (as a vendor would)
    status: int | None = None  # short-circuit with this status (429, 5xx) instead of processing
    retry_after: float | None = None
    reason: str = ""


class FaultInjector:
    """Per-endpoint fault configs plus deterministic draws. Thread-safe (the sandbox may serve from threads)."""

    def __init__(self, configs: dict[str, FaultConfig] | None = None, *, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._configs: dict[str, FaultConfig] = {}
        self._counters: dict[str, int] = {}
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, monotonic time of the last draw)
        self.outcomes: dict[str, int] = {}  # fault reason → requests answered with it (GET /_admin/fault-counts)
        self.requests: dict[str, int] = {}  # "METHOD /template" → requests (GET /_admin/request-counts)
        self.seed = seed
        self._rng = random.Random(seed)
        self._reset_hooks: list[Callable[[], None]] = []
        for key, cfg in (configs or {}).items():
            self.set(key, cfg)

    # -- configuration ---------------------------------------------------------------------------------------
    def set(self, key: str, config: FaultConfig | dict[str, Any]) -> None:
        cfg = config if isinstance(config, FaultConfig) else FaultConfig.model_validate(config)
        with self._lock:
            k = _check_key(key)
            self._configs[k] = cfg
            self._counters.pop(k, None)

    def clear(self, key: str | None = None) -> None:
        with self._lock:
            if key is None:
                self._configs.clear()
                self._counters.clear()
            else:
                self._configs.pop(_check_key(key), None)

    def replace(self, document: FaultsDocument) -> None:
        with self._lock:
            self._configs = dict(document.faults)
            self._counters.clear()
            if document.seed is not None:
                self.seed = document.seed
                self._rng = random.Random(document.seed)

    def document(self) -> FaultsDocument:
        with self._lock:
            return FaultsDocument(seed=self.seed, faults=dict(self._configs))

    def on_reset(self, hook: Callable[[], None]) -> None:
        """Call `hook` on ``POST /_admin/reset`` (e.g. empty the sandbox's state store)."""
        self._reset_hooks.append(hook)

    def reset(self) -> None:
        """Clear every fault, the request counters and re-seed; then run the reset hooks."""
        with self._lock:
            self._configs.clear()
            self._counters.clear()
            self._buckets.clear()
            self.outcomes.clear()
            self.requests.clear()
            self._rng = random.Random(self.seed)
        for hook in self._reset_hooks:
            hook()

    def config_for(self, key: str) -> FaultConfig:
        """The endpoint's config, else the fallback (``"WEBHOOK *"`` for webhooks, then ``"*"``), else none."""
        with self._lock:
            return self._lookup(key)[1]

    def _lookup(self, key: str) -> tuple[str, FaultConfig]:
        candidates = [key]
        if key.startswith("WEBHOOK "):
            candidates.append("WEBHOOK *")
        candidates.append("*")
        for k in candidates:
            if k in self._configs:
                return k, self._configs[k]
        return "*", FaultConfig()

    # -- draws -----------------------------------------------------------------------------------------------
    def random(self) -> random.Random:
        return self._rng

    def decide(self, method: str, path_template: str, *, now: datetime | None = None) -> FaultDecision:
        """Draw the fault for one request. The order is: outage, quota, 429 (every Nth), error share, timeout
        share. Each decision with a fault is counted in `outcomes` by its reason."""
        decision = self._decide(method, path_template, now)
        with self._lock:
            self.requests[decision.key] = self.requests.get(decision.key, 0) + 1
            if decision.reason:
                self.outcomes[decision.reason] = self.outcomes.get(decision.reason, 0) + 1
        return decision

    def _take_token(self, key: str, cfg: FaultConfig) -> float:
        """0 when the quota's bucket has a token for this request (taken), else the seconds until it will."""
        import time

        now = time.monotonic()
        tokens, last = self._buckets.get(key, (float(cfg.quota_burst), now))
        tokens = min(float(cfg.quota_burst), tokens + (now - last) * cfg.quota_per_second)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / cfg.quota_per_second

    def _decide(self, method: str, path_template: str, now: datetime | None) -> FaultDecision:
        key = f"{method.upper()} {path_template}"
        with self._lock:
            matched, cfg = self._lookup(key)
            latency = cfg.latency_ms / 1000.0
            if cfg.in_outage(now):
                return FaultDecision(key, latency, status=503, retry_after=cfg.retry_after_seconds,
                                     reason="outage")
            if cfg.quota_per_second:
                wait = self._take_token(matched, cfg)
                if wait:
                    return FaultDecision(key, latency, status=429, retry_after=wait, reason="quota")
            count = self._counters.get(matched, 0) + 1
            self._counters[matched] = count
            if cfg.rate_limit_every and count % cfg.rate_limit_every == 0:
                return FaultDecision(key, latency, status=429, retry_after=cfg.retry_after_seconds,
                                     reason="rate_limit")
            if cfg.error_rate and self._rng.random() < cfg.error_rate:
                return FaultDecision(key, latency, status=self._rng.choice(cfg.error_statuses), reason="error")
            if cfg.timeout_rate and self._rng.random() < cfg.timeout_rate:
                return FaultDecision(key, latency, stall_s=cfg.timeout_seconds, reason="timeout")
            return FaultDecision(key, latency)

    def webhook_order(self, deliveries: Sequence[Any], topic: str = "*") -> list[Any]:
        """The order a batch of webhooks is sent in under the ``WEBHOOK <topic>`` config: duplicates are appended
        after the originals (at-least-once redelivery), and out-of-order shuffles the whole batch (a batch of two
        or more is never left in its original order)."""
        cfg = self.config_for(f"WEBHOOK {topic}")
        plan = list(deliveries)
        if cfg.duplicate_webhooks:
            plan = plan + list(deliveries)
        if cfg.out_of_order_webhooks and len(deliveries) > 1:
            original = list(plan)
            with self._lock:
                self._rng.shuffle(plan)
            if [id(x) for x in plan] == [id(x) for x in original]:
                plan.reverse()
        return plan


def _route_template(app: FastAPI, scope: MutableMapping[str, Any]) -> str | None:
    for route in app.router.routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return getattr(route, "path", None)
    return None


def _fault_response(decision: FaultDecision) -> Response:
    headers = {}
    if decision.retry_after is not None:
        # Retry-After is whole seconds on the wire (RFC 9110 delay-seconds), rounded up so a client never hurries
        seconds = decision.retry_after
        headers["Retry-After"] = str(int(seconds) if seconds == int(seconds) else int(seconds) + 1)
    messages = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
                503: "Service Unavailable", 504: "Gateway Timeout"}
    body = {"error": {"code": decision.status, "message": messages.get(decision.status or 0, "Server Error"),
                      "sandbox_fault": decision.reason, "endpoint": decision.key}}
    return JSONResponse(body, status_code=decision.status or 500, headers=headers)


def install_faults(app: FastAPI, injector: FaultInjector, *,
                   reset_hooks: Iterable[Callable[[], None]] = ()) -> FaultInjector:
    """Add the fault middleware and the ``/_admin`` endpoints to a sandbox app; `reset_hooks` run on reset."""
    for hook in reset_hooks:
        injector.on_reset(hook)
    app.state.fault_injector = injector

    @app.middleware("http")
    async def _inject_faults(request: Request, call_next):  # noqa: ANN202
        path = request.url.path
        if path.startswith(ADMIN_PREFIX):
            return await call_next(request)
        template = _route_template(app, request.scope) or path
        decision = injector.decide(request.method, template)
        if decision.latency_s:
            await asyncio.sleep(decision.latency_s)
        if decision.status is not None:
            return _fault_response(decision)
        if decision.stall_s:
            await request.body()  # the vendor has the request; it answers too late, but it does process it
            await asyncio.sleep(decision.stall_s)
        return await call_next(request)

    @app.get(f"{ADMIN_PREFIX}/faults", response_model=FaultsDocument, tags=["sandbox admin"])
    def get_faults() -> FaultsDocument:
        return injector.document()

    @app.put(f"{ADMIN_PREFIX}/faults", response_model=FaultsDocument, tags=["sandbox admin"])
    def put_faults(document: FaultsDocument) -> FaultsDocument:
        injector.replace(document)
        return injector.document()

    @app.get(f"{ADMIN_PREFIX}/fault-counts", tags=["sandbox admin"])
    def fault_counts() -> dict[str, int]:
        """Requests answered with each fault since the last reset: outage, quota, rate_limit, error, timeout."""
        return dict(injector.outcomes)

    @app.get(f"{ADMIN_PREFIX}/request-counts", tags=["sandbox admin"])
    def request_counts() -> dict[str, int]:
        """Requests received per endpoint (``"METHOD /template"``) since the last reset, faulted or not."""
        return dict(injector.requests)

    @app.post(f"{ADMIN_PREFIX}/reset", tags=["sandbox admin"])
    def reset() -> dict[str, str]:
        injector.reset()
        return {"status": "reset"}

    return injector


# -- webhooks -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WebhookDelivery:
    """One webhook as the vendor sends it: already serialized and signed by the caller."""

    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    topic: str = "*"


@dataclass(frozen=True)
class WebhookResult:
    delivery: WebhookDelivery
    status: int | None  # None: the receiver could not be reached
    error: str | None = None


async def deliver_webhooks(
    deliveries: Sequence[WebhookDelivery],
    *,
    injector: FaultInjector | None = None,
    delay_seconds: float = 0.0,
    client: httpx.AsyncClient | None = None,
    send: Callable[[WebhookDelivery], Awaitable[int]] | None = None,
    timeout: float = 10.0,
) -> list[WebhookResult]:
    """POST each webhook (after `delay_seconds`), applying the injector's ``WEBHOOK <topic>`` faults:
    ``duplicate_webhooks`` sends every delivery twice with the same headers (same webhook id — what an
    at-least-once vendor does), ``out_of_order_webhooks`` shuffles the batch, ``latency_ms`` waits before each
    send. The topic of the first delivery selects the config. Failures are returned, not raised (a vendor does
    not crash when a receiver is down). `send` replaces the HTTP POST (tests); it returns the status code."""
    if not deliveries:
        return []
    injector = injector or FaultInjector()
    topic = deliveries[0].topic
    cfg = injector.config_for(f"WEBHOOK {topic}")
    plan = injector.webhook_order(deliveries, topic)
    if delay_seconds:
        await asyncio.sleep(delay_seconds)
    own_client = client is None and send is None
    http = client or (httpx.AsyncClient(timeout=timeout) if send is None else None)
    results: list[WebhookResult] = []
    try:
        for delivery in plan:
            if cfg.latency_ms:
                await asyncio.sleep(cfg.latency_ms / 1000.0)
            try:
                if send is not None:
                    status = await send(delivery)
                else:
                    assert http is not None
                    headers = {"Content-Type": "application/json", **delivery.headers}
                    resp = await http.post(delivery.url, content=delivery.body, headers=headers)
                    status = resp.status_code
                results.append(WebhookResult(delivery, status))
            except (httpx.HTTPError, OSError) as exc:
                results.append(WebhookResult(delivery, None, f"{type(exc).__name__}: {exc}"))
    finally:
        if own_client and http is not None:
            await http.aclose()
    return results
