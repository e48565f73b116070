"""The fulfillment network and the sourcing policy: which node ships which order line (issue 20, item 1).

A fulfillment node (a warehouse, a store, a 3PL, a drop-ship supplier) has a location in the inventory ledger, the
adapter role that serves it (``wms:local``, ``supplier:edi``, ``pos:store``...), the channels and countries it may
ship for and to, whether it takes hazardous or oversize items, a capacity per day, a cut-off time and a cost per
shipment. A sourcing policy per channel names the nodes an order of that channel may ship from and how to choose.

`plan_sourcing` is pure and deterministic; it decides, in this order:

1. eligibility: the node ships for the channel and to the country, has capacity left today, and takes the line's
   hazardous / oversize items;
2. stock: the node's location has every unit of the line after reservations (a kit line: all its components —
   a kit ships as one parcel, from one node);
3. fewest splits: one node that ships everything wins; else the smallest set of nodes that does (an exact search
   over the node sets, up to the policy's `max_splits`);
4. the policy's tie-breakers, in its order (cost per shipment, rank, shipping day), then the node id.

When no allowed set of nodes ships every line, the lines the best partial plan leaves out are backordered (where
the policy allows it) or the plan says it cannot be sourced, with the reason per line. Every decision is written
down as a sentence in `SourcingPlan.explanation` (docs/fulfillment.md has a worked example).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from itertools import combinations
from math import comb
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from canonical.errors import BusinessError
from canonical.fulfillment import ResolvedLine
from canonical.kits import ComponentLine, Kit, KitCatalog, expand_kits
from canonical.money import Money
from canonical.order import CanonicalModel, UtcDatetime

NodeKind = Literal["warehouse", "store", "3pl", "dropship"]
TieBreaker = Literal["cost", "rank", "ship_date"]
ANY = "*"
DEFAULT_TIE_BREAKERS: tuple[TieBreaker, ...] = ("cost", "rank")
ADAPTER_PATTERN = re.compile(r"[a-z0-9_]+:[a-z0-9_.-]+")
KIND_WORD = {"warehouse": "warehouse", "store": "store", "3pl": "3PL", "dropship": "supplier"}
# the exact search tries at most this many node sets of one size, and this many placement steps in all; past
# either it falls back to the greedy plan (deterministic too, but not always the fewest splits)
MAX_NODE_SETS = 5000
MAX_PLACEMENT_STEPS = 200_000


class SourcingConfigError(ValueError):
    """A policy or node list that cannot be planned with (unknown or duplicate node ids, mixed cost currencies)."""


class SourcingNotConfigured(BusinessError):
    """The order's channel has no sourcing policy, or its policy cannot be planned with."""

    action = ("Add or correct the channel's [[policy]] in the fulfillment network file "
              "(RETAILFLOW_FULFILLMENT_NETWORK_FILE, docs/fulfillment.md), restart the worker, then send `retry`.")


def release_reference(workflow_id: str, node_id: str, seq: int) -> str:
    """The reference of a split order's fulfillment request to one node: `<workflow id>/<node id>/<n>` (the
    warehouse's order number, the supplier's PO reference). Its shipments and shortfalls find the order by it."""
    return f"{workflow_id}/{node_id}/{seq}"


_RELEASE_REF = re.compile(r"^(?P<workflow>.+)/(?P<node>[^/\s]+)/(?P<seq>\d+)$")


def order_of_reference(ref: str) -> tuple[str, bool]:
    """A reference a partner echoes (a release's, a reservation's) → (the order's workflow id, whether it names
    one node's release of a split order); a whole order's reference is its workflow id."""
    m = _RELEASE_REF.match(ref)
    return (m["workflow"], True) if m else (ref, False)


def pickup_location_key(location: str) -> str:
    """A channel's location id as the pick-up lookup compares it: a global id (`gid://shopify/Location/42`) is
    the same location as its numeric tail (`42`, what a REST payload carries)."""
    text = location.strip()
    return text.rsplit("/", 1)[-1] if text.startswith("gid://") else text


class ItemFlags(CanonicalModel):
    hazardous: bool = False
    oversize: bool = False

    def __or__(self, other: ItemFlags) -> ItemFlags:
        return ItemFlags(hazardous=self.hazardous or other.hazardous, oversize=self.oversize or other.oversize)


