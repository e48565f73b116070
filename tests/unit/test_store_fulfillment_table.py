"""The embedded POS's store fulfillments (adapters/pos/fulfillment.py over `pos_store_fulfillments`), on SQLite and
PostgreSQL (the `engine` fixture): a request is made once per release reference, moves only as Square's states
allow, records who picked and who handed it over, and cancels until it is completed."""

from __future__ import annotations

import pytest

from adapters.pos.fulfillment import (
    EmbeddedStoreFulfillment,
    StoreFulfillmentBook,
    StoreFulfillmentRefused,
    TransitionRefused,
    UnknownStoreFulfillment,
)
from canonical.errors import CannotCancel
from canonical.sourcing import (
    StoreFulfillmentKind,
    StoreFulfillmentLine,
    StoreFulfillmentRequest,
    StoreFulfillmentState,
    release_reference,
)

S = StoreFulfillmentState
REF = release_reference("order:shopify:1001", "STORE-001", 1)


def _request(ref: str = REF, kind=StoreFulfillmentKind.PICKUP, store: str = "STORE-001") -> StoreFulfillmentRequest:
    return StoreFulfillmentRequest(ref=ref, store_id=store, location=store, order_ref="order:shopify:1001", kind=kind,
                                   lines=[StoreFulfillmentLine(line_id="1", item_code="MUG", quantity=2),
                                          StoreFulfillmentLine(line_id="2", item_code="TEA", quantity=1)],
                                   recipient="Ada Lovelace", currency="EUR")


def test_a_request_is_made_once_per_reference_and_read_back(engine):
    pos = EmbeddedStoreFulfillment(engine)
    first = pos.request_fulfillment(_request())
    again = pos.request_fulfillment(_request())  # a retried activity
    assert first == again and first.state == S.PROPOSED and first.kind == StoreFulfillmentKind.PICKUP
    assert [(ln.item_code, ln.quantity) for ln in pos.fulfillment(REF).lines] == [("MUG", 2), ("TEA", 1)]
    assert [f.ref for f in pos.pending("STORE-001")] == [REF] and pos.pending("STORE-002") == []
    with pytest.raises(StoreFulfillmentRefused, match="already at embedded store STORE-001"):
        pos.request_fulfillment(_request(store="STORE-002"))
    assert pos.fulfillment("order:shopify:1/STORE-001/9") is None


def test_staff_move_it_through_squares_states_and_who_did_it_is_kept(engine):
    pos = EmbeddedStoreFulfillment(engine)
    pos.request_fulfillment(_request())
    picked, changed = pos.transition("STORE-001", REF, S.PREPARED, "key:kim")
    assert picked.state == S.PREPARED and changed
    assert pos.transition("STORE-001", REF, S.PREPARED, "key:kim") == (picked, False)  # the same tap twice
    with pytest.raises(TransitionRefused, match="PREPARED; it cannot become RESERVED"):
        pos.transition("STORE-001", REF, S.RESERVED, "key:kim")
    done, _ = pos.transition("STORE-001", REF, S.COMPLETED, "key:lea")
    assert done.state == S.COMPLETED and pos.pending("STORE-001") == []
    row = StoreFulfillmentBook(engine, "embedded").row(REF)
    assert (row.prepared_by, row.completed_by, row.version) == ("key:kim", "key:lea", 3)
    with pytest.raises(UnknownStoreFulfillment):
        pos.transition("STORE-002", REF, S.COMPLETED, "key:lea")  # another store's request
    with pytest.raises(CannotCancel, match="completed \\(collected\\)"):
        pos.cancel_fulfillment(REF)


def test_cancel_withdraws_it_once_and_the_staff_can_no_longer_pick_it(engine):
    pos = EmbeddedStoreFulfillment(engine)
    pos.request_fulfillment(_request(kind=StoreFulfillmentKind.SHIPMENT))
    pos.transition("STORE-001", REF, S.RESERVED, "key:kim")
    assert pos.cancel_fulfillment(REF) is True
    assert pos.cancel_fulfillment(REF) is False  # the undo retried
    assert pos.cancel_fulfillment("order:shopify:1/STORE-001/9") is False  # never made
    assert pos.fulfillment(REF).state == S.CANCELED
    with pytest.raises(TransitionRefused):
        pos.transition("STORE-001", REF, S.PREPARED, "key:kim")


def test_a_store_refusal_keeps_the_reason(engine):
    pos = EmbeddedStoreFulfillment(engine)
    pos.request_fulfillment(_request())
    refused, changed = pos.transition("STORE-001", REF, S.CANCELED, "key:kim", reason="mug broken")
    assert changed and refused.state == S.CANCELED
    assert StoreFulfillmentBook(engine, "embedded").row(REF).reason == "mug broken"


def test_the_worker_serves_pos_store_by_the_embedded_pos_and_pos_square_when_stores_are_named(engine):
    from types import SimpleNamespace

    from pydantic import SecretStr

    from adapters.pos.square_fulfillment import SquareStoreFulfillment
    from runtime.settings import Settings
    from worker import store_fulfillments

    adapters = SimpleNamespace(inventory=SimpleNamespace(engine=engine), store_fulfillment=None)
    plain = Settings(_env_file=None)
    assert set(store_fulfillments(adapters, plain)) == {"store"}  # type: ignore[arg-type]
    assert isinstance(store_fulfillments(adapters, plain)["store"], EmbeddedStoreFulfillment)  # type: ignore[arg-type]
    square = plain.model_copy(update={"square_store_locations": {"STORE-002": "L1"},
                                      "square_access_token": SecretStr("EAAA-test")})
    built = store_fulfillments(adapters, square)  # type: ignore[arg-type]
    assert isinstance(built["square"], SquareStoreFulfillment) and built["square"].locations == {"STORE-002": "L1"}
    with pytest.raises(ValueError, match="RETAILFLOW_SQUARE_ACCESS_TOKEN"):  # stores named, no token: no start
        store_fulfillments(adapters, plain.model_copy(update={"square_store_locations": {"STORE-002": "L1"}}))  # type: ignore[arg-type]
