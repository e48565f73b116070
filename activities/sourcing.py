"""Sourcing: which fulfillment node ships which order line (issue 20). One read of the inventory ledger for the
candidate nodes' locations, then the pure planner (`canonical.sourcing.plan_sourcing`).

The units a node can ship are its location's free stock (on hand − reserved − allocated) less what the ledger's
policy for the order's channel holds back there (safety stock, a store's shelf buffer), so an order is never
sourced from units the channel was not offered. Kit lines are read as their components.

A plan that cannot be sourced is returned as it is (`sourced=False`, the reason per line): the workflow decides
to park. A channel with no policy is a business fault (SourcingNotConfigured), parked until the file is fixed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal

import structlog
from pydantic import Field
from temporalio import activity

from activities.capacity import NodeCapacity
from activities.orders import business_errors
from adapters.inventory.backorders import BackorderBook
from adapters.inventory.ledger import InventoryLedger
from adapters.ports import Adapters
from adapters.pos.fulfillment import StoreFulfillmentPort, StoreFulfillmentRefused
from adapters.supplier.base import ChangeNotSupported, InboundDocument, SupplierAdapter
from adapters.wms.base import WmsAdapter
from canonical.errors import BusinessError, CannotCancel, ChannelRejected
from canonical.fulfillment import Reservation, ResolvedLine
from canonical.inventory import BackorderWait
from canonical.kits import ComponentLine, expand_kits
from canonical.order import Address, CanonicalModel, Shipment, ShipmentLine, UtcDatetime
from canonical.sourcing import (
    FulfillmentNetwork,
    SourcingConfigError,
    SourcingNotConfigured,
    SourcingPlan,
    SourcingRequest,
    StoreFulfillmentKind,
    StoreFulfillmentLine,
    StoreFulfillmentRequest,
    StoreFulfillmentState,
    UnplacedLine,
    plan_sourcing,
)
from canonical.supplier import (
    AckLineStatus,
    FunctionalAck,
    PayableConflict,
    PoAcknowledgement,
    PoChangeAck,
    PoLine,
    PurchaseOrder,
    ShipNotice,
    SupplierInvoice,
    match_invoice,
)

log = structlog.get_logger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


BACKORDER_REPLANS = 3  # plans made at most when stock of a backordered item rises while the waits are written


class SourcingActivities:
    """`backorders`: where the backordered lines' waits are kept (the platform database's `backorder_waits`), so a
    receipt of the item signals the order (issue 20); None (a stand-in ledger in tests): no waits are written."""

    def __init__(self, ledger: InventoryLedger, network: FulfillmentNetwork, *,
                 backorders: BackorderBook | None = None, capacity: NodeCapacity | None = None) -> None:
        self.ledger = ledger
        self.network = network
        self.kits = network.catalog()
        self.backorders = backorders
        self.capacity = capacity  # each node's releases on its shipping day (None: only the request's own figures)

    def _shipped_today(self, inp: SourcingRequest, node_ids: list[str]) -> dict[str, int]:
        if self.capacity is None:
            return dict(inp.shipped_today)
        return self.capacity.shipped_today(node_ids, inp.now, inp.shipped_today)

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
        """The plan. With a backorder book, the planned lines then wait for exactly what the plan backorders (the
        rows of placed lines go). A receipt committed after the stock was read but before the waits were written
        would find no wait, so the backordered items' stock is read again after the write, and the order is
        planned again if it rose (at most BACKORDER_REPLANS plans)."""
        for _ in range(BACKORDER_REPLANS):
            plan, locations, seen = self._plan_once(inp)
            if self.backorders is None:
                return plan
            self.backorders.replace(inp.order_key, [ln.line_id for ln in inp.lines], [
                BackorderWait(order_key=inp.order_key, line_id=b.line_id, item_code=c.item_code, channel=inp.channel,
                              quantity=c.quantity, locations=sorted(locations))
                for b in plan.backordered for c in (b.components or [ComponentLine(
                    line_id=b.line_id, item_code=b.item_code, quantity=b.quantity)])])
            items = {c.item_code for b in plan.backordered for c in b.components} | {
                b.item_code for b in plan.backordered if not b.components}
            now = self.available(inp.channel, locations, items) if items else {}
            if not any(q > seen.get(key, 0) for key, q in now.items()):
                return plan
            log.info("sourcing.stock_rose_while_backordering", order=inp.order_key, items=sorted(items))
        return plan

    def _plan_once(self, inp: SourcingRequest) -> tuple[SourcingPlan, set[str], dict[tuple[str, str], int]]:
        """One plan, the locations it planned on and the stock it read there."""
        try:
            policy = self.network.policy_for(inp.channel)
        except KeyError as exc:
            raise SourcingNotConfigured(str(exc.args[0]), details={"channel": inp.channel}) from None
        if inp.pickup_node is not None:  # click-and-collect: the customer's store only, wherever it is
            return self._plan_pickup(inp, policy), set(), {}
        excluded = [i for i in policy.nodes if i in set(inp.exclude_nodes)]
        if excluded:  # re-sourcing: the nodes that refused are not planned on (the rules are otherwise the same)
            policy = policy.model_copy(update={"nodes": [i for i in policy.nodes if i not in set(excluded)]})
        nodes = self.network.nodes_by_id()
        locations = {nodes[i].location for i in policy.nodes if i in nodes}
        items = {c.item_code for c in expand_kits(inp.lines, self.kits)}
        available = self.available(inp.channel, locations, items)
        try:
            plan = plan_sourcing(inp.lines, inp.ship_to_country, inp.channel, policy, self.network.node, available,
                                 self.network.items, self._shipped_today(inp, list(policy.nodes)), kits=self.kits,
                                 now=inp.now)
        except SourcingConfigError as exc:
            raise SourcingNotConfigured(str(exc), details={"channel": inp.channel}) from None
        if excluded:
            plan = plan.model_copy(update={"explanation": [f"{', '.join(excluded)} not planned on: refused or timed "
                                                           "out on this order", *plan.explanation]})
        return plan, locations, available

    def _plan_pickup(self, inp: SourcingRequest, policy) -> SourcingPlan:
        """A click-and-collect order is planned on its pickup store alone (no split, no other node: the customer
        comes to that store). The country rule does not apply; stock, the channel and the item flags do. A store
        that refused on this order, or that is not in the channel's policy, leaves it unsourceable (it parks)."""
        store = inp.pickup_node
        assert store is not None
        nodes = self.network.nodes_by_id()
        node = nodes.get(store)
        why = None
        if node is None or store not in policy.nodes:
            why = f"pickup store {store} is not a node of the {inp.channel} sourcing policy"
        elif node.kind != "store":
            why = f"pickup node {store} is a {node.kind}, not a store"
        elif store in set(inp.exclude_nodes):
            why = f"pickup store {store} refused or cannot serve this order"
        if why is not None:
            lines = expand_kits(inp.lines, self.kits)
            return SourcingPlan(channel=inp.channel, ship_to_country=inp.ship_to_country, sourced=False,
                                unsourceable=[UnplacedLine(line_id=r.line_id, item_code=r.item_code,
                                                           quantity=r.quantity,
                                                           components=[c for c in lines if c.line_id == r.line_id],
                                                           reason=why) for r in inp.lines],
                                explanation=[why])
        assert node is not None
        pickup_policy = policy.model_copy(update={"nodes": [store], "max_splits": 0, "allow_backorder": False})
        country = inp.ship_to_country if node.ships_to_country(inp.ship_to_country) else next(
            (c for c in node.ship_to if c != "*"), inp.ship_to_country)
        items = {c.item_code for c in expand_kits(inp.lines, self.kits)}
        available = self.available(inp.channel, {node.location}, items)
        try:
            plan = plan_sourcing(inp.lines, country, inp.channel, pickup_policy, self.network.node, available,
                                 self.network.items, self._shipped_today(inp, [store]), kits=self.kits, now=inp.now)
        except SourcingConfigError as exc:
            raise SourcingNotConfigured(str(exc), details={"channel": inp.channel}) from None
        return plan.model_copy(update={"explanation": [f"click-and-collect at store {store}: planned on it alone",
                                                       *plan.explanation]})

    def all(self) -> list:
        return [self.plan_sourcing]