class FulfillmentNode(CanonicalModel):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[^/\s]+$",
                    description="No slash or space: it is part of its releases' references (`release_reference`)")
    kind: NodeKind
    name: str | None = None
    location: str = Field(min_length=1, description="The node's location in the inventory ledger")
    adapter: str = Field(description="The adapter role that serves the node, role:name (wms:local, supplier:edi)")
    channels: list[str] = Field(min_length=1, description="Channels the node may ship for; [\"*\"]: any")
    ship_to: list[str] = Field(min_length=1, description="ISO 3166-1 alpha-2 countries it ships to; [\"*\"]: any")
    hazardous: bool = Field(default=False, description="Takes hazardous items")
    oversize: bool = Field(default=False, description="Takes oversize items")
    capacity_per_day: int = Field(ge=0, description="Shipments the node can send per shipping day")
    cutoff: time = Field(description="Local time after which a shipment leaves on the next day")
    time_zone: str = Field(description="IANA time zone of the cut-off, e.g. Europe/Berlin")
    cost_per_shipment: Money
    rank: int | None = Field(default=None, ge=0, description="Priority or distance band; lower first, none last")
    channel_locations: dict[str, str] = Field(
        default_factory=dict, description="A store's location id in each channel that offers click-and-collect "
        "there, e.g. {shopify = \"655441491\"} (the Shopify location; a gid://shopify/Location/… id is the same): an "
        "order the channel assigns to that location for pick-up is collected at this store (Order.pickup_store)")

    @field_validator("channel_locations")
    @classmethod
    def _channel_locations(cls, v: dict[str, str]) -> dict[str, str]:
        for channel, location in v.items():
            if not channel.strip() or not location.strip():
                raise ValueError("channel_locations: a channel and its location id must not be empty")
        return {channel.strip(): location.strip() for channel, location in v.items()}

    @model_validator(mode="after")
    def _pickup_at_stores(self) -> FulfillmentNode:
        if self.channel_locations and self.kind != "store":
            raise ValueError(f"node {self.id}: channel_locations (click-and-collect) is for store nodes, "
                             f"not a {self.kind}")
        return self

    @field_validator("adapter")
    @classmethod
    def _adapter(cls, v: str) -> str:
        if not ADAPTER_PATTERN.fullmatch(v):
            raise ValueError(f"adapter must be role:name, e.g. wms:local, got {v!r}")
        return v

    @field_validator("ship_to")
    @classmethod
    def _countries(cls, v: list[str]) -> list[str]:
        out = []
        for c in v:
            if c != ANY and (len(c) != 2 or not c.isalpha()):
                raise ValueError(f"country must be an ISO 3166-1 alpha-2 code or \"*\", got {c!r}")
            out.append(c.upper())
        return out

    @field_validator("time_zone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {v!r}") from None
        return v

    def serves(self, channel: str) -> bool:
        return ANY in self.channels or channel in self.channels

    def ships_to_country(self, country: str) -> bool:
        return ANY in self.ship_to or country.upper() in self.ship_to

    def takes(self, flags: ItemFlags) -> bool:
        return (self.hazardous or not flags.hazardous) and (self.oversize or not flags.oversize)

    def shipping_day(self, now: datetime) -> date:
        """The local day a shipment released at `now` leaves: today before the cut-off, else the next day."""
        local = now.astimezone(ZoneInfo(self.time_zone))
        return local.date() if local.time() < self.cutoff else local.date() + timedelta(days=1)


class SourcingPolicy(CanonicalModel):
    channel: str = Field(min_length=1)
    nodes: list[str] = Field(min_length=1, description="The nodes an order of the channel may ship from")
    tie_breakers: list[TieBreaker] = Field(default_factory=lambda: list(DEFAULT_TIE_BREAKERS),
                                           description="After fewest splits, in this order; the node id last")
    allow_split: bool = Field(default=True, description="An order may ship from several nodes")
    allow_backorder: bool = Field(default=False, description="Lines no node can ship now wait for stock")
    max_splits: int = Field(default=1, ge=0, description="With allow_split: an order ships from at most "
                            "max_splits + 1 nodes")

    @model_validator(mode="after")
    def _unique(self) -> SourcingPolicy:
        lists: list[tuple[str, list[str]]] = [("nodes", self.nodes), ("tie_breakers", list(self.tie_breakers))]
        for name, values in lists:
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"policy {self.channel}: {name} listed twice: {', '.join(dupes)}")
        return self

    @property
    def node_limit(self) -> int:
        return self.max_splits + 1 if self.allow_split else 1


