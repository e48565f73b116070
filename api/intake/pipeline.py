"""Webhook intake, one pipeline for every source:

    verify → identify (the delivery's dedupe key) → dedupe → map → start/signal (through starters/) → remember

A source (one module each: shopify, wms, shipstation, square; returns for the return events) only says how to
do each step for its deliveries, and raises `Fault` when a delivery cannot be taken. The pipeline answers a fault
and keeps a quarantined copy (`IntakeStore`) — here, once — except on replay, which keeps nothing new.

`receive` is the HTTP side shared by every webhook route: body limit (413), 503 when Temporal is unavailable
(nothing recorded, the sender delivers again), a quarantined copy of our own internal errors (503), metrics."""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from temporalio.client import Client

from activities.sourcing import NodeShipment
from adapters.platform.intake_store import IntakeStore
from adapters.pos.square import SIGNATURE_HEADER as SQUARE_SIGNATURE_HEADER
from adapters.wms.local import SIGNATURE_HEADER as WMS_SIGNATURE_HEADER
from canonical.errors import printable
from canonical.order import Shipment
from canonical.sourcing import order_of_reference
from canonical.stores import Store
from runtime.observability import observe_intake
from runtime.settings import Settings
from starters import TemporalUnavailable, deliver_held, signal_workflow, workflow_started

log = structlog.get_logger(__name__)

SAFE_HEADERS = ("content-type", "x-shopify-topic", "x-shopify-shop-domain", "x-shopify-api-version",
                "x-shopify-webhook-id", "x-shopify-triggered-at", "x-shopify-event-id", "x-shopify-hmac-sha256",
                "shopify-topic", "shopify-shop-domain", "shopify-api-version", "shopify-webhook-id",
                "shopify-event-id", "shopify-hmac-sha256", "shopify-triggered-at", WMS_SIGNATURE_HEADER.lower(),
                SQUARE_SIGNATURE_HEADER)

ClientGetter = Callable[[], Awaitable[Client]]


def keep_headers(headers: dict[str, str]) -> dict[str, str]:
    """Headers worth keeping with a quarantined copy (the signature is kept so a replay can re-verify)."""
    return {k.lower(): v for k, v in headers.items() if k.lower() in SAFE_HEADERS}


@dataclass
class Outcome:
    """What intake answers: status code, JSON body, extra response headers."""
    status_code: int
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] | None = None

    @property
    def resolved(self) -> bool:
        """Taken (a replay that ends like this resolves its quarantined copy)."""
        return self.status_code < 300 and self.body.get("signalled", True) is not False


class _Unset:
    def __repr__(self) -> str:
        return "<the delivery's>"


_DELIVERY = _Unset()


