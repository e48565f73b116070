"""Ship-from-store and click-and-collect through the POS role (issue 20, item 3) on the time-skipping server: a
split order's release to a `pos:store` node is a store fulfillment in the embedded POS's table (the real
`release_to_node` / `cancel_node_release` over `EmbeddedStoreFulfillment` on SQLite); the store staff's pick
confirmation and the customer's pick-up are `store_fulfillment` signals of the order, moved in the table first as
the API does. Planning is the real `plan_sourcing` over a stand-in ledger; the other steps are stand-ins."""

from __future__ import annotations

import uuid
from datetime import time
from types import SimpleNamespace

import pytest
from temporalio import activity

from activities.sourcing import (
    NodeAmendInput,
    NodeReleaseInput,
    NodeReleaseRef,
    NodeReserveInput,
    NodeShipment,
    SourcingActivities,
)
from activities.sourcing import SplitFulfillmentActivities as Real
from adapters.pos.fulfillment import EmbeddedStoreFulfillment
from adapters.sql import create_schema, make_engine
from canonical.fulfillment import AnalystAction
from canonical.inventory import StockShortfall
from canonical.money import Money
from canonical.order import Address, Customer, Order, OrderLine, OrderStatus
from canonical.sourcing import (
    FulfillmentNetwork,
    FulfillmentNode,
    SourcingPolicy,
    StoreFulfillmentEvent,
    StoreFulfillmentState,
)
from tests.workflows.test_split_fulfillment import ADDRESS, NOW, SplitFake, _input, _run, _shipment, _until
from workflows.order_fulfillment import OrderFulfillment


def _node(id_: str, kind: str, adapter: str, cost: str) -> FulfillmentNode:
    return FulfillmentNode(id=id_, kind=kind, location=id_, adapter=adapter, channels=["*"], ship_to=["DE"],
                           capacity_per_day=100, cutoff=time(15), time_zone="Europe/Berlin",
                           cost_per_shipment=Money.of(cost, "EUR"), rank=1)


NETWORK = FulfillmentNetwork(
    node=[_node("STORE-001", "store", "pos:store", "3.00"), _node("WH-BER", "warehouse", "wms:local", "4.90")],
    policy=[SourcingPolicy(channel="shopify", nodes=["STORE-001", "WH-BER"], max_splits=1, allow_backorder=False)])
STOCK = {("STORE-001", "MUG"): 3, ("STORE-001", "TEA"): 5, ("WH-BER", "MUG"): 20, ("WH-BER", "TEA"): 20}


class StoreFake(SplitFake):
    """SplitFake with the real store steps: release_to_node, cancel_node_release and amend_node_release of a
    `pos:*` node run `SplitFulfillmentActivities` over the embedded POS table (others: the stand-ins)."""

    def __init__(self, engine, stock=STOCK) -> None:
        super().__init__(stock)
        self.sourcing = SourcingActivities(self.ledger, NETWORK)  # type: ignore[arg-type]
        self.pos = EmbeddedStoreFulfillment(engine)
        self.real = Real(SimpleNamespace(store_fulfillment=self.pos), wms={})  # type: ignore[arg-type]

    def all(self) -> list:
        fake, standins = self, {a.__name__: a for a in super().all()}

        @activity.defn(name="release_to_node")
        async def release_to_node(inp: NodeReleaseInput) -> NodeReleaseRef:
            if inp.release.role != "pos":
                return await standins["release_to_node"](inp)
            fake.hit("release_to_node", inp)
            return fake.real.release_to_node(inp)

        @activity.defn(name="cancel_node_release")
        async def cancel_node_release(inp: NodeReserveInput) -> bool:
            if inp.release.role != "pos":
                return await standins["cancel_node_release"](inp)
            fake.hit("cancel_node_release", inp)
            return fake.real.cancel_node_release(inp)

        @activity.defn(name="amend_node_release")
        async def amend_node_release(inp: NodeAmendInput) -> bool:
            if inp.release.role != "pos":
                return await standins["amend_node_release"](inp)
            fake.hit("amend_node_release", inp)
            return fake.real.amend_node_release(inp)

        replaced = {f.__name__: f for f in (release_to_node, cancel_node_release, amend_node_release)}
        return [replaced.get(a.__name__, a) for a in standins.values()]


def _engine(tmp_path):
    """The embedded POS's database (a test takes pytest's tmp_path, so tests/replay/record.py can run it)."""
    eng = make_engine(f"sqlite:///{tmp_path / 'pos.db'}")
    create_schema(eng)
    return eng


def _order(lines, *, pickup: str | None = None) -> Order:
    return Order(channel="shopify", external_order_id=uuid.uuid4().hex[:12], order_number="#3001", created_at=NOW,
                 currency="EUR", taxes_included=False, customer=Customer(name="Ada Lovelace"),
                 shipping_address=None if pickup else ADDRESS,
                 billing_address=Address(name="Ada", line1="Unter den Linden 1", city="Berlin", postal_code="10117",
                                         country="DE"),
                 pickup_store=pickup,
                 lines=[OrderLine(line_id=str(i), channel_sku=sku, quantity=q, unit_price=Money.of("10.00", "EUR"))
                        for i, (sku, q) in enumerate(lines, start=1)])