# -- split fulfillment: one reservation and one fulfillment request per node (issue 20, item 2) --------------------
# The workflow (OrderFulfillment, split path) plans with `plan_sourcing`, then for each node's allocation reserves
# its lines at the node (`reserve_at_node`), releases them to the node's adapter (`release_to_node`: a warehouse or
# 3PL through the WMS role, a drop-ship supplier through the supplier adapter: an EDI 850), polls a supplier for its
# 855/856 (`poll_node`), posts each node's deliveries against that node's reservation (`post_node_delivery`), and
# undoes per node (`cancel_node_release`, `release_node_stock`). Each release has its own reference,
# `<workflow id>/<node id>/<n>`: the WMS's external reference, the reservation key, the purchase order's source.


class NodeRefused(BusinessError):
    """A node refused (part of) a fulfillment request: the workflow re-sources the lines elsewhere or parks."""

    action = ("The node refused the lines; the order is re-sourced to another node where one has stock, else it "
              "waits here: receive or transfer stock, then send `retry`; or cancel the lines or the order.")


class NodeRelease(CanonicalModel):
    """One fulfillment request to one node, as the workflow keeps it."""

    ref: str = Field(description="<workflow id>/<node id>/<n>: the release's external reference and reservation key")
    node_id: str
    kind: str
    adapter: str = Field(description="role:name, e.g. wms:local or supplier:edi")
    location: str
    lines: list[ComponentLine] = Field(description="What the node picks (a kit line: its components)")
    release_id: str | None = Field(default=None, description="The WMS release id or the purchase order number")
    state: str = Field(default="planned", description="planned, reserved, released, acknowledged, shipped, "
                       "refused, cancelled")
    reason: str | None = None
    released_at: UtcDatetime | None = None

    @property
    def role(self) -> str:
        return self.adapter.split(":", 1)[0]

    @property
    def line_ids(self) -> list[str]:
        return list(dict.fromkeys(ln.line_id for ln in self.lines))


class NodeReserveInput(CanonicalModel):
    release: NodeRelease


