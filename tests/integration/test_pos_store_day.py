"""POS store day on the dev server with the real activities and database: signed Square webhooks (a duplicate
delivery answers 200, a bad signature 401, an unmappable payload 422 and is quarantined) and a POS batch with an
offline replay feed one StoreDay; stock moves once per transaction; closing with the counted cash posts one balanced
journal to the ERP; a late transaction posts as an adjustment journal."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select

from adapters import sql as db
from adapters.erp.local import LocalErp
from adapters.pos import square
from api.app import create_app
from runtime.registry import build_adapters
from runtime.settings import Settings
from tests.auth import headers, make_key
from tests.conftest import fixture_bytes
from worker import build_worker

pytestmark = pytest.mark.integration

KEY, URL = "it-square-key", "https://retailflow.example/webhooks/square"


async def _wait(http: httpx.AsyncClient, path: str, pred, timeout: float = 30) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while asyncio.get_running_loop().time() < deadline:
        resp = await http.get(path)
        if resp.status_code == 200:
            last = resp.json()
            if pred(last["store_day"]):
                return last["store_day"]
        await asyncio.sleep(0.2)
    raise AssertionError(f"{path} never met the condition; last {last}")


def _square_payment(store: str, when: datetime) -> bytes:
    payload = json.loads(fixture_bytes("square", "webhook_payment.updated_example.json"))
    payment = payload["data"]["object"]["payment"]
    payment.update(location_id=store, id=f"P-{uuid.uuid4().hex[:10]}", created_at=when.isoformat())
    payment["total_money"]["amount"] = 2500
    payload["event_id"] = str(uuid.uuid4())
    # the notification is created now (the fixture's 2020 `created_at` is beyond Square's 72 h replay window)
    payload["created_at"] = datetime.now(UTC).isoformat()
    return json.dumps(payload).encode()


def _line_sale(tid: str, store: str, day: str, when: datetime, *, qty: int, tender: str) -> dict:
    total = Decimal("12.50") * qty - Decimal("1.00") + Decimal("0.80") * qty
    return {"pos_transaction_id": tid, "store_id": store, "business_date": day, "kind": "sale",
            "lines": [{"sku": "TEE", "quantity": qty, "unit_price": "12.50", "discount": "1.00",
                       "tax": str(Decimal("0.80") * qty)}],
            "tenders": [{"type": tender, "amount": str(total)}], "occurred_at": when.isoformat(), "currency": "USD"}


async def test_square_webhooks_and_a_batch_close_into_one_balanced_journal(dev_env, engine):
    store = f"L{uuid.uuid4().hex[:8].upper()}"
    settings = Settings(database_url=str(engine.url.render_as_string(hide_password=False)),
                        task_queue=f"pos-{uuid.uuid4()}", square_webhook_signature_key=KEY,
                        square_notification_url=URL, pos_adjustment_delay_seconds=1, pos_late_window_hours=1)
    adapters = build_adapters(settings, engine)
    erp = adapters.erp
    assert isinstance(erp, LocalErp)
    erp.upsert_item("ITEM-TEE", "T-shirt", Decimal("12.50"), "USD")
    erp.map_sku("pos", "TEE", "ITEM-TEE")
    erp.set_on_hand("ITEM-TEE", store, 20)
    now = datetime.now(UTC)
    day = now.date().isoformat()
    wf_id = f"storeday:{store}:{day}"
    app = create_app(settings, engine=engine, client=dev_env.client)
    worker = build_worker(dev_env.client, adapters, task_queue=settings.task_queue)
    async with worker, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api",
                                         headers=headers(make_key(engine, "analyst"))) as http:
        body = _square_payment(store, now)
        sig = square.signature(KEY, URL, body)
        first = await http.post("/webhooks/square", content=body, headers={square.SIGNATURE_HEADER: sig})
        assert first.status_code == 202 and first.json()["workflow_id"] == wf_id
        again = await http.post("/webhooks/square", content=body, headers={square.SIGNATURE_HEADER: sig})
        assert again.status_code == 200 and again.json()["duplicate"] is True
        bad = await http.post("/webhooks/square", content=body, headers={square.SIGNATURE_HEADER: "AAAA"})
        assert bad.status_code == 401
        junk = json.loads(body)
        del junk["data"]["object"]["payment"]["location_id"]
        junk["event_id"] = str(uuid.uuid4())
        junk_body = json.dumps(junk).encode()
        unmappable = await http.post("/webhooks/square", content=junk_body,
                                     headers={square.SIGNATURE_HEADER: square.signature(KEY, URL, junk_body)})
        assert unmappable.status_code == 422 and unmappable.json()["quarantine_id"]
        with engine.connect() as conn:
            reasons = conn.execute(select(db.quarantine.c.reason, db.quarantine.c.status_code).where(
                db.quarantine.c.source == "square")).all()
        assert {r.status_code for r in reasons} >= {401, 422}

        # the POS batch, then its offline replay with one more transaction
        t1 = _line_sale(f"{store}-1", store, day, now, qty=2, tender="cash")
        t2 = _line_sale(f"{store}-2", store, day, now, qty=1, tender="card")
        t3 = _line_sale(f"{store}-3", store, day, now, qty=3, tender="cash")
        resp = await http.post("/pos/batches", json={"transactions": [t1, t2]})
        assert resp.status_code == 202 and resp.json()["store_days"] == {wf_id: 2}
        assert (await http.post("/pos/batches", json={"transactions": [t1, t2, t3]})).status_code == 202
        bad_batch = await http.post("/pos/batches", json={"transactions": [{**t1, "tenders": []}]})
        assert bad_batch.status_code == 422
        view = await _wait(http, f"/storedays/{store}/{day}",
                           lambda v: v["totals"]["transactions"] == 4 and v["duplicates"] == 2)
        assert view["status"] == "open"
        assert erp.stock_levels("ITEM-TEE")[store]["on_hand"] == 20 - 6  # each transaction moved stock once

        # close with the counted cash: expected 25.60 + 38.90 = 64.50 cash, counted 64.00 → 0.50 short
        close = await http.post(f"/storedays/{store}/{day}/close", json={"counted_cash": "64.00", "actor": "mgr"})
        assert close.status_code == 202
        view = await _wait(http, f"/storedays/{store}/{day}", lambda v: v["status"] == "closed")
        assert Decimal(view["cash_over_short"]) == Decimal("-0.50")
        journal = erp.get_journal(wf_id)
        assert journal is not None and Decimal(str(journal["total_debit"])) == Decimal(str(journal["total_credit"]))
        signed = {x["account"]: Decimal(x["debit"]) - Decimal(x["credit"]) for x in journal["lines"]}
        assert signed == {"4000": Decimal("-75.00"), "4020": Decimal("3.00"), "2200": Decimal("-4.80"),
                          "4090": Decimal("-25.00"), "1050": Decimal("64.00"), "1060": Decimal("37.30"),
                          "6900": Decimal("0.50")}
        assert view["journal"]["erp_journal_id"] == journal["id"]

        # a late transaction after close becomes adjustment 1
        late = _line_sale(f"{store}-late", store, day, now, qty=1, tender="card")
        assert (await http.post("/pos/batches", json={"transactions": [late, t1]})).status_code == 202
        view = await _wait(http, f"/storedays/{store}/{day}", lambda v: len(v["adjustments"]) == 1)
        adj = erp.get_journal(f"{wf_id}:adj:1")
        assert adj is not None and adj["total_debit"] == adj["total_credit"]
        assert erp.get_journal(wf_id)["id"] == journal["id"]  # the day's journal is untouched
        assert view["totals"]["transactions"] == 5 and view["duplicates"] == 3

        refused = await http.post(f"/storedays/{store}/{day}/actions/cancel", json={"actor": "a", "reason": "r"})
        assert refused.status_code == 409  # the journal is posted
        assert (await http.get(f"/storedays/{store}/1999-01-01")).status_code == 404
        await dev_env.client.get_workflow_handle(wf_id).terminate("test done")
        # a store day that has ended refuses more transactions (its id is not reused): 409, nothing started
        gone = await http.post("/pos/batches", json={"transactions": [_line_sale(f"{store}-x", store, day, now,
                                                                                 qty=1, tender="card")]})
        assert gone.status_code == 409 and wf_id in gone.json()["refused"]