class Fault(Exception):
    """A delivery that cannot be taken: answered with `status_code` and `body` (default `{"detail": reason}`),
    plus the quarantine id. Topic and delivery id of the quarantined copy default to the delivery's `Key`."""

    def __init__(self, status_code: int, reason: str, *, topic: str | None | _Unset = _DELIVERY,
                 delivery_id: str | None | _Unset = _DELIVERY, body: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        reason = printable(reason)  # answered, logged and stored: whatever the sender put in it
        super().__init__(reason)
        self.status_code, self.reason, self.topic, self.delivery_id = status_code, reason, topic, delivery_id
        self.body = {"detail": reason} if body is None else body
        self.headers = headers


@dataclass
class Key:
    """What `identify` found: the topic, the id the delivery is deduplicated by (None: not deduplicated) and
    whatever the source parsed on the way (for `map`)."""
    topic: str | None
    delivery_id: str | None
    payload: Any = None


@dataclass
class Ignored:
    """Taken but nothing to do (an unhandled topic, an event that carries no money): 200 with `body`."""
    body: dict[str, Any]


@dataclass
class Accepted:
    """Started or signalled: the workflow id the delivery is remembered with, and the answer."""
    workflow_id: str | None
    outcome: Outcome


Act = Callable[[], Awaitable[Accepted]]  # the start/signal step, built by `map`


@dataclass
class Delivery:
    source: str
    body: bytes
    headers: dict[str, str]
    settings: Settings
    engine: Engine
    store: IntakeStore
    client_getter: ClientGetter
    replay: bool = False
    app_state: Any = None
    channel_store: Store | None = None  # the store (shop) the delivery was verified for, set by `verify`

    async def client(self) -> Client:
        return await self.client_getter()

    async def seen(self, delivery_id: str | None) -> str | None:
        """The workflow id this source's delivery already led to ("" for none), or None if new (in a thread)."""
        return await asyncio.to_thread(self.store.seen, self.source, delivery_id)

    async def remember(self, delivery_id: str | None, topic: str | None, workflow_id: str | None) -> None:
        await asyncio.to_thread(self.store.record, self.source, delivery_id, topic, workflow_id)

    async def quarantine(self, *, topic: str | None, delivery_id: str | None, reason: str, status_code: int) -> int:
        body = self.body
        keep = self.settings.quarantine_unsigned_bytes
        if status_code == 401 and len(body) > keep:
            # an unauthenticated sender must not fill the database: a bounded prefix is evidence enough
            reason, body = f"{reason} (first {keep} of {len(body)} bytes kept)", body[:keep]
        topic, delivery_id = _bounded(topic, TOPIC_MAX), _bounded(delivery_id, DELIVERY_ID_MAX)
        qid = await asyncio.to_thread(self.store.quarantine, source=self.source, topic=topic,
                                      delivery_id=delivery_id, headers=keep_headers(self.headers), body=body,
                                      reason=reason, status_code=status_code)
        if status_code == 401:  # and only so many of them, the oldest dropped first
            await asyncio.to_thread(self.store.prune, unsigned_max_rows=self.settings.quarantine_unsigned_max_rows)
        log.warning("intake.quarantined", source=self.source, topic=topic, delivery_id=delivery_id,
                    quarantine_id=qid, reason=reason, status_code=status_code)
        return qid


# the widths of webhook_deliveries / quarantine (adapters/sql/platform.py): a longer id is refused, not stored
TOPIC_MAX, DELIVERY_ID_MAX = 128, 255


def _bounded(value: str | None, limit: int) -> str | None:
    return None if value is None else printable(value, limit)[:limit]


def _check_key(key: Key) -> None:
    """A topic or delivery id the platform cannot record is the sender's fault (400), said before it is used."""
    if key.topic is not None and len(key.topic) > TOPIC_MAX:
        raise Fault(400, f"topic is longer than {TOPIC_MAX} characters", topic=None, delivery_id=None)
    if key.delivery_id is not None and len(key.delivery_id) > DELIVERY_ID_MAX:
        raise Fault(400, f"delivery id is longer than {DELIVERY_ID_MAX} characters", delivery_id=None)


def shipment_signal(external_ref: str, shipment: Shipment) -> tuple[str, str, Any]:
    """Where a partner's shipment goes: (workflow id, signal, argument). The reference a warehouse or supplier
    echoes is the order's workflow id (`shipment`), or, for a split order, one node's release reference
    (`<order>/<node>/<n>`, canonical.sourcing.release_reference): `node_shipment` to the order, naming the release."""
    workflow_id, one_node = order_of_reference(external_ref)
    if one_node:
        return workflow_id, "node_shipment", NodeShipment(release_ref=external_ref, shipment=shipment)
    return workflow_id, "shipment", shipment


def signal_act(d: Delivery, workflow_id: str, signal: str, arg: Any, missing: str, *,
               hold_for: str | None = None) -> Act:
    """The step that signals `workflow_id` with `arg`: 202, or 409 (`missing`) when no such workflow runs.

    With `hold_for` (the delivery's id), an event for a workflow that has not started yet (a shipment that overtook
    its order, a receipt its return) is held instead: answered 202 `held` with a quarantined copy, and delivered,
    in the order it arrived, by the start of that workflow (`starters.deliver_held`). A workflow that ran and
    closed still answers 409: nothing will take the event."""

    async def act() -> Accepted:
        client = await d.client()
        if await signal_workflow(client, workflow_id, signal, arg):
            return Accepted(workflow_id, Outcome(202, {"workflow_id": workflow_id, "duplicate": False}))
        if hold_for is None or await workflow_started(client, workflow_id):
            raise Fault(409, missing)
        payload = arg.model_dump(mode="json") if hasattr(arg, "model_dump") else arg
        await asyncio.to_thread(d.store.hold_event, workflow_id, signal, payload, source=d.source,
                                delivery_id=hold_for)
        if await deliver_held(client, d.store, workflow_id):  # the workflow started while this was held
            return Accepted(workflow_id, Outcome(202, {"workflow_id": workflow_id, "duplicate": False}))
        raise Fault(202, f"no workflow {workflow_id} yet: the {signal} is held until it starts",
                    body={"workflow_id": workflow_id, "duplicate": False, "signalled": False, "held": True})

    return act


class Source(ABC):
    """One webhook source. Subclasses set `name` and implement the steps; each may raise `Fault`. A source that
    misses a step cannot be instantiated (the registry builds every source at import)."""

    name: str

    @abstractmethod
    def verify(self, d: Delivery) -> None:
        """Check the signature; raise Fault(401) if it is missing or wrong. Every source says how it is
        verified, even one whose sender signs nothing."""

    @abstractmethod
    def identify(self, d: Delivery) -> Key:
        """The delivery's topic and dedupe id."""

    @abstractmethod
    async def map(self, d: Delivery, key: Key) -> Act | Ignored:
        """Map the delivery to canonical input; the start/signal step to run, or Ignored."""


async def handle(source: Source, d: Delivery) -> Outcome:
    """verify → identify → dedupe → map → start/signal → remember; a Fault is answered and quarantined."""
    key: Key | None = None
    try:
        source.verify(d)
        key = source.identify(d)
        _check_key(key)
        previous = await d.seen(key.delivery_id)
        if previous is not None:
            return Outcome(200, {"workflow_id": previous or None, "duplicate": True})
        step = await source.map(d, key)
        if isinstance(step, Ignored):
            await d.remember(key.delivery_id, key.topic, None)
            return Outcome(200, step.body)
        accepted = await step()
        await d.remember(key.delivery_id, key.topic, accepted.workflow_id)
        return accepted.outcome
    except Fault as fault:
        topic = fault.topic if not isinstance(fault.topic, _Unset) else key.topic if key else None
        delivery_id = (fault.delivery_id if not isinstance(fault.delivery_id, _Unset)
                       else key.delivery_id if key else None)
        qid = None if d.replay else await d.quarantine(topic=topic, delivery_id=delivery_id, reason=fault.reason,
                                                       status_code=fault.status_code)
        return Outcome(fault.status_code, {**fault.body, "quarantine_id": qid}, headers=fault.headers)


async def take(source: Source, engine: Engine, client_getter: ClientGetter, settings: Settings, body: bytes,
               headers: dict[str, str], *, replay: bool = False, app_state: Any = None) -> Outcome:
    """Run one delivery through the pipeline (webhook routes, quarantine replay, tests)."""
    return await handle(source, Delivery(source=source.name, body=body, headers=headers, settings=settings,
                                         engine=engine, client_getter=client_getter,
                                         store=IntakeStore(engine, keyring=getattr(app_state, "keyring", None)),
                                         replay=replay, app_state=app_state))


async def _read_body(request: Request, limit: int) -> bytes | None:
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            return None
    return bytes(body)


async def receive(source: Source, request: Request, engine: Engine, settings: Settings) -> JSONResponse:
    """The HTTP side of every webhook route."""
    arrived = time.perf_counter()  # the order ingestion lag runs from here (runtime/observability.py)
    body = await _read_body(request, settings.max_webhook_bytes)
    headers = dict(request.headers)
    if body is None:
        return JSONResponse({"detail": f"body exceeds {settings.max_webhook_bytes} bytes"}, status_code=413)
    d = Delivery(source=source.name, body=body, headers=headers, settings=settings, engine=engine,
                 store=IntakeStore(engine, keyring=request.app.state.keyring),  # bodies sealed at rest
                 client_getter=request.app.state.temporal.get, app_state=request.app.state)
    try:
        outcome = await handle(source, d)
    except TemporalUnavailable as exc:
        # Not the sender's fault: ask the sender to retry later; nothing was recorded.
        return JSONResponse({"detail": f"Temporal is unavailable: {exc}"}, status_code=503,
                            headers={"Retry-After": "5"})
    except HTTPException:
        raise
    except Exception as exc:  # our own fault: keep a copy so nothing is lost, and let the sender retry
        log.exception("intake.internal_error", source=source.name)
        try:
            qid = await d.quarantine(topic=None, delivery_id=None,
                                     reason=f"internal error: {type(exc).__name__}: {exc}", status_code=503)
        except Exception:  # the platform database itself is down: nothing can be kept, so the sender must retry
            log.exception("intake.quarantine_failed", source=source.name)
            return JSONResponse({"detail": "the platform database is unavailable; nothing was recorded, retry "
                                           "later"}, status_code=503, headers={"Retry-After": "30"})
        return JSONResponse({"detail": "internal error; the delivery was kept and can be replayed",
                             "quarantine_id": qid}, status_code=503, headers={"Retry-After": "30"})
    observe_intake(source.name, outcome, time.perf_counter() - arrived)
    return JSONResponse(outcome.body, status_code=outcome.status_code, headers=outcome.headers)
