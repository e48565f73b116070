"""ShipStation SHIP_NOTIFY (`POST /webhooks/shipstation`).

ShipStation V1 posts only `{"resource_url", "resource_type"}` and signs nothing; when
`RETAILFLOW_SHIPSTATION_WEBHOOK_TOKEN` is set the webhook URL must carry `?token=<it>` (checked by the route: a
wrong token answers 401 and keeps nothing). The shipments are fetched from the resource (adapters/wms/shipstation.py,
against the configured base URL only), each is deduplicated by its shipment id and signalled to the order workflow
named by its orderKey (our release's external reference) as the `shipment` signal — as the embedded WMS's
webhook does. A shipment whose workflow is not running is quarantined (409) for replay; ShipStation being
unreachable answers 503 (Retry-After) so it delivers again.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from adapters.http import VendorUnavailable
from adapters.wms.shipstation import (
    SHIPMENT_RESOURCE_TYPES,
    ShipStationMappingError,
    build_shipstation,
    notification,
)
from api.intake.pipeline import (
    Accepted,
    Act,
    ClientGetter,
    Delivery,
    Fault,
    Ignored,
    Key,
    Outcome,
    Source,
    shipment_signal,
    take,
)
from canonical.errors import BusinessError
from canonical.order import Shipment
from runtime.settings import Settings
from starters import signal_workflow

log = structlog.get_logger(__name__)


def _wms(app_state: Any, settings: Settings):
    injected = getattr(app_state, "shipstation_wms", None) if app_state is not None else None
    return (injected, False) if injected is not None else (build_shipstation(settings), True)


class ShipStationSource(Source):
    name = "shipstation"

    def verify(self, d: Delivery) -> None:
        """ShipStation V1 signs nothing: the route checks the optional `?token=` (RETAILFLOW_SHIPSTATION_WEBHOOK_TOKEN)
        before the delivery gets here, and the notice is only trusted once fetched back from ShipStation's API."""

    def identify(self, d: Delivery) -> Key:
        try:
            resource_type, resource_url = notification(d.body)
        except ShipStationMappingError as exc:
            raise Fault(422, str(exc), topic=None) from exc
        return Key(resource_type, None, payload=resource_url)  # deduplicated per shipment, not per delivery

    async def map(self, d: Delivery, key: Key) -> Act | Ignored:
        if key.topic not in SHIPMENT_RESOURCE_TYPES:
            return Ignored({"ignored": True, "detail": f"resource_type {key.topic!r} is not handled"})
        wms, own = _wms(d.app_state, d.settings)
        try:
            events = await asyncio.to_thread(wms.shipment_events, key.payload)
        except ShipStationMappingError as exc:
            raise Fault(422, f"shipments do not map: {exc}") from exc
        except (VendorUnavailable, BusinessError) as exc:
            log.warning("shipstation.fetch_failed", error=str(exc)[:300])
            raise Fault(503, f"could not fetch the shipments from ShipStation: {exc}",
                        headers={"Retry-After": "30"}) from exc
        finally:
            if own:
                wms.http.close()

        async def act() -> Accepted:
            return await signal_shipments(d, key.topic, events, vendor="shipstation")

        return act


async def signal_shipments(d: Delivery, topic: str | None, events: list[tuple[str, Shipment]], *,
                           vendor: str) -> Accepted:
    """Signal each shipment to the order workflow its external reference names, once per shipment id (a
    redelivery or a second topic about the same shipment is a duplicate); one with no running workflow is
    quarantined (409) for replay. Shared by the warehouse partners whose notices are read back (ShipStation,
    ShipBob)."""
    results: list[dict[str, Any]] = []
    failed: list[str] = []
    for external_ref, shipment in events:
        previous = await d.seen(shipment.shipment_id)
        if previous is not None:
            results.append({"shipment_id": shipment.shipment_id, "workflow_id": previous, "duplicate": True})
            continue
        workflow_id, signal, arg = shipment_signal(external_ref, shipment)
        if await signal_workflow(await d.client(), workflow_id, signal, arg):
            await d.remember(shipment.shipment_id, topic, workflow_id)
            results.append({"shipment_id": shipment.shipment_id, "workflow_id": workflow_id, "duplicate": False})
        else:
            failed.append(f"no running workflow {workflow_id} for shipment {shipment.shipment_id}")
            results.append({"shipment_id": shipment.shipment_id, "workflow_id": workflow_id, "signalled": False})
    if failed:
        reason = "; ".join(failed)[:1000]
        raise Fault(409, reason, body={"detail": reason, "shipments": results})
    log.info(f"{vendor}.shipments_signalled", count=len(results))
    return Accepted(None, Outcome(202, {"shipments": results,
                                        "duplicate": bool(results) and all(r.get("duplicate") for r in results)}))


SOURCE = ShipStationSource()


async def handle_shipstation(engine, client_getter: ClientGetter, settings: Settings, body: bytes,
                             headers: dict[str, str], *, replay: bool = False, app_state: Any = None) -> Outcome:
    """One SHIP_NOTIFY delivery through the pipeline (tests call it without HTTP)."""
    return await take(SOURCE, engine, client_getter, settings, body, headers, replay=replay, app_state=app_state)
