"""`POST /webhooks/shipbob`'s handler (api/intake/shipbob.py) on the sandbox's own signed `order.shipped`
delivery: each shipment signalled once to the order its reference names, a redelivery a duplicate, a wrong or
stale signature 401, a shipment with no running order 409, a body that does not map 422 — each quarantined —
and a topic without shipments ignored."""

from __future__ import annotations

import json
import time

from pydantic import SecretStr

from canonical.order import Shipment
from runtime.settings import Settings
from tests.contract.test_shipbob_contract import LINES, SECRET, TO, _ship, receiver, sandbox, wms  # noqa: F401
from tests.contract.test_shipstation import _Client


def _delivered(got: list[dict], before: int) -> dict:
    deadline = time.monotonic() + 5
    while len(got) == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(got) > before, "the sandbox sent no webhook"
    return got[-1]


async def test_shipbob_webhook_signals_each_shipment_once_and_quarantines_what_it_cannot_take(
        wms, sandbox, receiver, engine):  # noqa: F811
    from api.intake.shipbob import handle_shipbob

    _, url, _ = sandbox
    _, got = receiver
    settings = Settings(_env_file=None, shipbob_webhook_secret=SecretStr(SECRET))
    state = type("S", (), {"shipbob_wms": wms})()
    ref = wms.release("order:shopify:900", LINES, TO)
    before = len(got)
    _ship(url, ref.release_id)
    delivery = _delivered(got, before)
    body, headers = delivery["body"], delivery["headers"]
    client = _Client({"order:shopify:900"})

    async def get():
        return client

    out = await handle_shipbob(engine, get, settings, body, headers, app_state=state)
    assert out.status_code == 202, out.body
    assert [name for name, _ in client.signals] == ["shipment"]
    shipment = client.signals[0][1]
    assert isinstance(shipment, Shipment) and shipment.shipment_id.startswith("shipbob:")
    again = await handle_shipbob(engine, get, settings, body, headers, app_state=state)  # ShipBob redelivers
    assert again.status_code == 202 and again.body["duplicate"] is True and len(client.signals) == 1

    forged = {**headers, "webhook-signature": "v1,AAAA" + headers["webhook-signature"][7:]}
    refused = await handle_shipbob(engine, get, settings, body, forged, app_state=state)
    assert refused.status_code == 401 and refused.body["quarantine_id"]
    other_secret = await handle_shipbob(engine, get, settings.model_copy(
        update={"shipbob_webhook_secret": SecretStr("whsec_b3RoZXItc2VjcmV0")}), body, headers, app_state=state)
    assert other_secret.status_code == 401 and len(client.signals) == 1

    async def nobody():
        return _Client(set())
    other = wms.release("order:shopify:901", LINES, TO)
    before = len(got)
    _ship(url, other.release_id)
    orphan = _delivered(got, before)
    missing = await handle_shipbob(engine, nobody, settings, orphan["body"], orphan["headers"], app_state=state)
    assert missing.status_code == 409 and missing.body["quarantine_id"]

    from sandbox.shipbob import _sign
    from tests.contract.test_shipbob_contract import sb  # the sandbox's signer is ShipBob's scheme

    def signed(payload: bytes, topic: str) -> dict[str, str]:
        stamp = int(time.time())
        return {"webhook-id": f"msg_{stamp}_{topic}", "webhook-timestamp": str(stamp),
                "webhook-signature": _sign(SECRET, f"msg_{stamp}_{topic}", stamp, payload), "x-webhook-topic": topic}

    bad = b'{"nope": 1}'
    unmapped = await handle_shipbob(engine, get, settings, bad, signed(bad, "order.shipped"), app_state=state)
    assert unmapped.status_code == 422 and unmapped.body["quarantine_id"]
    other_topic = json.dumps({"id": 1}).encode()
    ignored = await handle_shipbob(engine, get, settings, other_topic, signed(other_topic, "return.created"),
                                   app_state=state)
    assert ignored.status_code == 200 and ignored.body["ignored"] and sb.API_VERSION == "2026-01"
