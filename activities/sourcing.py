"""Sourcing: which fulfillment node ships which order line (issue 20). One read of the inventory ledger for the
candidate nodes' locations, then the pure planner (`canonical.sourcing.plan_sourcing`).

The units a node can ship are its location's free stock (on hand − reserved − allocated) less what the ledger's
policy for the order's channel holds back there (safety stock, a store's shelf buffer), so an order is never
sourced from units the channel was not offered. Kit lines are read as their components.

A plan that cannot be sourced is returned as it is (`sourced=False`, the reason per line): the workflow decides
to park. A channel with no policy is a business fault (SourcingNotConfigured), parked until the file is fixed.
"""

from __future__ import annotations

from temporalio import activity

from activities.orders import business_errors
from adapters.inventory.ledger import InventoryLedger
from canonical.kits import expand_kits
from canonical.sourcing import (
    FulfillmentNetwork,
    SourcingConfigError,
    SourcingNotConfigured,
    SourcingPlan,
    SourcingRequest,
    plan_sourcing,
)


class SourcingActivities:
    def __init__(self, ledger: InventoryLedger, network: FulfillmentNetwork) -> None:
        self.ledger = ledger
        self.network = network
        self.kits = network.catalog()

    def available(self, channel: str, locations: set[str], items: set[str]) -> dict[tuple[str, str], int]:
        """(location, item) → units the channel may be shipped from there now."""
        policy = self.ledger.policies.get(channel)
        out: dict[tuple[str, str], int] = {}
        for item in sorted(items):
            for level in self.ledger.levels(item):
                if level.location not in locations:
                    continue
                held = policy.safety_stock + policy.location_buffers.get(level.location, 0) if policy else 0
                out[(level.location, item)] = max(level.free - held, 0)
        return out

    @activity.defn(name="plan_sourcing")
    @business_errors
    def plan_sourcing(self, inp: SourcingRequest) -> SourcingPlan:
        try:
            policy = self.network.policy_for(inp.channel)
        except KeyError as exc:
            raise SourcingNotConfigured(str(exc.args[0]), details={"channel": inp.channel}) from None
        nodes = self.network.nodes_by_id()
        locations = {nodes[i].location for i in policy.nodes if i in nodes}
        items = {c.item_code for c in expand_kits(inp.lines, self.kits)}
        available = self.available(inp.channel, locations, items)
        try:
            return plan_sourcing(inp.lines, inp.ship_to_country, inp.channel, policy, self.network.node, available,
                                 self.network.items, inp.shipped_today, kits=self.kits, now=inp.now)
        except SourcingConfigError as exc:
            raise SourcingNotConfigured(str(exc), details={"channel": inp.channel}) from None