class NodeReleaseInput(CanonicalModel):
    release: NodeRelease
    order_ref: str = Field(description="The workflow id: the order the release serves")
    ship_to: Address | None
    currency: str
    unit_prices: dict[str, Decimal] = Field(default_factory=dict, description="Order line id → unit price (the "
                                            "purchase order's price until a supplier price list exists)")
    pickup: bool = Field(default=False, description="A store node: hold the lines for the customer to collect "
                         "(click-and-collect) instead of shipping them")
    recipient: str | None = Field(default=None, description="A store node: who collects or receives the order")


class NodeReleaseRef(CanonicalModel):
    ref: str
    node_id: str
    release_id: str


class NodeAmendInput(CanonicalModel):
    release: NodeRelease
    lines: list[ComponentLine] = Field(description="What the node is still to ship")


class NodeDeliveryInput(CanonicalModel):
    release: NodeRelease
    shipment: Shipment


class NodeShipment(CanonicalModel):
    """A shipment from one node (signal `node_shipment`): `release_ref` names the release (its reference, its
    `<node id>/<n>`, or its WMS release / PO id), or `node_id` the node."""

    release_ref: str | None = None
    node_id: str | None = None
    shipment: Shipment


class NodeRefusal(CanonicalModel):
    """A node refused the release's lines (signal `node_refused`; a WMS exception, a supplier's 855 rejection)."""

    release_ref: str | None = None
    node_id: str | None = None
    reason: str = Field(min_length=1)
    line_ids: list[str] = Field(default_factory=list, description="The order lines refused; empty: every line")
    timed_out: bool = Field(default=False, description="The node did not answer in time (it did not refuse): its "
                            "request is withdrawn")


class StockReceived(CanonicalModel):
    """Stock arrived at a location (signal `stock_received`): a backordered line may be sourced now."""

    event_id: str = Field(min_length=1)
    item_code: str
    quantity: int = Field(gt=0)
    location: str | None = None


class NodeUpdates(CanonicalModel):
    """What a supplier answered for one purchase order since it was sent (its 855 and 856s)."""

    acknowledged: bool = False
    refusal: NodeRefusal | None = None
    shipments: list[Shipment] = Field(default_factory=list)


class SupplierNotConfigured(BusinessError):
    action = "Configure the supplier adapter on the worker (runtime/suppliers.py), or pause the sweep's schedule."


class InvoiceSweepInput(CanonicalModel):
    """The supplier inbox sweep (SupplierInvoiceSweep): one supplier adapter by name, or every one (None)."""

    adapter: str | None = Field(default=None, description="A supplier adapter name (`edi` of `supplier:edi`)")


class InvoiceSweepResult(CanonicalModel):
    """What a sweep did with each invoice it found, as `<adapter>:<file>:<invoice number>`."""

    posted: list[str] = Field(default_factory=list, description="Matched and posted (or found posted) as payables")
    waiting: list[str] = Field(default_factory=list, description="More invoiced than shipped: wait for the 856")
    mismatched: list[str] = Field(default_factory=list, description="Quarantined with the differences")
    unmatched: list[str] = Field(default_factory=list, description="For no purchase order we sent: left in inbound/")
    quarantined_files: list[str] = Field(default_factory=list, description="Malformed files quarantined by collect")
    change_accepted: list[str] = Field(default_factory=list, description="865s accepting our 860: archived")
    change_rejected: list[str] = Field(default_factory=list, description="865s rejecting our 860: quarantined with "
                                       "a report (the supplier may ship what was cancelled)")


def po_number(ref: str) -> str:
    """A purchase order number for a release (X12 BEG03 allows 22 characters; a workflow id is longer)."""
    return "RF" + hashlib.sha256(ref.encode()).hexdigest()[:16].upper()


def component_resolved(lines: list[ComponentLine]) -> list[ResolvedLine]:
    """The node's pick lines as the WMS and the ERP reservation take them: one per item (a kit's components carry
    the kit line's id in `line_id` and their own item code as SKU)."""
    out: dict[tuple[str, str], int] = {}
    for ln in lines:
        out[(ln.line_id, ln.item_code)] = out.get((ln.line_id, ln.item_code), 0) + ln.quantity
    return [ResolvedLine(line_id=lid, channel_sku=item, item_code=item, quantity=q) for (lid, item), q in out.items()]


def shipped_components(release: NodeRelease, shipment: Shipment,
                       channel_skus: Mapping[str, str] | None = None) -> dict[tuple[str, str], int]:
    """(order line id, item code) → units of the release's items this shipment carries. A line is named by its
    id or SKU; a kit line shipped as kits counts each component per kit, one shipped as components counts them."""
    by_line: dict[str, list[ComponentLine]] = {}
    for ln in release.lines:
        by_line.setdefault(ln.line_id, []).append(ln)
    sku_to_line = {sku: lid for lid, sku in (channel_skus or {}).items() if lid in by_line}
    out: dict[tuple[str, str], int] = {}
    for sl in shipment.lines:
        lid = sl.line_id if sl.line_id in by_line else sku_to_line.get(sl.channel_sku)
        if lid is None:
            continue
        parts = by_line[lid]
        part = next((p for p in parts if p.item_code == sl.channel_sku and (p.kit_item_code or len(parts) > 1)), None)
        if part is not None:  # a component, by its item code
            out[(lid, part.item_code)] = out.get((lid, part.item_code), 0) + sl.quantity
            continue
        for p in parts:  # the line itself (a kit line: that many kits)
            out[(lid, p.item_code)] = out.get((lid, p.item_code), 0) + sl.quantity * units_per_line_unit(p)
    return out


