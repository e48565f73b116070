"""The embedded WMS's webhook (`POST /webhooks/wms/local`): `shipment.shipped` events signalled to the order's
workflow as `shipment`, and `return.received` receipts (handed to api/intake/returns.py). Signed with
`X-Retailflow-Signature`; deduplicated by the event id."""

from __future__ import annotations

from adapters.marketplace import shopify
from adapters.wms.local import SIGNATURE_HEADER
from adapters.wms.local import verify as verify_signature
from api.intake import returns
from api.intake.pipeline import Accepted, Act, Delivery, Fault, Key, Outcome, Source
from canonical.order import Shipment
from canonical.payload import mapping
from starters import signal_workflow

SHIPMENT_TOPIC = "shipment"


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
        try:
            payload = shopify.loads(d.body)
            with mapping(shopify.ShopifyMappingError, "event"):
                event_id = returns.event_id_of(payload)
                external_ref = payload.get("external_ref")
                if not isinstance(external_ref, str) or not external_ref.strip() or len(external_ref) > 255:
                    raise shopify.ShopifyMappingError(
                        f"external_ref must be the release's workflow id, got {str(external_ref)[:80]!r}")
                if not isinstance(payload.get("shipment"), dict):
                    raise shopify.ShopifyMappingError("shipment must be an object")
                shipment = Shipment.model_validate(payload["shipment"])
        except shopify.ShopifyMappingError as exc:
            raise Fault(422, f"shipment event does not map: {exc}", topic=SHIPMENT_TOPIC, delivery_id=None) from exc
        return Key(SHIPMENT_TOPIC, event_id, payload=(external_ref, shipment))

    async def map(self, d: Delivery, key: Key) -> Act:
        if key.topic == returns.RECEIPT_TOPIC:
            return returns.signal_receipt(d, key)
        external_ref, shipment = key.payload

        async def act() -> Accepted:
            if not await signal_workflow(await d.client(), external_ref, "shipment", shipment):
                raise Fault(409, f"no running workflow {external_ref} for shipment {shipment.shipment_id}")
            return Accepted(external_ref, Outcome(202, {"workflow_id": external_ref, "duplicate": False}))

        return act


SOURCE = WmsLocalSource()
