"""Out-of-order events attach instead of bouncing (issue 19) on the dev server with the real API and worker: a
warehouse shipment that reaches the intake before its order is held (202 `held`, a quarantined copy for the
analyst) and delivered to the order's workflow when the order arrives, so the order completes with it; a
redelivery of the held shipment is held once; an event for a workflow that ran and closed is still a 409."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from adapters import sql as db
from adapters.wms.local import SHIPMENT_SHIPPED, SIGNATURE_HEADER, sign

pytestmark = pytest.mark.integration

LINES = [("487817672276298554", "SKU2006-001"), ("976318377106520349", "SKU2006-020"),
         ("315789986012684393", "SKU2006-035")]  # the sample order's lines, one unit each


async def _shipment(stack, workflow_id: str, shipment_id: str):
    body = json.dumps({"event_id": f"evt-{shipment_id}", "type": SHIPMENT_SHIPPED, "release_id": "early",
                       "external_ref": workflow_id, "shipment": {
                           "shipment_id": shipment_id, "carrier": "UPS", "tracking_number": f"1Z{shipment_id}",
                           "shipped_at": datetime.now(UTC).isoformat(),
                           "lines": [{"line_id": lid, "channel_sku": sku, "quantity": 1} for lid, sku in LINES]}}
                      ).encode()
    secret = stack.settings.local_wms_webhook_secret.get_secret_value()
    return await stack.http.post("/webhooks/wms/local", content=body,
                                 headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, secret)})


@pytest.mark.parametrize("stack", [600], indirect=True)  # the embedded warehouse does not ship by itself here
async def test_a_shipment_that_overtakes_its_order_is_held_and_the_order_completes_with_it(stack):
    body, oid = stack.order_body()
    wf_id = f"order:shopify:{oid}"
    early = await _shipment(stack, wf_id, f"EARLY-{oid}")
    assert early.status_code == 202, early.text
    assert early.json()["held"] is True and early.json()["quarantine_id"]  # 409 before: bounced
    again = await _shipment(stack, wf_id, f"EARLY-{oid}")  # the WMS delivers it again: still one held event
    assert again.status_code == 202
    with stack.engine.connect() as conn:
        held = conn.execute(select(db.early_events).where(db.early_events.c.workflow_id == wf_id)).mappings().all()
    assert len(held) == 1 and held[0]["applied_at"] is None

    assert (await stack.send_shopify(body)).status_code == 202
    view = await stack.wait_status("shopify", oid, {"completed"}, timeout=60)
    assert [s["tracking_number"] for s in view["shipments"]] == [f"1ZEARLY-{oid}"]
    with stack.engine.connect() as conn:
        row = conn.execute(select(db.early_events).where(db.early_events.c.workflow_id == wf_id)).mappings().one()
        copy = conn.execute(select(db.quarantine).where(db.quarantine.c.id == early.json()["quarantine_id"])
                            ).mappings().one()
    assert row["applied_at"] is not None
    assert copy["resolved"] and "delivered to" in copy["replay_result"]

    late = await _shipment(stack, wf_id, f"LATE-{oid}")  # the run is closed: nothing will take it
    assert late.status_code == 409 and not late.json().get("held")
