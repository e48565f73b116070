"""The embedded warehouse ships what is on hand and reports the rest short (issue 17), on SQLite and PostgreSQL:
partial shipments, nothing on hand, two shippers racing for the last units, a short-picked request staying put
until it is amended, full stock unchanged; and the WMS webhook mapping `shipment.short_picked` to `short_pick`."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from adapters.erp.local import LocalErp
from adapters.wms.local import SHIPMENT_SHIPPED, SHIPMENT_SHORT_PICKED, SIGNATURE_HEADER, LocalWms, sign
from api.app import create_app
from canonical.errors import CannotCancel
from canonical.fulfillment import ResolvedLine
from canonical.inventory import ShortPick
from canonical.order import Address, Shipment
from runtime.settings import Settings
from tests.auth import headers as auth_headers
from tests.auth import make_key
from tests.unit.test_intake_pipeline import FakeClient, quarantined

KY = Address(line1="1 Main", city="Louisville", region="KY", postal_code="40202", country="US")


def _lines(qty: int, *, line_id: str = "L1", sku: str = "CHAIR-RED", item: str = "CHAIR") -> list[ResolvedLine]:
    return [ResolvedLine(line_id=line_id, channel_sku=sku, item_code=item, quantity=qty)]


def _ship(wms: LocalWms, **kw) -> list[dict]:
    """One shipper pass, as run_shipper does it: claim, announce (accepted), mark; the events it sent."""
    sent = []
    for request in wms.claim_due(**kw):
        sent.extend(LocalWms.events(request))
        wms.mark(request["id"], shipped=True)
    return sent


def _of(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["type"] == kind]


@pytest.fixture
def erp(engine) -> LocalErp:
    return LocalErp(engine)


@pytest.fixture
def wms(engine) -> LocalWms:
    return LocalWms(engine, ship_after_seconds=0)


def test_five_on_hand_of_eight_ships_five_and_reports_three_short(erp, wms):
    erp.set_on_hand("CHAIR", "MAIN", 5)
    erp.reserve("order:shopify:1", _lines(8), allow_backorder=True)  # 5 reserved, 3 backordered
    release = wms.release("order:shopify:1", _lines(8), KY)
    events = _ship(wms)
    assert [e["type"] for e in events] == [SHIPMENT_SHIPPED, SHIPMENT_SHORT_PICKED]
    [shipment], [short] = _of(events, SHIPMENT_SHIPPED), _of(events, SHIPMENT_SHORT_PICKED)
    assert shipment["shipment"]["lines"] == [{"line_id": "L1", "channel_sku": "CHAIR-RED", "quantity": 5}]
    Shipment.model_validate(shipment["shipment"])
    pick = ShortPick.model_validate(short["short_pick"])
    assert (short["release_id"], short["external_ref"]) == (release.release_id, "order:shopify:1")
    assert (pick.release_id, pick.external_ref) == (release.release_id, "order:shopify:1")
    assert [(x.line_id, x.channel_sku, x.item_code, x.quantity) for x in pick.lines] == [
        ("L1", "CHAIR-RED", "CHAIR", 3)]
    assert short["event_id"] != shipment["event_id"]
    row = wms.get("order:shopify:1")
    assert row["status"] == "short_picked" and row["shipped_at"] is not None
    assert [x["quantity"] for x in row["shipped_lines"]] == [5] and [x["quantity"] for x in row["short_lines"]] == [3]
    # posting the partial shipment takes the five off the shelf, nothing more
    erp.post_delivery("order:shopify:1", Shipment.model_validate(shipment["shipment"]), _lines(8))
    assert erp.stock_levels("CHAIR")["MAIN"]["on_hand"] == 0


def test_nothing_on_hand_sends_only_a_short_pick(erp, wms):
    erp.reserve("order:shopify:2", _lines(2), allow_backorder=True)  # all backordered
    wms.release("order:shopify:2", _lines(2), KY)
    events = _ship(wms)
    assert [e["type"] for e in events] == [SHIPMENT_SHORT_PICKED]
    assert ShortPick.model_validate(events[0]["short_pick"]).lines[0].quantity == 2
    row = wms.get("order:shopify:2")
    assert row["status"] == "short_picked" and row["shipped_lines"] == [] and row["shipped_at"] is None
    assert row["shipment_id"] is None
    assert wms.cancel_release("order:shopify:2") is True  # nothing left the warehouse: it may be cancelled


def test_an_order_without_reservation_rows_picks_from_every_location_of_the_item(erp, wms):
    erp.set_on_hand("LAMP", "MAIN", 1)
    erp.set_on_hand("LAMP", "STORE-1", 2)
    wms.release("order:other-erp:1", _lines(4, item="LAMP", sku="LAMP-1"), KY)
    events = _ship(wms)
    assert _of(events, SHIPMENT_SHIPPED)[0]["shipment"]["lines"][0]["quantity"] == 3
    assert _of(events, SHIPMENT_SHORT_PICKED)[0]["short_pick"]["lines"][0]["quantity"] == 1


def test_only_the_reserved_locations_count_for_an_order_with_reservations(erp, wms):
    erp.set_on_hand("CHAIR", "MAIN", 2)
    erp.reserve("order:shopify:3", _lines(2), allow_backorder=False)  # held at MAIN
    erp.set_on_hand("CHAIR", "MAIN", 1)  # a count found one missing
    erp.set_on_hand("CHAIR", "STORE-1", 9)  # stock elsewhere is not this order's
    wms.release("order:shopify:3", _lines(2), KY)
    events = _ship(wms)
    assert _of(events, SHIPMENT_SHIPPED)[0]["shipment"]["lines"][0]["quantity"] == 1
    assert _of(events, SHIPMENT_SHORT_PICKED)[0]["short_pick"]["lines"][0]["quantity"] == 1


def test_units_picked_but_not_yet_posted_are_not_picked_again(erp, wms):
    """Two orders hold 5 each; a count finds 6. The first ships 5; before its delivery is posted (on-hand still 6)
    the next pass ships the second order only the 1 left."""
    erp.set_on_hand("CHAIR", "MAIN", 10)
    erp.reserve("order:shopify:a", _lines(5), allow_backorder=False)
    erp.reserve("order:shopify:b", _lines(5), allow_backorder=False)
    erp.set_on_hand("CHAIR", "MAIN", 6)
    wms.release("order:shopify:a", _lines(5), KY)
    first = _ship(wms)
    assert [e["shipment"]["lines"][0]["quantity"] for e in _of(first, SHIPMENT_SHIPPED)] == [5]
    wms.release("order:shopify:b", _lines(5), KY)
    second = _ship(wms)
    assert [e["shipment"]["lines"][0]["quantity"] for e in _of(second, SHIPMENT_SHIPPED)] == [1]
    assert _of(second, SHIPMENT_SHORT_PICKED)[0]["short_pick"]["lines"][0]["quantity"] == 4
    erp.post_delivery("order:shopify:a", Shipment.model_validate(first[0]["shipment"]), _lines(5))
    erp.post_delivery("order:shopify:b", Shipment.model_validate(second[0]["shipment"]), _lines(5))
    assert erp.stock_levels("CHAIR")["MAIN"]["on_hand"] == 0


def test_one_pass_never_gives_the_same_units_to_two_requests(erp, wms):
    erp.set_on_hand("CHAIR", "MAIN", 3)
    for n in (1, 2):
        wms.release(f"order:other-erp:{n}", _lines(2), KY)
    events = _ship(wms)
    assert sum(line["quantity"] for e in _of(events, SHIPMENT_SHIPPED) for line in e["shipment"]["lines"]) == 3
    assert sum(x["quantity"] for e in _of(events, SHIPMENT_SHORT_PICKED) for x in e["short_pick"]["lines"]) == 1


@pytest.mark.skipif(not os.environ.get("RETAILFLOW_TEST_DATABASE_URL"), reason="needs PostgreSQL (row locks)")
@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_two_shippers_racing_for_three_units_never_ship_more_than_three(engine, erp, monkeypatch):
    """Two shipper threads, each taking one due request (SKIP LOCKED gives them different ones) at the same
    moment; each is slowed after it has read the stock and before it writes its pick, so without the ledger's row
    locks both would read 3 on hand and nothing picked, and ship 6."""
    erp.set_on_hand("CHAIR", "MAIN", 3)
    erp.reserve("order:shopify:r1", _lines(3), allow_backorder=True)  # 3 reserved
    erp.reserve("order:shopify:r2", _lines(3), allow_backorder=True)  # 3 backordered, at MAIN
    wms = LocalWms(engine, ship_after_seconds=0)
    for ref in ("order:shopify:r1", "order:shopify:r2"):
        wms.release(ref, _lines(3), KY)
    real = LocalWms._picked_not_posted

    def slow_picked_not_posted(conn, items):
        rows = real(conn, items)
        time.sleep(0.5)
        return rows

    monkeypatch.setattr(LocalWms, "_picked_not_posted", staticmethod(slow_picked_not_posted))
    start = threading.Barrier(2)
    sent: list[list[dict]] = []
    guard = threading.Lock()

    def shipper() -> None:
        start.wait()
        events = _ship(LocalWms(engine, ship_after_seconds=0), limit=1)
        with guard:
            sent.append(events)

    threads = [threading.Thread(target=shipper) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads) and len(sent) == 2
    assert all(events for events in sent)  # each shipper took one request
    events = [e for batch in sent for e in batch]
    shipped = sum(line["quantity"] for e in _of(events, SHIPMENT_SHIPPED) for line in e["shipment"]["lines"])
    short = sum(x["quantity"] for e in _of(events, SHIPMENT_SHORT_PICKED) for x in e["short_pick"]["lines"])
    assert shipped == 3 and short == 3


def test_a_short_picked_request_is_not_shipped_again(erp, wms):
    erp.set_on_hand("CHAIR", "MAIN", 1)
    wms.release("order:shopify:4", _lines(2), KY)
    assert len(_ship(wms)) == 2
    erp.set_on_hand("CHAIR", "MAIN", 10)  # a receipt does not re-ship by itself
    assert wms.claim_due() == [] and _ship(wms) == []
    assert wms.get("order:shopify:4")["status"] == "short_picked"
    assert wms.release("order:shopify:4", _lines(2), KY).release_id == wms.get("order:shopify:4")["id"]
    with pytest.raises(CannotCancel, match="in part"):
        wms.cancel_release("order:shopify:4")


def test_amend_after_a_short_pick_releases_the_short_lines_again(erp, wms):
    erp.set_on_hand("CHAIR", "MAIN", 5)
    erp.reserve("order:shopify:5", _lines(8), allow_backorder=True)
    wms.release("order:shopify:5", _lines(8), KY)
    first = _ship(wms)
    erp.post_delivery("order:shopify:5", Shipment.model_validate(first[0]["shipment"]), _lines(8))
    erp.set_on_hand("CHAIR", "MAIN", 3)  # the receipt
    assert wms.amend_release("order:shopify:5", _lines(3)) is True
    assert wms.amend_release("order:shopify:5", _lines(3)) is False  # idempotent: released with those lines
    assert wms.get("order:shopify:5")["status"] == "released"
    second = _ship(wms)
    assert [e["type"] for e in second] == [SHIPMENT_SHIPPED]
    shipment = second[0]["shipment"]
    assert shipment["lines"] == [{"line_id": "L1", "channel_sku": "CHAIR-RED", "quantity": 3}]
    assert shipment["shipment_id"] != first[0]["shipment"]["shipment_id"]
    assert second[0]["event_id"] != first[0]["event_id"]
    assert wms.get("order:shopify:5")["status"] == "shipped"
    erp.post_delivery("order:shopify:5", Shipment.model_validate(shipment), _lines(8))
    assert erp.stock_levels("CHAIR")["MAIN"] == {"on_hand": 0, "reserved": 0}


def test_a_request_being_shipped_cannot_be_amended(erp, wms):
    wms.release("order:shopify:9", _lines(2), KY)
    [request] = wms.claim_due()
    assert request["short_lines"]  # picked (short) but not announced yet: still `shipping`
    with pytest.raises(CannotCancel, match="shipping"):
        wms.amend_release("order:shopify:9", _lines(1))


def test_full_stock_ships_as_before(erp, wms):
    erp.set_on_hand("CHAIR", "MAIN", 2)
    erp.reserve("order:shopify:6", _lines(2), allow_backorder=False)
    release = wms.release("order:shopify:6", _lines(2), KY)
    [request] = wms.claim_due()
    assert LocalWms.events(request) == [LocalWms.shipment_event(request)]
    event = LocalWms.shipment_event(request)
    assert event["event_id"] == f"evt-SHP-{release.release_id}" and event["type"] == "shipment.shipped"
    assert event["shipment"]["shipment_id"] == f"SHP-{release.release_id}"
    assert event["shipment"]["tracking_number"] == f"LP{release.release_id[-10:]}"
    assert event["shipment"]["lines"] == [{"line_id": "L1", "channel_sku": "CHAIR-RED", "quantity": 2}]
    assert LocalWms.short_pick_event(request) is None
    with pytest.raises(CannotCancel):
        wms.cancel_release("order:shopify:6")
    wms.mark(request["id"], shipped=True)
    assert wms.get("order:shopify:6")["status"] == "shipped"


def test_a_failed_announcement_resends_the_same_pick(erp, wms):
    erp.set_on_hand("CHAIR", "MAIN", 1)
    wms.release("order:shopify:7", _lines(2), KY)
    [request] = wms.claim_due()
    before = LocalWms.events(request)
    wms.mark(request["id"], shipped=False, error="HTTP 503")
    erp.set_on_hand("CHAIR", "MAIN", 5)  # stock arriving meanwhile does not change what was picked
    with wms.engine.begin() as conn:
        conn.execute(wms_due_now())
    [again] = wms.claim_due()
    after = LocalWms.events(again)
    assert [e["event_id"] for e in after] == [e["event_id"] for e in before]
    assert [e.get("shipment", {}).get("lines") for e in after] == [e.get("shipment", {}).get("lines") for e in before]


def wms_due_now():
    from adapters import sql as db

    return db.wms_requests.update().values(ship_after=db.utcnow())


# -- the WMS webhook ----------------------------------------------------------------------------------------------
@pytest.fixture
def fake() -> FakeClient:
    return FakeClient()


@pytest.fixture
def http(engine, fake) -> TestClient:
    settings = Settings(shopify_webhook_secret=SecretStr("short-pick-test"))
    return TestClient(create_app(settings, engine=engine, client=fake),
                      headers=auth_headers(make_key(engine, "analyst")))


def _post(http: TestClient, event: dict):
    body = json.dumps(event).encode()
    return http.post("/webhooks/wms/local", content=body,
                     headers={"Content-Type": "application/json",
                              SIGNATURE_HEADER: sign(body, "retailflow-dev-wms-secret")})


def test_intake_signals_short_pick_once_and_refuses_bad_or_unknown(erp, wms, http, fake, engine):
    erp.set_on_hand("CHAIR", "MAIN", 5)
    wms.release("order:shopify:8", _lines(8), KY)
    [request] = wms.claim_due()
    shipment, short = LocalWms.events(request)

    fake.closed.add("order:shopify:8")
    assert _post(http, short).status_code == 409  # the run closed: quarantined for a replay
    [row] = quarantined(engine)
    assert (row["topic"], row["delivery_id"], row["status_code"]) == ("short_pick", short["event_id"], 409)

    fake.closed.discard("order:shopify:8")
    fake.running.add("order:shopify:8")
    assert _post(http, shipment).status_code == 202
    resp = _post(http, short)
    assert resp.status_code == 202 and resp.json() == {"workflow_id": "order:shopify:8", "duplicate": False}
    again = _post(http, short)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert [(wf, name) for wf, name, _ in fake.signals] == [("order:shopify:8", "shipment"),
                                                          ("order:shopify:8", "short_pick")]
    signalled = fake.signals[1][2]
    assert isinstance(signalled, ShortPick) and signalled == ShortPick.model_validate(short["short_pick"])
    assert signalled.lines[0].quantity == 3 and signalled.release_id == request["id"]

    for broken in ({**short, "event_id": "evt-bad-1", "short_pick": {**short["short_pick"], "lines": []}},
                   {**short, "event_id": "evt-bad-2", "short_pick": "3 chairs"},
                   {**short, "event_id": "evt-bad-3", "short_pick": {**short["short_pick"], "external_ref": "x"}}):
        resp = _post(http, broken)
        assert resp.status_code == 422, resp.text
        assert resp.json()["detail"].startswith("short-pick event does not map")
    assert sorted(r["delivery_id"] or "" for r in quarantined(engine) if r["status_code"] == 422) == ["", "", ""]
    assert len(fake.signals) == 2


async def test_the_shipper_delivers_the_partial_shipment_and_the_short_pick_to_the_api(erp, engine, fake):
    """run_shipper against the real API on loopback (uvicorn), Temporal faked: both events arrive signed, in
    order, as `shipment` then `short_pick`; the request ends `short_picked` and is not delivered again."""
    import asyncio
    import socket

    import uvicorn

    from adapters.wms.local import run_shipper
    from retailflow.devstack import _ApiServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(shopify_webhook_secret=SecretStr("short-pick-test"))
    server = _ApiServer(uvicorn.Config(create_app(settings, engine=engine, client=fake), host="127.0.0.1",
                                       port=port, log_level="warning", lifespan="on"))
    api = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    erp.set_on_hand("CHAIR", "MAIN", 5)
    erp.reserve("order:shopify:10", _lines(8), allow_backorder=True)
    fake.running.add("order:shopify:10")
    wms = LocalWms(engine, ship_after_seconds=0)
    wms.release("order:shopify:10", _lines(8), KY)
    stop = asyncio.Event()
    shipper = asyncio.create_task(run_shipper(wms, f"http://127.0.0.1:{port}",
                                              settings.local_wms_webhook_secret.get_secret_value(),
                                              poll_seconds=0.1, stop=stop))
    try:
        for _ in range(100):
            if wms.get("order:shopify:10")["status"] == "short_picked":
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)  # a few more polls: nothing is delivered again
    finally:
        stop.set()
        await shipper
        server.should_exit = True
        await api
    row = wms.get("order:shopify:10")
    assert row["status"] == "short_picked" and row["delivery_attempts"] == 1 and row["last_error"] is None
    assert [(wf, name) for wf, name, _ in fake.signals] == [("order:shopify:10", "shipment"),
                                                          ("order:shopify:10", "short_pick")]
    shipment, short_pick = fake.signals[0][2], fake.signals[1][2]
    assert isinstance(shipment, Shipment) and [x.quantity for x in shipment.lines] == [5]
    assert isinstance(short_pick, ShortPick) and [x.quantity for x in short_pick.lines] == [3]
