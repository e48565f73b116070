"""Kits and bundles (issue 20, item 6): validated catalogs, expansion into component lines that remember their kit
line, availability as whole kits, returns restocking components, and sourcing that reserves kits as components
on one node so two bundles sharing a component cannot oversell it (medusa #16502)."""

from __future__ import annotations

from datetime import time

import pytest
from pydantic import ValidationError

from canonical.fulfillment import ResolvedLine
from canonical.kits import (
    ComponentLine,
    Kit,
    KitCatalog,
    KitComponent,
    components_for_return,
    expand_kits,
    kit_availability,
)
from canonical.money import Money
from canonical.sourcing import FulfillmentNode, ItemFlags, SourcingPolicy, plan_sourcing

CATALOG = KitCatalog.of({"DESK-SET": {"DESK-LAMP": 1, "LED-BULB": 2}, "BULB-4PACK": {"LED-BULB": 4}})


def line(line_id: str, item: str, qty: int) -> ResolvedLine:
    return ResolvedLine(line_id=line_id, channel_sku=f"sku-{item}", item_code=item, quantity=qty)


def node(node_id: str, location: str, cost: str = "5.00", **kw) -> FulfillmentNode:
    fields = dict(id=node_id, kind="warehouse", location=location, adapter="wms:local", channels=["*"],
                  ship_to=["*"], capacity_per_day=100, cutoff=time(15), time_zone="Europe/Berlin",
                  cost_per_shipment=Money.of(cost, "EUR"))
    return FulfillmentNode(**{**fields, **kw})


def test_a_kit_line_expands_into_its_components_remembering_the_kit_line():
    out = expand_kits([line("1", "DESK-SET", 3), line("2", "MUG", 2)], CATALOG)
    assert out == [
        ComponentLine(line_id="1", item_code="DESK-LAMP", quantity=3, kit_item_code="DESK-SET", kit_quantity=3),
        ComponentLine(line_id="1", item_code="LED-BULB", quantity=6, kit_item_code="DESK-SET", kit_quantity=3),
        ComponentLine(line_id="2", item_code="MUG", quantity=2),
    ]
    assert [c.per_kit for c in out] == [1, 2, 2]


def test_nested_kits_multiply_out_to_the_leaf_items():
    catalog = KitCatalog.of({"OFFICE": {"DESK-SET": 2, "BULB-4PACK": 1, "CHAIR": 1},
                             "DESK-SET": {"DESK-LAMP": 1, "LED-BULB": 2}, "BULB-4PACK": {"LED-BULB": 4}})
    assert catalog.components("OFFICE") == {"DESK-LAMP": 2, "LED-BULB": 8, "CHAIR": 1}
    lines = expand_kits([line("1", "OFFICE", 2)], catalog)
    assert {(c.item_code, c.quantity) for c in lines} == {("DESK-LAMP", 4), ("LED-BULB", 16), ("CHAIR", 2)}


def test_a_kit_cycle_is_refused():
    with pytest.raises(ValueError, match="kit cycle: A → B → C → A"):
        KitCatalog.of({"A": {"B": 1}, "B": {"C": 1}, "C": {"A": 2}})
    with pytest.raises(ValidationError, match="contains itself"):
        Kit(item_code="A", components=[KitComponent(item_code="A", quantity=1)])


def test_quantities_must_be_positive_and_kits_defined_once():
    with pytest.raises(ValidationError):
        KitComponent(item_code="X", quantity=0)
    with pytest.raises(ValidationError):
        Kit(item_code="K", components=[])
    with pytest.raises(ValueError, match="defined twice"):
        KitCatalog([Kit(item_code="K", components=[KitComponent(item_code="X", quantity=1)])] * 2)
    with pytest.raises(ValidationError, match="listed twice"):
        Kit(item_code="K", components=[KitComponent(item_code="X", quantity=1)] * 2)


def test_kit_availability_is_the_whole_kits_the_components_make():
    kit = CATALOG.kits[1]  # DESK-SET (sorted: BULB-4PACK, DESK-SET)
    assert kit.item_code == "DESK-SET"
    assert kit_availability(kit, {"DESK-LAMP": 5, "LED-BULB": 7}) == 3  # floor(7 / 2)
    assert kit_availability(kit, {"DESK-LAMP": 0, "LED-BULB": 70}) == 0
    assert kit_availability(kit, {"LED-BULB": 70}) == 0  # a component the location does not hold
    assert kit_availability(kit, {"DESK-LAMP": -2, "LED-BULB": 70}) == 0  # oversold component: none, not < 0


def test_nested_kit_availability_counts_leaf_components_with_the_catalog():
    catalog = KitCatalog.of({"DUO": {"DESK-SET": 2}, "DESK-SET": {"DESK-LAMP": 1, "LED-BULB": 2}})
    duo = next(k for k in catalog.kits if k.item_code == "DUO")
    assert kit_availability(duo, {"DESK-LAMP": 4, "LED-BULB": 6}, catalog) == 1  # 6 bulbs // 4 per duo


