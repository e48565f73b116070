"""Every webhook delivered several times, shuffled, out of order: orders/create redelivered under the same webhook
id and fired again under a new one, the warehouse's shipment event sent before its order exists (and again
after), and `orders/cancelled` before `orders/create` — the cancel wins: that order never reaches the warehouse's
shipment, the ERP's invoice or the tax engine's commit.

The test is the warehouse here (the worker's embedded shipper is off): it signs the embedded WMS's
`shipment.shipped` events itself and, like a warehouse, retries one that is refused (409); one sent before its
order is held (202) and delivered when the order starts (issue 19), so its redelivery is a duplicate."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid

import httpx
import pytest

from adapters.wms.local import SIGNATURE_HEADER, sign
from tests.faults.harness import (
    SendLog,
    cancel_body,
    deliver,
    new_ids,
    order_body,
    running_stack,
    shopify_headers,
    workflow_id,
)
from tests.faults.invariants import check
from tests.reliability import record

pytestmark = pytest.mark.faults

ORDERS = 12  # each: create ×2 (same webhook id) + create under a new id + shipment ×2, half of them shipped first
CANCELLED_FIRST = 4  # each: cancel ×2, then create ×2
SEED = 1505
WMS_SECRET = "faults-wms-secret"


def shipment_event(external_id: str) -> bytes:
    """The embedded warehouse's shipment of the whole sample order (its three lines), as its shipper sends it."""
    payload = json.loads(order_body(external_id)[0])
    shipment_id = f"SHP-F-{external_id}"
    return json.dumps({
        "event_id": f"evt-{shipment_id}", "type": "shipment.shipped", "release_id": f"F-{external_id}",
        "external_ref": workflow_id(external_id),
        "shipment": {"shipment_id": shipment_id, "carrier": "LOCAL-POST", "service": "ground",
                     "tracking_number": f"LP{external_id[-10:]}", "shipped_at": "2026-12-01T00:00:00+00:00",
                     "lines": [{"line_id": str(li["id"]), "channel_sku": li["sku"], "quantity": li["quantity"]}
                               for li in payload["line_items"]]},
    }).encode()


async def test_duplicated_shuffled_out_of_order_webhooks(temporal_server, tmp_path):
    rng = random.Random(SEED)
    normal, cancelled = new_ids(ORDERS), new_ids(CANCELLED_FIRST)
    t0 = time.monotonic()
    # (key, path, body, headers, retry_on): one entry per delivery attempt the vendor makes
    first: list[tuple] = []
    rest: list[tuple] = []
    for n, eid in enumerate(normal):
        body = order_body(eid)[0]
        hook = str(uuid.uuid4())
        for copy in range(2):
            rest.append((f"create:{eid}:{copy}", "/webhooks/shopify", body,
                         shopify_headers(body, "orders/create", hook), ()))
        rest.append((f"create:{eid}:refired", "/webhooks/shopify", body,
                     shopify_headers(body, "orders/create", str(uuid.uuid4())), ()))
        ship = shipment_event(eid)
        ship_headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(ship, WMS_SECRET)}
        for copy in range(2):
            entry = (f"ship:{eid}:{copy}", "/webhooks/wms/local", ship, ship_headers, (409,))
            (first if copy == 0 and n % 2 == 0 else rest).append(entry)  # shipment before order
    for eid in cancelled:
        cbody, obody = cancel_body(eid), order_body(eid)[0]
        hook = str(uuid.uuid4())
        first += [(f"cancel:{eid}:{copy}", "/webhooks/shopify", cbody,
                   shopify_headers(cbody, "orders/cancelled", hook), ()) for copy in range(2)]
        rest += [(f"create:{eid}:{copy}", "/webhooks/shopify", obody,
                  shopify_headers(obody, "orders/create", str(uuid.uuid4())), ()) for copy in range(2)]
    rng.shuffle(first)
    rng.shuffle(rest)
    with running_stack(tmp_path, temporal_server, RETAILFLOW_LOCAL_WMS_ENABLED="false",
                       RETAILFLOW_LOCAL_WMS_WEBHOOK_SECRET=WMS_SECRET) as stack:
        log, early = SendLog(), SendLog()
        loop = asyncio.get_running_loop()
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=15) as http:
            # the early ones once each, as the vendor first sends them: nothing of these orders exists yet
            for key, path, body, headers, _ in first:
                early.attempts += 1
                status = (await http.post(path, content=body, headers=headers)).status_code
                early.statuses[status] += 1
                if 200 <= status < 300:
                    early.acked[key] = status
            gate = asyncio.Semaphore(6)
            deadline = loop.time() + 60

            async def one(entry: tuple) -> None:
                key, path, body, headers, retry_on = entry
                async with gate:
                    await deliver(http, log, key, path, body, headers, deadline=deadline, retry_on=retry_on)

            # the rest shuffled and concurrently; the early shipments again (the warehouse retries a refusal)
            await asyncio.gather(*(one(e) for e in rest + [e for e in first if e[0].startswith("ship:")]))
        client = await stack.client()
        accepted = {workflow_id(e) for e in normal + cancelled}
        outcome = await check(stack.engine, client, accepted, cancelled={workflow_id(e) for e in cancelled},
                              initial_stock=stack.initial_stock, settle_timeout=150)
    early_ships = [e for e in first if e[0].startswith("ship:")]
    deliveries = len(first) + len(rest) + len(early_ships)
    figures = {"orders": ORDERS + CANCELLED_FIRST, "deliveries": deliveries,
               "duplicates": deliveries - 2 * ORDERS - 2 * CANCELLED_FIRST,
               "faults": len(early_ships) + CANCELLED_FIRST, "acked": len(log.acked) + len(early.acked),
               "5xx": log.server_errors + early.server_errors, "500": log.code_500 + early.code_500,
               **outcome.figures(), "seconds": round(time.monotonic() - t0, 1)}
    record("faults/test_webhook_chaos.py::test_duplicated_shuffled_out_of_order_webhooks", category="fault",
           injects=f"every webhook 2-3 times (same and new webhook ids), shuffled (seed {SEED}); "
                   f"{len(early_ships)} shipments before their order, {CANCELLED_FIRST} cancels before their create",
           figures=figures,
           invariant="each order once: one sales order, invoice, delivery per shipment, tax commit; a cancel "
                     "that came first wins (no shipment, invoice or tax commit); early shipments held (202) and "
                     "delivered when their order starts, their redeliveries deduplicated",
           result=outcome.verdict())
    # the early deliveries: a shipment for no order yet is held like a cancel (202, delivered when its order
    # starts: each order's delivery is asserted once below), never refused and dropped
    assert set(early.statuses) == {202}, early.statuses
    assert {k.split(":")[0] for k in early.acked} == {"cancel", "ship"}, early.acked
    assert not log.given_up and log.code_500 == 0, (log.given_up, log.statuses)
    outcome.assert_clean()
    assert outcome.completed == {workflow_id(e) for e in normal}, outcome.figures()
    assert outcome.cancelled == {workflow_id(e) for e in cancelled}, outcome.figures()


