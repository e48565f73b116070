"""Personal data is sealed in Temporal (issue 15): an order, its return, a store day and a settlement run through
the dev server with the real worker and API; their histories, fetched raw (no codec), hold no customer e-mail,
phone, street or name in any byte, and every payload is `binary/encrypted`. The same scan finds them all in a run
started by a client without the codec (what the code did before), so it can fail. The sealed histories replay
through the codec's data converter, and the codec server opens them for a viewer."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from google.protobuf.json_format import MessageToDict
from temporalio.api.common.v1 import Payloads
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from adapters.marketplace.shopify import map_order
from canonical.finance import SettlementInput
from canonical.fulfillment import OrderFulfillmentInput
from runtime.codec import ENCODING, data_converter
from starters.settlements import start_reconciliation
from tests.auth import headers, make_key
from tests.conftest import fixture_bytes
from tests.integration.conftest import CODEC_KEYRING, ORDER_FIXTURE
from tests.integration.test_returns import _wait_return, _wms_event
from tests.replay.seal import payloads_of
from tests.settlement_gen import generate_settlement, seed_sales_orders
from worker import WORKFLOWS

pytestmark = pytest.mark.integration

# what the Shopify sample order says about its customer (tests/fixtures/shopify/webhook_orders_create_sample_v2024.json)
PERSONAL = [b"jon@example.com", b"john@example.com", b"123-123-1234", b"555-555-SHIP", b"123 Shipping Street",
            b"123 Elm St.", b"Steve Shipper", b"John Smith", b"Shipper", b"Smith"]


async def raw_history(client: Client, workflow_id: str) -> tuple[bytes, str]:
    """The history as the server stores it (the client decodes nothing in a fetched history)."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    raw = b"".join(event.SerializeToString() for event in history.events)
    return raw, history.to_json()


def clear_text(raw: bytes) -> list[bytes]:
    return [p for p in PERSONAL if p in raw]


async def _store_day(stack) -> str:
    store = f"L{uuid.uuid4().hex[:8].upper()}"
    erp = stack.adapters.erp
    erp.upsert_item("ITEM-SEAL", "T-shirt", Decimal("12.50"), "USD")
    erp.map_sku("pos", "SEAL", "ITEM-SEAL")
    erp.set_on_hand("ITEM-SEAL", store, 20)
    now = datetime.now(UTC)
    day = now.date().isoformat()
    sale = {"pos_transaction_id": f"{store}-1", "store_id": store, "business_date": day, "kind": "sale",
            "lines": [{"sku": "SEAL", "quantity": 1, "unit_price": "12.50", "discount": "0", "tax": "0.80"}],
            "tenders": [{"type": "cash", "amount": "13.30"}], "occurred_at": now.isoformat(), "currency": "USD"}
    resp = await stack.http.post("/pos/batches", json={"transactions": [sale]})
    assert resp.status_code == 202, resp.text
    [wf_id] = resp.json()["store_days"]
    return wf_id


async def _settlement(stack, tmp_path) -> str:
    path = tmp_path / "amazon-seal.tsv"
    gen = generate_settlement(path, 8, settlement_id=f"55{uuid.uuid4().int % 10**9:09d}")
    seed_sales_orders(stack.engine, "amazon", gen.orders)
    inp = SettlementInput(provider="amazon", settlement_id=gen.settlement_id, source=str(path))
    handle = await start_reconciliation(stack.client, stack.settings, inp)
    await asyncio.wait_for(handle.result(), 60)
    return inp.workflow_id


async def test_histories_hold_no_personal_data_in_clear(stack, tmp_path):
    body, oid = stack.order_body()
    assert all(p in body for p in PERSONAL if p != b"John Smith")  # the order carries them (the name mapped)
    assert (await stack.send_shopify(body)).status_code == 202
    await stack.wait_status("shopify", oid, {"completed"})
    so = (await stack.http.get("/erp/sales-orders", params={"external_ref": f"order:shopify:{oid}"})).json()[0]
    line = so["lines"][0]
    rid = f"R{uuid.uuid4().hex[:8]}"
    ret = await stack.http.post("/returns", json={
        "channel": "shopify", "return_id": rid, "external_order_id": oid, "requested_at": datetime.now(UTC).isoformat(),
        "lines": [{"line_id": line["line_id"], "quantity": 1, "reason": "no_longer_needed"}]})
    assert ret.status_code == 202, ret.text
    await _wait_return(stack, rid, "awaiting_receipt")
    assert (await _wms_event(stack, rid, line["line_id"], uuid.uuid4().hex)).status_code == 202
    await _wait_return(stack, rid, "completed")
    storeday = await _store_day(stack)
    settlement = await _settlement(stack, tmp_path)

    runs = [f"order:shopify:{oid}", f"return:shopify:{rid}", storeday, settlement]
    histories = {}
    for wf_id in runs:
        raw, text = await raw_history(stack.client, wf_id)
        assert clear_text(raw) == [], f"{wf_id} holds personal data in clear: {clear_text(raw)}"
        payloads = payloads_of(text)
        assert payloads and all(p.metadata.get("encoding") == ENCODING for p in payloads), wf_id
        histories[wf_id] = text

    # the control: a run started without the codec (the old code) shows them all, so the scan above can fail
    plain = Client(stack.client.service_client, namespace=stack.client.namespace,
                   data_converter=pydantic_data_converter)
    order = map_order(json.loads(fixture_bytes(*ORDER_FIXTURE)))
    control = f"control:{uuid.uuid4().hex}"
    await plain.start_workflow("OrderFulfillment", OrderFulfillmentInput(order=order), id=control,
                               task_queue=f"nobody-{uuid.uuid4().hex}")  # no worker: the start event is enough
    try:
        raw, _ = await raw_history(stack.client, control)
        assert {b"jon@example.com", b"555-555-SHIP", b"123 Shipping Street", b"Steve Shipper",
                b"John Smith"} <= set(clear_text(raw))
    finally:
        await stack.client.get_workflow_handle(control).terminate("control run of the sealed-history test")

    # what the server holds replays through the codec, and the codec server opens it for a viewer
    from temporalio.client import WorkflowHistory

    replayer = Replayer(workflows=WORKFLOWS,
                        data_converter=data_converter(CODEC_KEYRING))
    for wf_id, text in histories.items():
        result = await replayer.replay_workflow(WorkflowHistory.from_json(wf_id, text), raise_on_replay_failure=False)
        assert result.replay_failure is None, (wf_id, result.replay_failure)
    start_input = payloads_of(histories[runs[0]])[0]
    decoded = await stack.http.post("/codec/decode", json=MessageToDict(Payloads(payloads=[start_input])),
                                    headers={**headers(make_key(stack.engine, "viewer")), "X-Namespace": "default"})
    assert decoded.status_code == 200, decoded.text
    assert b"jon@example.com" in base64.b64decode(decoded.json()["payloads"][0]["data"])