class FulfillmentNetwork(CanonicalModel):
    """The nodes, the policy per channel, the kits and the item flags (fulfillment.toml)."""

    node: list[FulfillmentNode] = Field(min_length=1)
    policy: list[SourcingPolicy] = Field(default_factory=list)
    kit: list[Kit] = Field(default_factory=list)
    items: dict[str, ItemFlags] = Field(default_factory=dict, description="Hazardous / oversize items")

    @model_validator(mode="after")
    def _consistent(self) -> FulfillmentNetwork:
        ids = [n.id for n in self.node]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate node id(s): {', '.join(dupes)}")
        channels = [p.channel for p in self.policy]
        dupes = sorted({c for c in channels if channels.count(c) > 1})
        if dupes:
            raise ValueError(f"more than one policy for channel(s): {', '.join(dupes)}")
        for p in self.policy:
            validate_policy(p, self.node)
        self.catalog()  # cycles, kits defined twice
        seen: dict[tuple[str, str], str] = {}
        for n in self.node:
            for channel, location in n.channel_locations.items():
                key = (channel, pickup_location_key(location))
                if key in seen:
                    raise ValueError(f"channel {channel} location {location} is the pick-up location of both "
                                     f"{seen[key]} and {n.id} (channel_locations)")
                seen[key] = n.id
        return self

    def pickup_locations(self, channel: str) -> dict[str, str]:
        """The channel's pick-up locations: {location id (pickup_location_key) → store node id}."""
        return {pickup_location_key(loc): n.id for n in self.node
                for c, loc in n.channel_locations.items() if c == channel}

    def nodes_by_id(self) -> dict[str, FulfillmentNode]:
        return {n.id: n for n in self.node}

    def policy_for(self, channel: str) -> SourcingPolicy:
        for p in self.policy:
            if p.channel == channel:
                return p
        raise KeyError(f"no sourcing policy for channel {channel!r} (have: {', '.join(sorted(self.channels()))})")

    def channels(self) -> list[str]:
        return [p.channel for p in self.policy]

    def catalog(self) -> KitCatalog:
        return KitCatalog(self.kit)


class NodeAllocation(CanonicalModel):
    node_id: str
    kind: NodeKind
    location: str
    adapter: str
    lines: list[ComponentLine] = Field(description="The items this node picks (a kit line: its components)")
    cost: Money
    ships_on: date | None = Field(default=None, description="The node's shipping day (when planned with `now`)")

    @property
    def line_ids(self) -> list[str]:
        return list(dict.fromkeys(ln.line_id for ln in self.lines))


class UnplacedLine(CanonicalModel):
    """An order line no node ships now: backordered, or the reason the order cannot be sourced."""

    line_id: str
    item_code: str
    quantity: int
    components: list[ComponentLine]
    reason: str


class SourcingRequest(CanonicalModel):
    """What the sourcing activity is asked: ids and facts."""

    order_key: str = Field(min_length=1)
    channel: str = Field(min_length=1)
    ship_to_country: str = Field(min_length=2, max_length=2)
    lines: list[ResolvedLine] = Field(min_length=1)
    shipped_today: dict[str, int] = Field(default_factory=dict, description="Node id → shipments already today")
    now: UtcDatetime | None = Field(default=None, description="The workflow's time, for the shipping day")
    exclude_nodes: list[str] = Field(default_factory=list, description="Nodes not to plan on (a node that refused "
                                     "or timed out on this order: re-sourcing)")
    pickup_node: str | None = Field(default=None, description="Click-and-collect: only this store node is planned "
                                    "on, whatever the country (the customer collects there)")

    @field_validator("ship_to_country")
    @classmethod
    def _country(cls, v: str) -> str:
        if not v.isalpha():
            raise ValueError(f"ship_to_country must be an ISO 3166-1 alpha-2 code, got {v!r}")
        return v.upper()


class SourcingPlan(CanonicalModel):
    channel: str
    ship_to_country: str
    sourced: bool = Field(description="Every line is allocated or backordered; false: `unsourceable` says why")
    allocations: list[NodeAllocation] = Field(default_factory=list)
    backordered: list[UnplacedLine] = Field(default_factory=list)
    unsourceable: list[UnplacedLine] = Field(default_factory=list)
    explanation: list[str] = Field(default_factory=list, description="Every decision, one sentence each")
    summary: str = Field(default="", description="Who ships what, one line: the allocation and backorder "
                         "sentences of the explanation")

    def units_by_location(self) -> dict[tuple[str, str], int]:
        """(location, item_code) → units this plan takes there."""
        out: dict[tuple[str, str], int] = {}
        for a in self.allocations:
            for ln in a.lines:
                out[(a.location, ln.item_code)] = out.get((a.location, ln.item_code), 0) + ln.quantity
        return out

    @property
    def node_ids(self) -> list[str]:
        return [a.node_id for a in self.allocations]


