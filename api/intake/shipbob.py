"""ShipBob webhooks (`POST /webhooks/shipbob`): the 3PL's shipment notices.

ShipBob signs each delivery with the Standard Webhooks scheme (`webhook-id`, `webhook-timestamp`,
`webhook-signature`, HMAC-SHA256 with RETAILFLOW_SHIPBOB_WEBHOOK_SECRET, compared in constant time by
`adapters.wms.shipbob.verify_signature`; a wrong or stale signature answers 401 and is quarantined) and names the
topic in `x-webhook-topic`. A shipment topic is a notice: only the order id is read from the body, the order's
shipments are read back from ShipBob's API (`ShipBobWms.webhook_events`), each deduplicated by its shipment id and
signalled to the order workflow named by its reference id (our release's external reference) as the `shipment`
signal — as ShipStation's SHIP_NOTIFY (api/intake/shipstation.py). Other topics are answered 200 and ignored.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from adapters.http import VendorUnavailable
from adapters.wms.shipbob import (
    ShipBobMappingError,
    ShipBobSignatureInvalid,
    build_shipbob,
    notification,
    verify_signature,
)
from api.intake.pipeline import Act, Delivery, Fault, Ignored, Key, Outcome, Source, take
from api.intake.shipstation import signal_shipments
from canonical.errors import BusinessError
from runtime.settings import Settings

log = structlog.get_logger(__name__)

# the topics whose payload names an order with shipments (developer.shipbob.com/webhooks, 2026-01)
SHIPMENT_TOPICS = frozenset({"order.shipped", "order.delivered", "order.shipment.delivered",
                             "order.shipment.tracking.updated", "order.shipment.tracking_received"})


def _wms(app_state: Any, settings: Settings):
    injected = getattr(app_state, "shipbob_wms", None) if app_state is not None else None
    return (injected, False) if injected is not None else (build_shipbob(settings), True)


class ShipBobSource(Source):
    name = "shipbob"

    def verify(self, d: Delivery) -> None:
        try:
            verify_signature(d.settings.shipbob_webhook_secret.get_secret_value(), d.headers, d.body)
        except ShipBobSignatureInvalid as exc:
            raise Fault(401, f"ShipBob signature: {exc}", topic=None, delivery_id=None) from exc

    def identify(self, d: Delivery) -> Key:
        topic = {k.lower(): v for k, v in d.headers.items()}.get("x-webhook-topic")
        if topic not in SHIPMENT_TOPICS:
            return Key(topic, None)
        try:
            order_id, _ref = notification(d.body)
        except ShipBobMappingError as exc:
            raise Fault(422, str(exc), topic=topic) from exc
        return Key(topic, None, payload=order_id)  # deduplicated per shipment, not per delivery

    async def map(self, d: Delivery, key: Key) -> Act | Ignored:
        if key.topic not in SHIPMENT_TOPICS:
            return Ignored({"ignored": True, "detail": f"topic {key.topic!r} is not handled"})
        wms, own = _wms(d.app_state, d.settings)
        try:
            events = await asyncio.to_thread(wms.webhook_events, d.body)
        except ShipBobMappingError as exc:
            raise Fault(422, f"shipments do not map: {exc}") from exc
        except (VendorUnavailable, BusinessError) as exc:
            log.warning("shipbob.fetch_failed", order_id=key.payload, error=str(exc)[:300])
            raise Fault(503, f"could not read the shipments from ShipBob: {exc}",
                        headers={"Retry-After": "30"}) from exc
        finally:
            if own:
                wms.http.close()

        async def act():
            return await signal_shipments(d, key.topic, events, vendor="shipbob")

        return act


SOURCE = ShipBobSource()


async def handle_shipbob(engine, client_getter, settings: Settings, body: bytes, headers: dict[str, str], *,
                         replay: bool = False, app_state: Any = None) -> Outcome:
    """One ShipBob delivery through the pipeline (tests call it without HTTP)."""
    return await take(SOURCE, engine, client_getter, settings, body, headers, replay=replay, app_state=app_state)
