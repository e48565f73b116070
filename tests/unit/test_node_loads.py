"""Node capacity per day (issue 20, item 1): releases counted per node and shipping day, once per release, freed when
withdrawn; plan_sourcing holds a full node out with the reason, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

from adapters.platform.node_loads import NodeLoadBook

DAY, NEXT = date(2026, 12, 7), date(2026, 12, 8)


def test_releases_count_once_per_node_and_shipping_day_and_a_withdrawn_one_frees_its_place(engine):
    book = NodeLoadBook(engine)
    assert book.add("WH-BER", DAY, "order:shopify:1/WH-BER/1") is True
    assert book.add("WH-BER", DAY, "order:shopify:1/WH-BER/1") is False  # a retried activity counts once
    assert book.add("WH-BER", DAY, "order:shopify:2/WH-BER/1") is True
    assert book.add("WH-BER", NEXT, "order:shopify:3/WH-BER/1") is True  # after the cut-off: tomorrow's load
    assert book.add("STORE-1", DAY, "order:shopify:2/STORE-1/2") is True
    assert book.counts({"WH-BER": DAY, "STORE-1": DAY, "WH-MUC": DAY}) == {"WH-BER": 2, "STORE-1": 1}
    assert book.counts({"WH-BER": NEXT}) == {"WH-BER": 1}
    assert book.remove("order:shopify:2/WH-BER/1") is True
    assert book.remove("order:shopify:2/WH-BER/1") is False
    assert book.counts({"WH-BER": DAY}) == {"WH-BER": 1}
    assert book.counts({}) == {}


def _network_with_berlin_capacity(n: int):
    from tests.unit.test_sourcing import NETWORK

    nodes = [node.model_copy(update={"capacity_per_day": n}) if node.id == "WH-BER" else node
             for node in NETWORK.node]
    return NETWORK.model_copy(update={"node": nodes})


def test_a_node_at_capacity_for_its_shipping_day_is_not_planned_on_until_a_release_is_withdrawn(engine):
    from temporalio.testing import ActivityEnvironment

    from activities.capacity import NodeCapacity
    from activities.sourcing import SourcingActivities
    from adapters.inventory.ledger import InventoryLedger
    from canonical.inventory import ChannelInventoryPolicy
    from canonical.sourcing import SourcingRequest
    from tests.unit.test_sourcing import line, stock_event

    network = _network_with_berlin_capacity(2)
    ledger = InventoryLedger(engine, policies={"shopify": ChannelInventoryPolicy(safety_stock=0)})
    ledger.apply_events([stock_event("r1", "receipt", "DESK-LAMP", "WH-BER", 50),
                         stock_event("r2", "receipt", "DESK-LAMP", "STORE-001", 50)])
    capacity = NodeCapacity(NodeLoadBook(engine), network)
    now = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # 10:00 in Berlin: before WH-BER's cut-off
    acts = SourcingActivities(ledger, network, capacity=capacity)
    env = ActivityEnvironment()
    request = SourcingRequest(order_key="order:shopify:9", channel="shopify", ship_to_country="DE",
                              lines=[line("1", "DESK-LAMP")], now=now)
    assert env.run(acts.plan_sourcing, request).node_ids == ["WH-BER"]  # the cheapest node, with room

    capacity.released("WH-BER", "order:shopify:1/WH-BER/1", now)
    capacity.released("WH-BER", "order:shopify:2/WH-BER/1", now)
    capacity.released("WH-BER", "order:shopify:2/WH-BER/1", now)  # a retried release counts once
    full = env.run(acts.plan_sourcing, request)
    assert full.node_ids == ["STORE-001"], full
    assert "WH-BER not eligible: at capacity today (2 of 2 shipments)" in full.explanation, full.explanation

    capacity.withdrawn("order:shopify:1/WH-BER/1")  # an order cancelled before the pick gives its place back
    assert env.run(acts.plan_sourcing, request).node_ids == ["WH-BER"]
    # after the cut-off the release leaves tomorrow: today's load does not hold tomorrow's orders
    capacity.released("WH-BER", "order:shopify:3/WH-BER/1", now)
    late = request.model_copy(update={"now": datetime(2026, 12, 7, 20, 0, tzinfo=UTC)})
    assert env.run(acts.plan_sourcing, late).node_ids == ["WH-BER"]


def test_a_release_counts_on_its_nodes_shipping_day_when_the_node_has_it_and_not_after_it_is_cancelled(engine):
    from types import SimpleNamespace

    from temporalio.testing import ActivityEnvironment

    from activities.capacity import NodeCapacity
    from activities.sourcing import (
        NodeRelease,
        NodeReleaseInput,
        NodeReserveInput,
        SplitFulfillmentActivities,
    )
    from adapters.wms.local import LocalWms
    from canonical.kits import ComponentLine
    from canonical.order import Address

    network = _network_with_berlin_capacity(10)
    book = NodeLoadBook(engine)
    wms = LocalWms(engine, ship_after_seconds=3600)
    acts = SplitFulfillmentActivities(SimpleNamespace(wms=wms), wms={"local": wms},  # type: ignore[arg-type]
                                      capacity=NodeCapacity(book, network))
    rel = NodeRelease(ref="order:shopify:5/WH-BER/1", node_id="WH-BER", kind="warehouse", adapter="wms:local",
                      location="WH-BER", lines=[ComponentLine(line_id="1", item_code="DESK-LAMP", quantity=1)])
    env = ActivityEnvironment()
    ship_to = Address(line1="Unter den Linden 1", city="Berlin", postal_code="10117", country="DE")
    env.run(acts.release_to_node, NodeReleaseInput(release=rel, order_ref="order:shopify:5", ship_to=ship_to,
                                                   currency="EUR"))
    env.run(acts.release_to_node, NodeReleaseInput(release=rel, order_ref="order:shopify:5", ship_to=ship_to,
                                                   currency="EUR"))  # retried: once
    day = network.nodes_by_id()["WH-BER"].shipping_day(datetime.now(UTC))
    assert book.counts({"WH-BER": day}) == {"WH-BER": 1}
    env.run(acts.cancel_node_release, NodeReserveInput(release=rel))
    assert book.counts({"WH-BER": day}) == {}