def validate_policy(policy: SourcingPolicy, nodes: Sequence[FulfillmentNode]) -> dict[str, FulfillmentNode]:
    """The policy's nodes by id; SourcingConfigError on a duplicate node id, an unknown node, or nodes whose
    costs are in different currencies (they could not be compared)."""
    ids = [n.id for n in nodes]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise SourcingConfigError(f"duplicate node id(s): {', '.join(dupes)}")
    by_id = {n.id: n for n in nodes}
    unknown = [i for i in policy.nodes if i not in by_id]
    if unknown:
        raise SourcingConfigError(f"policy {policy.channel}: unknown node id(s): {', '.join(unknown)}")
    currencies = sorted({by_id[i].cost_per_shipment.currency for i in policy.nodes})
    if len(currencies) > 1:
        raise SourcingConfigError(f"policy {policy.channel}: node costs in several currencies "
                                  f"({', '.join(currencies)}) cannot be compared")
    return {i: by_id[i] for i in policy.nodes}


@dataclass(frozen=True)
class _Unit:
    """One order line as it is placed: every item of it on one node."""

    index: int
    line: ResolvedLine
    parts: tuple[ComponentLine, ...]
    need: tuple[tuple[str, int], ...]  # (item_code, units), sorted
    flags: ItemFlags

    @property
    def label(self) -> str:
        return f"line {self.line.line_id}"


@dataclass
class _Search:
    steps: int = 0  # placement steps taken, over every node set tried
    exhausted: bool = False