def units_per_line_unit(part: ComponentLine) -> int:
    """Units of `part`'s item in one unit of its order line: a kit component's quantity per kit, else 1."""
    return part.per_kit if part.kit_quantity else 1


class SplitFulfillmentActivities:
    """The per-node steps. `wms`: the WMS adapters this worker has, by name (`wms:<name>` nodes); `suppliers`: the
    supplier adapter of `supplier:<name>` nodes, by name. A node whose adapter this worker lacks refuses (the
    workflow re-sources or parks with the reason)."""

    def __init__(self, adapters: Adapters, *, wms: Mapping[str, WmsAdapter] | None = None,
                 suppliers: Mapping[str, SupplierAdapter] | None = None,
                 stores: Mapping[str, StoreFulfillmentPort] | None = None,
                 capacity: NodeCapacity | None = None) -> None:
        self.adapters = adapters
        self.capacity = capacity  # a release that reached its node counts on the node's shipping day
        self.wms = dict(wms or {})
        self.suppliers = dict(suppliers or {})
        self.stores = dict(stores or {})
        bundled = getattr(adapters, "store_fulfillment", None)
        if bundled is not None:  # the POS role of the bundle serves `pos:store` nodes
            self.stores.setdefault("store", bundled)

    def _store(self, release: NodeRelease) -> StoreFulfillmentPort:
        name = release.adapter.split(":", 1)[1]
        if name not in self.stores:
            raise NodeRefused(f"node {release.node_id}: its adapter {release.adapter} is not configured on this "
                              f"worker (have: {', '.join('pos:' + n for n in sorted(self.stores)) or 'none'})",
                              details={"node_id": release.node_id})
        return self.stores[name]

    def _wms(self, release: NodeRelease) -> WmsAdapter:
        name = release.adapter.split(":", 1)[1]
        if name not in self.wms:
            raise NodeRefused(f"node {release.node_id}: its adapter {release.adapter} is not configured on this "
                              f"worker (have: {', '.join('wms:' + n for n in sorted(self.wms)) or 'none'})",
                              details={"node_id": release.node_id})
        return self.wms[name]

    def _supplier(self, release: NodeRelease) -> SupplierAdapter:
        name = release.adapter.split(":", 1)[1]
        if name not in self.suppliers:
            raise NodeRefused(f"node {release.node_id}: its adapter {release.adapter} is not configured on this "
                              f"worker (have: {', '.join('supplier:' + n for n in sorted(self.suppliers)) or 'none'})",
                              details={"node_id": release.node_id})
        return self.suppliers[name]

    @activity.defn(name="reserve_at_node")
    @business_errors
    def reserve_at_node(self, inp: NodeReserveInput) -> Reservation:
        """Reserve the node's items (a kit line: its components) under the release's key; idempotent by key.
        The units are held at the node's location (the plan chose it for its stock there); an ERP that books
        into one warehouse only holds them there, and a reservation made elsewhere is logged."""
        rel = inp.release
        reservation = self.adapters.erp.reserve(rel.ref, component_resolved(rel.lines), allow_backorder=False,
                                                location=rel.location)
        elsewhere = sorted({r.location for r in reservation.lines if r.quantity and r.location != rel.location})
        if elsewhere:
            log.warning("sourcing.reserved_elsewhere", release=rel.ref, node=rel.node_id, node_location=rel.location,
                        reserved_at=elsewhere)
        return reservation

    @activity.defn(name="release_node_stock")
    @business_errors
    def release_node_stock(self, inp: NodeReserveInput) -> bool:
        return self.adapters.erp.release_reservation(inp.release.ref)

    @activity.defn(name="reduce_node_reservation")
    @business_errors
    def reduce_node_reservation(self, inp: NodeAmendInput) -> int:
        return self.adapters.erp.reduce_reservation(inp.release.ref, component_resolved(inp.lines))

    @activity.defn(name="release_to_node")
    @business_errors
    def release_to_node(self, inp: NodeReleaseInput) -> NodeReleaseRef:
        """Send the node its fulfillment request: a warehouse or 3PL through its WMS adapter (idempotent by the
        release's reference), a drop-ship supplier as a purchase order (an EDI 850; idempotent by PO number).
        Once the node has it, the release counts on the node's shipping day (its capacity per day)."""
        ref = self._send_to_node(inp)
        if self.capacity is not None:
            self.capacity.released(inp.release.node_id, inp.release.ref)
        return ref

    def _send_to_node(self, inp: NodeReleaseInput) -> NodeReleaseRef:
        rel = inp.release
        if rel.role == "wms":
            ref = self._wms(rel).release(rel.ref, component_resolved(rel.lines), inp.ship_to)
            return NodeReleaseRef(ref=rel.ref, node_id=rel.node_id, release_id=ref.release_id)
        if rel.role == "supplier":
            if inp.ship_to is None:
                raise NodeRefused(f"node {rel.node_id}: a drop-ship purchase order needs a ship-to address")
            po = PurchaseOrder(
                po_number=po_number(rel.ref), supplier_id=rel.node_id, order_ref=inp.order_ref, currency=inp.currency,
                ship_to=inp.ship_to,
                lines=[PoLine(line_number=str(n), item_code=ln.item_code, quantity=ln.quantity,
                              unit_price=inp.unit_prices.get(ln.line_id, Decimal(0)) if ln.kit_item_code is None
                              else Decimal(0))
                       for n, ln in enumerate(rel.lines, start=1)])
            sent = self._supplier(rel).send_purchase_order(po)
            return NodeReleaseRef(ref=rel.ref, node_id=rel.node_id, release_id=sent.po_number)
        if rel.role == "pos":
            request = StoreFulfillmentRequest(
                ref=rel.ref, store_id=rel.node_id, location=rel.location, order_ref=inp.order_ref,
                kind=StoreFulfillmentKind.PICKUP if inp.pickup else StoreFulfillmentKind.SHIPMENT,
                lines=[StoreFulfillmentLine(line_id=ln.line_id, item_code=ln.item_code, quantity=ln.quantity)
                       for ln in rel.lines], recipient=inp.recipient, currency=inp.currency)
            try:
                made = self._store(rel).request_fulfillment(request)
            except (StoreFulfillmentRefused, ChannelRejected) as exc:
                raise NodeRefused(f"store {rel.node_id} refused the request: {exc}",
                                  details={"node_id": rel.node_id}) from None
            if made.state in (StoreFulfillmentState.CANCELED, StoreFulfillmentState.FAILED):
                raise NodeRefused(f"store {rel.node_id}: fulfillment {rel.ref} is {made.state.value.lower()}",
                                  details={"node_id": rel.node_id})
            return NodeReleaseRef(ref=rel.ref, node_id=rel.node_id, release_id=made.external_id or rel.ref)
        raise NodeRefused(f"node {rel.node_id}: no fulfillment request for adapter role {rel.role!r} yet "
                          f"({rel.adapter}); only wms:*, supplier:* and pos:* nodes are released",
                          details={"node_id": rel.node_id})

    @activity.defn(name="cancel_node_release")
    @business_errors
    def cancel_node_release(self, inp: NodeReserveInput) -> bool:
        """Withdraw the node's request; its place on the node's shipping day is free again."""
        cancelled = self._withdraw_from_node(inp)
        if self.capacity is not None:
            self.capacity.withdrawn(inp.release.ref)
        return cancelled

    def _withdraw_from_node(self, inp: NodeReserveInput) -> bool:
        rel = inp.release
        if rel.role == "wms":
            return self._wms(rel).cancel_release(rel.ref)
        if rel.role == "supplier":
            return self._cancel_purchase_order(rel)
        if rel.role == "pos":  # the store's request withdrawn (CannotCancel once collected or shipped)
            return self._store(rel).cancel_fulfillment(rel.ref)
        return False

    @activity.defn(name="amend_node_release")
    @business_errors
    def amend_node_release(self, inp: NodeAmendInput) -> bool:
        rel = inp.release
        if rel.role == "wms":
            return self._wms(rel).amend_release(rel.ref, component_resolved(inp.lines))
        if rel.role == "pos":  # until the staff pick it; CannotCancel after (they hold what they picked)
            return self._store(rel).amend_fulfillment(rel.ref, [
                StoreFulfillmentLine(line_id=ln.line_id, item_code=ln.item_code, quantity=ln.quantity)
                for ln in inp.lines])
        if rel.role == "supplier":
            return self._change_purchase_order(rel, inp.lines)
        raise CannotCancel(f"node {rel.node_id}: no amendment for adapter role {rel.role!r} ({rel.adapter})")

    # -- drop-ship change requests: an X12 860 (cancellation or change), answered by an 865 ------------------------
    def _po_line_map(self, adapter: SupplierAdapter, rel: NodeRelease, po: str) -> dict[str, ComponentLine]:
        """PO line number → the release line it carries. The 850 numbered the release's lines from 1 as released;
        after a change the release holds fewer lines (in the same order), so they are matched to the PO as sent
        (read back), in order, by item."""
        sent = getattr(adapter, "purchase_order", None)
        order = sent(po) if sent is not None else None
        if order is None:
            return {str(n): ln for n, ln in enumerate(rel.lines, start=1)}
        out: dict[str, ComponentLine] = {}
        j = 0
        for ln in rel.lines:
            while j < len(order.lines) and order.lines[j].item_code != ln.item_code:
                j += 1
            if j == len(order.lines):
                break
            out[order.lines[j].line_number] = ln
            j += 1
        return out

    @staticmethod
    def _shipped_by_line(adapter: SupplierAdapter, po: str) -> dict[str, int]:
        """PO line number (or item code) → units the supplier's 856s taken so far say it shipped."""
        notices = getattr(adapter, "ship_notices", None)
        out: dict[str, int] = {}
        for notice in notices(po) if notices is not None else []:
            for s in notice.lines:
                key = s.line_number or s.item_code or ""
                out[key] = out.get(key, 0) + s.quantity
        return out

    def _cancel_purchase_order(self, rel: NodeRelease) -> bool:
        po = rel.release_id or po_number(rel.ref)
        adapter = self._supplier(rel)
        shipped = {k: q for k, q in self._shipped_by_line(adapter, po).items() if q > 0}
        if shipped:
            what = ", ".join(f"line {k}: {q} unit(s)" for k, q in sorted(shipped.items()))
            raise CannotCancel(f"purchase order {po}: {rel.node_id} has shipped ({what}; its 856 was read); "
                               "the rest is not cancelled by a change order",
                               details={"action": f"Take the shipped goods back by a return; ask {rel.node_id} "
                                                  f"about what is left of purchase order {po}."})
        try:
            sent = adapter.cancel_purchase_order(po, f"order {rel.ref.rsplit('/', 2)[0]} cancelled")
        except (ChangeNotSupported, LookupError) as exc:
            raise CannotCancel(f"purchase order {po} was sent to {rel.node_id}; no cancellation can be sent ({exc}): "
                               "ask the supplier to cancel it",
                               details={"action": f"Ask {rel.node_id} to cancel purchase order {po}."}) from None
        log.info("supplier.po_cancel_requested", po=po, node=rel.node_id, sequence=sent.sequence,
                 interchange=sent.interchange_control, resent=sent.resent)
        return True

    def _change_purchase_order(self, rel: NodeRelease, keep: list[ComponentLine]) -> bool:
        po = rel.release_id or po_number(rel.ref)
        adapter = self._supplier(rel)
        if not keep:
            return self._cancel_purchase_order(rel)
        by_po_line = self._po_line_map(adapter, rel, po)
        wanted = {(ln.line_id, ln.item_code): ln.quantity for ln in keep}
        shipped = self._shipped_by_line(adapter, po)
        lines: list[PoLine] = []
        for number, ln in by_po_line.items():
            qty = wanted.get((ln.line_id, ln.item_code), 0)
            done = shipped.get(number, 0) + shipped.get(ln.item_code, 0)
            if qty < done:
                raise CannotCancel(f"purchase order {po}: {rel.node_id} has shipped {done} unit(s) of line {number} "
                                   f"({ln.item_code}; its 856 was read); it cannot go down to {qty}")
            if qty > 0:
                lines.append(PoLine(line_number=number, item_code=ln.item_code, quantity=qty, unit_price=Decimal(0)))
        try:
            sent = adapter.change_purchase_order(po, lines)
        except (ChangeNotSupported, LookupError, ValueError) as exc:
            raise CannotCancel(f"purchase order {po} to {rel.node_id} cannot be amended ({exc}); nothing changed",
                               details={"action": f"Ask {rel.node_id} to change purchase order {po}."}) from None
        log.info("supplier.po_change_requested", po=po, node=rel.node_id, sequence=sent.sequence,
                 interchange=sent.interchange_control, resent=sent.resent,
                 lines=[f"{c.line_number}:{c.change}:{c.quantity}" for c in sent.lines])
        return True

    def _take_change_ack(self, adapter: SupplierAdapter, doc: InboundDocument) -> str:
        """The supplier's 865 for one of our 860s: an acceptance is archived; a rejection cannot be told to the
        order (the workflow has no event for 'the supplier keeps lines you cancelled'), so it is logged and the
        file quarantined with a report naming the PO and the change, for an analyst to settle with the supplier.
        Returns accepted or rejected."""
        ack = doc.document
        assert isinstance(ack, PoChangeAck)
        what = "cancellation" if ack.purpose == "01" else "change"
        if not ack.rejected:
            log.info("supplier.po_change_accepted", po=ack.po_number, supplier=ack.supplier_id, sequence=ack.sequence,
                     status=ack.status_code)
            adapter.acknowledge(doc.receipt)
            return "accepted"
        lines = [a.line_number for a in ack.lines if a.status == AckLineStatus.REJECTED]
        message = (f"{ack.supplier_id} rejected the {what} (860 sequence {ack.sequence}) of purchase order "
                   f"{ack.po_number} (865 {ack.status_code}" + (f", line(s) {', '.join(lines)}" if lines else "")
                   + "): it may still ship what was cancelled")
        log.warning("supplier.po_change_rejected", po=ack.po_number, supplier=ack.supplier_id, sequence=ack.sequence,
                    status=ack.status_code, lines=lines)
        reject = getattr(adapter, "reject_document", None)
        if reject is not None:
            reject(doc.receipt, {"error": message, "po_number": ack.po_number, "sequence": ack.sequence,
                                 "purpose": ack.purpose, "status_code": ack.status_code, "rejected_lines": lines,
                                 "action": f"Settle purchase order {ack.po_number} with {ack.supplier_id}: what it "
                                           "ships of the cancelled lines comes back as a return"})
        else:
            adapter.acknowledge(doc.receipt)
        return "rejected"

    @activity.defn(name="post_node_delivery")
    @business_errors
    def post_node_delivery(self, inp: NodeDeliveryInput) -> None:
        """Post the node's shipment against the node's reservation: its items (a kit's components) leave stock."""
        rel = inp.release
        units = shipped_components(rel, inp.shipment)
        if not units:
            return
        lines = [ShipmentLine(line_id=f"{lid}#{item}", channel_sku=item, quantity=q)
                 for (lid, item), q in sorted(units.items())]
        resolved = [ResolvedLine(line_id=f"{lid}#{item}", channel_sku=item, item_code=item, quantity=q)
                    for (lid, item), q in sorted(units.items())]
        shipment = inp.shipment.model_copy(update={"lines": lines})
        self.adapters.erp.post_delivery(rel.ref, shipment, resolved)

    @activity.defn(name="poll_node")
    @business_errors
    def poll_node(self, inp: NodeReserveInput) -> NodeUpdates:
        """What a drop-ship supplier answered for this release's purchase order: its 855 (a rejected line, or the
        whole PO rejected, is a refusal) and 856s (each a shipment of the PO's lines). Only this PO's files are
        acknowledged (archived); other orders' documents stay for their own polls. This PO's 810 is matched and posted as
        a payable (`_take_invoice`)."""
        rel = inp.release
        if rel.role != "supplier":
            return NodeUpdates()
        adapter = self._supplier(rel)
        po = rel.release_id or po_number(rel.ref)
        collected = adapter.collect()
        by_file: dict[str, list] = {}
        for doc in collected.documents:
            by_file.setdefault(doc.receipt.file_name, []).append(doc)
        acknowledged, refusal, shipments = False, None, []
        by_number = self._po_line_map(adapter, rel, po)
        for docs in by_file.values():
            if all(isinstance(d.document, FunctionalAck) for d in docs):
                adapter.acknowledge(docs[0].receipt)  # a 997: noted on the ledger by collect, nobody else's business
                continue
            mine = [d for d in docs if getattr(d.document, "po_number", None) == po]
            if not mine:
                continue
            if len(mine) == len(docs) and all(isinstance(d.document, PoChangeAck) for d in mine):
                for d in mine:  # the answer to our change request: an acceptance archived, a rejection reported
                    if self._take_change_ack(adapter, d) == "rejected":
                        break  # the file is in quarantine now
                continue
            for d in mine:
                doc = d.document
                if isinstance(doc, PoAcknowledgement):
                    acknowledged = True
                    rejected = [by_number[a.line_number].line_id for a in doc.lines
                                if a.status == AckLineStatus.REJECTED and a.line_number in by_number]
                    if doc.rejected or rejected:
                        refusal = NodeRefusal(release_ref=rel.ref, node_id=rel.node_id,
                                                  reason=f"{rel.node_id} rejected purchase order {po}"
                                                  + ("" if doc.rejected else f" line(s) {', '.join(rejected)}")
                                                  + f" (855 {doc.status_code})",
                                                  line_ids=[] if doc.rejected else list(dict.fromkeys(rejected)))
                elif isinstance(doc, ShipNotice):
                    lines = []
                    for s in doc.lines:
                        ln = by_number.get(s.line_number or "") or next(
                            (x for x in rel.lines if x.item_code == s.item_code), None)
                        if ln is None or s.quantity <= 0:
                            continue
                        lines.append(ShipmentLine(line_id=ln.line_id, channel_sku=ln.item_code, quantity=s.quantity))
                    if lines:
                        shipments.append(Shipment(
                            shipment_id=f"{rel.node_id}:{doc.shipment_id}", carrier=doc.carrier,
                            tracking_number=doc.tracking_number, shipped_at=utcnow(), lines=lines))
            if len(mine) == len(docs) and all(isinstance(d.document, PoAcknowledgement | ShipNotice) for d in mine):
                adapter.acknowledge(mine[0].receipt)
        notices = [(d.receipt.file_name, d.document) for docs in by_file.values() for d in docs
                   if isinstance(d.document, ShipNotice) and d.document.po_number == po]
        for docs in by_file.values():
            for d in docs:
                if isinstance(d.document, SupplierInvoice) and d.document.po_number == po:
                    self._take_invoice(adapter, d, po, notices)
        return NodeUpdates(acknowledged=acknowledged, refusal=refusal, shipments=shipments)

    @activity.defn(name="sweep_supplier_invoices")
    @business_errors
    def sweep_supplier_invoices(self, inp: InvoiceSweepInput) -> InvoiceSweepResult:
        """The supplier inbox sweep (workflow SupplierInvoiceSweep, on a Temporal Schedule): every invoice (810 or
        INVOIC) left in a supplier adapter's `inbound/` for a purchase order we sent, whether or not its order is
        still polling, taken exactly as `poll_node` takes one (`_take_invoice`: matched to the PO as sent and its
        856s/DESADVs, posted once, quarantined with the differences). That is how an invoice arriving after the
        order's last poll is posted. A file of 865s alone (the answer to a cancellation: no order polls for it any more)
        is taken too: an acceptance archived, a rejection quarantined with a report (`_take_change_ack`). Only files
        of invoices alone are taken otherwise; a file that also carries an 855 or
        856 is left to its order's poll (archiving it here would hide the ship notice from the order)."""
        names = [inp.adapter] if inp.adapter else sorted(self.suppliers)
        result = InvoiceSweepResult()
        for name in names:
            adapter = self.suppliers.get(name)
            if adapter is None:
                raise SupplierNotConfigured(f"supplier adapter {name!r} is not configured on this worker (have: "
                                            f"{', '.join(sorted(self.suppliers)) or 'none'})")
            collected = adapter.collect()
            result.quarantined_files.extend(q.file_name for q in collected.quarantined)
            by_file: dict[str, list[InboundDocument]] = {}
            for d in collected.documents:
                by_file.setdefault(d.receipt.file_name, []).append(d)
            notices = [(d.receipt.file_name, d.document) for d in collected.documents
                       if isinstance(d.document, ShipNotice)]  # this collect's 856s: the sweep does not take them
            for file_name, docs in sorted(by_file.items()):
                if all(isinstance(d.document, FunctionalAck) for d in docs):
                    adapter.acknowledge(docs[0].receipt)  # a 997: noted on the ledger by collect
                    continue
                if all(isinstance(d.document, PoChangeAck) for d in docs):  # after a cancel no order polls for it
                    for d in docs:
                        label = f"{name}:{file_name}:{getattr(d.document, 'po_number', '')}"
                        outcome = self._take_change_ack(adapter, d)
                        (result.change_rejected if outcome == "rejected" else result.change_accepted).append(label)
                        if outcome == "rejected":
                            break
                    continue
                if not all(isinstance(d.document, SupplierInvoice) for d in docs):
                    continue
                for d in docs:
                    invoice = d.document
                    assert isinstance(invoice, SupplierInvoice)
                    label = f"{name}:{file_name}:{invoice.invoice_number}"
                    if not invoice.po_number:
                        result.unmatched.append(f"{label}: names no purchase order")
                        continue
                    mine = [(f, n) for f, n in notices if n.po_number == invoice.po_number]
                    outcome = self._take_invoice(adapter, d, invoice.po_number, mine)
                    if outcome == "posted":
                        result.posted.append(label)
                    elif outcome == "waiting":
                        result.waiting.append(label)
                    elif outcome == "quarantined":
                        result.mismatched.append(label)
                    else:
                        result.unmatched.append(f"{label}: purchase order {invoice.po_number} is not one we sent")
        log.info("supplier.invoice_sweep", posted=len(result.posted), waiting=len(result.waiting),
                 mismatched=len(result.mismatched), unmatched=len(result.unmatched))
        return result

    def _take_invoice(self, adapter: SupplierAdapter, doc: InboundDocument, po: str,
                      notices: list[tuple[str, ShipNotice]]) -> str:
        """A supplier invoice (810, or EDIFACT INVOIC) for this purchase order: matched to the PO as we sent it (850
        or ORDERS) and to every 856 / DESADV of it (this poll's and those taken before); matched, it is posted once
        as a payable (SupplierPayables, idempotent by supplier and invoice number) and then archived. One that
        invoices more than has shipped waits for the 856; any other difference (price, total, unknown line,
        currency), or an invoice number already posted with other amounts, is quarantined with the differences.
        Returns what became of it: posted, waiting, quarantined or unmatched (no PO of ours to match)."""
        invoice = doc.document
        assert isinstance(invoice, SupplierInvoice)
        post = getattr(self.adapters.erp, "post_supplier_invoice", None)
        sent = getattr(adapter, "purchase_order", None)
        archived = getattr(adapter, "ship_notices", None)
        order = sent(po) if sent is not None else None
        if post is None or order is None or archived is None:
            log.warning("supplier.invoice_not_matched", po=po, invoice=invoice.invoice_number,
                        why="no payables port" if post is None else "the purchase order is not readable back")
            return "unmatched"
        files = frozenset(name for name, _ in notices)
        match = match_invoice(invoice, order, [n for _, n in notices] + archived(po, besides=files))
        reject = getattr(adapter, "reject_document", None)
        if match.matched:
            try:
                payable = post(invoice)
            except PayableConflict as exc:  # its number is posted already, with other amounts: not payable twice
                log.warning("supplier.invoice_conflict", po=po, invoice=invoice.invoice_number, error=str(exc))
                if reject is not None:
                    reject(doc.receipt, {"error": str(exc), "differences": [
                        {"kind": "already_posted", "detail": str(exc), **(exc.details or {})}]})
                return "quarantined"
            adapter.acknowledge(doc.receipt)
            log.info("supplier.invoice_posted", po=po, invoice=invoice.invoice_number, payable=payable,
                     total=str(invoice.total.amount), currency=invoice.total.currency)
            return "posted"
        if all(d.kind == "over_shipped" for d in match.differences):
            log.info("supplier.invoice_waits_for_856", po=po, invoice=invoice.invoice_number)
            return "waiting"
        differences = [d.model_dump(mode="json") for d in match.differences]
        log.warning("supplier.invoice_mismatch", po=po, invoice=invoice.invoice_number, differences=differences)
        if reject is not None:
            reject(doc.receipt, {"error": f"invoice {invoice.invoice_number} does not match purchase order "
                                          f"{po}", "differences": differences})
        return "quarantined"

    def all(self) -> list:
        return [self.reserve_at_node, self.release_node_stock, self.reduce_node_reservation, self.release_to_node,
                self.cancel_node_release, self.amend_node_release, self.post_node_delivery, self.poll_node,
                self.sweep_supplier_invoices]


class SplitView(CanonicalModel):
    """The order's split (the workflow's `sourcing` query)."""

    split: bool
    summary: str | None = None
    releases: list[NodeRelease] = Field(default_factory=list)
    backordered: list[UnplacedLine] = Field(default_factory=list)
    excluded: dict[str, str] = Field(default_factory=dict, description="Node id → why it is no longer planned on")
