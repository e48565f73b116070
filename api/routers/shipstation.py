"""ShipStation SHIP_NOTIFY intake: `POST /webhooks/shipstation`.

ShipStation V1 posts only `{"resource_url", "resource_type"}` and signs nothing; when
`RETAILFLOW_SHIPSTATION_WEBHOOK_TOKEN` is set the webhook URL must carry `?token=<it>`. The shipments are fetched
from the resource (adapters/wms/shipstation.py, against the configured base URL only), each is deduplicated by its
shipment id and signalled to the order workflow named by its orderKey (our release's external reference) as the
`shipment` signal — as api/intake.py does for the embedded WMS. A shipment whose workflow is not running is
quarantined (409) for replay; ShipStation being unreachable answers 503 so it delivers again.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine

from adapters.http import VendorUnavailable
from adapters.wms.shipstation import SHIPMENT_RESOURCE_TYPES, ShipStationMappingError, build_shipstation
from api import intake
from api.deps import EngineDep, SettingsDep
from canonical.errors import BusinessError
from runtime.settings import Settings

log = structlog.get_logger(__name__)

SOURCE = "shipstation"
router = APIRouter(prefix="/webhooks", tags=["webhooks"])


def _wms(app_state: Any, settings: Settings):
    injected = getattr(app_state, "shipstation_wms", None) if app_state is not None else None
    return (injected, False) if injected is not None else (build_shipstation(settings), True)


async def handle_shipstation(engine: Engine, client_getter, settings: Settings, body: bytes, headers: dict[str, str],
                             *, replay: bool = False, app_state: Any = None) -> intake.Outcome:
    def keep(reason: str, status: int, delivery_id: str | None = None, topic: str | None = None) -> int | None:
        return None if replay else intake.quarantine(engine, source=SOURCE, topic=topic, delivery_id=delivery_id,
                                                     headers=headers, body=body, reason=reason, status_code=status)

    try:
        payload = json.loads(body)
        resource_url, resource_type = str(payload["resource_url"]), str(payload["resource_type"])
    except (ValueError, KeyError, TypeError) as exc:
        reason = f"not a ShipStation webhook body: {type(exc).__name__}: {exc}"
        return intake.Outcome(422, {"detail": reason, "quarantine_id": keep(reason, 422)})
    if resource_type not in SHIPMENT_RESOURCE_TYPES:
        return intake.Outcome(200, {"ignored": True, "detail": f"resource_type {resource_type!r} is not handled"})
    wms, own = _wms(app_state, settings)
    try:
        events = await asyncio.to_thread(wms.shipment_events, resource_url)
    except ShipStationMappingError as exc:
        reason = f"shipments do not map: {exc}"
        return intake.Outcome(422, {"detail": reason, "quarantine_id": keep(reason, 422, topic=resource_type)})
    except (VendorUnavailable, BusinessError) as exc:
        reason = f"could not fetch the shipments from ShipStation: {exc}"
        log.warning("shipstation.fetch_failed", error=str(exc)[:300])
        return intake.Outcome(503, {"detail": reason, "quarantine_id": keep(reason, 503, topic=resource_type)})
    finally:
        if own:
            wms.http.close()
    results, failed = [], []
    for external_ref, shipment in events:
        previous = await intake.delivery_seen(engine, SOURCE, shipment.shipment_id)
        if previous is not None:
            results.append({"shipment_id": shipment.shipment_id, "workflow_id": previous, "duplicate": True})
            continue
        client = await client_getter()
        if await intake.signal_workflow(client, external_ref, "shipment", shipment):
            await intake.remember_delivery(engine, SOURCE, shipment.shipment_id, resource_type, external_ref)
            results.append({"shipment_id": shipment.shipment_id, "workflow_id": external_ref, "duplicate": False})
        else:
            failed.append(f"no running workflow {external_ref} for shipment {shipment.shipment_id}")
            results.append({"shipment_id": shipment.shipment_id, "workflow_id": external_ref, "signalled": False})
    if failed:
        reason = "; ".join(failed)[:1000]
        return intake.Outcome(409, {"detail": reason, "shipments": results,
                                    "quarantine_id": keep(reason, 409, topic=resource_type)})
    log.info("shipstation.shipments_signalled", count=len(results))
    return intake.Outcome(202, {"shipments": results, "duplicate": bool(results) and all(
        r.get("duplicate") for r in results)})


intake.HANDLERS.setdefault(SOURCE, handle_shipstation)  # quarantine replay finds it by source


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
        return JSONResponse({"detail": "missing or wrong token"}, status_code=401)
    body = await request.body()
    if len(body) > settings.max_webhook_bytes:
        return JSONResponse({"detail": f"body exceeds {settings.max_webhook_bytes} bytes"}, status_code=413)
    try:
        outcome = await handle_shipstation(engine, request.app.state.temporal.get, settings, body,
                                           dict(request.headers), app_state=request.app.state)
    except intake.TemporalUnavailable as exc:
        return JSONResponse({"detail": f"Temporal is unavailable: {exc}"}, status_code=503,
                            headers={"Retry-After": "5"})
    headers = {"Retry-After": "30"} if outcome.status_code == 503 else None
    return JSONResponse(outcome.body, status_code=outcome.status_code, headers=headers)


def register(app: FastAPI) -> None:
    app.include_router(router)
