"""OrderFulfillment's split path (issue 20) on the time-skipping server: an order of a channel with a fulfillment
network is planned over the nodes (the real `SourcingActivities.plan_sourcing` over a stand-in ledger), reserved and
released per node (stand-in node activities), tracked and confirmed per node, compensated per node; a node that
refuses is re-sourced without it; a backordered line is released when stock is received; a kit is reserved as its
components. Without a network the order runs exactly as before (tests/workflows/test_order_fulfillment.py)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, time, timedelta
from types import SimpleNamespace

from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.inventory import OrderKeysInput
from activities.orders import OrderInput
from activities.sourcing import (
    NodeAmendInput,
    NodeDeliveryInput,
    NodeRefusal,
    NodeReleaseInput,
    NodeReleaseRef,
    NodeReserveInput,
    NodeShipment,
    NodeUpdates,
    SourcingActivities,
    StockReceived,
)
from canonical.fulfillment import (
    AnalystAction,
    LineCancel,
    LineCancelRequest,
    OrderFulfillmentInput,
    Reservation,
    ReservedLine,
    ResolvedLine,
)
from canonical.inventory import StockShortfall
from canonical.kits import Kit, KitComponent
from canonical.money import Money
from canonical.order import Address, Order, OrderLine, OrderStatus, Shipment, ShipmentLine
from canonical.sourcing import (
    FulfillmentNetwork,
    FulfillmentNode,
    ItemFlags,
    SourcingPlan,
    SourcingPolicy,
    SourcingRequest,
)
from tests.workflows.test_order_fulfillment import Fake
from workflows.order_fulfillment import OrderFulfillment

NOW = datetime(2026, 11, 1, 9, tzinfo=UTC)
ADDRESS = Address(name="Ada", line1="Unter den Linden 1", city="Berlin", postal_code="10117", country="DE")


def _node(id_: str, kind: str, location: str, adapter: str, cost: str, rank: int) -> FulfillmentNode:
    return FulfillmentNode(id=id_, kind=kind, location=location, adapter=adapter, channels=["*"], ship_to=["DE"],
                           oversize=kind != "dropship", capacity_per_day=100, cutoff=time(15),
                           time_zone="Europe/Berlin", cost_per_shipment=Money.of(cost, "EUR"), rank=rank)


NETWORK = FulfillmentNetwork(
    node=[_node("WH-BER", "warehouse", "WH-BER", "wms:local", "4.90", 1),
          _node("WH-HAM", "3pl", "WH-HAM", "wms:shipbob", "6.00", 2),
          _node("ACME", "dropship", "SUP-ACME", "supplier:edi", "9.00", 3)],
    policy=[SourcingPolicy(channel="shopify", nodes=["WH-BER", "WH-HAM", "ACME"], max_splits=2, allow_backorder=True),
            SourcingPolicy(channel="amazon", nodes=["WH-BER", "ACME"], max_splits=1, allow_backorder=False)],
    kit=[Kit(item_code="DESK-SET", components=[KitComponent(item_code="DESK-LAMP", quantity=1),
                                               KitComponent(item_code="LED-BULB", quantity=2)])],
    items={"FLOOR-LAMP": ItemFlags(oversize=True)},
)

# the docs' worked example (docs/fulfillment.md): lines 1-3 from WH-BER, the pendant only at the supplier
STOCK = {("WH-BER", "DESK-LAMP"): 12, ("WH-BER", "LED-BULB"): 40, ("WH-BER", "FLOOR-LAMP"): 3,
         ("SUP-ACME", "DESK-LAMP"): 50, ("SUP-ACME", "PENDANT-ACME"): 200,
         ("WH-HAM", "DESK-LAMP"): 5, ("WH-HAM", "LED-BULB"): 10, ("WH-HAM", "FLOOR-LAMP"): 1}
FOUR_LINES = (("DESK-LAMP", 1), ("LED-BULB", 4), ("FLOOR-LAMP", 1), ("PENDANT-ACME", 1))


class StandInLedger:
    """What SourcingActivities reads of the inventory ledger: levels per item (free stock) and channel policies."""

    def __init__(self, stock: dict[tuple[str, str], int]) -> None:
        self.stock = dict(stock)
        self.policies: dict = {}

    def levels(self, item: str) -> list:
        return [SimpleNamespace(location=loc, free=qty) for (loc, it), qty in sorted(self.stock.items()) if it == item]


class SplitFake(Fake):
    """The order stand-ins, SKUs resolved to the same item codes, plus the real sourcing activity over a stand-in
    ledger and stand-ins of the per-node activities. `refuse_release`: node ids whose release_to_node refuses."""

    def __init__(self, stock: dict[tuple[str, str], int], refuse_release: frozenset[str] = frozenset(),
                 supplier_answers: bool = True) -> None:
        super().__init__()
        self.supplier_answers = supplier_answers
        self.supplier_rejects = False
        self.ledger = StandInLedger(stock)
        self.sourcing = SourcingActivities(self.ledger, NETWORK)  # type: ignore[arg-type]
        self.refuse_release = refuse_release

    def all(self) -> list:
        fake = self

        @activity.defn(name="resolve_skus")
        async def resolve_skus(inp: OrderInput) -> list[ResolvedLine]:
            fake.hit("resolve_skus", inp)
            return [ResolvedLine(line_id=ln.line_id, channel_sku=ln.channel_sku, item_code=ln.channel_sku,
                                 quantity=ln.quantity) for ln in inp.order.lines]

        @activity.defn(name="plan_sourcing")
        async def plan_sourcing(inp: SourcingRequest) -> SourcingPlan:
            fake.hit("plan_sourcing", inp)
            return fake.sourcing.plan_sourcing(inp)

        @activity.defn(name="reserve_at_node")
        async def reserve_at_node(inp: NodeReserveInput) -> Reservation:
            fake.hit("reserve_at_node", inp)
            return Reservation(key=inp.release.ref, lines=[
                ReservedLine(item_code=ln.item_code, location=inp.release.location, quantity=ln.quantity)
                for ln in inp.release.lines])

        @activity.defn(name="release_node_stock")
        async def release_node_stock(inp: NodeReserveInput) -> bool:
            fake.hit("release_node_stock", inp)
            return True

        @activity.defn(name="reduce_node_reservation")
        async def reduce_node_reservation(inp: NodeAmendInput) -> int:
            fake.hit("reduce_node_reservation", inp)
            return 1

        @activity.defn(name="release_to_node")
        async def release_to_node(inp: NodeReleaseInput) -> NodeReleaseRef:
            fake.hit("release_to_node", inp)
            if inp.release.node_id in fake.refuse_release:
                raise ApplicationError(f"{inp.release.node_id} refused the request", {"action": "re-source"},
                                       type="NodeRefused", non_retryable=True)
            prefix = "PO" if inp.release.role == "supplier" else "REL"
            return NodeReleaseRef(ref=inp.release.ref, node_id=inp.release.node_id,
                                  release_id=f"{prefix}-{inp.release.node_id}-{inp.release.ref.rsplit('/', 1)[1]}")

        @activity.defn(name="cancel_node_release")
        async def cancel_node_release(inp: NodeReserveInput) -> bool:
            fake.hit("cancel_node_release", inp)
            return True

        @activity.defn(name="amend_node_release")
        async def amend_node_release(inp: NodeAmendInput) -> bool:
            fake.hit("amend_node_release", inp)
            return True

        @activity.defn(name="post_node_delivery")
        async def post_node_delivery(inp: NodeDeliveryInput) -> None:
            fake.hit("post_node_delivery", inp)

        @activity.defn(name="poll_node")
        async def poll_node(inp: NodeReserveInput) -> NodeUpdates:
            fake.hit("poll_node", inp)
            if fake.supplier_rejects:
                return NodeUpdates(acknowledged=True, refusal=NodeRefusal(
                    release_ref=inp.release.ref, node_id=inp.release.node_id, line_ids=[],
                    reason=f"ACME rejected purchase order {inp.release.release_id} (855 RJ)"))
            return NodeUpdates(acknowledged=fake.supplier_answers)

        @activity.defn(name="forget_backorders")
        async def forget_backorders(inp: OrderKeysInput) -> int:  # the order ends: its backorders wait no more
            fake.hit("forget_backorders", inp)
            return 0

        base = [a for a in super().all() if a.__name__ != "resolve_skus"]
        return [*base, resolve_skus, plan_sourcing, reserve_at_node, release_node_stock, reduce_node_reservation,
                release_to_node, cancel_node_release, amend_node_release, post_node_delivery, poll_node,
                forget_backorders]


def _order(lines=FOUR_LINES, channel: str = "shopify") -> Order:
    return Order(channel=channel, external_order_id=uuid.uuid4().hex[:12], order_number="#2001", created_at=NOW,
                 currency="EUR", taxes_included=False, shipping_address=ADDRESS,
                 lines=[OrderLine(line_id=str(i), channel_sku=sku, quantity=q, unit_price=Money.of("10.00", "EUR"))
                        for i, (sku, q) in enumerate(lines, start=1)])


def _input(order: Order) -> OrderFulfillmentInput:
    return OrderFulfillmentInput(order=order, split_fulfillment=True)


def _shipment(shipment_id: str, *lines: tuple[str, str, int]) -> Shipment:
    return Shipment(shipment_id=shipment_id, carrier="DHL", tracking_number=f"JJD{shipment_id}", shipped_at=NOW,
                    lines=[ShipmentLine(line_id=lid, channel_sku=sku, quantity=q) for lid, sku, q in lines])


async def _until(handle, predicate, what: str, timeout: float = 20):
    deadline = asyncio.get_running_loop().time() + timeout
    view = None
    while asyncio.get_running_loop().time() < deadline:
        status = await handle.query(OrderFulfillment.status)
        view = await handle.query(OrderFulfillment.sourcing)  # after the status: at least as new
        if predicate(view, status):
            return view, status
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached {what}; last {view}")


def _released(view, status) -> bool:
    return status.status == OrderStatus.RELEASED


async def _run(ts_env, fake: SplitFake, inp: OrderFulfillmentInput, during):
    tq = f"split-{uuid.uuid4()}"
    async with Worker(ts_env.client, task_queue=tq, workflows=[OrderFulfillment], activities=fake.all()):
        handle = await ts_env.client.start_workflow(OrderFulfillment.run, inp, id=inp.order.workflow_id,
                                                    task_queue=tq)
        await during(handle)
        try:
            result = await handle.result()
        except WorkflowFailureError as err:
            result = err
        return result, await handle.query(OrderFulfillment.status), await handle.query(OrderFulfillment.sourcing)


def _by_node(view) -> dict[str, tuple[str, list[str], str]]:
    return {r.node_id: (r.state, r.line_ids, r.adapter) for r in view.releases}


async def test_a_four_line_order_splits_over_a_warehouse_and_a_drop_ship_supplier_and_ships_per_node(ts_env):
    fake = SplitFake(STOCK)
    inp = _input(_order())
    seen = {}

    async def during(handle):
        view, _ = await _until(handle, _released, "released")
        seen["released"] = view
        await handle.signal(OrderFulfillment.shipment,  # the warehouse's shipment names its lines, not its node
                            _shipment("S-BER", ("1", "DESK-LAMP", 1), ("2", "LED-BULB", 4), ("3", "FLOOR-LAMP", 1)))
        _, status = await _until(handle, lambda v, s: s.status == OrderStatus.PARTIALLY_SHIPPED, "partially shipped")
        seen["partial"] = status
        acme = next(r for r in view.releases if r.node_id == "ACME")
        await handle.signal(OrderFulfillment.node_shipment,
                            NodeShipment(release_ref=acme.ref, shipment=_shipment("S-ACME", ("4", "PENDANT-ACME", 1))))

    result, status, view = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.COMPLETED
    released = seen["released"]
    assert _by_node(released) == {"WH-BER": ("released", ["1", "2", "3"], "wms:local"),
                                  "ACME": ("released", ["4"], "supplier:edi")}
    assert released.summary == "shipped from WH-BER: 3 of 4 lines; line 4 from supplier ACME (no stock at WH-BER)"
    # one reservation and one fulfillment request per node, each under its own reference
    reserved = [a.release for a in (fake.arg("reserve_at_node", i) for i in range(2))]
    assert [(r.node_id, [(ln.item_code, ln.quantity) for ln in r.lines]) for r in reserved] == [
        ("WH-BER", [("DESK-LAMP", 1), ("LED-BULB", 4), ("FLOOR-LAMP", 1)]), ("ACME", [("PENDANT-ACME", 1)])]
    assert [fake.arg("release_to_node", i).release.ref for i in range(2)] == [
        f"{inp.order.workflow_id}/WH-BER/1", f"{inp.order.workflow_id}/ACME/2"]
    assert fake.count()["reserve_stock"] == 0 and fake.count()["release_to_wms"] == 0
    # each node's shipment posted against its own release and confirmed to the channel as it happened
    assert [fake.arg("post_node_delivery", i).release.node_id for i in range(2)] == ["WH-BER", "ACME"]
    assert [fake.arg("confirm_shipment", i).shipment.shipment_id for i in range(2)] == ["S-BER", "S-ACME"]
    assert seen["partial"].shipped_quantities == {"1": 1, "2": 4, "3": 1, "4": 0}
    assert {r.node_id: r.state for r in view.releases} == {"WH-BER": "shipped", "ACME": "shipped"}
    assert status.shipped_quantities == {"1": 1, "2": 4, "3": 1, "4": 1}


async def test_cancelling_a_split_order_undoes_each_node_in_reverse(ts_env):
    fake = SplitFake(STOCK)
    inp = _input(_order())

    async def during(handle):
        await _until(handle, _released, "released")
        await handle.signal(OrderFulfillment.cancel, AnalystAction(actor="ana@example.com", reason="customer asked"))

    result, status, view = await _run(ts_env, fake, inp, during)
    wf = inp.order.workflow_id
    assert status.status == OrderStatus.CANCELLED
    assert status.compensations == [
        f"cancel_node_release:{wf}/ACME/2", f"cancel_node_release:{wf}/WH-BER/1", "cancel_sales_order", "void_tax",
        f"release_node_stock:{wf}/ACME/2", f"release_node_stock:{wf}/WH-BER/1", "notify_channel_cancelled"]
    assert [(a.release.node_id, a.release.adapter) for a in (fake.arg("cancel_node_release", i) for i in range(2))] \
        == [("ACME", "supplier:edi"), ("WH-BER", "wms:local")]
    assert [fake.arg("release_node_stock", i).release.node_id for i in range(2)] == ["ACME", "WH-BER"]


async def test_a_node_refusing_after_release_is_re_sourced_without_it(ts_env):
    fake = SplitFake(STOCK)
    inp = _input(_order())
    wf = inp.order.workflow_id

    async def during(handle):
        await _until(handle, _released, "released")
        await handle.signal(OrderFulfillment.node_refused,
                            NodeRefusal(node_id="WH-BER", reason="WMS exception: location blocked for inventory count"))
        view, _ = await _until(handle, lambda v, s: any(r.node_id == "WH-HAM" and r.state == "released"
                                                        for r in v.releases), "re-sourced to WH-HAM")
        ham = next(r for r in view.releases if r.node_id == "WH-HAM")
        await handle.signal(OrderFulfillment.node_shipment, NodeShipment(release_ref=ham.ref, shipment=_shipment(
            "S-HAM", ("1", "DESK-LAMP", 1), ("2", "LED-BULB", 4), ("3", "FLOOR-LAMP", 1))))
        await handle.signal(OrderFulfillment.node_shipment,
                            NodeShipment(node_id="ACME", shipment=_shipment("S-ACME", ("4", "PENDANT-ACME", 1))))

    result, status, view = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.COMPLETED
    assert {r.node_id: (r.state, r.line_ids) for r in view.releases} == {
        "WH-BER": ("refused", ["1", "2", "3"]), "ACME": ("shipped", ["4"]), "WH-HAM": ("shipped", ["1", "2", "3"])}
    assert view.excluded == {"WH-BER": "WMS exception: location blocked for inventory count"}
    # the refused node's request was cancelled and its stock given back before the lines went elsewhere
    assert f"cancel_node_release:{wf}/WH-BER/1" in status.compensations
    assert f"release_node_stock:{wf}/WH-BER/1" in status.compensations
    replan = fake.arg("plan_sourcing", 1)
    assert replan.exclude_nodes == ["WH-BER"] and [ln.line_id for ln in replan.lines] == ["1", "2", "3"]
    assert [fake.arg("release_to_node", i).release.ref for i in range(3)] == [
        f"{wf}/WH-BER/1", f"{wf}/ACME/2", f"{wf}/WH-HAM/3"]
    names = fake.names()
    assert names.index("cancel_node_release") < names.index("release_node_stock") < len(names) - 1 - names[::-1].index(
        "release_to_node")
    refused = next(s for s in status.steps if s.name == "node_refused")
    assert refused.detail == ("warehouse WH-BER refused line(s) 1, 2, 3: WMS exception: location blocked for "
                              "inventory count")


async def test_a_node_refusing_at_release_is_re_sourced_before_anything_ships(ts_env):
    fake = SplitFake(STOCK, refuse_release=frozenset({"WH-BER"}))
    inp = _input(_order())

    async def during(handle):
        view, _ = await _until(handle, _released, "released")
        ham = next(r for r in view.releases if r.node_id == "WH-HAM")
        await handle.signal(OrderFulfillment.cancel, AnalystAction(actor="ana", reason=f"test ({ham.ref})"))

    result, status, view = await _run(ts_env, fake, inp, during)
    wf = inp.order.workflow_id
    assert {r.node_id: r.state for r in view.releases} == {"WH-BER": "refused", "ACME": "released",
                                                          "WH-HAM": "released"}
    # the refused release held stock (given back at once); its request never existed, so nothing is cancelled there
    assert status.compensations[:1] == [f"release_node_stock:{wf}/WH-BER/1"]
    assert f"cancel_node_release:{wf}/WH-BER/1" not in status.compensations
    assert f"cancel_node_release:{wf}/WH-HAM/3" in status.compensations


async def test_a_backordered_line_is_released_when_stock_is_received(ts_env):
    stock = {k: v for k, v in STOCK.items() if k[1] != "LED-BULB"}  # no bulbs anywhere: line 2 is backordered
    fake = SplitFake(stock)
    inp = _input(_order())
    seen = {}

    async def during(handle):
        view, _ = await _until(handle, _released, "released")
        seen["before"] = view
        await handle.signal(OrderFulfillment.stock_received,  # another item: line 2 keeps waiting
                            StockReceived(event_id="rcpt-0", item_code="DESK-LAMP", quantity=3, location="WH-BER"))
        fake.ledger.stock[("WH-BER", "LED-BULB")] = 24
        await handle.signal(OrderFulfillment.stock_received,
                            StockReceived(event_id="rcpt-1", item_code="LED-BULB", quantity=24, location="WH-BER"))
        view, _ = await _until(handle, lambda v, s: not v.backordered, "backorder released")
        seen["after"] = view
        for r in view.releases:
            lines = [(lid, dict(FOUR_LINES_BY_ID)[lid], q) for lid, q in
                     ((lid, dict((ln.line_id, ln.quantity) for ln in r.lines)[lid]) for lid in r.line_ids)]
            await handle.signal(OrderFulfillment.node_shipment,
                                NodeShipment(release_ref=r.ref, shipment=_shipment(f"S-{r.ref[-1]}", *lines)))

    result, status, view = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.COMPLETED
    before = seen["before"]
    assert [(b.line_id, b.item_code) for b in before.backordered] == [("2", "LED-BULB")]
    assert _by_node(before) == {"WH-BER": ("released", ["1", "3"], "wms:local"),
                                "ACME": ("released", ["4"], "supplier:edi")}
    assert {(r.node_id, tuple(r.line_ids)) for r in seen["after"].releases} == {
        ("WH-BER", ("1", "3")), ("ACME", ("4",)), ("WH-BER", ("2",))}
    assert fake.count()["plan_sourcing"] == 2  # the desk lamp's receipt planned nothing
    backorder = fake.arg("release_to_node", 2).release
    assert backorder.ref == f"{inp.order.workflow_id}/WH-BER/3" and backorder.line_ids == ["2"]
    steps = [s.name for s in status.steps]
    assert "backordered" in steps and "backorder_released" in steps
    assert status.shipped_quantities == {"1": 1, "2": 4, "3": 1, "4": 1}
    assert fake.arg("forget_backorders", 0).keys == [inp.order.workflow_id]  # it ended: its waits go


FOUR_LINES_BY_ID = [(str(i), sku) for i, (sku, _) in enumerate(FOUR_LINES, start=1)]


async def test_a_kit_is_reserved_released_and_shipped_as_its_components(ts_env):
    fake = SplitFake(STOCK)
    inp = _input(_order((("DESK-SET", 2), ("FLOOR-LAMP", 1))))
    seen = {}

    async def during(handle):
        view, _ = await _until(handle, _released, "released")
        rel = view.releases[0]
        # the warehouse ships the components: one lamp and two bulbs make one kit of the two
        await handle.signal(OrderFulfillment.node_shipment, NodeShipment(release_ref=rel.ref, shipment=_shipment(
            "S-1", ("1", "DESK-LAMP", 1), ("1", "LED-BULB", 2), ("2", "FLOOR-LAMP", 1))))
        _, seen["partial"] = await _until(handle, lambda v, s: s.status == OrderStatus.PARTIALLY_SHIPPED, "partial")
        await handle.signal(OrderFulfillment.node_shipment,  # then the other kit, as a kit
                            NodeShipment(release_ref=rel.ref, shipment=_shipment("S-2", ("1", "DESK-SET", 1))))

    result, status, view = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.COMPLETED
    reserved = fake.arg("reserve_at_node").release
    assert reserved.node_id == "WH-BER"
    assert [(ln.line_id, ln.item_code, ln.quantity, ln.kit_item_code, ln.kit_quantity) for ln in reserved.lines] == [
        ("1", "DESK-LAMP", 2, "DESK-SET", 2), ("1", "LED-BULB", 4, "DESK-SET", 2), ("2", "FLOOR-LAMP", 1, None, None)]
    assert "DESK-SET" not in {ln.item_code for ln in fake.arg("release_to_node").release.lines}
    assert seen["partial"].shipped_quantities == {"1": 1, "2": 1}
    assert status.shipped_quantities == {"1": 2, "2": 1}


async def test_cancelling_a_drop_ship_line_is_refused_by_the_supplier_and_changes_nothing(ts_env):
    fake = SplitFake(STOCK)
    inp = _input(_order())
    seen = {}

    async def during(handle):
        await _until(handle, _released, "released")
        fake.fail["cancel_node_release"] = ("CannotCancel", 1)  # as the supplier answers after its 856
        try:
            await handle.execute_update(OrderFulfillment.cancel_lines, LineCancelRequest(
                actor="ana", reason="customer", lines=[LineCancel(line_id="4", quantity=1)]))
        except WorkflowUpdateFailedError as err:
            seen["refused"] = str(err.cause)
        view = await handle.execute_update(OrderFulfillment.cancel_lines, LineCancelRequest(
            actor="ana", reason="customer", lines=[LineCancel(line_id="2", quantity=1)]))
        seen["ordered"] = view.ordered_quantities
        await handle.signal(OrderFulfillment.cancel, AnalystAction(actor="ana", reason="done"))

    result, status, view = await _run(ts_env, fake, inp, during)
    assert "lines not cancelled: cancel_node_release refused" in seen["refused"]
    assert seen["ordered"] == {"1": 1, "2": 3, "3": 1, "4": 1}
    # the first (refused) change touched only the supplier; the second amended WH-BER's request and reservation
    assert fake.arg("cancel_node_release", 0).release.node_id == "ACME"
    assert fake.count()["amend_node_release"] == 1
    amended = fake.arg("amend_node_release")
    assert amended.release.node_id == "WH-BER"
    assert [(ln.item_code, ln.quantity) for ln in amended.lines] == [("DESK-LAMP", 1), ("LED-BULB", 3),
                                                                    ("FLOOR-LAMP", 1)]
    assert fake.arg("reduce_node_reservation").release.node_id == "WH-BER"
    assert fake.count()["amend_sales_order"] == 1


def test_a_shipment_counts_each_items_units_of_the_release_kits_by_their_components():
    """shipped_components, what post_node_delivery posts and the workflow counts: a plain line's units as they are,
    a kit line shipped as kits times each component per kit, a kit line shipped as components as they are."""
    from activities.sourcing import NodeRelease, shipped_components
    from canonical.kits import ComponentLine

    rel = NodeRelease(ref="o/WH-BER/1", node_id="WH-BER", kind="warehouse", adapter="wms:local", location="WH-BER",
                      lines=[ComponentLine(line_id="1", item_code="DESK-LAMP", quantity=2, kit_item_code="DESK-SET",
                                           kit_quantity=2),
                             ComponentLine(line_id="1", item_code="LED-BULB", quantity=4, kit_item_code="DESK-SET",
                                           kit_quantity=2),
                             ComponentLine(line_id="2", item_code="LED-BULB", quantity=4)])
    as_kits = _shipment("S-1", ("1", "DESK-SET", 1), ("2", "LED-BULB", 3))
    assert shipped_components(rel, as_kits) == {("1", "DESK-LAMP"): 1, ("1", "LED-BULB"): 2, ("2", "LED-BULB"): 3}
    as_parts = _shipment("S-2", ("1", "LED-BULB", 2), ("1", "DESK-LAMP", 1))
    assert shipped_components(rel, as_parts) == {("1", "LED-BULB"): 2, ("1", "DESK-LAMP"): 1}
    by_sku = Shipment(shipment_id="S-3", shipped_at=NOW, lines=[ShipmentLine(channel_sku="SKU-2", quantity=1)])
    assert shipped_components(rel, by_sku, {"1": "SKU-1", "2": "SKU-2"}) == {("2", "LED-BULB"): 1}
    assert shipped_components(rel, _shipment("S-4", ("9", "OTHER", 1))) == {}


async def test_a_refused_node_whose_lines_no_other_node_has_parks_until_the_lines_are_cancelled_and_retried(ts_env):
    fake = SplitFake(STOCK)
    inp = _input(_order(channel="amazon"))  # the amazon policy: WH-BER and ACME, no backorder
    seen = {}

    async def during(handle):
        await _until(handle, _released, "released")
        await handle.signal(OrderFulfillment.node_refused, NodeRefusal(node_id="WH-BER", reason="flooded",
                                                                       line_ids=["2", "3"]))
        _, seen["parked"] = await _until(handle, lambda v, s: s.status == OrderStatus.NEEDS_ATTENTION, "parked")
        await handle.execute_update(OrderFulfillment.cancel_lines, LineCancelRequest(
            actor="ana", reason="no stock left anywhere", lines=[LineCancel(line_id="2", quantity=4),
                                                                LineCancel(line_id="3", quantity=1)]))
        await handle.signal(OrderFulfillment.retry, AnalystAction(actor="ana", reason="lines cancelled"))
        view, _ = await _until(handle, lambda v, s: s.status == OrderStatus.RELEASED, "released again")
        for r in (r for r in view.releases if r.state == "released"):
            lines = [(ln.line_id, ln.item_code, ln.quantity) for ln in r.lines]
            await handle.signal(OrderFulfillment.node_shipment,
                                NodeShipment(release_ref=r.ref, shipment=_shipment(f"S-{r.node_id}", *lines)))

    result, status, view = await _run(ts_env, fake, inp, during)
    parked = seen["parked"]
    assert parked.reason.startswith("plan_sourcing: cannot be sourced: line 2 (LED-BULB ×4): ")
    assert "WH-BER refused or timed out" not in parked.reason and "Receive or transfer stock" in parked.reason
    # WH-BER kept line 1 (its request amended, its reservation reduced), lines 2 and 3 were cancelled
    assert fake.arg("amend_node_release", 0).release.node_id == "WH-BER"
    assert [(ln.line_id, ln.quantity) for ln in fake.arg("amend_node_release", 0).lines] == [("1", 1)]
    assert result.status == OrderStatus.COMPLETED
    assert {r.node_id: (r.state, r.line_ids) for r in view.releases} == {"WH-BER": ("shipped", ["1"]),
                                                                        "ACME": ("shipped", ["4"])}
    assert status.ordered_quantities == {"1": 1, "4": 1}
    assert fake.arg("plan_sourcing", -1).exclude_nodes == ["WH-BER"]


async def test_a_supplier_that_never_acknowledges_is_re_sourced_after_48_hours(ts_env):
    fake = SplitFake(STOCK, supplier_answers=False)
    inp = _input(_order())
    wf = inp.order.workflow_id

    async def during(handle):
        await _until(handle, _released, "released")
        await ts_env.sleep(timedelta(hours=49))  # the supplier's polls answer nothing: no 855
        view, _ = await _until(handle, lambda v, s: any(r.node_id == "ACME" and r.state == "refused"
                                                        for r in v.releases), "ACME refused")
        await handle.signal(OrderFulfillment.cancel, AnalystAction(actor="ana", reason="no pendant anywhere"))

    result, status, view = await _run(ts_env, fake, inp, during)
    acme = next(r for r in view.releases if r.node_id == "ACME")
    assert acme.reason == "no acknowledgement of purchase order PO-ACME-2 within 48h"
    assert f"cancel_node_release:{wf}/ACME/2" in status.compensations[:2]  # taken off ACME at once
    assert [(b.line_id, b.item_code) for b in view.backordered] == [("4", "PENDANT-ACME")]  # nowhere else: waits
    assert view.excluded == {"ACME": acme.reason}
    assert fake.count()["poll_node"] >= 48 * 4 - 1
    assert status.status == OrderStatus.CANCELLED


async def test_a_store_sale_that_takes_a_nodes_units_moves_only_that_line_to_another_node(ts_env):
    fake = SplitFake(STOCK)
    inp = _input(_order())
    wf = inp.order.workflow_id

    async def during(handle):
        await _until(handle, _released, "released")
        await handle.signal(OrderFulfillment.stock_shortfall, StockShortfall(
            reservation_key=f"{wf}/WH-BER/1", item_code="LED-BULB", location="WH-BER", quantity=2,
            cause_source="pos", cause_event_id="sale-9", store="STORE-001", occurred_at=NOW))
        await _until(handle, lambda v, s: any(r.node_id == "WH-HAM" for r in v.releases), "re-sourced")
        await handle.signal(OrderFulfillment.cancel, AnalystAction(actor="ana", reason="test over"))

    result, status, view = await _run(ts_env, fake, inp, during)
    assert {r.node_id: (r.state, r.line_ids) for r in view.releases} == {
        "WH-BER": ("released", ["1", "3"]), "ACME": ("released", ["4"]),
        "WH-HAM": ("released", ["2"])}
    # WH-BER keeps lines 1 and 3: its request amended and its reservation reduced, not cancelled
    amended = fake.arg("amend_node_release", 0)
    assert amended.release.ref == f"{wf}/WH-BER/1"
    assert [(ln.line_id, ln.item_code) for ln in amended.lines] == [("1", "DESK-LAMP"), ("3", "FLOOR-LAMP")]
    assert fake.arg("reduce_node_reservation", 0).release.ref == f"{wf}/WH-BER/1"
    assert "WH-BER" in view.excluded and "taken by a store sale at STORE-001 (sale-9)" in view.excluded["WH-BER"]
    # on cancel every open node is undone, WH-BER's remaining lines too
    assert {c for c in status.compensations if c.startswith("cancel_node_release")} == {
        f"cancel_node_release:{wf}/{n}" for n in ("WH-BER/1", "ACME/2", "WH-HAM/3")}


async def test_a_supplier_rejecting_its_purchase_order_in_the_855_is_re_sourced_and_nothing_is_withdrawn(ts_env):
    fake = SplitFake(STOCK)
    fake.supplier_rejects = True
    inp = _input(_order())
    wf = inp.order.workflow_id

    async def during(handle):
        await _until(handle, _released, "released")
        await ts_env.sleep(timedelta(minutes=16))  # the next poll reads the 855
        await _until(handle, lambda v, s: any(r.node_id == "ACME" and r.state == "refused" for r in v.releases),
                     "ACME refused")
        await handle.signal(OrderFulfillment.cancel, AnalystAction(actor="ana", reason="test over"))

    result, status, view = await _run(ts_env, fake, inp, during)
    assert [a.release.node_id for n, a in fake.calls if n == "cancel_node_release"] == ["WH-BER"]  # at cancel only
    assert status.compensations[0] == f"release_node_stock:{wf}/ACME/2"  # its stock given back at once
    assert [(b.line_id, b.item_code) for b in view.backordered] == [("4", "PENDANT-ACME")]
    assert view.excluded == {"ACME": "ACME rejected purchase order PO-ACME-2 (855 RJ)"}


async def test_a_node_that_cannot_take_the_refused_lines_back_parks_before_they_are_sent_elsewhere(ts_env):
    fake = SplitFake(STOCK)
    inp = _input(_order())
    seen = {}

    async def during(handle):
        await _until(handle, _released, "released")
        fake.fail["cancel_node_release"] = ("CannotCancel", 1)  # WH-BER is already picking
        await handle.signal(OrderFulfillment.node_refused, NodeRefusal(node_id="WH-BER", reason="conveyor down"))
        _, seen["parked"] = await _until(handle, lambda v, s: s.status == OrderStatus.NEEDS_ATTENTION, "parked")
        seen["releases"] = fake.count()["release_to_node"]
        await handle.signal(OrderFulfillment.retry, AnalystAction(actor="ana", reason="WH-BER confirmed it stops"))
        await _until(handle, lambda v, s: any(r.node_id == "WH-HAM" and r.state == "released" for r in v.releases),
                     "re-sourced after the retry")
        await handle.signal(OrderFulfillment.cancel, AnalystAction(actor="ana", reason="test over"))

    result, status, view = await _run(ts_env, fake, inp, during)
    assert seen["parked"].reason.startswith("cancel_node_release: WH-BER did not take line(s) 1, 2, 3 off its "
                                            "request (conveyor down)")
    assert seen["releases"] == 2  # nothing was sent to another node while WH-BER might still ship
    assert {r.node_id: r.state for r in view.releases} == {"WH-BER": "refused", "ACME": "released",
                                                          "WH-HAM": "released"}
