"""Webhook routes of Shopify and the embedded WMS; the intake itself is api/intake/ (verify, dedupe, map,
start or signal; bad input → 4xx and a quarantined copy)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import EngineDep, SettingsDep
from api.intake import pipeline
from api.intake.registry import SOURCES

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.post("/shopify", summary="Shopify webhook (orders/create, orders/cancelled)",
             responses={202: {"description": "Accepted: a workflow was started or signalled"},
                        200: {"description": "Duplicate delivery or ignored topic"},
                        401: {"description": "Missing or invalid X-Shopify-Hmac-Sha256; quarantined"},
                        422: {"description": "Payload does not map; quarantined"}})
async def shopify_webhook(request: Request, engine: EngineDep, settings: SettingsDep) -> JSONResponse:
    return await pipeline.receive(SOURCES["shopify"], request, engine, settings)


@router.post("/wms/local", summary="Shipment events from the embedded WMS",
             responses={202: {"description": "Shipment signalled to the order's workflow"}})
async def wms_local_webhook(request: Request, engine: EngineDep, settings: SettingsDep) -> JSONResponse:
    return await pipeline.receive(SOURCES["wms-local"], request, engine, settings)
