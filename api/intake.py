"""Intake logic shared by the webhook routes and quarantine replay: dedupe, quarantine, start, signal."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from adapters import sql as db
from adapters.http import VendorUnavailable
from adapters.marketplace import shopify
from adapters.wms.local import SIGNATURE_HEADER as WMS_SIGNATURE_HEADER
from adapters.wms.local import verify as verify_wms
from canonical.fulfillment import AnalystAction
from canonical.order import Shipment, order_workflow_id
from canonical.vendor_errors import VendorAuthFailed
from runtime.settings import Settings
from starters import signal_workflow
from starters.orders import start_order
from starters.returns import start_return

log = structlog.get_logger(__name__)

SAFE_HEADERS = ("content-type", "x-shopify-topic", "x-shopify-shop-domain", "x-shopify-api-version",
                "x-shopify-webhook-id", "x-shopify-triggered-at", "x-shopify-event-id", "x-shopify-hmac-sha256",
                "shopify-topic", "shopify-shop-domain", "shopify-api-version", "shopify-webhook-id",
                "shopify-event-id", "shopify-hmac-sha256", "shopify-triggered-at", WMS_SIGNATURE_HEADER.lower())


@dataclass
class Outcome:
    status_code: int
    body: dict[str, Any] = field(default_factory=dict)


def keep_headers(headers: dict[str, str]) -> dict[str, str]:
    """Headers worth keeping with a quarantined copy (the signature is kept so a replay can re-verify)."""
    return {k.lower(): v for k, v in headers.items() if k.lower() in SAFE_HEADERS}


def quarantine(engine: Engine, *, source: str, topic: str | None, delivery_id: str | None, headers: dict[str, str],
               body: bytes, reason: str, status_code: int) -> int:
    with engine.begin() as conn:
        result = conn.execute(db.quarantine.insert().values(
            source=source, topic=topic, delivery_id=delivery_id, headers=keep_headers(headers), body=body,
            reason=reason, status_code=status_code))
        qid = result.inserted_primary_key[0]
    log.warning("intake.quarantined", source=source, topic=topic, delivery_id=delivery_id, quarantine_id=qid,
                reason=reason, status_code=status_code)
    return int(qid)


def seen_delivery(engine: Engine, source: str, delivery_id: str | None) -> str | None:
    """The workflow id a delivery already led to, or None if it is new."""
    if not delivery_id:
        return None
    with engine.connect() as conn:
        row = conn.execute(select(db.webhook_deliveries.c.workflow_id).where(
            (db.webhook_deliveries.c.source == source) & (db.webhook_deliveries.c.delivery_id == delivery_id))).first()
    return (row.workflow_id or "") if row else None


def record_delivery(engine: Engine, source: str, delivery_id: str | None, topic: str | None, workflow_id: str | None) -> None:
    if not delivery_id:
        return
    try:
        with engine.begin() as conn:
            conn.execute(db.webhook_deliveries.insert().values(
                source=source, delivery_id=delivery_id, topic=topic, workflow_id=workflow_id))
    except IntegrityError:
        pass  # a concurrent duplicate recorded it first


async def delivery_seen(engine: Engine, source: str, delivery_id: str | None) -> str | None:
    """`seen_delivery` for the async handlers: the query runs in a thread, never on the event loop."""
    return await asyncio.to_thread(seen_delivery, engine, source, delivery_id)


async def remember_delivery(engine: Engine, source: str, delivery_id: str | None, topic: str | None,
                            workflow_id: str | None) -> None:
    """`record_delivery` for the async handlers: the insert and its commit run in a thread."""
    await asyncio.to_thread(record_delivery, engine, source, delivery_id, topic, workflow_id)


# -- Shopify ---------------------------------------------------------------------------------------------
async def handle_shopify(engine: Engine, client_getter, settings: Settings, body: bytes, headers: dict[str, str],
                         *, replay: bool = False) -> Outcome:
    topic = shopify.header(headers, "topic")
    delivery_id = shopify.header(headers, "webhook-id")
    source = "shopify"
    if not shopify.verify_webhook(body, shopify.header(headers, "hmac-sha256"),
                                  [s.get_secret_value() for s in settings.shopify_webhook_secrets]):
        reason = "missing or invalid X-Shopify-Hmac-Sha256 signature"
        qid = None if replay else quarantine(engine, source=source, topic=topic, delivery_id=delivery_id,
                                             headers=headers, body=body, reason=reason, status_code=401)
        return Outcome(401, {"detail": reason, "quarantine_id": qid})
    previous = await delivery_seen(engine, source, delivery_id)
    if previous is not None:
        return Outcome(200, {"workflow_id": previous or None, "duplicate": True})
    try:
        payload = shopify.loads(body)
        if topic == "orders/create":
            order = shopify.map_order(payload, channel=settings.shopify_channel)
            client = await client_getter()
            wf_id, duplicate = await start_order(client, settings, order)
            await remember_delivery(engine, source, delivery_id, topic, wf_id)
            log.info("intake.order", channel=order.channel, external_id=order.external_order_id, workflow_id=wf_id,
                     duplicate=duplicate)
            return Outcome(200 if duplicate else 202, {"workflow_id": wf_id, "duplicate": duplicate})
        if topic == "refunds/create":  # returns (issue 3): a refund without a return → credit note + tax
            from adapters.marketplace.shopify_admin import REFUND_NOTE_PREFIX
            from api.returns_intake import booked_order, map_shopify_refund

            if str(payload.get("note") or "").startswith(REFUND_NOTE_PREFIX):
                # the echo of a refund the platform itself paid through the Admin API (a return's refund step):
                # its credit note and tax refund are that return's, so it is not booked again
                await remember_delivery(engine, source, delivery_id, topic, None)
                return Outcome(200, {"ignored": True, "duplicate": False,
                                     "detail": "a refund retailflow made (its return books it)"})
            request = await asyncio.to_thread(map_shopify_refund, functools.partial(booked_order, settings, engine),
                                              payload, settings.shopify_channel)
            client = await client_getter()
            wf_id, duplicate = await start_return(client, settings, request, goods_returned=False,
                                                  channel_already_refunded=True)
            await remember_delivery(engine, source, delivery_id, topic, wf_id)
            return Outcome(200 if duplicate else 202, {"workflow_id": wf_id, "duplicate": duplicate})
        if topic == "orders/cancelled":
            external_id = shopify._id(payload.get("id"), "order id")
            wf_id = order_workflow_id(settings.shopify_channel, external_id)
            from api.returns_intake import booked_order, cancellation_return

            booked = await asyncio.to_thread(booked_order, settings, engine, wf_id)
            shipped_return = cancellation_return(booked, settings.shopify_channel, external_id, db.utcnow())
            if shipped_return is not None:  # returns (issue 3): a cancellation after shipment becomes a return
                client = await client_getter()
                ret_id, duplicate = await start_return(client, settings, shipped_return)
                await remember_delivery(engine, source, delivery_id, topic, ret_id)
                return Outcome(200 if duplicate else 202, {"workflow_id": ret_id, "duplicate": duplicate,
                                                           "order_workflow_id": wf_id})
            reason = payload.get("cancel_reason") or "cancelled in Shopify"
            client = await client_getter()
            ok = await signal_workflow(client, wf_id, "cancel",
                                       AnalystAction(actor=f"channel:{settings.shopify_channel}", reason=str(reason)))
            if not ok:
                # No running order yet (the cancel overtook the create) or it has closed: keep it for an analyst.
                qid = None if replay else quarantine(
                    engine, source=source, topic=topic, delivery_id=delivery_id, headers=headers, body=body,
                    reason=f"no running workflow {wf_id} to cancel", status_code=202)
                return Outcome(202, {"workflow_id": wf_id, "duplicate": False, "signalled": False,
                                     "quarantine_id": qid})
            await remember_delivery(engine, source, delivery_id, topic, wf_id)
            return Outcome(202, {"workflow_id": wf_id, "duplicate": False, "signalled": True})
        await remember_delivery(engine, source, delivery_id, topic, None)
        return Outcome(200, {"ignored": True, "detail": f"topic {topic!r} is not handled", "duplicate": False})
    except shopify.ShopifyMappingError as exc:
        reason = f"payload does not map ({topic}): {exc}"
        qid = None if replay else quarantine(engine, source=source, topic=topic, delivery_id=delivery_id,
                                             headers=headers, body=body, reason=reason, status_code=422)
        return Outcome(422, {"detail": reason, "quarantine_id": qid})
    except (VendorUnavailable, VendorAuthFailed) as exc:  # the ERP could not be asked about the order
        reason = f"the ERP could not be reached to check the {topic} against the order: {exc}"
        log.warning("intake.erp_unavailable", topic=topic, error=str(exc)[:300])
        qid = None if replay else quarantine(engine, source=source, topic=topic, delivery_id=delivery_id,
                                             headers=headers, body=body, reason=reason, status_code=503)
        return Outcome(503, {"detail": reason, "quarantine_id": qid})


# -- embedded WMS ----------------------------------------------------------------------------------------
async def handle_wms_local(engine: Engine, client_getter, settings: Settings, body: bytes, headers: dict[str, str],
                           *, replay: bool = False) -> Outcome:
    source = "wms-local"
    lowered = {k.lower(): v for k, v in headers.items()}
    if not verify_wms(body, lowered.get(WMS_SIGNATURE_HEADER.lower()), settings.local_wms_webhook_secret.get_secret_value()):
        reason = f"missing or invalid {WMS_SIGNATURE_HEADER}"
        qid = None if replay else quarantine(engine, source=source, topic=None, delivery_id=None, headers=headers,
                                             body=body, reason=reason, status_code=401)
        return Outcome(401, {"detail": reason, "quarantine_id": qid})
    from api.returns_intake import handle_wms_receipt, is_receipt_event

    if is_receipt_event(body):  # returns (issue 3): receipt events next to shipment.shipped
        return await handle_wms_receipt(engine, client_getter, body, headers, replay=replay)
    try:
        payload = shopify.loads(body)
        event_id = str(payload["event_id"])
        external_ref = str(payload["external_ref"])
        shipment = Shipment.model_validate(payload["shipment"])
    except (KeyError, TypeError, ValueError) as exc:
        reason = f"shipment event does not map: {exc}"
        qid = None if replay else quarantine(engine, source=source, topic="shipment", delivery_id=None,
                                             headers=headers, body=body, reason=reason, status_code=422)
        return Outcome(422, {"detail": reason, "quarantine_id": qid})
    previous = await delivery_seen(engine, source, event_id)
    if previous is not None:
        return Outcome(200, {"workflow_id": previous, "duplicate": True})
    client = await client_getter()
    if not await signal_workflow(client, external_ref, "shipment", shipment):
        reason = f"no running workflow {external_ref} for shipment {shipment.shipment_id}"
        qid = None if replay else quarantine(engine, source=source, topic="shipment", delivery_id=event_id,
                                             headers=headers, body=body, reason=reason, status_code=409)
        return Outcome(409, {"detail": reason, "quarantine_id": qid})
    await remember_delivery(engine, source, event_id, "shipment", external_ref)
    return Outcome(202, {"workflow_id": external_ref, "duplicate": False})


HANDLERS = {"shopify": handle_shopify, "wms-local": handle_wms_local}


def mark_replayed(engine: Engine, qid: int, outcome: Outcome) -> None:
    with engine.begin() as conn:
        conn.execute(update(db.quarantine).where(db.quarantine.c.id == qid).values(
            replayed_at=db.utcnow(), replay_result=f"{outcome.status_code} {outcome.body}",
            resolved=outcome.status_code < 300 and outcome.body.get("signalled", True) is not False))
