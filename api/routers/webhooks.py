"""Webhook intake: verify, map, dedupe, start or signal. Bad input → 4xx and a quarantined copy."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from api import intake
from api.deps import EngineDep, SettingsDep
from runtime.observability import QUARANTINED, WEBHOOK_DUPLICATES, WEBHOOKS

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


async def _read_body(request: Request, limit: int) -> bytes | None:
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            return None
    return bytes(body)


async def _intake(kind: str, request: Request, engine, settings) -> JSONResponse:
    body = await _read_body(request, settings.max_webhook_bytes)
    headers = dict(request.headers)
    if body is None:
        return JSONResponse({"detail": f"body exceeds {settings.max_webhook_bytes} bytes"}, status_code=413)
    try:
        outcome = await intake.HANDLERS[kind](engine, request.app.state.temporal.get, settings, body, headers)
    except intake.TemporalUnavailable as exc:
        # Not the sender's fault: ask the sender to retry later; nothing was recorded.
        return JSONResponse({"detail": f"Temporal is unavailable: {exc}"}, status_code=503,
                            headers={"Retry-After": "5"})
    except HTTPException:
        raise
    except Exception as exc:  # our own fault: keep a copy so nothing is lost, and let the sender retry
        log.exception("intake.internal_error", source=kind)
        qid = intake.quarantine(engine, source=kind, topic=None, delivery_id=None, headers=headers, body=body,
                                reason=f"internal error: {type(exc).__name__}: {exc}", status_code=503)
        return JSONResponse({"detail": "internal error; the delivery was kept and can be replayed",
                             "quarantine_id": qid}, status_code=503, headers={"Retry-After": "30"})
    if outcome.body.get("duplicate"):
        WEBHOOK_DUPLICATES.labels(kind).inc()
    if outcome.body.get("quarantine_id"):
        QUARANTINED.labels(kind, str(outcome.status_code)).inc()
    WEBHOOKS.labels(kind, str(outcome.status_code)).inc()
    return JSONResponse(outcome.body, status_code=outcome.status_code)


@router.post("/shopify", summary="Shopify webhook (orders/create, orders/cancelled)",
             responses={202: {"description": "Accepted: a workflow was started or signalled"},
                        200: {"description": "Duplicate delivery or ignored topic"},
                        401: {"description": "Missing or invalid X-Shopify-Hmac-Sha256; quarantined"},
                        422: {"description": "Payload does not map; quarantined"}})
async def shopify_webhook(request: Request, engine: EngineDep, settings: SettingsDep) -> JSONResponse:
    return await _intake("shopify", request, engine, settings)


@router.post("/wms/local", summary="Shipment events from the embedded WMS",
             responses={202: {"description": "Shipment signalled to the order's workflow"}})
async def wms_local_webhook(request: Request, engine: EngineDep, settings: SettingsDep) -> JSONResponse:
    return await _intake("wms-local", request, engine, settings)