def plan_sourcing(lines: Sequence[ResolvedLine], ship_to_country: str, channel: str, policy: SourcingPolicy,
                  nodes: Sequence[FulfillmentNode], available: Mapping[tuple[str, str], int],
                  item_flags: Mapping[str, ItemFlags] | None = None, shipped_today: Mapping[str, int] | None = None,
                  *, kits: KitCatalog | None = None, now: datetime | None = None) -> SourcingPlan:
    """Choose the node(s) for each order line (the module docstring gives the order of the rules).

    `available`: (ledger location, item code) → units free after reservations; `shipped_today`: node id →
    shipments already sent on its current shipping day; `kits`: kit lines are placed as their components, all on
    one node; `now`: gives each allocation its shipping day (and the `ship_date` tie-breaker its meaning)."""
    if policy.channel != channel:
        raise SourcingConfigError(f"the policy is for channel {policy.channel!r}, the order is {channel!r}")
    by_id = validate_policy(policy, nodes)
    country = ship_to_country.upper()
    flags_of = dict(item_flags or {})
    shipped = dict(shipped_today or {})
    catalog = kits or KitCatalog()
    ids = [ln.line_id for ln in lines]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"line id(s) listed twice: {', '.join(dupes)}")
    units = _units(lines, catalog, flags_of)
    days = {i: n.shipping_day(now) for i, n in by_id.items()} if now is not None else {}
    planner = _Planner(policy, by_id, available, days)
    explanation: list[str] = []
    summary: list[str] = []

    # 1. eligibility of the nodes themselves (channel, country, capacity)
    eligible: list[FulfillmentNode] = []
    excluded: dict[str, str] = {}
    for node_id in sorted(by_id):
        node = by_id[node_id]
        why = _node_ineligible(node, channel, country, shipped.get(node_id, 0))
        if why:
            excluded[node_id] = why
            explanation.append(f"{node_id} not eligible: {why}")
        else:
            eligible.append(node)
    eligible.sort(key=planner.node_key)

    # 2-4. stock, fewest splits, tie-breakers
    search = _Search()
    placement = planner.fewest_nodes(units, eligible, search)
    if placement is None:  # the lines some node has, on the fewest nodes; else greedily
        placeable = planner.placeable(units, eligible)
        placement = planner.fewest_nodes(placeable, eligible, search) if len(placeable) < len(units) else None
        if placement is None or not placement:
            placement = planner.greedy(units, eligible)
    if search.exhausted:
        explanation.append("too many node combinations for the exact search: the rest was planned greedily")
    placed = {u.index for group in placement.values() for u in group}
    left = [u for u in units if u.index not in placed]
    order = sorted(placement, key=lambda n: (-len(placement[n]), planner.node_key(by_id[n])))

    if left and not policy.allow_backorder:
        reasons = [UnplacedLine(line_id=u.line.line_id, item_code=u.line.item_code, quantity=u.line.quantity,
                                components=list(u.parts),
                                reason=planner.why_not(u, by_id, excluded, placement, len(units)))
                   for u in left]
        explanation += [f"cannot be sourced: {u.label} ({u.line.item_code} ×{u.line.quantity}): {r.reason}"
                        for u, r in zip(left, reasons, strict=True)]
        explanation.append(f"the {channel} policy allows no backorder: nothing is allocated")
        return SourcingPlan(channel=channel, ship_to_country=country, sourced=False, unsourceable=reasons,
                            explanation=explanation, summary="cannot be sourced: " + ", ".join(
                                u.label for u in left))

    allocations = []
    for n, node_id in enumerate(order):
        node, group = by_id[node_id], sorted(placement[node_id], key=lambda u: u.index)
        allocations.append(NodeAllocation(
            node_id=node_id, kind=node.kind, location=node.location, adapter=node.adapter,
            lines=[p for u in group for p in u.parts], cost=node.cost_per_shipment, ships_on=days.get(node_id)))
        if n == 0:
            share = f"all {len(units)} lines" if len(group) == len(units) else f"{len(group)} of {len(units)} lines"
            summary.append(f"shipped from {node_id}: {share}")
        else:
            before = [by_id[o] for o in order[:n]]
            labels = ", ".join(u.line.line_id for u in group)
            word = "line" if len(group) == 1 else "lines"
            whys = [planner.why_not_at(u, before) for u in group]
            why = whys[0] if len(set(whys)) == 1 else "; ".join(
                f"{u.label}: {w}" for u, w in zip(group, whys, strict=True))
            summary.append(f"{word} {labels} from {KIND_WORD[node.kind]} {node_id} ({why})")
    explanation += summary
    explanation += planner.choice_notes(units, eligible, order)
    for node_id in order:
        day, node = days.get(node_id), by_id[node_id]
        if day is not None and now is not None and day != now.astimezone(ZoneInfo(node.time_zone)).date():
            explanation.append(f"{node_id} ships on {day.isoformat()} (after its {node.cutoff.strftime('%H:%M')} "
                               f"{node.time_zone} cut-off)")
    backordered = []
    for u in left:
        reason = planner.why_not(u, by_id, excluded, placement, len(units))
        backordered.append(UnplacedLine(line_id=u.line.line_id, item_code=u.line.item_code,
                                        quantity=u.line.quantity, components=list(u.parts), reason=reason))
        explanation.append(f"{u.label} backordered ({reason})")
        summary.append(f"{u.label} backordered")
    if not units:
        explanation.append("no lines to source")
    return SourcingPlan(channel=channel, ship_to_country=country, sourced=True, allocations=allocations,
                        backordered=backordered, explanation=explanation, summary="; ".join(summary))


def _units(lines: Sequence[ResolvedLine], catalog: KitCatalog, flags_of: Mapping[str, ItemFlags]) -> list[_Unit]:
    out = []
    for index, line in enumerate(lines):
        parts = tuple(expand_kits([line], catalog))
        need: dict[str, int] = {}
        flags = flags_of.get(line.item_code, ItemFlags())
        for p in parts:
            need[p.item_code] = need.get(p.item_code, 0) + p.quantity
            flags = flags | flags_of.get(p.item_code, ItemFlags())
        out.append(_Unit(index=index, line=line, parts=parts, need=tuple(sorted(need.items())), flags=flags))
    return out


def _node_ineligible(node: FulfillmentNode, channel: str, country: str, shipped: int) -> str | None:
    if not node.serves(channel):
        return f"does not ship for channel {channel}"
    if not node.ships_to_country(country):
        return f"does not ship to {country}"
    if shipped >= node.capacity_per_day:
        return f"at capacity today ({shipped} of {node.capacity_per_day} shipments)"
    return None


def _flag_problem(node: FulfillmentNode, flags: ItemFlags) -> str | None:
    missing = [name for name, on, ok in (("hazardous", flags.hazardous, node.hazardous),
                                         ("oversize", flags.oversize, node.oversize)) if on and not ok]
    return f"{node.id} takes no {' or '.join(missing)} items" if missing else None


