"""Square webhooks (`POST /webhooks/square`): payments, refunds and orders that carry money are signalled to
their store day (`storeday:{store}:{date}`, signal-with-start through starters/pos.py); events that carry no
money are remembered and ignored. Signed with `x-square-hmacsha256-signature`; deduplicated by the event id.
Replay window: a notification whose own `created_at` is older than RETAILFLOW_SQUARE_WEBHOOK_MAX_AGE_SECONDS (default
72 h 5 min: Square retries for up to 72 hours after the event, plus 5 minutes) is quarantined with 409, not counted;
an analyst's replay of the copy is not held to it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from adapters.pos import square, square_fulfillment
from adapters.pos.fulfillment import StoreFulfillmentBook
from api.intake.pipeline import Accepted, Act, ClientGetter, Delivery, Fault, Ignored, Key, Outcome, Source
from canonical.pos import PosTransaction
from canonical.sourcing import StoreFulfillmentEvent, order_of_reference
from runtime.settings import Settings
from starters import TemporalUnavailable
from starters.pos import signal_store_day

log = structlog.get_logger(__name__)


async def signal_transactions(client_getter: ClientGetter, settings: Settings, txns: list[PosTransaction]) -> str:
    """Signal one store day's transactions (the webhook and the POS batch endpoint); Temporal not answering is
    TemporalUnavailable, a finished or cancelled store day WorkflowAlreadyStartedError."""
    client = await client_getter()
    try:
        return await signal_store_day(client, settings, txns)
    except RPCError as exc:
        raise TemporalUnavailable(str(exc)) from exc


def _topic(body: bytes) -> str | None:
    try:
        return str(square.loads(body).get("type") or "") or None
    except square.SquareMappingError:
        return None


class SquareSource(Source):
    name = "square"

    def verify(self, d: Delivery) -> None:
        lowered = {k.lower(): v for k, v in d.headers.items()}
        if not square.verify(d.body, lowered.get(square.SIGNATURE_HEADER),
                             d.settings.square_webhook_signature_key.get_secret_value(),
                             d.settings.square_notification_url):
            raise Fault(401, f"missing or invalid {square.SIGNATURE_HEADER} signature")

    def identify(self, d: Delivery) -> Key:
        try:
            payload = square.loads(d.body)
            event = square.map_event(payload, timezones=d.settings.store_timezones)
            created = square.notification_time(payload)
        except square.SquareMappingError as exc:
            raise Fault(422, f"payload does not map: {exc}", topic=_topic(d.body), delivery_id=None) from exc
        key = Key(event.event_type, event.event_id, payload=event)
        self._fresh(d, key, created)
        return key

    @staticmethod
    def _fresh(d: Delivery, key: Key, created: datetime | None) -> None:
        """The replay window: a signed notification created longer ago than Square keeps retrying (72 hours after
        the event) is a replay — a captured request sent again under a new event id — so it is quarantined, not
        counted. An analyst's replay of a quarantined copy is deliberate and not held to it (as for Shopify)."""
        limit = d.settings.square_webhook_max_age_seconds
        if d.replay or not limit or created is None:
            return
        age = (datetime.now(UTC) - created).total_seconds()
        if age > limit:
            raise Fault(409, f"notification created at {created.isoformat()}, {age / 3600:.1f} h ago: beyond the "
                             f"{limit} s replay window (RETAILFLOW_SQUARE_WEBHOOK_MAX_AGE_SECONDS)",
                        topic=key.topic, delivery_id=key.delivery_id)

    async def map(self, d: Delivery, key: Key) -> Act | Ignored:
        event = key.payload
        if event.event_type == square_fulfillment.FULFILLMENT_EVENT:
            return await self._fulfillment(d)
        if event.transaction is None:
            return Ignored({"ignored": True, "detail": event.ignored, "duplicate": False})
        txn = event.transaction

        async def act() -> Accepted:
            try:
                wf_id = await signal_transactions(d.client_getter, d.settings, [txn])
            except WorkflowAlreadyStartedError as exc:
                raise Fault(409, f"store day {txn.workflow_id} is finished or cancelled; {txn.pos_transaction_id} "
                                 "was not counted") from exc
            log.info("intake.pos", source=self.name, store_id=txn.store_id, external_id=txn.pos_transaction_id,
                     workflow_id=wf_id)
            return Accepted(wf_id, Outcome(202, {"workflow_id": wf_id, "pos_transaction_id": txn.pos_transaction_id,
                                                 "duplicate": False}))

        return act


    async def _fulfillment(self, d: Delivery) -> Act | Ignored:
        """`order.fulfillment.updated` of an order this platform created for a store fulfillment (issue 20): each
        move is signalled to the order (`store_fulfillment`, actor `square:<location>`); other orders: ignored."""
        book = StoreFulfillmentBook(d.engine, "square")
        try:
            events = await asyncio.to_thread(square_fulfillment.fulfillment_events, square.loads(d.body), book)
        except square.SquareMappingError as exc:
            raise Fault(422, f"payload does not map: {exc}", topic=square_fulfillment.FULFILLMENT_EVENT) from exc
        if not events:
            return Ignored({"ignored": True, "duplicate": False,
                            "detail": "not a store fulfillment of this platform's orders"})

        async def act() -> Accepted:
            wf_id = await signal_store_events(d.client_getter, events)
            return Accepted(wf_id, Outcome(202, {"workflow_id": wf_id, "refs": [e.ref for e in events],
                                                 "states": [e.state.value for e in events], "duplicate": False}))

        return act


async def signal_store_events(client_getter: ClientGetter, events: list[StoreFulfillmentEvent]) -> str:
    """Signal a store's fulfillment events to their order (`store_fulfillment`); the order's workflow id. Temporal
    not answering is TemporalUnavailable; an order that is no longer running is a 409 Fault."""
    client = await client_getter()
    wf_id = ""
    for event in events:
        wf_id = order_of_reference(event.ref)[0]
        try:
            await client.get_workflow_handle(wf_id).signal("store_fulfillment", event)
        except RPCError as exc:
            if getattr(exc.status, "name", "") == "NOT_FOUND":
                raise Fault(409, f"order {wf_id} is not running; {event.state.value} of {event.ref} was not "
                                 "recorded") from exc
            raise TemporalUnavailable(str(exc)) from exc
        log.info("intake.store_fulfillment", ref=event.ref, state=event.state.value, actor=event.actor,
                 workflow_id=wf_id)
    return wf_id


SOURCE = SquareSource()
