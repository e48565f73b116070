"""Square webhooks (`POST /webhooks/square`): payments, refunds and orders that carry money are signalled to
their store day (`storeday:{store}:{date}`, signal-with-start through starters/pos.py); events that carry no
money are remembered and ignored. Signed with `x-square-hmacsha256-signature`; deduplicated by the event id."""

from __future__ import annotations

import structlog
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from adapters.pos import square
from api.intake.pipeline import Accepted, Act, ClientGetter, Delivery, Fault, Ignored, Key, Outcome, Source
from canonical.pos import PosTransaction
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
            event = square.map_event(square.loads(d.body), timezones=d.settings.store_timezones)
        except square.SquareMappingError as exc:
            raise Fault(422, f"payload does not map: {exc}", topic=_topic(d.body), delivery_id=None) from exc
        return Key(event.event_type, event.event_id, payload=event)

    async def map(self, d: Delivery, key: Key) -> Act | Ignored:
        event = key.payload
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


SOURCE = SquareSource()