class _Planner:
    def __init__(self, policy: SourcingPolicy, by_id: Mapping[str, FulfillmentNode],
                 available: Mapping[tuple[str, str], int], days: Mapping[str, date]) -> None:
        self.policy, self.by_id, self.available, self.days = policy, by_id, available, days

    # -- ordering -----------------------------------------------------------------------------------
    def _criteria(self, nodes: Sequence[FulfillmentNode]) -> tuple:
        out: list[object] = []
        for tb in self.policy.tie_breakers:
            if tb == "cost":
                out.append(sum((n.cost_per_shipment.amount for n in nodes), Decimal(0)))
            elif tb == "rank":
                out.append((sum(n.rank is None for n in nodes), sum(n.rank or 0 for n in nodes)))
            else:  # ship_date: the latest parcel's day (0 when planned without `now`)
                out.append(max((self.days[n.id].toordinal() for n in nodes if n.id in self.days), default=0))
        return tuple(out)

    def node_key(self, node: FulfillmentNode) -> tuple:
        return (*self._criteria([node]), node.id)

    def set_key(self, nodes: Sequence[FulfillmentNode]) -> tuple:
        return (*self._criteria(nodes), tuple(sorted(n.id for n in nodes)))

    # -- stock ----------------------------------------------------------------------------------------
    def free(self, node: FulfillmentNode, item: str, used: Mapping[tuple[str, str], int]) -> int:
        key = (node.location, item)
        return max(self.available.get(key, 0), 0) - used.get(key, 0)

    def fits(self, node: FulfillmentNode, unit: _Unit, used: Mapping[tuple[str, str], int]) -> bool:
        return node.takes(unit.flags) and all(self.free(node, item, used) >= qty for item, qty in unit.need)

    @staticmethod
    def take(node: FulfillmentNode, unit: _Unit, used: dict[tuple[str, str], int], sign: int = 1) -> None:
        for item, qty in unit.need:
            used[(node.location, item)] = used.get((node.location, item), 0) + sign * qty

    def placeable(self, units: Sequence[_Unit], eligible: Sequence[FulfillmentNode]) -> list[_Unit]:
        """The units some eligible node could ship on its own."""
        empty: dict[tuple[str, str], int] = {}
        return [u for u in units if any(self.fits(n, u, empty) for n in eligible)]

    # -- the exact search -----------------------------------------------------------------------------
    def fewest_nodes(self, units: Sequence[_Unit], eligible: Sequence[FulfillmentNode],
                     search: _Search) -> dict[str, list[_Unit]] | None:
        """The placement on the smallest set of nodes that ships every line, best by the tie-breakers; None
        when no set within the policy's limit does (or the search was too large)."""
        if not units:
            return {}
        empty: dict[tuple[str, str], int] = {}
        alone = {u.index: [n for n in eligible if self.fits(n, u, empty)] for u in units}
        if any(not alone[u.index] for u in units):
            return None
        for size in range(1, min(self.policy.node_limit, len(eligible)) + 1):
            if comb(len(eligible), size) > MAX_NODE_SETS:
                search.exhausted = True
                return None
            best: tuple[tuple, dict[str, list[_Unit]]] | None = None
            for subset in combinations(eligible, size):  # eligible is in preference order: so is each subset
                ids = {n.id for n in subset}
                if any(not ids & {n.id for n in alone[u.index]} for u in units):
                    continue
                placed = self._place(units, subset, search)
                if placed is None:
                    continue
                used_nodes = [self.by_id[i] for i in placed]
                key = self.set_key(used_nodes)
                if best is None or key < best[0]:
                    best = (key, placed)
            if best is not None:
                return best[1]
        return None

    def _place(self, units: Sequence[_Unit], subset: Sequence[FulfillmentNode],
               search: _Search) -> dict[str, list[_Unit]] | None:
        """Every unit on a node of `subset`, each on the most preferred node that leaves a way for the rest
        (depth-first, lines in order); None when there is none within the step budget."""
        if search.exhausted:
            return None
        used: dict[tuple[str, str], int] = {}
        chosen: list[FulfillmentNode] = []

        def go(i: int) -> bool:
            if i == len(units):
                return True
            for node in subset:
                search.steps += 1
                if search.steps > MAX_PLACEMENT_STEPS:
                    search.exhausted = True
                    return False
                if self.fits(node, units[i], used):
                    self.take(node, units[i], used)
                    chosen.append(node)
                    if go(i + 1):
                        return True
                    chosen.pop()
                    self.take(node, units[i], used, -1)
            return False

        if not go(0):
            return None
        out: dict[str, list[_Unit]] = {}
        for unit, node in zip(units, chosen, strict=True):
            out.setdefault(node.id, []).append(unit)
        return out

    # -- the greedy partial plan ----------------------------------------------------------------------
    def greedy(self, units: Sequence[_Unit], eligible: Sequence[FulfillmentNode]) -> dict[str, list[_Unit]]:
        """Up to the policy's node limit: each round, the node that ships the most of the remaining lines (then
        units, then the tie-breakers) takes them."""
        used: dict[tuple[str, str], int] = {}
        left = list(units)
        out: dict[str, list[_Unit]] = {}
        for _ in range(self.policy.node_limit):
            best: tuple[tuple, FulfillmentNode, list[_Unit]] | None = None
            for node in eligible:
                if node.id in out:
                    continue
                trial = dict(used)
                taken = []
                for u in left:
                    if self.fits(node, u, trial):
                        self.take(node, u, trial)
                        taken.append(u)
                if not taken:
                    continue
                key = (-len(taken), -sum(q for u in taken for _, q in u.need), *self.node_key(node))
                if best is None or key < best[0]:
                    best = (key, node, taken)
            if best is None:
                break
            _, node, taken = best
            for u in taken:
                self.take(node, u, used)
            out[node.id] = taken
            left = [u for u in left if u not in taken]
            if not left:
                break
        return out

    # -- explanations ---------------------------------------------------------------------------------
    def _stock_problem(self, node: FulfillmentNode, unit: _Unit) -> str | None:
        short = [(item, qty, max(self.available.get((node.location, item), 0), 0)) for item, qty in unit.need
                 if max(self.available.get((node.location, item), 0), 0) < qty]
        if not short:
            return None
        if len(short) == len(unit.need) and all(have == 0 for _, _, have in short):
            return f"no stock at {node.id}"
        return ", ".join(f"only {have} of {qty} {item}" if have else f"no {item}"
                         for item, qty, have in short) + f" at {node.id}"

    def why_not_at(self, unit: _Unit, nodes: Sequence[FulfillmentNode]) -> str:
        """Why `unit` does not ship from the nodes earlier in the plan."""
        out = []
        for node in nodes:
            problem = (_flag_problem(node, unit.flags) or self._stock_problem(node, unit)
                       or f"{node.id}'s stock went to the other lines")
            out.append(problem)
        return "; ".join(out)

    def why_not(self, unit: _Unit, by_id: Mapping[str, FulfillmentNode], excluded: Mapping[str, str],
                placement: Mapping[str, Sequence[_Unit]], total: int) -> str:
        """Why no node ships `unit` in this plan: per node of the policy."""
        out = []
        for node_id in sorted(by_id):
            node = by_id[node_id]
            if node_id in excluded:
                out.append(f"{node_id} {excluded[node_id]}")
                continue
            problem = _flag_problem(node, unit.flags) or self._stock_problem(node, unit)
            if problem:
                out.append(problem)
            elif node_id in placement:
                out.append(f"{node_id}'s stock went to the other lines")
            elif not self.policy.allow_split:
                out.append(f"{node_id} has it, but the policy allows no split")
            else:
                out.append(f"{node_id} has it, but the policy allows at most {self.policy.max_splits} split(s)")
        return "; ".join(out)

    def choice_notes(self, units: Sequence[_Unit], eligible: Sequence[FulfillmentNode],
                     order: Sequence[str]) -> list[str]:
        """Why these nodes over the others that could also ship the order (fewest splits, then the tie-breaker
        that decided)."""
        if not units or not order:
            return []
        empty: dict[tuple[str, str], int] = {}
        if len(order) == 1:
            rivals = [n for n in eligible if n.id != order[0] and all(self.fits(n, u, empty) for u in units)]
            if not rivals:
                return []
            chosen = self.by_id[order[0]]
            return [f"{chosen.id} chosen over {rival.id}: {self._decider([chosen], [rival])}" for rival in rivals]
        return [f"{len(order)} nodes: no eligible node has every line (fewest splits first)"]

    def _decider(self, mine: Sequence[FulfillmentNode], theirs: Sequence[FulfillmentNode]) -> str:
        a, b = self._criteria(mine), self._criteria(theirs)
        for tb, x, y in zip(self.policy.tie_breakers, a, b, strict=True):
            if x == y:
                continue
            if tb == "cost":
                cur = mine[0].cost_per_shipment.currency
                return f"lower cost ({x} {cur} vs {y} {cur})"
            if tb == "rank":
                return f"better rank ({_rank(mine)} vs {_rank(theirs)})"
            return "ships sooner"
        return "same cost and rank: node id order"