PAIRS = 10


async def test_cancel_and_create_at_the_same_moment(temporal_server, tmp_path):
    """orders/cancelled and orders/create of the same order sent at the same moment: a cancel answered 2xx wins
    (the warehouse ships after 3 s, long after both are answered), however the two interleave in the API."""
    ids = new_ids(PAIRS)
    t0 = time.monotonic()
    with running_stack(tmp_path, temporal_server, RETAILFLOW_LOCAL_WMS_SHIP_AFTER_SECONDS="3") as stack:
        log = SendLog()
        loop = asyncio.get_running_loop()
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=15) as http:
            deadline = loop.time() + 60

            async def pair(eid: str) -> None:
                cbody, obody = cancel_body(eid), order_body(eid)[0]
                await asyncio.gather(
                    deliver(http, log, f"cancel:{eid}", "/webhooks/shopify", cbody,
                            shopify_headers(cbody, "orders/cancelled", str(uuid.uuid4())), deadline=deadline),
                    deliver(http, log, f"create:{eid}", "/webhooks/shopify", obody,
                            shopify_headers(obody, "orders/create", str(uuid.uuid4())), deadline=deadline))

            await asyncio.gather(*(pair(e) for e in ids))
        client = await stack.client()
        acked_cancels = {workflow_id(k.split(":", 1)[1]) for k in log.acked if k.startswith("cancel:")}
        outcome = await check(stack.engine, client, {workflow_id(e) for e in ids}, cancelled=acked_cancels,
                              initial_stock=stack.initial_stock, settle_timeout=60)
    lost_cancels = sorted(acked_cancels - outcome.cancelled)
    figures = {"orders": PAIRS, "deliveries": log.attempts, "acked": len(log.acked), "5xx": log.server_errors,
               "500": log.code_500, "cancels_acked": len(acked_cancels), "cancels_lost": len(lost_cancels),
               **outcome.figures(), "seconds": round(time.monotonic() - t0, 1)}
    figures["lost"] = len(outcome.lost) + len(lost_cancels)
    clean = not (figures["lost"] or outcome.doubled or outcome.problems)
    record("faults/test_webhook_chaos.py::test_cancel_and_create_at_the_same_moment", category="fault",
           injects=f"{PAIRS} orders whose orders/cancelled and orders/create are sent at the same moment",
           figures=figures,
           invariant="a cancel answered 2xx wins: the order ends cancelled, never shipped, invoiced or tax-committed",
           result="pass" if clean else f"FAIL: {len(lost_cancels)} of {len(acked_cancels)} "
                                       "acknowledged cancels lost: those orders shipped and were invoiced"
                                       + (f"; also not finished: {outcome.lost[:1]} {outcome.histories[:1]}"
                                          if outcome.lost else ""))
    assert not log.given_up and log.code_500 == 0, log.statuses
    assert not lost_cancels, f"{len(lost_cancels)} of {len(acked_cancels)} acknowledged cancels lost"
    outcome.assert_clean()
