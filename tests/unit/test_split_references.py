"""A split order's node releases carry `<order>/<node>/<n>` (canonical.sourcing.release_reference): the partners
echo it, and the intake (the embedded WMS's webhook, ShipStation, ShipBob) sends their shipments to the order as
`node_shipment` naming the release; a whole order's reference is still its workflow id (`shipment`)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from activities.sourcing import NodeShipment
from adapters.wms.local import SIGNATURE_HEADER, sign
from api.app import create_app
from api.intake.pipeline import shipment_signal
from canonical.order import Shipment
from canonical.sourcing import FulfillmentNode, order_of_reference, release_reference
from runtime.settings import Settings
from tests.auth import headers as auth_headers
from tests.auth import make_key
from tests.unit.test_intake_pipeline import FakeClient

SHIPMENT = Shipment(shipment_id="SH-1", carrier="DHL", tracking_number="JJD1", shipped_at="2026-12-04T10:00:00Z",
                    lines=[{"line_id": "L1", "channel_sku": "SKU-1", "quantity": 1}])


def test_a_release_reference_names_its_order_and_node():
    ref = release_reference("order:shopify:820982911946154508", "WH-BER", 2)
    assert ref == "order:shopify:820982911946154508/WH-BER/2"
    assert order_of_reference(ref) == ("order:shopify:820982911946154508", True)
    assert order_of_reference("order:shopify:820982911946154508") == ("order:shopify:820982911946154508", False)
    assert order_of_reference("order:amazon:113-1/x") == ("order:amazon:113-1/x", False)  # no sequence: whole
    with pytest.raises(ValidationError):  # a node id is part of the reference: no slash in it
        FulfillmentNode.model_validate({"id": "WH/BER", "kind": "warehouse", "location": "BER", "adapter": "wms:local",
                                        "channels": ["*"], "ship_to": ["*"], "capacity_per_day": 10,
                                        "cutoff": "16:00", "time_zone": "Europe/Berlin",
                                        "cost_per_shipment": {"amount": "5.00", "currency": "EUR"}})


def test_a_node_releases_shipment_goes_to_its_order_naming_the_release():
    wf, signal, arg = shipment_signal("order:shopify:1/ACME/1", SHIPMENT)
    assert (wf, signal) == ("order:shopify:1", "node_shipment")
    assert arg == NodeShipment(release_ref="order:shopify:1/ACME/1", shipment=SHIPMENT)
    assert shipment_signal("order:shopify:1", SHIPMENT) == ("order:shopify:1", "shipment", SHIPMENT)


def test_the_warehouse_webhook_signals_a_split_orders_node_shipment_to_the_order(engine):
    fake = FakeClient()
    fake.running.add("order:shopify:77")
    http = TestClient(create_app(Settings(shopify_webhook_secret=SecretStr("x")), engine=engine, client=fake),
                      headers=auth_headers(make_key(engine, "analyst")))
    event = {"type": "shipment.shipped", "event_id": "ev-77-1", "release_id": "R-1",
             "external_ref": "order:shopify:77/WH-BER/1", "shipment": SHIPMENT.model_dump(mode="json")}
    body = json.dumps(event).encode()
    resp = http.post("/webhooks/wms/local", content=body, headers={
        "Content-Type": "application/json", SIGNATURE_HEADER: sign(body, "retailflow-dev-wms-secret")})
    assert resp.status_code == 202, resp.text
    [(wf, name, arg)] = fake.signals
    assert (wf, name) == ("order:shopify:77", "node_shipment")
    assert NodeShipment.model_validate(arg).release_ref == "order:shopify:77/WH-BER/1"
