"""The embedded WMS's webhook (`POST /webhooks/wms/local`): `shipment.shipped` events signalled to the order's
workflow as `shipment`, `shipment.short_picked` events (issue 17: units the warehouse did not have) signalled
as `short_pick` with a canonical ShortPick, and `return.received` receipts (handed to api/intake/returns.py).
Signed with `X-Retailflow-Wms-Signature`; deduplicated by the event id."""

from __future__ import annotations

from adapters.marketplace import shopify
from adapters.wms.local import SHIPMENT_SHORT_PICKED, SIGNATURE_HEADER
from adapters.wms.local import verify as verify_signature
from api.intake import returns
from api.intake.pipeline import Act, Delivery, Fault, Key, Source, shipment_signal, signal_act
from canonical.inventory import ShortPick
from canonical.order import Shipment
from canonical.payload import mapping

SHIPMENT_TOPIC = "shipment"
SHORT_PICK_TOPIC = "short_pick"


def _external_ref(payload: dict) -> str:
    external_ref = payload.get("external_ref")
    if not isinstance(external_ref, str) or not external_ref.strip() or len(external_ref) > 255:
        raise shopify.ShopifyMappingError(
            f"external_ref must be the release's workflow id, got {str(external_ref)[:80]!r}")
    return external_ref


def identify_short_pick(body: bytes) -> Key:
    """`{"type": "shipment.short_picked", "event_id", "release_id", "external_ref", "short_pick": {...}}`."""
    try:
        payload = shopify.loads(body)
        with mapping(shopify.ShopifyMappingError, "event"):
            event_id = returns.event_id_of(payload)
            external_ref = _external_ref(payload)
            if not isinstance(payload.get("short_pick"), dict):
                raise shopify.ShopifyMappingError("short_pick must be an object")
            short_pick = ShortPick.model_validate(payload["short_pick"])
            if short_pick.external_ref != external_ref:
                raise shopify.ShopifyMappingError(
                    f"short_pick.external_ref {short_pick.external_ref[:80]!r} is not the event's external_ref")
    except shopify.ShopifyMappingError as exc:
        raise Fault(422, f"short-pick event does not map: {exc}", topic=SHORT_PICK_TOPIC, delivery_id=None) from exc
    return Key(SHORT_PICK_TOPIC, event_id, payload=(external_ref, short_pick))


def _is_short_pick(body: bytes) -> bool:
    try:
        return shopify.loads(body).get("type") == SHIPMENT_SHORT_PICKED
    except shopify.ShopifyMappingError:
        return False


class WmsLocalSource(Source):
    name = "wms-local"

    def verify(self, d: Delivery) -> None:
        lowered = {k.lower(): v for k, v in d.headers.items()}
        if not verify_signature(d.body, lowered.get(SIGNATURE_HEADER.lower()),
                                d.settings.local_wms_webhook_secret.get_secret_value()):
            raise Fault(401, f"missing or invalid {SIGNATURE_HEADER}")

    def identify(self, d: Delivery) -> Key:
        if returns.is_receipt_event(d.body):  # returns (issue 3): receipt events next to shipment.shipped
            return returns.identify_receipt(d)
        if _is_short_pick(d.body):
            return identify_short_pick(d.body)
        try:
            payload = shopify.loads(d.body)
            with mapping(shopify.ShopifyMappingError, "event"):
                event_id = returns.event_id_of(payload)
                external_ref = _external_ref(payload)
                if not isinstance(payload.get("shipment"), dict):
                    raise shopify.ShopifyMappingError("shipment must be an object")
                shipment = Shipment.model_validate(payload["shipment"])
        except shopify.ShopifyMappingError as exc:
            raise Fault(422, f"shipment event does not map: {exc}", topic=SHIPMENT_TOPIC, delivery_id=None) from exc
        return Key(SHIPMENT_TOPIC, event_id, payload=(external_ref, shipment))

    async def map(self, d: Delivery, key: Key) -> Act:
        if key.topic == returns.RECEIPT_TOPIC:
            return returns.signal_receipt(d, key)
        if key.topic == SHORT_PICK_TOPIC:
            return _signal_short_pick(d, key)
        external_ref, shipment = key.payload
        workflow_id, signal, arg = shipment_signal(external_ref, shipment)
        return signal_act(d, workflow_id, signal, arg,
                          f"no running workflow {workflow_id} for shipment {shipment.shipment_id}",
                          hold_for=key.delivery_id or f"shipment:{shipment.shipment_id}")


def _signal_short_pick(d: Delivery, key: Key) -> Act:
    external_ref, short_pick = key.payload
    return signal_act(d, external_ref, "short_pick", short_pick,
                      f"no running workflow {external_ref} for short pick of {short_pick.release_id}",
                      hold_for=key.delivery_id or f"short_pick:{short_pick.release_id}")


SOURCE = WmsLocalSource()
