"""The sourcing policy (issue 20, item 1): eligibility, then stock, then fewest splits, then the tie-breakers, then
the node id; backorders or a refusal with the reason; deterministic and explained. Also the network file's loader
and the `plan_sourcing` activity against the SQLite ledger."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.sourcing import SourcingActivities
from adapters.inventory.ledger import InventoryLedger
from canonical.fulfillment import ResolvedLine
from canonical.inventory import ChannelInventoryPolicy, InventoryEvent
from canonical.money import Money
from canonical.sourcing import (
    FulfillmentNetwork,
    FulfillmentNode,
    ItemFlags,
    SourcingConfigError,
    SourcingPolicy,
    SourcingRequest,
    plan_sourcing,
)
from runtime.fulfillment_network import FulfillmentNetworkError, load_network
from runtime.settings import OrderSettings

ROOT = Path(__file__).resolve().parents[2]
NETWORK = load_network(ROOT / "fulfillment.toml")


def line(line_id: str, item: str, qty: int = 1) -> ResolvedLine:
    return ResolvedLine(line_id=line_id, channel_sku=f"sku-{item}", item_code=item, quantity=qty)


def node(node_id: str, location: str | None = None, cost: str = "5.00", **kw) -> FulfillmentNode:
    fields = dict(id=node_id, kind="warehouse", location=location or node_id, adapter="wms:local",
                  channels=["*"], ship_to=["*"], capacity_per_day=100, cutoff=time(15), time_zone="Europe/Berlin",
                  cost_per_shipment=Money.of(cost, "EUR"))
    return FulfillmentNode(**{**fields, **kw})


def policy(nodes: list[str], **kw) -> SourcingPolicy:
    return SourcingPolicy(channel="shopify", nodes=nodes, **kw)


# -- the worked example of docs/fulfillment.md, on the repository's fulfillment.toml ---------------------------
ORDER = [line("1", "DESK-LAMP"), line("2", "LED-BULB", 4), line("3", "FLOOR-LAMP"), line("4", "PENDANT-ACME")]
STOCK = {("WH-BER", "DESK-LAMP"): 12, ("WH-BER", "LED-BULB"): 40, ("WH-BER", "FLOOR-LAMP"): 3,
         ("STORE-001", "DESK-LAMP"): 2, ("STORE-001", "LED-BULB"): 10,
         ("WH-NYC", "PENDANT-ACME"): 5, ("SUP-ACME", "PENDANT-ACME"): 200, ("SUP-ACME", "DESK-LAMP"): 50}


def example_plan(**kw):
    args = dict(lines=ORDER, ship_to_country="DE", channel="shopify", policy=NETWORK.policy_for("shopify"),
                nodes=NETWORK.node, available=STOCK, item_flags=NETWORK.items, shipped_today={})
    return plan_sourcing(**{**args, **kw}, kits=NETWORK.catalog())


def test_a_four_line_order_splits_over_the_warehouse_and_the_drop_ship_supplier():
    plan = example_plan()
    assert plan.sourced and not plan.backordered
    assert [(a.node_id, a.line_ids, a.adapter) for a in plan.allocations] == [
        ("WH-BER", ["1", "2", "3"], "wms:local"), ("ACME", ["4"], "supplier:edi")]
    assert plan.summary == "shipped from WH-BER: 3 of 4 lines; line 4 from supplier ACME (no stock at WH-BER)"
    assert plan.explanation == [
        "WH-NYC not eligible: does not ship to DE",
        "shipped from WH-BER: 3 of 4 lines",
        "line 4 from supplier ACME (no stock at WH-BER)",
        "2 nodes: no eligible node has every line (fewest splits first)",
    ]
    assert plan.units_by_location() == {("WH-BER", "DESK-LAMP"): 1, ("WH-BER", "LED-BULB"): 4,
                                        ("WH-BER", "FLOOR-LAMP"): 1, ("SUP-ACME", "PENDANT-ACME"): 1}


def test_one_node_that_has_everything_wins_over_a_cheaper_split():
    nodes = [node("CHEAP-A", cost="1.00"), node("CHEAP-B", cost="1.00"), node("DEAR", cost="20.00")]
    stock = {("CHEAP-A", "X"): 5, ("CHEAP-B", "Y"): 5, ("DEAR", "X"): 5, ("DEAR", "Y"): 5}
    plan = plan_sourcing([line("1", "X"), line("2", "Y")], "DE", "shopify", policy(["CHEAP-A", "CHEAP-B", "DEAR"]),
                         nodes, stock)
    assert plan.node_ids == ["DEAR"]
    assert plan.summary == "shipped from DEAR: all 2 lines"


def test_between_single_nodes_cost_then_rank_then_id_decide():
    stock = {(loc, "X"): 5 for loc in ("A", "B", "C")}
    nodes = [node("A", cost="6.00", rank=1), node("B", cost="5.00", rank=3), node("C", cost="5.00", rank=2)]
    plan = plan_sourcing([line("1", "X")], "DE", "shopify", policy(["A", "B", "C"]), nodes, stock)
    assert plan.node_ids == ["C"]
    assert "C chosen over B: better rank (2 vs 3)" in plan.explanation
    assert "C chosen over A: lower cost (5.00 EUR vs 6.00 EUR)" in plan.explanation
    by_rank = plan_sourcing([line("1", "X")], "DE", "shopify", policy(["A", "B", "C"], tie_breakers=["rank"]),
                            nodes, stock)
    assert by_rank.node_ids == ["A"]
    same = [node("B"), node("A")]  # same cost, no rank: the node id
    tie = plan_sourcing([line("1", "X")], "DE", "shopify", policy(["B", "A"]), same, stock)
    assert tie.node_ids == ["A"] and "A chosen over B: same cost and rank: node id order" in tie.explanation


def test_the_ship_date_tie_breaker_prefers_a_node_before_its_cut_off():
    nodes = [node("BER", cost="4.00", cutoff=time(12), time_zone="Europe/Berlin"),
             node("NYC", cost="9.00", cutoff=time(17), time_zone="America/New_York")]
    stock = {("BER", "X"): 1, ("NYC", "X"): 1}
    now = datetime(2026, 12, 3, 14, 0, tzinfo=UTC)  # 15:00 in Berlin (past 12:00), 09:00 in New York
    plan = plan_sourcing([line("1", "X")], "US", "shopify", policy(["BER", "NYC"], tie_breakers=["ship_date",
                         "cost"]), nodes, stock, now=now)
    assert plan.node_ids == ["NYC"] and plan.allocations[0].ships_on.isoformat() == "2026-12-03"
    assert "NYC chosen over BER: ships sooner" in plan.explanation
    by_cost = plan_sourcing([line("1", "X")], "US", "shopify", policy(["BER", "NYC"]), nodes, stock, now=now)
    assert by_cost.node_ids == ["BER"] and by_cost.allocations[0].ships_on.isoformat() == "2026-12-04"
    assert "BER ships on 2026-12-04 (after its 12:00 Europe/Berlin cut-off)" in by_cost.explanation


def test_country_channel_and_item_flags_make_nodes_ineligible():
    nodes = [node("US-ONLY", cost="1.00", ship_to=["US"]), node("POS-ONLY", cost="1.00", channels=["pos"]),
             node("PLAIN", cost="2.00"), node("HAZMAT", cost="9.00", hazardous=True, oversize=True)]
    stock = {(n.location, item): 10 for n in nodes for item in ("X", "OIL", "SOFA")}
    flags = {"OIL": ItemFlags(hazardous=True), "SOFA": ItemFlags(oversize=True)}
    pol = policy(["US-ONLY", "POS-ONLY", "PLAIN", "HAZMAT"])
    plan = plan_sourcing([line("1", "X"), line("2", "OIL")], "de", "shopify", pol, nodes, stock, flags)
    assert plan.ship_to_country == "DE"
    assert plan.explanation[:2] == ["POS-ONLY not eligible: does not ship for channel shopify",
                                    "US-ONLY not eligible: does not ship to DE"]
    assert plan.node_ids == ["HAZMAT"]  # one node for both lines beats PLAIN + HAZMAT
    only_x = plan_sourcing([line("1", "X")], "DE", "shopify", pol, nodes, stock, flags)
    assert only_x.node_ids == ["PLAIN"]
    no_hazmat = plan_sourcing([line("1", "X"), line("2", "SOFA")], "DE", "shopify",
                              policy(["PLAIN", "US-ONLY"]), nodes, stock, flags)
    assert not no_hazmat.sourced
    assert no_hazmat.unsourceable[0].reason == "PLAIN takes no oversize items; US-ONLY does not ship to DE"


def test_a_node_at_capacity_today_is_skipped():
    nodes = [node("A", cost="1.00", capacity_per_day=50), node("B", cost="3.00")]
    stock = {("A", "X"): 5, ("B", "X"): 5}
    plan = plan_sourcing([line("1", "X")], "DE", "shopify", policy(["A", "B"]), nodes, stock, {}, {"A": 50})
    assert plan.node_ids == ["B"]
    assert plan.explanation[0] == "A not eligible: at capacity today (50 of 50 shipments)"
    assert plan_sourcing([line("1", "X")], "DE", "shopify", policy(["A", "B"]), nodes, stock, {},
                         {"A": 49}).node_ids == ["A"]


def test_lines_no_node_has_are_backordered_when_the_policy_allows_it():
    nodes = [node("A"), node("B", cost="6.00")]
    stock = {("A", "X"): 5, ("B", "Y"): 1}
    plan = plan_sourcing([line("1", "X"), line("2", "Y", 3), line("3", "Z")], "DE", "shopify",
                         policy(["A", "B"], allow_backorder=True), nodes, stock)
    assert plan.sourced and plan.node_ids == ["A"]
    assert [(b.line_id, b.quantity) for b in plan.backordered] == [("2", 3), ("3", 1)]
    assert plan.backordered[0].reason == "no stock at A; only 1 of 3 Y at B"
    assert plan.summary == "shipped from A: 1 of 3 lines; line 2 backordered; line 3 backordered"


def test_without_backorders_the_plan_refuses_with_the_reason_and_allocates_nothing():
    nodes = [node("A"), node("B", cost="6.00")]
    stock = {("A", "X"): 5, ("B", "Y"): 1}
    plan = plan_sourcing([line("1", "X"), line("2", "Y", 3)], "DE", "shopify", policy(["A", "B"]), nodes, stock)
    assert not plan.sourced and plan.allocations == [] and plan.backordered == []
    assert [(u.line_id, u.reason) for u in plan.unsourceable] == [("2", "no stock at A; only 1 of 3 Y at B")]
    assert plan.explanation[-2:] == ["cannot be sourced: line 2 (Y ×3): no stock at A; only 1 of 3 Y at B",
                                     "the shopify policy allows no backorder: nothing is allocated"]


def test_no_split_allowed_ships_from_one_node_and_says_why_the_rest_cannot_come():
    nodes = [node("A"), node("B")]
    stock = {("A", "X"): 5, ("A", "Y"): 5, ("B", "Z"): 5}
    lines = [line("1", "X"), line("2", "Y"), line("3", "Z")]
    plan = plan_sourcing(lines, "DE", "shopify", policy(["A", "B"], allow_split=False), nodes, stock)
    assert not plan.sourced
    assert plan.unsourceable[0].reason == "no stock at A; B has it, but the policy allows no split"
    back = plan_sourcing(lines, "DE", "shopify", policy(["A", "B"], allow_split=False, allow_backorder=True), nodes,
                         stock)
    assert back.node_ids == ["A"] and [b.line_id for b in back.backordered] == ["3"]


def test_max_splits_bounds_the_nodes_of_one_order():
    nodes = [node("A"), node("B"), node("C")]
    stock = {("A", "X"): 1, ("B", "Y"): 1, ("C", "Z"): 1}
    lines = [line("1", "X"), line("2", "Y"), line("3", "Z")]
    assert plan_sourcing(lines, "DE", "shopify", policy(["A", "B", "C"], max_splits=2), nodes,
                         stock).node_ids == ["A", "B", "C"]
    one = plan_sourcing(lines, "DE", "shopify", policy(["A", "B", "C"], max_splits=1, allow_backorder=True), nodes,
                        stock)
    assert one.node_ids == ["A", "B"] and one.backordered[0].line_id == "3"
    assert one.backordered[0].reason.endswith("C has it, but the policy allows at most 1 split(s)")


def test_shared_stock_is_not_promised_twice_within_an_order():
    # lines 1 and 2 both want X; A has 3 (one line's worth), B has the rest: the exact search finds the split
    nodes = [node("A", cost="1.00"), node("B", cost="2.00")]
    stock = {("A", "X"): 3, ("A", "W"): 1, ("B", "X"): 3}
    plan = plan_sourcing([line("1", "X", 3), line("2", "X", 3), line("3", "W")], "DE", "shopify",
                         policy(["A", "B"]), nodes, stock)
    assert [(a.node_id, a.line_ids) for a in plan.allocations] == [("A", ["1", "3"]), ("B", ["2"])]
    assert plan.summary == "shipped from A: 2 of 3 lines; line 2 from warehouse B (A's stock went to the other lines)"


def test_the_same_inputs_give_the_same_plan_whatever_the_order_of_the_nodes():
    first = example_plan()
    assert example_plan() == first
    rng = random.Random(20)
    for _ in range(10):
        nodes = list(NETWORK.node)
        rng.shuffle(nodes)
        pol = NETWORK.policy_for("shopify")
        shuffled = pol.model_copy(update={"nodes": rng.sample(pol.nodes, len(pol.nodes))})
        stock = dict(rng.sample(sorted(STOCK.items()), len(STOCK)))
        assert example_plan(nodes=nodes, policy=shuffled, available=stock) == first


def test_the_policy_is_checked_against_the_nodes():
    nodes = [node("A"), node("B")]
    with pytest.raises(SourcingConfigError, match="unknown node id\\(s\\): C"):
        plan_sourcing([line("1", "X")], "DE", "shopify", policy(["A", "C"]), nodes, {})
    with pytest.raises(SourcingConfigError, match="duplicate node id\\(s\\): A"):
        plan_sourcing([line("1", "X")], "DE", "shopify", policy(["A"]), [node("A"), node("A")], {})
    with pytest.raises(SourcingConfigError, match="several currencies \\(EUR, USD\\)"):
        plan_sourcing([line("1", "X")], "DE", "shopify", policy(["A", "U"]),
                      [node("A"), node("U", cost_per_shipment=Money.of("1", "USD"))], {})
    with pytest.raises(SourcingConfigError, match="the policy is for channel 'shopify', the order is 'amazon'"):
        plan_sourcing([line("1", "X")], "DE", "amazon", policy(["A"]), nodes, {})
    with pytest.raises(ValidationError, match="nodes listed twice: A"):
        policy(["A", "A"])
    with pytest.raises(ValueError, match="line id\\(s\\) listed twice: 1"):
        plan_sourcing([line("1", "X"), line("1", "Y")], "DE", "shopify", policy(["A"]), nodes, {})


# -- the property: never more than available, each line's quantity placed exactly once --------------------------
ITEMS = ("X", "Y", "Z", "KIT")


@st.composite
def scenarios(draw):
    node_ids = draw(st.lists(st.sampled_from(["A", "B", "C", "D"]), min_size=1, max_size=4, unique=True))
    nodes = [node(i, cost=str(draw(st.integers(1, 9))), hazardous=draw(st.booleans()),
                  rank=draw(st.none() | st.integers(0, 3))) for i in node_ids]
    stock = {(i, item): draw(st.integers(-2, 6)) for i in node_ids for item in ("X", "Y", "Z")}
    lines = [line(str(n), draw(st.sampled_from(ITEMS)), draw(st.integers(1, 4)))
             for n in range(draw(st.integers(1, 6)))]
    pol = policy(node_ids, allow_split=draw(st.booleans()), allow_backorder=draw(st.booleans()),
                 max_splits=draw(st.integers(0, 3)))
    flags = {"Z": ItemFlags(hazardous=True)} if draw(st.booleans()) else {}
    return nodes, stock, lines, pol, flags


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_a_plan_never_takes_more_than_is_there_and_places_each_line_once(scenario):
    from canonical.kits import KitCatalog

    nodes, stock, lines, pol, flags = scenario
    kits = KitCatalog.of({"KIT": {"X": 1, "Y": 2}})
    plan = plan_sourcing(lines, "DE", "shopify", pol, nodes, stock, flags, {}, kits=kits)
    for key, units in plan.units_by_location().items():
        assert units <= max(stock.get(key, 0), 0), key
    assert len(plan.allocations) <= pol.node_limit
    if not plan.sourced:
        assert plan.allocations == [] and plan.unsourceable and not pol.allow_backorder
        return
    for ln in lines:
        allocated = [c for a in plan.allocations for c in a.lines if c.line_id == ln.line_id]
        backordered = [b for b in plan.backordered if b.line_id == ln.line_id]
        nodes_of_line = {a.node_id for a in plan.allocations for c in a.lines if c.line_id == ln.line_id}
        assert len(nodes_of_line) + len(backordered) == 1  # exactly once: one node, or backordered
        if ln.item_code == "KIT":
            kit_units = {c.kit_quantity for c in allocated} | {b.quantity for b in backordered}
            assert kit_units == {ln.quantity}
        else:
            assert sum(c.quantity for c in allocated) + sum(b.quantity for b in backordered) == ln.quantity


# -- the network file ------------------------------------------------------------------------------------------
def test_the_repository_network_file_loads_and_is_the_default(monkeypatch, tmp_path):
    assert {n.id for n in NETWORK.node} == {"WH-BER", "WH-NYC", "STORE-001", "ACME"}
    assert set(NETWORK.channels()) == {"shopify", "amazon", "pos"}
    assert {n.id: n.adapter for n in NETWORK.node} == {"WH-BER": "wms:local", "WH-NYC": "wms:shipstation",
                                                       "STORE-001": "pos:store", "ACME": "supplier:edi"}
    assert NETWORK.catalog().components("DESK-SET") == {"DESK-LAMP": 1, "LED-BULB": 2}
    monkeypatch.delenv("RETAILFLOW_FULFILLMENT_NETWORK_FILE", raising=False)
    assert OrderSettings(_env_file=None).fulfillment_network_file == ROOT / "fulfillment.toml"
    other = tmp_path / "net.toml"
    monkeypatch.setenv("RETAILFLOW_FULFILLMENT_NETWORK_FILE", str(other))
    assert OrderSettings(_env_file=None).fulfillment_network_file == other


@pytest.mark.parametrize(("change", "message"), [
    (('time_zone = "America/New_York"', 'time_zone = "America/New_Yrok"'),
     "node[1].time_zone: Value error, unknown IANA time zone 'America/New_Yrok'"),
    (('amount = "4.90"', "amount = 4.90"), "node[0].cost_per_shipment.amount: Value error, amount 4.9 is a float"),
    (('nodes = ["STORE-001"]', 'nodes = ["STORE-002"]'), "Value error, policy pos: unknown node id(s): STORE-002"),
    (('kind = "dropship"', 'kind = "drop-ship"'), "node[3].kind: Input should be 'warehouse', 'store', '3pl'"),
    (("quantity = 4", "quantity = 0"), "kit[1].components[0].quantity: Input should be greater than 0"),
    (('channel = "pos"', 'channel = "amazon"'), "more than one policy for channel(s): amazon"),
    (("cutoff = 15:00:00", "cutoff = 25:00:00"), "not valid TOML"),
])
def test_a_bad_network_file_is_one_line_naming_the_file_and_field(tmp_path, change, message):
    text = (ROOT / "fulfillment.toml").read_text()
    assert change[0] in text
    bad = tmp_path / "fulfillment.toml"
    bad.write_text(text.replace(change[0], change[1], 1))
    with pytest.raises(FulfillmentNetworkError) as refused:
        load_network(bad)
    assert str(refused.value).startswith(f"{bad}: ") and message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_missing_network_file_says_which_setting(tmp_path):
    with pytest.raises(FulfillmentNetworkError, match="no such file \\(set RETAILFLOW_FULFILLMENT_NETWORK_FILE\\)"):
        load_network(tmp_path / "nope.toml")


def test_a_kit_cycle_in_the_file_is_refused(tmp_path):
    bad = tmp_path / "f.toml"
    bad.write_text((ROOT / "fulfillment.toml").read_text() + '\n[[kit]]\nitem_code = "LED-BULB"\n'
                   'components = [{ item_code = "BULB-4PACK", quantity = 1 }]\n')
    with pytest.raises(FulfillmentNetworkError, match="kit cycle: BULB-4PACK → LED-BULB → BULB-4PACK"):
        load_network(bad)


# -- the activity on the ledger ---------------------------------------------------------------------------------
T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def stock_event(sid: str, kind: str, sku: str, location: str, qty: int, minute: int = 0) -> InventoryEvent:
    return InventoryEvent(source="wms", source_event_id=sid, kind=kind, sku=sku, location=location, quantity=qty,
                          occurred_at=T0 + timedelta(minutes=minute))


def test_the_activity_reads_the_ledger_after_reservations_and_plans(engine):
    ledger = InventoryLedger(engine, policies={"shopify": ChannelInventoryPolicy(safety_stock=0)},
                             store_buffers={"STORE-001": 2})
    ledger.apply_events([
        stock_event("r1", "receipt", "DESK-LAMP", "WH-BER", 5), stock_event("r2", "receipt", "LED-BULB", "WH-BER", 8),
        stock_event("r3", "receipt", "FLOOR-LAMP", "WH-BER", 1), stock_event("r4", "receipt", "PENDANT-ACME",
                                                                             "SUP-ACME", 9),
        stock_event("r5", "receipt", "DESK-LAMP", "STORE-001", 3), stock_event("r6", "receipt", "LED-BULB",
                                                                                "STORE-001", 4),
        stock_event("res", "reservation", "DESK-LAMP", "WH-BER", 4, 1),  # another order holds 4 of the 5 lamps
    ])
    acts = SourcingActivities(ledger, NETWORK)
    env = ActivityEnvironment()
    request = SourcingRequest(order_key="order:shopify:1", channel="shopify", ship_to_country="DE", lines=ORDER)
    plan = env.run(acts.plan_sourcing, request)
    assert [(a.node_id, a.line_ids) for a in plan.allocations] == [("WH-BER", ["1", "2", "3"]), ("ACME", ["4"])]

    # a kit of 2 lamps + 4 bulbs: WH-BER has 1 free lamp (4 reserved); the store has 3 lamps but holds 2 back
    # for its shelf (1 free to ship), so no node has the kit's 2 lamps
    kit = SourcingRequest(order_key="order:shopify:2", channel="shopify", ship_to_country="DE",
                          lines=[line("1", "DESK-SET", 2)])
    waiting = env.run(acts.plan_sourcing, kit)
    assert waiting.sourced and waiting.allocations == []  # the shopify policy backorders
    assert waiting.backordered[0].reason == (
        "no stock at ACME; only 1 of 2 DESK-LAMP, only 2 of 4 LED-BULB at STORE-001; only 1 of 2 DESK-LAMP at "
        "WH-BER; WH-NYC does not ship to DE")

    ledger.apply_event(stock_event("rel", "release", "DESK-LAMP", "WH-BER", 4, 2))  # that order let go
    placed = env.run(acts.plan_sourcing, kit)
    assert placed.node_ids == ["WH-BER"]
    assert [(c.item_code, c.quantity, c.kit_item_code) for c in placed.allocations[0].lines] == [
        ("DESK-LAMP", 2, "DESK-SET"), ("LED-BULB", 4, "DESK-SET")]


def test_the_activity_parks_a_channel_without_a_policy(engine):
    acts = SourcingActivities(InventoryLedger(engine), NETWORK)
    request = SourcingRequest(order_key="order:ebay:1", channel="ebay", ship_to_country="DE", lines=ORDER)
    with pytest.raises(ApplicationError) as refused:
        ActivityEnvironment().run(acts.plan_sourcing, request)
    assert refused.value.type == "SourcingNotConfigured" and refused.value.non_retryable
    assert "no sourcing policy for channel 'ebay'" in refused.value.message


def test_the_network_model_refuses_duplicates():
    base = NETWORK.model_dump()
    with pytest.raises(ValidationError, match="duplicate node id\\(s\\): WH-BER"):
        FulfillmentNetwork.model_validate({**base, "node": base["node"] + [base["node"][0]]})


def test_with_a_line_no_node_has_the_others_still_go_on_the_fewest_nodes():
    # greedy would take A first (4 lines) and then need B and C; B + C ship lines 1-6 on two nodes
    nodes = [node("A", cost="1.00"), node("B"), node("C")]
    have = {"A": "1234", "B": "135", "C": "246"}
    stock = {(n, f"I{i}"): 1 for n, lines in have.items() for i in lines}
    lines = [line(str(i), f"I{i}") for i in range(1, 8)]  # line 7: nowhere
    plan = plan_sourcing(lines, "DE", "shopify", policy(["A", "B", "C"], max_splits=2, allow_backorder=True),
                         nodes, stock)
    assert [(a.node_id, a.line_ids) for a in plan.allocations] == [("B", ["1", "3", "5"]), ("C", ["2", "4", "6"])]
    assert [b.line_id for b in plan.backordered] == ["7"]


def test_the_worked_example_with_a_hazardous_line_backorders_or_refuses_by_policy():
    order = [ORDER[0], line("2", "LAMP-OIL", 4), ORDER[2], ORDER[3]]  # docs/fulfillment.md
    shopify = example_plan(lines=order)
    assert shopify.summary == ("shipped from WH-BER: 2 of 4 lines; line 4 from supplier ACME (no stock at WH-BER); "
                               "line 2 backordered")
    assert shopify.explanation[-1] == ("line 2 backordered (ACME takes no hazardous items; STORE-001 takes no "
                                       "hazardous items; no stock at WH-BER; WH-NYC does not ship to DE)")
    amazon = example_plan(lines=order, channel="amazon", policy=NETWORK.policy_for("amazon"))
    assert not amazon.sourced and amazon.allocations == []
    assert amazon.explanation[-2:] == [
        "cannot be sourced: line 2 (LAMP-OIL ×4): ACME takes no hazardous items; no stock at WH-BER; WH-NYC does "
        "not ship to DE", "the amazon policy allows no backorder: nothing is allocated"]


def test_the_worked_example_on_the_amazon_policy_carries_the_shipping_day():
    plan = example_plan(channel="amazon", policy=NETWORK.policy_for("amazon"),
                        now=datetime(2026, 12, 3, 14, 30, tzinfo=UTC))
    assert plan.node_ids == ["WH-BER", "ACME"]
    assert {a.ships_on.isoformat() for a in plan.allocations} == {"2026-12-04"}
    assert plan.explanation[-2:] == ["WH-BER ships on 2026-12-04 (after its 15:00 Europe/Berlin cut-off)",
                                     "ACME ships on 2026-12-04 (after its 14:00 Europe/Berlin cut-off)"]


def test_a_search_too_large_for_the_exact_planner_falls_back_to_the_greedy_plan():
    nodes = [node(f"N{i:02}") for i in range(16)]
    stock = {(f"N{i:02}", f"I{i}"): 1 for i in range(16)}
    lines = [line(str(i), f"I{i}") for i in range(6)]  # six nodes needed: C(16, 6) sets is past the limit
    plan = plan_sourcing(lines, "DE", "shopify", policy([n.id for n in nodes], max_splits=5), nodes, stock)
    assert plan.sourced and sorted(plan.node_ids) == [f"N{i:02}" for i in range(6)]
    assert "too many node combinations for the exact search: the rest was planned greedily" in plan.explanation
