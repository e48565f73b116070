"""Roles on the live stack (real API, worker, Temporal): without credentials 401, a viewer's analyst action 403,
an analyst's action works and the workflow history records the key's principal as the actor (never the body's
`actor`); the audit trail a viewer reads has no customer's personal data, an analyst's has it."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from adapters.marketplace.shopify import map_order
from tests.auth import headers

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("stack", [600.0], indirect=True)  # the order waits for its shipment: cancellable
async def test_roles_on_a_live_order_and_the_actor_is_the_authenticated_key(stack):
    body, oid = stack.order_body()
    order = map_order(json.loads(body))
    personal = [order.customer.email, order.customer.name, order.shipping_address.name,
                order.shipping_address.line1, order.shipping_address.postal_code, order.shipping_address.phone]
    assert all(personal)
    assert (await stack.send_shopify(body)).status_code == 202
    await stack.wait_status("shopify", oid, {"released"})
    name = f"it-ana-{uuid.uuid4().hex[:6]}"
    analyst, viewer = stack.key("analyst", name), stack.key("viewer")
    cancel = f"/orders/shopify/{oid}/actions/cancel"
    async with httpx.AsyncClient(base_url=stack.settings.effective_api_base_url, timeout=30) as http:
        anon = await http.post(cancel, json={"reason": "no credentials"})
        assert anon.status_code == 401 and anon.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await http.get(f"/orders/shopify/{oid}/audit")).status_code == 401
        for path, payload in [(cancel, {"reason": "r"}),
                              (f"/orders/shopify/{oid}/lines/cancel",
                               {"reason": "r", "lines": [{"line_id": order.lines[0].line_id, "quantity": 1}]}),
                              ("/ops/quarantine/1/replay", None)]:
            refused = await http.post(path, json=payload, headers=headers(viewer))
            assert refused.status_code == 403, (path, refused.text)
        assert (await http.get(f"/orders/shopify/{oid}", headers=headers(viewer))).json()["status"] == "released"

        # the audit trail: masked for the viewer (JSON and CSV), whole for the analyst
        seen = await http.get(f"/orders/shopify/{oid}/audit", headers=headers(viewer))
        seen_csv = await http.get(f"/orders/shopify/{oid}/audit", params={"format": "csv"}, headers=headers(viewer))
        whole = await http.get(f"/orders/shopify/{oid}/audit", headers=headers(analyst))
        assert seen.status_code == seen_csv.status_code == whole.status_code == 200
        for value in personal:
            assert value not in seen.text and value not in seen_csv.text, value
            assert value in whole.text, value
        assert [e["name"] for e in seen.json()] == [e["name"] for e in whole.json()]

        done = await http.post(cancel, json={"actor": "mallory", "reason": "customer asked"}, headers=headers(analyst))
        assert done.status_code == 202, done.text
        await stack.wait_status("shopify", oid, {"cancelled"})
        trail = (await http.get(f"/orders/shopify/{oid}/audit", headers=headers(analyst))).json()
    update = next(e for e in trail if e["kind"] == "update" and e["name"] == "cancel")
    assert (update["actor"], update["reason"], update["input"]["action"]) == (f"key:{name}", "customer asked",
                                                                               "cancel")
    assert "mallory" not in json.dumps(trail)
    # and the history itself (what the Web UI shows) holds the principal as the actor of the update
    history = await stack.client.get_workflow_handle(f"order:shopify:{oid}").fetch_history()
    accepted = [e.workflow_execution_update_accepted_event_attributes for e in history.events
                if e.HasField("workflow_execution_update_accepted_event_attributes")]
    assert len(accepted) == 1
    args = accepted[0].accepted_request.input.args.payloads
    decoded = await stack.client.data_converter.decode(list(args))
    assert decoded[0]["actor"] == f"key:{name}" and decoded[0]["reason"] == "customer asked"