def _store_state(view, node="STORE-001"):
    return next((r.state for r in view.releases if r.node_id == node), None)


async def _staff(fake: StoreFake, handle, ref: str, state: StoreFulfillmentState, actor: str) -> None:
    """What the store route does: move the row (as the authenticated store principal), then signal the order."""
    _, changed = fake.pos.transition("STORE-001", ref, state, actor)
    assert changed
    await handle.signal(OrderFulfillment.store_fulfillment, StoreFulfillmentEvent(
        event_id=f"embedded:{ref}:{state.value}", ref=ref, state=state, actor=actor, occurred_at=NOW))


async def test_click_and_collect_is_released_to_the_store_picked_collected_and_completed(ts_env, tmp_path):
    fake = StoreFake(_engine(tmp_path))
    inp = _input(_order([("MUG", 2), ("TEA", 1)], pickup="STORE-001"))
    seen: dict = {}

    async def during(handle):
        view, _ = await _until(handle, lambda v, s: _store_state(v) == "released", "released to the store")
        ref = view.releases[0].ref
        seen["ref"] = ref
        seen["request"] = fake.pos.fulfillment(ref)
        await _staff(fake, handle, ref, StoreFulfillmentState.PREPARED, "store:STORE-001:kim")
        await _until(handle, lambda v, s: _store_state(v) == "prepared", "picked")
        await handle.signal(OrderFulfillment.store_fulfillment, StoreFulfillmentEvent(  # a redelivery: nothing
            event_id=f"embedded:{ref}:PREPARED", ref=ref, state=StoreFulfillmentState.PREPARED,
            actor="store:STORE-001:kim", occurred_at=NOW))
        await _staff(fake, handle, ref, StoreFulfillmentState.COMPLETED, "store:STORE-001:kim")

    result, status, view = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.COMPLETED
    request = seen["request"]
    assert request.kind.value == "PICKUP" and request.state == StoreFulfillmentState.PROPOSED
    assert [(ln.item_code, ln.quantity) for ln in request.lines] == [("MUG", 2), ("TEA", 1)]
    assert seen["ref"] == f"{inp.order.workflow_id}/STORE-001/1"
    assert fake.arg("plan_sourcing").pickup_node == "STORE-001"
    assert [r.node_id for r in view.releases] == ["STORE-001"] and view.releases[0].state == "shipped"
    steps = {s.name: s.detail for s in status.steps}
    assert steps["store_picked"] == ("store:STORE-001:kim: store STORE-001 picked lines 1, 2, ready for the "
                                     "customer to collect")
    assert steps["store_collected"] == "store:STORE-001:kim: the customer collected lines 1, 2 at store STORE-001"
    assert [n for n in (s.name for s in status.steps) if n == "store_picked"] == ["store_picked"]  # deduplicated
    # the pick-up is the node's shipment: posted against its reservation, confirmed to the channel with no tracking
    delivery = fake.arg("post_node_delivery").shipment
    assert delivery.shipment_id == "STORE-001:1:collected" and delivery.tracking_number is None
    confirmed = fake.arg("confirm_shipment").shipment
    assert confirmed.tracking_number is None and {(x.line_id, x.quantity) for x in confirmed.lines} == {
        ("1", 2), ("2", 1)}
    assert status.shipped_quantities == {"1": 2, "2": 1}
    assert fake.pos.fulfillment(seen["ref"]).state == StoreFulfillmentState.COMPLETED


async def test_cancelling_before_the_pick_cancels_the_store_fulfillment(ts_env, tmp_path):
    fake = StoreFake(_engine(tmp_path))
    inp = _input(_order([("MUG", 1)], pickup="STORE-001"))
    seen: dict = {}

    async def during(handle):
        view, _ = await _until(handle, lambda v, s: _store_state(v) == "released", "released to the store")
        seen["ref"] = view.releases[0].ref
        await handle.signal(OrderFulfillment.cancel, AnalystAction(actor="ana", reason="customer changed mind"))

    result, status, view = await _run(ts_env, fake, inp, during)
    assert status.status == OrderStatus.CANCELLED
    assert fake.pos.fulfillment(seen["ref"]).state == StoreFulfillmentState.CANCELED
    assert f"cancel_node_release:{seen['ref']}" in status.compensations
    assert f"release_node_stock:{seen['ref']}" in status.compensations
    # the staff can no longer pick it
    with pytest.raises(ValueError, match="CANCELED"):
        fake.pos.transition("STORE-001", seen["ref"], StoreFulfillmentState.PREPARED, "store:STORE-001:kim")