def _rank(nodes: Iterable[FulfillmentNode]) -> str:
    return ", ".join("none" if n.rank is None else str(n.rank) for n in nodes)


# -- ship-from-store and click-and-collect through the POS role (issue 20, item 3) -----------------------------------
class StoreFulfillmentKind(StrEnum):
    """What a store is asked: pick and ship to the customer, or pick and hold for the customer to collect."""

    SHIPMENT = "SHIPMENT"
    PICKUP = "PICKUP"


class StoreFulfillmentState(StrEnum):
    """Square's fulfillment states (Orders API `Fulfillment.state`); the embedded POS uses the same ones.
    PROPOSED (asked) → RESERVED (the store accepted) → PREPARED (picked: ready for pick-up, or packed) →
    COMPLETED (collected by the customer, or shipped); CANCELED (withdrawn by us, or refused by the store)."""

    PROPOSED = "PROPOSED"
    RESERVED = "RESERVED"
    PREPARED = "PREPARED"
    COMPLETED = "COMPLETED"
    CANCELED = "CANCELED"
    FAILED = "FAILED"


STORE_FINAL_STATES = frozenset({StoreFulfillmentState.COMPLETED, StoreFulfillmentState.CANCELED,
                                StoreFulfillmentState.FAILED})
# the transitions a store (its staff, or Square) may make; anything else is refused
STORE_TRANSITIONS: dict[StoreFulfillmentState, frozenset[StoreFulfillmentState]] = {
    StoreFulfillmentState.PROPOSED: frozenset({StoreFulfillmentState.RESERVED, StoreFulfillmentState.PREPARED,
                                               StoreFulfillmentState.CANCELED, StoreFulfillmentState.FAILED}),
    StoreFulfillmentState.RESERVED: frozenset({StoreFulfillmentState.PREPARED, StoreFulfillmentState.CANCELED,
                                               StoreFulfillmentState.FAILED}),
    StoreFulfillmentState.PREPARED: frozenset({StoreFulfillmentState.COMPLETED, StoreFulfillmentState.CANCELED,
                                               StoreFulfillmentState.FAILED}),
}


