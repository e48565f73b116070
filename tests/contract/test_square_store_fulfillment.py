"""Square as a store's POS for ship-from-store and click-and-collect (adapters/pos/square_fulfillment.py):

- Square's published `order.fulfillment.updated` example (connect-api-specification `api.json`, unchanged:
  tests/fixtures/SOURCES.md) is signed and verified like every Square webhook, and mapped to the order's
  `store_fulfillment` signal when the Square order is one the adapter created;
- the CreateOrder and UpdateOrder requests the adapter sends are checked against Square's published schemas
  (`orders_fulfillment_schemas.json`, extracted from the same `api.json`): every field exists, enums and
  maximum lengths hold, required fields are there.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from adapters.pos import square
from adapters.pos.fulfillment import StoreFulfillmentBook
from adapters.pos.square_catalog import SQUARE_VERSION
from adapters.pos.square_fulfillment import (
    build_square_store_fulfillment,
    create_order_body,
    fulfillment_events,
    reference_id,
)
from api.intake.pipeline import Delivery, Fault, Ignored
from api.intake.square import SOURCE
from canonical.errors import CannotCancel
from canonical.sourcing import (
    StoreFulfillmentKind,
    StoreFulfillmentLine,
    StoreFulfillmentRequest,
    StoreFulfillmentState,
    release_reference,
)
from runtime.settings import Settings
from tests.conftest import fixture_bytes

BODY = fixture_bytes("square", "webhook_order.fulfillment.updated_example.json")
SCHEMAS: dict[str, Any] = json.loads(fixture_bytes("square", "orders_fulfillment_schemas.json"))
ORDER_ID, UID, LOCATION = "eA3vssLHKJrv9H0IdJCM3gNqfdcZY", "VWJ1N9leLqjSDLvF2hvYjD", "FPYCBCHYMXFK1"  # the example's
REF = release_reference("order:shopify:1001", "STORE-001", 1)
KEY, URL = "sig-key-test", "https://rf.example.com/webhooks/square"


def _request(kind=StoreFulfillmentKind.PICKUP) -> StoreFulfillmentRequest:
    return StoreFulfillmentRequest(ref=REF, store_id="STORE-001", location="STORE-001", order_ref="order:shopify:1001",
                                   kind=kind, lines=[StoreFulfillmentLine(line_id="1", item_code="MUG", quantity=2)],
                                   recipient="Ada Lovelace", currency="EUR")


def _seed(engine) -> StoreFulfillmentBook:
    """What `request_fulfillment` keeps once Square created the order (the example's order and fulfillment)."""
    book = StoreFulfillmentBook(engine, "square")
    book.add(_request(), state=StoreFulfillmentState.PROPOSED, external_id=ORDER_ID, fulfillment_uid=UID, version=5)
    return book


# -- the webhook ------------------------------------------------------------------------------------------------------
def test_the_published_fulfillment_updated_example_maps_to_the_orders_event(engine):
    book = _seed(engine)
    [event] = fulfillment_events(json.loads(BODY), book)
    assert event.ref == REF and event.state == StoreFulfillmentState.RESERVED
    assert event.actor == f"square:{LOCATION}"
    assert event.occurred_at == datetime(2020, 4, 16, 23, 16, 30, 789000, tzinfo=UTC)
    assert event.event_id == f"square:b3adf364-4937-436e-a833-49c72b4baee8:{UID}:RESERVED"
    row = book.row(REF)
    assert (row.state, row.version) == ("RESERVED", 6)  # the table follows Square


def test_a_fulfillment_update_of_an_order_the_platform_did_not_create_is_none_of_its_business(engine):
    assert fulfillment_events(json.loads(BODY), StoreFulfillmentBook(engine, "square")) == []


def test_unmappable_fulfillment_updates_are_refused():
    book = StoreFulfillmentBook.__new__(StoreFulfillmentBook)
    payload = json.loads(BODY)
    payload["data"]["object"]["order_fulfillment_updated"]["fulfillment_update"][0]["new_state"] = "TELEPORTED"
    with pytest.raises(square.SquareMappingError, match="unknown fulfillment state"):
        fulfillment_events(payload, book)
    del payload["data"]["object"]["order_fulfillment_updated"]
    with pytest.raises(square.SquareMappingError, match="order_fulfillment_updated is missing"):
        fulfillment_events(payload, book)


class _Client:
    def __init__(self) -> None:
        self.signals: list[tuple[str, str, Any]] = []

    def get_workflow_handle(self, wf_id: str):
        client = self

        class Handle:
            async def signal(self, name: str, arg: Any) -> None:
                client.signals.append((wf_id, name, arg))

        return Handle()


def _delivery(engine, body: bytes, signature: str | None, client: _Client) -> Delivery:
    settings = Settings(square_webhook_signature_key=SecretStr(KEY), square_notification_url=URL)

    async def get() -> _Client:
        return client

    return Delivery(source="square", body=body, headers={square.SIGNATURE_HEADER: signature or ""},
                    settings=settings, engine=engine, store=None, client_getter=get, replay=True)  # type: ignore[arg-type]


async def test_the_signed_webhook_is_verified_and_signalled_to_the_order(engine):
    _seed(engine)
    client = _Client()
    d = _delivery(engine, BODY, square.signature(KEY, URL, BODY), client)
    SOURCE.verify(d)
    key = SOURCE.identify(d)
    assert (key.topic, key.delivery_id) == ("order.fulfillment.updated", "b3adf364-4937-436e-a833-49c72b4baee8")
    act = await SOURCE.map(d, key)
    assert callable(act)
    accepted = await act()  # type: ignore[operator]
    assert accepted.workflow_id == "order:shopify:1001" and accepted.outcome.status_code == 202
    [(wf_id, name, event)] = client.signals
    assert (wf_id, name, event.ref, event.state) == ("order:shopify:1001", "store_fulfillment", REF,
                                                     StoreFulfillmentState.RESERVED)
    # a body changed after signing, or no signature, is refused (401) before anything is read
    with pytest.raises(Fault) as refused:
        SOURCE.verify(_delivery(engine, BODY.replace(b"RESERVED", b"COMPLETED"), square.signature(KEY, URL, BODY),
                                client))
    assert refused.value.status_code == 401
    with pytest.raises(Fault):
        SOURCE.verify(_delivery(engine, BODY, None, client))


async def test_an_unknown_orders_fulfillment_update_is_ignored(engine):
    d = _delivery(engine, BODY, square.signature(KEY, URL, BODY), _Client())
    assert isinstance(await SOURCE.map(d, SOURCE.identify(d)), Ignored)


# -- the requests, against Square's published schemas ----------------------------------------------------------------
def _ref(schema: dict[str, Any]) -> dict[str, Any] | None:
    ref = schema.get("$ref")
    return SCHEMAS[ref.rsplit("/", 1)[1]] if ref else None


def _conforms(value: Any, schema: dict[str, Any], where: str) -> None:
    target = _ref(schema) or schema
    if "enum" in target:
        assert value in target["enum"], f"{where}: {value!r} not in {target['enum']}"
        return
    if target.get("type") == "object" or "properties" in target:
        assert isinstance(value, dict), where
        props = target.get("properties") or {}
        for name in target.get("required") or []:
            assert name in value, f"{where}: required {name} missing"
        for name, inner in value.items():
            assert name in props, f"{where}: {name} is not a field of the schema"
            spec = props[name]
            if spec.get("type") == "array":
                assert isinstance(inner, list), f"{where}.{name}"
                for i, item in enumerate(inner):
                    _conforms(item, spec["items"], f"{where}.{name}[{i}]")
            elif "$ref" in spec:
                if _ref(spec) is not None:
                    _conforms(inner, spec, f"{where}.{name}")
            else:
                if spec.get("type") == "string":
                    assert isinstance(inner, str), f"{where}.{name}: not a string"
                    assert len(inner) <= spec.get("maxLength", 10**9), f"{where}.{name}: longer than maxLength"
                if spec.get("type") == "integer":
                    assert isinstance(inner, int), f"{where}.{name}"
        return


@pytest.mark.parametrize("kind", list(StoreFulfillmentKind))
def test_the_create_order_request_is_what_squares_schema_describes(kind):
    body = create_order_body(_request(kind), LOCATION)
    _conforms(body, SCHEMAS["CreateOrderRequest"], "CreateOrderRequest")
    [fulfillment] = body["order"]["fulfillments"]
    assert fulfillment["type"] == kind.value and fulfillment["state"] == "PROPOSED"
    assert ("pickup_details" in fulfillment) == (kind == StoreFulfillmentKind.PICKUP)
    assert body["order"]["line_items"] == [{"name": "MUG", "quantity": "2", "note": "order line 1",
                                            "base_price_money": {"amount": 0, "currency": "EUR"}}]
    assert body["order"]["reference_id"] == reference_id(REF) and len(reference_id(REF)) <= 40
    assert body["order"]["metadata"] == {"retailflow_ref": REF}


def test_the_checker_refuses_what_square_would_not_take():
    body = create_order_body(_request(), LOCATION)
    body["order"]["fulfillments"][0]["type"] = "TELEPORT"
    with pytest.raises(AssertionError, match="TELEPORT"):
        _conforms(body, SCHEMAS["CreateOrderRequest"], "CreateOrderRequest")
    body = create_order_body(_request(), LOCATION)
    body["order"]["reference_id"] = REF * 2  # longer than 40
    with pytest.raises(AssertionError, match="maxLength"):
        _conforms(body, SCHEMAS["CreateOrderRequest"], "CreateOrderRequest")


def test_the_adapter_creates_reads_and_cancels_through_the_orders_api(engine):
    sent: list[httpx.Request] = []
    state = {"fulfillment": "PROPOSED", "version": 1}

    def order() -> dict:
        return {"order": {"id": ORDER_ID, "location_id": LOCATION, "version": state["version"], "state": "OPEN",
                          "fulfillments": [{"uid": UID, "type": "PICKUP", "state": state["fulfillment"]}]}}

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.method == "PUT":
            state.update(fulfillment="CANCELED", version=state["version"] + 1)
        return httpx.Response(200, json=order())

    adapter = build_square_store_fulfillment(Settings(square_access_token=SecretStr("EAAA-test")),
                                             StoreFulfillmentBook(engine, "square"), locations={"STORE-001": LOCATION},
                                             transport=httpx.MockTransport(handler))
    made = adapter.request_fulfillment(_request())
    assert (made.external_id, made.state) == (ORDER_ID, StoreFulfillmentState.PROPOSED)
    assert adapter.request_fulfillment(_request()) == made  # once: the second call reads the table
    create = sent[0]
    assert (create.method, create.url.path) == ("POST", "/v2/orders")
    assert create.headers["Square-Version"] == SQUARE_VERSION and create.headers["Authorization"] == "Bearer EAAA-test"
    assert json.loads(create.content) == create_order_body(_request(), LOCATION)
    assert adapter.cancel_fulfillment(REF) is True
    put = sent[-1]
    assert (put.method, put.url.path) == ("PUT", f"/v2/orders/{ORDER_ID}")
    update = json.loads(put.content)
    _conforms(update, SCHEMAS["UpdateOrderRequest"], "UpdateOrderRequest")
    assert update["order"]["version"] == 1 and update["order"]["fulfillments"] == [{"uid": UID, "state": "CANCELED"}]
    assert adapter.cancel_fulfillment(REF) is False  # Square says it is cancelled already
    assert adapter.fulfillment(REF).state == StoreFulfillmentState.CANCELED
    state["fulfillment"] = "COMPLETED"
    with pytest.raises(CannotCancel, match="completed"):
        adapter.cancel_fulfillment(REF)


def test_the_adapter_amends_a_request_before_the_pick_with_a_sparse_update_orders_schema_describes(engine):
    """A store sale took the mugs: the request keeps the tea only — the mug line item is cleared, the tea's
    quantity lowered, at the order's current version; once the staff picked it (PREPARED), it cannot change."""
    sent: list[httpx.Request] = []
    state = {"fulfillment": "PROPOSED", "version": 3}
    items = [{"uid": "li-mug", "name": "MUG", "quantity": "2", "note": "order line 1"},
             {"uid": "li-tea", "name": "TEA", "quantity": "3", "note": "order line 2"}]

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.method == "PUT":
            state["version"] += 1
        return httpx.Response(200, json={"order": {
            "id": ORDER_ID, "location_id": LOCATION, "version": state["version"], "state": "OPEN", "line_items": items,
            "fulfillments": [{"uid": UID, "type": "SHIPMENT", "state": state["fulfillment"]}]}})

    book = StoreFulfillmentBook(engine, "square")
    request = _request().model_copy(update={"lines": [StoreFulfillmentLine(line_id="1", item_code="MUG", quantity=2),
                                                      StoreFulfillmentLine(line_id="2", item_code="TEA", quantity=3)]})
    book.add(request, state=StoreFulfillmentState.PROPOSED, external_id=ORDER_ID, fulfillment_uid=UID, version=3)
    adapter = build_square_store_fulfillment(Settings(square_access_token=SecretStr("EAAA-test")), book,
                                             locations={"STORE-001": LOCATION}, transport=httpx.MockTransport(handler))
    keep = [StoreFulfillmentLine(line_id="2", item_code="TEA", quantity=1)]
    assert adapter.amend_fulfillment(REF, keep) is True
    put = sent[-1]
    assert (put.method, put.url.path) == ("PUT", f"/v2/orders/{ORDER_ID}")
    update = json.loads(put.content)
    _conforms(update, SCHEMAS["UpdateOrderRequest"], "UpdateOrderRequest")
    assert update["order"] == {"location_id": LOCATION, "version": 3, "line_items": [{"uid": "li-tea", "quantity": "1"}]}
    assert update["fields_to_clear"] == ["line_items[li-mug]"]
    assert [ln.item_code for ln in adapter.fulfillment(REF).lines] == ["TEA"]
    state["fulfillment"] = "PREPARED"
    with pytest.raises(CannotCancel, match="PREPARED"):
        adapter.amend_fulfillment(REF, [])