def test_two_bundles_sharing_a_component_each_show_it_but_cannot_both_take_it():
    shared = {"DESK-LAMP": 1, "LED-BULB": 4}
    desk, pack = (next(k for k in CATALOG.kits if k.item_code == c) for c in ("DESK-SET", "BULB-4PACK"))
    assert kit_availability(desk, shared) == 1 and kit_availability(pack, shared) == 1
    # one order asking for both: the ledger holds 4 bulbs, the two kits need 2 + 4
    policy = SourcingPolicy(channel="shopify", nodes=["WH-BER"], allow_backorder=True)
    available = {("BER", "DESK-LAMP"): 1, ("BER", "LED-BULB"): 4}
    plan = plan_sourcing([line("1", "DESK-SET", 1), line("2", "BULB-4PACK", 1)], "DE", "shopify", policy,
                         [node("WH-BER", "BER")], available, {}, {}, kits=CATALOG)
    assert plan.sourced
    assert [a.line_ids for a in plan.allocations] == [["1"]]
    assert [b.line_id for b in plan.backordered] == ["2"]
    assert plan.units_by_location() == {("BER", "DESK-LAMP"): 1, ("BER", "LED-BULB"): 2}
    # and a second order after the first took its components sees what is left: no 4-pack
    left = {k: v - plan.units_by_location().get(k, 0) for k, v in available.items()}
    assert kit_availability(pack, {item: q for (_, item), q in left.items()}) == 0
    again = plan_sourcing([line("1", "BULB-4PACK", 1)], "DE", "shopify", policy.model_copy(
        update={"allow_backorder": False}), [node("WH-BER", "BER")], left, {}, {}, kits=CATALOG)
    assert not again.sourced and "only 2 of 4 LED-BULB at WH-BER" in again.unsourceable[0].reason


def test_a_kit_is_reserved_as_its_components_all_on_one_node():
    # WH-BER has lamps, WH-HAM has bulbs; neither has both: the kit does not ship as two halves
    nodes = [node("WH-BER", "BER"), node("WH-HAM", "HAM"), node("WH-MUC", "MUC", cost="8.00")]
    policy = SourcingPolicy(channel="shopify", nodes=["WH-BER", "WH-HAM", "WH-MUC"], max_splits=2)
    available = {("BER", "DESK-LAMP"): 5, ("HAM", "LED-BULB"): 50, ("MUC", "DESK-LAMP"): 2, ("MUC", "LED-BULB"): 4}
    plan = plan_sourcing([line("1", "DESK-SET", 2)], "DE", "shopify", policy, nodes, available, {}, {},
                         kits=CATALOG)
    assert plan.node_ids == ["WH-MUC"]
    assert plan.allocations[0].lines == [
        ComponentLine(line_id="1", item_code="DESK-LAMP", quantity=2, kit_item_code="DESK-SET", kit_quantity=2),
        ComponentLine(line_id="1", item_code="LED-BULB", quantity=4, kit_item_code="DESK-SET", kit_quantity=2)]
    # three kits: no single node has 3 lamps and 6 bulbs, so it cannot be sourced (no backorder) — never split
    plan = plan_sourcing([line("1", "DESK-SET", 3)], "DE", "shopify", policy, nodes, available, {}, {},
                         kits=CATALOG)
    assert not plan.sourced and plan.allocations == []
    assert plan.unsourceable[0].reason == ("no LED-BULB at WH-BER; no DESK-LAMP at WH-HAM; "
                                           "only 2 of 3 DESK-LAMP, only 4 of 6 LED-BULB at WH-MUC")


def test_a_hazardous_component_makes_the_kit_line_hazardous():
    nodes = [node("WH-BER", "BER", hazardous=False), node("WH-HAZ", "HAZ", cost="9.00", hazardous=True)]
    policy = SourcingPolicy(channel="shopify", nodes=["WH-BER", "WH-HAZ"])
    catalog = KitCatalog.of({"LAMP-KIT": {"OIL-LAMP": 1, "LAMP-OIL": 1}})
    stock = {(loc, item): 5 for loc in ("BER", "HAZ") for item in ("OIL-LAMP", "LAMP-OIL")}
    plan = plan_sourcing([line("1", "LAMP-KIT", 1)], "DE", "shopify", policy, nodes, stock,
                         {"LAMP-OIL": ItemFlags(hazardous=True)}, {}, kits=catalog)
    assert plan.node_ids == ["WH-HAZ"]


def test_a_kit_return_restocks_its_components_as_sold():
    shipped = expand_kits([line("1", "DESK-SET", 3)], CATALOG)
    back = components_for_return(shipped, 2)
    assert [(c.item_code, c.quantity, c.kit_quantity) for c in back] == [("DESK-LAMP", 2, 2), ("LED-BULB", 4, 2)]
    # a later catalog change (3 bulbs per set) does not change what this order's return restocks
    assert components_for_return(shipped, 3)[1].quantity == 6
    with pytest.raises(ValueError, match="sold 3 kit"):
        components_for_return(shipped, 4)
    with pytest.raises(ValueError, match="no kit line"):
        components_for_return(expand_kits([line("2", "MUG", 1)], CATALOG), 1)
    with pytest.raises(ValueError, match="more than one kit line"):
        components_for_return(shipped + expand_kits([line("2", "DESK-SET", 3)], CATALOG), 1)