class StoreFulfillmentLine(CanonicalModel):
    line_id: str = Field(description="The order line id (a kit line's components carry the kit line's id)")
    item_code: str = Field(min_length=1)
    quantity: int = Field(gt=0)


class StoreFulfillmentRequest(CanonicalModel):
    """A fulfillment request to one store: `ref` is the release's reference, `<order>/<node>/<n>`
    (`release_reference`), the idempotency key of the request at the POS."""

    ref: str = Field(min_length=1)
    store_id: str = Field(min_length=1, description="The store node's id")
    location: str = Field(min_length=1, description="The store's location in the inventory ledger")
    order_ref: str = Field(min_length=1, description="The order's workflow id")
    kind: StoreFulfillmentKind
    lines: list[StoreFulfillmentLine] = Field(min_length=1)
    recipient: str | None = Field(default=None, description="Who collects or receives it (the customer's name)")
    currency: str | None = None


class StoreFulfillment(CanonicalModel):
    """A store fulfillment as the POS holds it."""

    ref: str
    store_id: str
    kind: StoreFulfillmentKind
    state: StoreFulfillmentState
    external_id: str | None = Field(default=None, description="The POS's own id (a Square order id)")
    lines: list[StoreFulfillmentLine] = Field(default_factory=list)


class StoreFulfillmentEvent(CanonicalModel):
    """What a store did with a fulfillment (signal `store_fulfillment` of OrderFulfillment): the staff's pick
    confirmation (PREPARED), the customer's pick-up or the store's shipment (COMPLETED), the store's refusal
    (CANCELED / FAILED). `actor` is the authenticated store principal, or `square:<location>` for a Square webhook."""

    event_id: str = Field(min_length=1, description="Deduplicates redelivery")
    ref: str = Field(min_length=1, description="The release reference")
    state: StoreFulfillmentState
    actor: str = Field(min_length=1)
    occurred_at: UtcDatetime
    reason: str | None = None
    carrier: str | None = Field(default=None, description="Ship-from-store: the parcel's carrier")
    tracking_number: str | None = None