async def test_a_store_that_refuses_its_ship_from_store_request_is_re_sourced_to_the_warehouse(ts_env, tmp_path):
    fake = StoreFake(_engine(tmp_path))
    inp = _input(_order([("MUG", 1), ("TEA", 2)]))  # shipped: the cheapest node is the store
    seen: dict = {}

    async def during(handle):
        view, _ = await _until(handle, lambda v, s: _store_state(v) == "released", "released to the store")
        ref = view.releases[0].ref
        seen["request"] = fake.pos.fulfillment(ref)
        await _staff(fake, handle, ref, StoreFulfillmentState.CANCELED, "store:STORE-001:kim")
        view, _ = await _until(handle, lambda v, s: _store_state(v, "WH-BER") == "released", "re-sourced")
        seen["view"] = view
        wh = next(r for r in view.releases if r.node_id == "WH-BER")
        await handle.signal(OrderFulfillment.node_shipment, NodeShipment(
            release_ref=wh.ref, shipment=_shipment("S-BER", ("1", "MUG", 1), ("2", "TEA", 2))))

    result, status, view = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.COMPLETED
    assert seen["request"].kind.value == "SHIPMENT"
    assert [(r.node_id, r.state) for r in view.releases] == [("STORE-001", "refused"), ("WH-BER", "shipped")]
    assert "STORE-001" in view.excluded and "canceled the request" in view.excluded["STORE-001"]
    # the store withdrew it itself: no cancellation is sent to it, its reserved stock is given back
    assert fake.count()["cancel_node_release"] == 0
    assert fake.arg("release_node_stock").release.node_id == "STORE-001"


async def test_a_store_sale_that_takes_a_store_release_units_moves_those_lines_and_amends_the_store_request(
        ts_env, tmp_path):
    fake = StoreFake(_engine(tmp_path))
    inp = _input(_order([("MUG", 1), ("TEA", 2)]))
    seen: dict = {}

    async def during(handle):
        view, _ = await _until(handle, lambda v, s: _store_state(v) == "released", "released to the store")
        seen["ref"] = view.releases[0].ref
        await handle.signal(OrderFulfillment.stock_shortfall, StockShortfall(
            reservation_key=seen["ref"], item_code="MUG", location="STORE-001", store="STORE-001", quantity=1,
            cause_source="pos:STORE-001", cause_event_id="pos:sale-1:1", occurred_at=NOW))
        view, _ = await _until(handle, lambda v, s: _store_state(v, "WH-BER") == "released", "re-sourced")
        seen["view"] = view
        seen["request"] = fake.pos.fulfillment(seen["ref"])
        await handle.signal(OrderFulfillment.cancel, AnalystAction(actor="ana", reason="test over"))

    await _run(ts_env, fake, inp, during)
    wh = next(r for r in seen["view"].releases if r.node_id == "WH-BER")
    assert wh.line_ids == ["1"]  # only the line whose units the sale took moved
    store = next(r for r in seen["view"].releases if r.node_id == "STORE-001")
    assert (store.line_ids, store.state) == (["2"], "released")
    request = seen["request"]  # the store's request, amended before the staff picked it
    assert request.state == StoreFulfillmentState.PROPOSED
    assert [(ln.line_id, ln.item_code, ln.quantity) for ln in request.lines] == [("2", "TEA", 2)]
    assert fake.count()["amend_node_release"] == 1


async def test_a_store_sale_after_the_staff_picked_parks_the_order_instead_of_sending_the_lines_twice(
        ts_env, tmp_path):
    fake = StoreFake(_engine(tmp_path))
    inp = _input(_order([("MUG", 1), ("TEA", 2)]))

    async def during(handle):
        view, _ = await _until(handle, lambda v, s: _store_state(v) == "released", "released to the store")
        ref = view.releases[0].ref
        await _staff(fake, handle, ref, StoreFulfillmentState.PREPARED, "store:STORE-001:kim")
        await _until(handle, lambda v, s: _store_state(v) == "prepared", "picked")
        await handle.signal(OrderFulfillment.stock_shortfall, StockShortfall(
            reservation_key=ref, item_code="MUG", location="STORE-001", store="STORE-001", quantity=1,
            cause_source="pos:STORE-001", cause_event_id="pos:sale-2:1", occurred_at=NOW))
        _, status = await _until(handle, lambda v, s: s.status == OrderStatus.NEEDS_ATTENTION, "parked")
        assert "STORE-001" in (status.reason or ""), status.reason
        await handle.signal(OrderFulfillment.cancel, AnalystAction(actor="ana", reason="test over"))

    await _run(ts_env, fake, inp, during)


async def test_a_pickup_store_that_refuses_parks_the_order_with_the_reason(ts_env, tmp_path):
    fake = StoreFake(_engine(tmp_path))
    inp = _input(_order([("MUG", 1)], pickup="STORE-001"))

    async def during(handle):
        view, _ = await _until(handle, lambda v, s: _store_state(v) == "released", "released to the store")
        await _staff(fake, handle, view.releases[0].ref, StoreFulfillmentState.CANCELED, "store:STORE-001:kim")
        _, status = await _until(handle, lambda v, s: s.status == OrderStatus.NEEDS_ATTENTION, "parked")
        assert "pickup store STORE-001 refused or cannot serve this order" in (status.reason or "")
        await handle.signal(OrderFulfillment.cancel, AnalystAction(actor="ana", reason="no stock to collect"))

    _, status, view = await _run(ts_env, fake, inp, during)
    assert status.status == OrderStatus.CANCELLED
    assert [r.node_id for r in view.releases] == ["STORE-001"]  # never sent to a warehouse: the customer collects
