"""The warehouse partners' webhook routes: ShipStation SHIP_NOTIFY (`POST /webhooks/shipstation`, the intake is
api/intake/shipstation.py) and ShipBob (`POST /webhooks/shipbob`, api/intake/shipbob.py)."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import EngineDep, SettingsDep
from api.intake import pipeline
from api.intake.registry import SOURCES

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.post("/shipstation", summary="ShipStation SHIP_NOTIFY webhook (V1)",
             responses={202: {"description": "Each shipment was signalled to its order workflow"},
                        200: {"description": "Not a shipment notification; ignored"},
                        401: {"description": "Missing or wrong ?token= (when a token is configured)"},
                        409: {"description": "A shipment has no running order workflow; quarantined"},
                        422: {"description": "Body or shipments do not map; quarantined"},
                        503: {"description": "ShipStation or Temporal unreachable; deliver again later"}})
async def shipstation_webhook(request: Request, engine: EngineDep, settings: SettingsDep,
                              token: str | None = None) -> JSONResponse:
    expected = settings.shipstation_webhook_token
    if expected is not None and not hmac.compare_digest((token or "").encode(), expected.get_secret_value().encode()):
        return JSONResponse({"detail": "missing or wrong token"}, status_code=401)  # nothing kept: not a delivery
    return await pipeline.receive(SOURCES["shipstation"], request, engine, settings)


@router.post("/shipbob", summary="ShipBob webhook (Developer API 2026-01, Standard Webhooks signature)",
             responses={202: {"description": "Each shipment was signalled to its order workflow"},
                        200: {"description": "Not a shipment topic; ignored"},
                        401: {"description": "Missing, wrong or stale webhook-signature; quarantined"},
                        409: {"description": "A shipment has no running order workflow; quarantined"},
                        422: {"description": "Body or shipments do not map; quarantined"},
                        503: {"description": "ShipBob or Temporal unreachable; deliver again later"}})
async def shipbob_webhook(request: Request, engine: EngineDep, settings: SettingsDep) -> JSONResponse:
    return await pipeline.receive(SOURCES["shipbob"], request, engine, settings)
