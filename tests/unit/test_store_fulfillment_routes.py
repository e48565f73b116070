"""The store staff's routes of the embedded POS (api/routers/pos.py): the row moves first, then the order is
signalled (`store_fulfillment`) with the authenticated principal as the actor; wrong store 404, a move the states
do not allow 409, an action that does not fit the kind 409, a viewer 403. Temporal is a recording stand-in."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from adapters.platform.api_keys import ApiKeyStore
from adapters.pos.fulfillment import EmbeddedStoreFulfillment, StoreFulfillmentBook
from api.app import create_app
from canonical.sourcing import (
    StoreFulfillmentKind,
    StoreFulfillmentLine,
    StoreFulfillmentRequest,
    StoreFulfillmentState,
    release_reference,
)
from runtime.settings import Settings
from tests.auth import headers

REF = release_reference("order:shopify:1001", "STORE-001", 1)
SHIP_REF = release_reference("order:shopify:1002", "STORE-001", 2)


class _Temporal:
    def __init__(self) -> None:
        self.signals: list[tuple[str, str, Any]] = []

    async def get(self):
        return self

    def get_workflow_handle(self, wf_id: str):
        temporal = self

        class Handle:
            async def signal(self, name: str, arg: Any) -> None:
                temporal.signals.append((wf_id, name, arg))

        return Handle()


@pytest.fixture
def setup(engine):
    app = create_app(Settings(_env_file=None), engine=engine)
    temporal = _Temporal()
    app.state.temporal = temporal
    pos = EmbeddedStoreFulfillment(engine)
    for ref, kind in ((REF, StoreFulfillmentKind.PICKUP), (SHIP_REF, StoreFulfillmentKind.SHIPMENT)):
        pos.request_fulfillment(StoreFulfillmentRequest(
            ref=ref, store_id="STORE-001", location="STORE-001", order_ref=ref.split("/")[0], kind=kind,
            lines=[StoreFulfillmentLine(line_id="1", item_code="MUG", quantity=1)]))
    store = ApiKeyStore(engine)
    _, kim = store.create("kim", "analyst")
    _, viewer = store.create("vic", "viewer")
    return TestClient(app, raise_server_exceptions=False), temporal, kim, viewer, engine


def test_picked_then_collected_moves_the_row_and_signals_the_order_with_the_principal(setup):
    http, temporal, kim, viewer, engine = setup
    listed = http.get("/pos/stores/STORE-001/fulfillments", headers=headers(viewer)).json()
    assert [f["ref"] for f in listed] == [REF, SHIP_REF]
    resp = http.post(f"/pos/stores/STORE-001/fulfillments/{REF}/picked", headers=headers(kim))
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"workflow_id": "order:shopify:1001", "ref": REF, "state": "PREPARED", "changed": True,
                           "actor": "key:kim"}
    again = http.post(f"/pos/stores/STORE-001/fulfillments/{REF}/picked", headers=headers(kim))
    assert again.status_code == 202 and again.json()["changed"] is False  # told again; the order drops it
    assert http.post(f"/pos/stores/STORE-001/fulfillments/{REF}/collected", headers=headers(kim)).status_code == 202
    events = [(wf, name, e.state, e.actor, e.event_id) for wf, name, e in temporal.signals]
    assert events == [
        ("order:shopify:1001", "store_fulfillment", StoreFulfillmentState.PREPARED, "key:kim",
         f"embedded:{REF}:PREPARED"),
        ("order:shopify:1001", "store_fulfillment", StoreFulfillmentState.PREPARED, "key:kim",
         f"embedded:{REF}:PREPARED"),
        ("order:shopify:1001", "store_fulfillment", StoreFulfillmentState.COMPLETED, "key:kim",
         f"embedded:{REF}:COMPLETED")]
    row = StoreFulfillmentBook(engine, "embedded").row(REF)
    assert (row.state, row.prepared_by, row.completed_by) == ("COMPLETED", "key:kim", "key:kim")


def test_a_shipped_parcel_carries_its_tracking(setup):
    http, temporal, kim, _, _ = setup
    resp = http.post(f"/pos/stores/STORE-001/fulfillments/{SHIP_REF}/shipped", headers=headers(kim),
                     json={"carrier": "DHL", "tracking_number": "JJD1"})
    assert resp.status_code == 409 and "is PROPOSED; it cannot become COMPLETED" in resp.text  # not picked yet
    http.post(f"/pos/stores/STORE-001/fulfillments/{SHIP_REF}/picked", headers=headers(kim))
    resp = http.post(f"/pos/stores/STORE-001/fulfillments/{SHIP_REF}/shipped", headers=headers(kim),
                     json={"carrier": "DHL", "tracking_number": "JJD1"})
    assert resp.status_code == 202, resp.text
    event = temporal.signals[-1][2]
    assert (event.state, event.carrier, event.tracking_number) == (StoreFulfillmentState.COMPLETED, "DHL", "JJD1")


def test_what_the_store_may_not_do_is_refused_and_nothing_is_signalled(setup):
    http, temporal, kim, viewer, _ = setup
    assert http.post(f"/pos/stores/STORE-002/fulfillments/{REF}/picked", headers=headers(kim)).status_code == 404
    assert http.post(f"/pos/stores/STORE-001/fulfillments/{SHIP_REF}/collected",
                     headers=headers(kim)).status_code == 409  # a shipment is shipped, not collected
    assert http.post(f"/pos/stores/STORE-001/fulfillments/{REF}/collected",
                     headers=headers(kim)).status_code == 409  # not picked yet
    assert http.post(f"/pos/stores/STORE-001/fulfillments/{REF}/picked", headers=headers(viewer)).status_code == 403
    assert http.post(f"/pos/stores/STORE-001/fulfillments/{REF}/picked").status_code == 401
    assert http.post(f"/pos/stores/STORE-001/fulfillments/{REF}/teleported", headers=headers(kim)).status_code == 422
    assert temporal.signals == []
