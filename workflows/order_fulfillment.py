"""OrderFulfillment: validate → resolve SKUs → reserve → tax quote → ERP sales order → WMS release →
wait for shipments (partial shipments add up; an SLA timer marks the order late) → confirm each shipment
to the channel → ERP invoice → tax commit → completed.

- Business faults (unknown SKU, no stock, invalid address...) park the run: status `needs_attention`,
  search attribute `NeedsAttention=true`, and it waits for an analyst's `retry`, `skip` or `cancel` signal.
- A transient fault that outlasts its retry budget parks the run the same way (nothing is lost).
- `cancel` before the first shipment, a Temporal cancellation, or an unrecoverable (non-retryable,
  non-business) failure runs the registered undo steps in reverse: cancel the WMS release, cancel the ERP
  order, void tax, release stock, tell the channel. Each undo is registered *before* its step runs.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.inventory import InventoryActivities, OrderKeysInput
    from activities.orders import (
        ChannelCancelInput,
        DeliveryInput,
        KeyInput,
        OrderActivities,
        OrderInput,
        ReserveInput,
        ResourceInput,
        SalesOrderInput,
        ShipmentConfirmInput,
        TaxQuoteInput,
        WmsAmendInput,
        WmsReleaseInput,
    )
    from activities.sourcing import (
        NodeAmendInput,
        NodeDeliveryInput,
        NodeRefusal,
        NodeRelease,
        NodeReleaseInput,
        NodeReleaseRef,
        NodeReserveInput,
        NodeShipment,
        NodeUpdates,
        SourcingActivities,
        SplitFulfillmentActivities,
        SplitView,
        StockReceived,
        shipped_components,
        units_per_line_unit,
    )
    from canonical.errors import BUSINESS_ERROR_TYPES
    from canonical.fulfillment import (
        AnalystAction,
        LineCancelRequest,
        OrderFulfillmentInput,
        OrderResult,
        OrderView,
        ResolvedLine,
        StepState,
    )
    from canonical.inventory import ShortPick, StockShortfall
    from canonical.kits import ComponentLine
    from canonical.ops import AnalystRequest, OrderCorrections, RunStatusUpdate
    from canonical.order import Order, OrderStatus, Shipment, ShipmentLine, TaxQuote
    from canonical.sourcing import (
        KIND_WORD,
        SourcingPlan,
        SourcingRequest,
        StoreFulfillmentEvent,
        StoreFulfillmentState,
        UnplacedLine,
        release_reference,
    )
    from workflows import search_attributes as sa
    from workflows.runbook import (
        UNDO_OPTIONS,
        CancelRequested,
        Runbook,
        RunbookConfig,
        RunbookState,
        StepFailed,
        Undo,
        analyst_update,
        failure_message,
        step_retry_policy,
    )

# Deprecated patches (workflow.deprecate_patch; docs/deployment.md "Safe deploys", "Patches"): the code before each
# is gone; the call stays one release so runs started while it was `patched` still replay, then it is removed.
# The status projection: every run writes its milestones to the status projection.
PROJECTION_PATCH = "status-projection-v1"
# Issue 17: a store sale that took reserved units (signal `stock_shortfall`) is re-sourced or parks; a warehouse
# short pick (signal `short_pick`) parks until stock is back.
STOCK_NEWS_PATCH = "stock-shortfall-v1"
# Search attributes are upserted only when they change (and not at all when the start already set them):
# every upsert is a history event and a visibility write on the server (docs/benchmarks.md).
SA_ON_CHANGE_PATCH = "search-attributes-on-change-v1"
# The status projection records milestones only, to keep the timeline readable; leaving needs_attention
# is always recorded so the listing never shows a resumed order as parked.
PROJECTED_MILESTONES = frozenset({OrderStatus.RECEIVED, OrderStatus.NEEDS_ATTENTION, OrderStatus.RELEASED,
                                  OrderStatus.PARTIALLY_SHIPPED, OrderStatus.SHIPPED, OrderStatus.COMPLETED,
                                  OrderStatus.CANCELLED, OrderStatus.FAILED})
# Issue 20: with a fulfillment network for the channel (OrderFulfillmentInput.split_fulfillment) the order is sourced
# over the network's nodes: reserved, released, tracked and compensated per node; a node that refuses is re-sourced.
SPLIT_PATCH = "split-fulfillment-v1"
SUPPLIER_POLL = timedelta(minutes=15)  # the default of how often a supplier's answers are read (the input's)
NODE_ACK_TIMEOUT = timedelta(hours=48)  # a supplier that has not acknowledged its purchase order by then is re-sourced
REFUSAL_ERRORS = frozenset({"NodeRefused", "OutOfStock", "VendorRejected"})  # a node's "no": re-source its lines
# Issue 20, item 3: a store node (`pos:*`) is released as a store fulfillment (ship-from-store, or click-and-collect
# for an order with `pickup_store`); the store's pick confirmation and the customer's pick-up (signal
# `store_fulfillment`) are events of the order, the pick-up completing the node like a shipment; a store sale that
# takes a store release's units re-sources those lines and amends the store's request (patch store-amend-v1; before
# it, the whole release was withdrawn and re-sourced); once the staff have picked it, the order parks instead.
STORE_PATCH = "store-fulfillment-v1"
STORE_AMEND_PATCH = "store-amend-v1"  # a store sale's shortfall takes only its lines off the store's request
# Issue 20: backordered lines wait in `backorder_waits` (written by plan_sourcing), and InventorySync signals
# `stock_received` when the item is received; an order that backordered removes its waits when it ends.
BACKORDER_WAITS_PATCH = "backorder-waits-v1"
LIVE = frozenset({"reserved", "released", "acknowledged", "prepared"})  # releases holding stock or a request
SHIPPED_STATUSES = frozenset({OrderStatus.PARTIALLY_SHIPPED, OrderStatus.SHIPPED, OrderStatus.INVOICED,
                              OrderStatus.COMPLETED})


@workflow.defn(name="OrderFulfillment")
class OrderFulfillment(Runbook):
    RUNBOOK = RunbookConfig(
        kind="order", noun="order", parking_errors=BUSINESS_ERROR_TYPES | {"NodeRefused", "SourcingNotConfigured"},
        needs_attention=OrderStatus.NEEDS_ATTENTION,
        closed=frozenset({OrderStatus.COMPLETED, OrderStatus.CANCELLED, OrderStatus.FAILED, OrderStatus.CANCELLING}),
        committed_action="Goods have shipped, so nothing is undone; fix the cause, then send `retry`.",
        cancel_too_late="goods have shipped; handle it as a return",
        cancel_refused="goods have shipped; the order cannot be cancelled, handle it as a return",
        resume_refused=None,
    )

    @workflow.init
    def __init__(self, inp: OrderFulfillmentInput) -> None:
        self._input = inp
        self._order: Order = inp.order
        self._wf_id = workflow.info().workflow_id
        self.rb = RunbookState(status=OrderStatus.RECEIVED, retry_policy=step_retry_policy(inp.step_max_attempts),
                               activity_queues=dict(inp.activity_task_queues), channel=inp.order.channel)
        self._late = False
        self._pending_corrections: OrderCorrections | None = None
        self._pending_shipments: list[Shipment] = []
        self._seen_shipments: set[str] = set()
        self._shipments: list[Shipment] = []
        self._shipped: dict[str, int] = {line.line_id: 0 for line in inp.order.lines}
        self._resolved: list[ResolvedLine] = []
        self._erp_so: str | None = None
        self._wms_release: str | None = None
        self._invoice: str | None = None
        self._tax: TaxQuote | None = None
        self._sa_current: dict[str, object] = {}
        self._last_projected: tuple[OrderStatus | None, bool, str | None] = (None, False, None)
        self._projection_version = 0
        self._reserved = False
        self._shortfalls: list[StockShortfall] = []
        self._short_picks: list[ShortPick] = []
        self._seen_stock_news: set[str] = set()
        # split fulfillment (issue 20): one release per node and sourcing round
        self._split = False
        self._releases: list[NodeRelease] = []
        self._release_seq = 0
        self._releasing = False  # the releases are sent as soon as they are reserved (after the first release)
        self._backordered: list[UnplacedLine] = []
        self._excluded: dict[str, str] = {}  # node id → why it is no longer planned on
        self._sourcing_summary: str | None = None
        self._node_shipments: list[tuple[str | None, Shipment]] = []
        self._refusals: list[NodeRefusal] = []
        self._receipts: list[StockReceived] = []
        self._seen_receipts: set[str] = set()
        self._component_shipped: dict[tuple[str, str], int] = {}  # (line id, item) → units shipped
        self._next_poll: Any = None
        self._store_events: list[StoreFulfillmentEvent] = []
        self._seen_store_events: set[str] = set()

    # -- the run -------------------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: OrderFulfillmentInput) -> OrderResult:
        order = inp.order
        workflow.deprecate_patch(PROJECTION_PATCH)  # deprecated: every run projects its status
        workflow.deprecate_patch(SA_ON_CHANGE_PATCH)  # deprecated: every run upserts on change only
        wanted: list[SearchAttributeUpdate[Any]] = [
            sa.CHANNEL.value_set(order.channel), sa.EXTERNAL_ORDER_ID.value_set(order.external_order_id),
            sa.ORDER_STATUS.value_set(self.rb.status.value), sa.NEEDS_ATTENTION.value_set(False)]
        started = workflow.info().typed_search_attributes
        self._sa_current = {u.key.name: started.get(u.key) for u in wanted}
        self._upsert_changed(wanted)
        self._set_status(OrderStatus.RECEIVED)  # first projection row
        try:
            await self._fulfil(inp)
        except asyncio.CancelledError:
            # Cancelled from Temporal (Web UI "Cancel" or the API): undo, then end as cancelled.
            await self._compensate(AnalystAction(actor="temporal", reason="workflow cancellation requested"))
            self._set_status(OrderStatus.CANCELLED, "cancelled through Temporal")
            await self._forget_backorders()
            await self._wind_up()
            raise
        except CancelRequested as cancel:
            await self._compensate(cancel.action)
            self._set_status(OrderStatus.CANCELLED, cancel.action.reason or f"cancelled by {cancel.action.actor}")
        except StepFailed as failure:
            await self._compensate(AnalystAction(actor="system", reason=f"failed at {failure.step}"))
            self._set_status(OrderStatus.FAILED, f"{failure.step} failed: {failure.message}")
            await self._forget_backorders()
            await self._wind_up()
            raise ApplicationError(
                f"order {order.external_order_id} failed at {failure.step}: {failure.message}; "
                f"compensation ran: {', '.join(self.rb.compensated) or 'nothing to undo'}",
                type="OrderFailed", non_retryable=True,
            ) from None
        await self._forget_backorders()
        await self._wind_up()
        return OrderResult(workflow_id=self._wf_id, status=self.rb.status, erp_sales_order_id=self._erp_so,
                           invoice_id=self._invoice, tax=self._tax)

    async def _fulfil(self, inp: OrderFulfillmentInput) -> None:
        order = inp.order
        key = self._wf_id
        # Step inputs are built on each attempt from self._order, so an analyst's corrections apply on retry.
        await self._step("validate", OrderActivities.validate_order, lambda: OrderInput(order=self._order),
                         f"Validate order {order.order_number or order.external_order_id}")
        self._set_status(OrderStatus.VALIDATED)

        self._resolved = await self._step("resolve_skus", OrderActivities.resolve_skus,
                                          lambda: OrderInput(order=self._order),
                                          f"Map {len(order.lines)} {order.channel} SKU(s) to ERP items")

        collect = (self._order.pickup_store is not None and self._order.shipping_address is None
                   and self._order.billing_address is not None)  # click-and-collect: no address to ship to
        if inp.split_fulfillment and (self._order.shipping_address is not None
                                      or (collect and workflow.patched(STORE_PATCH))) and workflow.patched(SPLIT_PATCH):
            self._split = True
            await self._source_and_release()
        else:
            await self._release_whole(inp)

        await self._await_shipments(inp)

        self._set_status(OrderStatus.SHIPPED)
        invoice = await self._step("create_invoice", OrderActivities.create_invoice, KeyInput(key=key),
                                   f"Invoice {self._erp_so}")
        self._invoice = invoice.invoice_id
        self._set_status(OrderStatus.INVOICED)
        await self._step("commit_tax", OrderActivities.commit_tax, KeyInput(key=key),
                         f"Commit tax {self._tax.total_tax if self._tax else ''}".strip())
        self._set_status(OrderStatus.COMPLETED)

    async def _release_whole(self, inp: OrderFulfillmentInput) -> None:
        """The order as one release to the one warehouse (no fulfillment network for the channel)."""
        key = self._wf_id
        self._register("release_stock", OrderActivities.release_stock, KeyInput(key=key), "Release reserved stock")
        await self._step("reserve_stock", OrderActivities.reserve_stock,
                         lambda: ReserveInput(key=key, lines=self._resolved, allow_backorder=inp.allow_backorder),
                         f"Reserve stock for {sum(r.quantity for r in self._resolved)} unit(s)")
        self._reserved = True
        self._set_status(OrderStatus.RESERVED)
        await self._book()

        await self._stock_news()  # a store sale took reserved units: re-source them before anything is released
        self._register("cancel_wms_release", OrderActivities.cancel_wms_release, KeyInput(key=key),
                       "Cancel the warehouse release")
        release = await self._step("release_to_wms", OrderActivities.release_to_wms,
                                   lambda: WmsReleaseInput(external_ref=key, lines=self._resolved,
                                                           ship_to=self._order.shipping_address),
                                   f"Release {self._erp_so} to the warehouse")
        self._wms_release = release.release_id
        self._set_status(OrderStatus.RELEASED)

    async def _book(self) -> None:
        """Tax quote and the ERP sales order (each undo registered first)."""
        key = self._wf_id
        self._register("void_tax", OrderActivities.void_tax, KeyInput(key=key), "Void the tax transaction")
        self._tax = await self._step("quote_tax", OrderActivities.quote_tax,
                                     lambda: TaxQuoteInput(transaction_code=key, order=self._order), "Quote tax")

        self._register("cancel_sales_order", OrderActivities.cancel_sales_order, KeyInput(key=key),
                       "Cancel the ERP sales order")
        so = await self._step("create_sales_order", OrderActivities.create_sales_order,
                              lambda: SalesOrderInput(external_ref=key, order=self._order, lines=self._resolved,
                                                      tax=self._tax),
                              f"Book ERP sales order (tax {self._tax.total_tax})")
        self._erp_so = so.erp_sales_order_id
        self._set_status(OrderStatus.BOOKED)

    async def _await_shipments(self, inp: OrderFulfillmentInput) -> None:
        deadline = workflow.now() + timedelta(hours=inp.sla_hours)
        waiting = self._record("await_shipment", StepState.WAITING, "Waiting for the warehouse to ship")
        try:
            if self._split:
                await self._split_loop(inp, deadline)
            else:
                await self._shipment_loop(inp, deadline)
        except BaseException:
            self._finish(waiting, StepState.SKIPPED, "stopped waiting: the order is being cancelled")
            raise
        self._finish(waiting, StepState.DONE, f"{len(self._shipments)} shipment(s)")

    async def _shipment_loop(self, inp: OrderFulfillmentInput, deadline) -> None:
        while not self._fully_shipped():
            timeout = None if self._late else max(deadline - workflow.now(), timedelta(seconds=1))
            try:
                await workflow.wait_condition(
                    lambda: bool(self._pending_shipments) or self.rb.cancel is not None
                    or bool(self._shortfalls or self._short_picks), timeout=timeout,
                    timeout_summary="Shipment SLA",
                )
            except TimeoutError:
                self._late = True
                self._record("sla_breached", StepState.DONE,
                             f"Not fully shipped within {inp.sla_hours}h; order marked late, still waiting")
                self._set_status(self.rb.status, self.rb.reason)  # records the late flag
                continue
            if self.rb.cancel is not None and not self._pending_shipments:
                self._check_cancel()
            while self._pending_shipments:
                await self._process_shipment(self._pending_shipments.pop(0))
            await self._stock_news()
            self._check_cancel()

    # -- issue 17: store sales that took reserved units, warehouse short picks ------------------------------------
    async def _stock_news(self) -> None:
        """Act on the shortfalls and short picks signalled so far, in order."""
        if not (self._shortfalls or self._short_picks):
            return
        workflow.deprecate_patch(STOCK_NEWS_PATCH)  # deprecated: every run acts on them
        while self._shortfalls or self._short_picks:
            if self._shortfalls:
                await self._resource(self._shortfalls.pop(0))
            else:
                await self._after_short_pick(self._short_picks.pop(0))

    def _to_ship(self, item_code: str | None = None) -> list[ResolvedLine]:
        """The resolved lines still to ship (less what shipped), optionally of one item."""
        out = []
        for r in self._resolved:
            left = r.quantity - self._shipped.get(r.line_id, 0)
            if left > 0 and (item_code is None or r.item_code == item_code):
                out.append(r.model_copy(update={"quantity": left}))
        return out

    def _without(self, item_code: str, quantity: int) -> list[ResolvedLine]:
        """The lines still to ship with `quantity` units of `item_code` taken off (from the last line up)."""
        lines = self._to_ship()
        for i in reversed(range(len(lines))):
            if quantity <= 0:
                break
            if lines[i].item_code == item_code:
                take = min(lines[i].quantity, quantity)
                lines[i] = lines[i].model_copy(update={"quantity": lines[i].quantity - take})
                quantity -= take
        return [x for x in lines if x.quantity > 0]

    async def _resource(self, shortfall: StockShortfall) -> None:
        """Units of this order's reservation went to a store sale: reserve them elsewhere. Before the release that
        parks until stock is free ("stock taken by a store sale at …"); after it, when nothing is free, the units
        are first taken off the warehouse request (it never ships what is not there), and put back once re-sourced.
        A warehouse already picking refuses the change: that parks too."""
        at = f" at {shortfall.store}" if shortfall.store else ""
        quantity = min(shortfall.quantity, sum(x.quantity for x in self._to_ship(shortfall.item_code)))
        self._record("stock_shortfall", StepState.DONE,
                     f"{shortfall.quantity} × {shortfall.item_code} taken by a store sale{at} "
                     f"({shortfall.cause_event_id}); {quantity} still to ship")
        if quantity <= 0:
            return
        key = self._wf_id
        inp = ResourceInput(key=key, item_code=shortfall.item_code, quantity=quantity, token=shortfall.cause_event_id,
                            store=shortfall.store, location=shortfall.location)
        summary = f"Re-source {quantity} × {shortfall.item_code} taken by a store sale{at}"
        if not self._wms_release:
            await self._step("resource_stock", OrderActivities.resource_stock, inp, summary)
            return
        record = self._record("resource_stock", StepState.RUNNING, summary)
        try:
            await self._execute(OrderActivities.resource_stock, inp, summary)
            self._finish(record, StepState.DONE, None)
            return
        except ActivityError as err:
            self._finish(record, StepState.FAILED, failure_message(err))
        await self._step("amend_wms_release", OrderActivities.amend_wms_release,
                         WmsAmendInput(external_ref=key, lines=self._without(shortfall.item_code, quantity)),
                         f"Take {quantity} × {shortfall.item_code} off the warehouse request", skippable=True)
        await self._step("resource_stock", OrderActivities.resource_stock, inp, summary)
        await self._step("amend_wms_release", OrderActivities.amend_wms_release,
                         lambda: WmsAmendInput(external_ref=key, lines=self._to_ship()),
                         f"Release the re-sourced {quantity} × {shortfall.item_code} to the warehouse again")

    async def _after_short_pick(self, pick: ShortPick) -> None:
        """The warehouse shipped what it had and picked the rest short: park until the stock is back, then release
        what is still to ship again (or the analyst cancels the short lines, or the order if nothing shipped)."""
        what = ", ".join(f"{x.quantity} × {x.channel_sku}" for x in pick.lines)
        self._record("short_pick", StepState.DONE, f"the warehouse picked short: {what} (release {pick.release_id})")
        if not self._short_lines(pick):
            return  # cancelled lines or later shipments covered it
        await self._park(f"short_pick: the warehouse picked short: {what}",
                         "Receive or transfer the stock, then send `retry` (what is still to ship is released to the "
                         "warehouse again); or cancel the short lines (POST /orders/{channel}/{id}/lines/cancel)",
                         skippable=False)
        await self._step("amend_wms_release", OrderActivities.amend_wms_release,
                         lambda: WmsAmendInput(external_ref=self._wf_id, lines=self._short_lines(pick)),
                         "Release the short-picked units to the warehouse again")

    def _short_lines(self, pick: ShortPick) -> list[ResolvedLine]:
        """What the warehouse picked short and is still to ship (a line cancelled meanwhile is not sent again)."""
        short = {x.line_id: x.quantity for x in pick.lines}
        return [r.model_copy(update={"quantity": min(r.quantity, short[r.line_id])})
                for r in self._to_ship() if r.line_id in short]

    async def _process_shipment(self, shipment: Shipment) -> None:
        key = self._wf_id
        # The goods have left the warehouse once the WMS says so: count them first, so that a failure to post
        # the delivery parks the order for an analyst instead of undoing a shipped order.
        self._shipments.append(shipment)
        self.rb.undo.clear()  # shipped goods are not undone by compensation; a return handles them
        by_sku = {line.channel_sku: line.line_id for line in self._order.lines}
        for sl in shipment.lines:
            line_id = sl.line_id if sl.line_id in self._shipped else by_sku.get(sl.channel_sku)
            if line_id is not None:
                self._shipped[line_id] += sl.quantity
        await self._step("post_delivery", OrderActivities.post_delivery,
                         DeliveryInput(external_ref=key, shipment=shipment, lines=self._resolved),
                         f"Post delivery for shipment {shipment.shipment_id}")
        self._set_status(OrderStatus.SHIPPED if self._fully_shipped() else OrderStatus.PARTIALLY_SHIPPED)
        tracking = f" ({shipment.carrier} {shipment.tracking_number})" if shipment.tracking_number else ""
        await self._step("confirm_shipment", OrderActivities.confirm_shipment,
                         ShipmentConfirmInput(channel=self._order.channel,
                                              external_order_id=self._order.external_order_id, shipment=shipment),
                         f"Confirm shipment {shipment.shipment_id}{tracking} to {self._order.channel}",
                         skippable=True)

    def _fully_shipped(self) -> bool:
        ordered = {line.line_id: line.quantity for line in self._order.lines if line.requires_shipping}
        return all(self._shipped.get(lid, 0) >= qty for lid, qty in ordered.items())

    # -- split fulfillment over the fulfillment network (issue 20) ------------------------------------------------
    async def _source_and_release(self) -> None:
        """Plan sourcing, reserve at each node, book tax and the ERP sales order once for the whole order, then send
        each node its own fulfillment request (each step with its own undo). Backordered lines wait for stock."""
        plan = await self._plan(lambda: self._resolved, f"Plan sourcing for {len(self._resolved)} line(s)")
        await self._place(plan, [r.line_id for r in self._resolved])
        self._set_status(OrderStatus.RESERVED)
        await self._book()
        await self._split_stock_news()
        self._releasing = True
        for rel in [r for r in self._releases if r.state == "reserved"]:
            await self._release_node(rel)
        self._set_status(OrderStatus.RELEASED if any(r.state in LIVE for r in self._releases) else self.rb.status)

    def _sourcing_request(self, lines: list[ResolvedLine]) -> SourcingRequest:
        # the split path is taken only for orders with a shipping address, or click-and-collect with a billing one
        address = self._order.shipping_address or self._order.billing_address
        assert address is not None
        return SourcingRequest(order_key=self._wf_id, channel=self._order.channel, ship_to_country=address.country,
                               lines=lines, now=workflow.now(), exclude_nodes=sorted(self._excluded),
                               pickup_node=self._order.pickup_store)

    async def _plan(self, lines: Any, summary: str) -> SourcingPlan:
        """plan_sourcing until it sources every line (allocated or backordered): a plan that cannot be sourced parks
        with each line's reason, and `retry` plans again (after stock arrived, or the policy changed)."""
        while True:
            if self.rb.amending:  # a line cancellation is changing the lines: plan what it leaves
                await workflow.wait_condition(lambda: not self.rb.amending)
            if not lines():  # the lines were cancelled meanwhile (an analyst's fix of a parked plan)
                address = self._order.shipping_address or self._order.billing_address
                return SourcingPlan(channel=self._order.channel, ship_to_country=address.country if address else "",
                                    sourced=True, explanation=["no lines left to source"])
            plan: SourcingPlan = await self._step("plan_sourcing", SourcingActivities.plan_sourcing,
                                                  lambda: self._sourcing_request(lines()), summary)
            self._record("sourcing", StepState.DONE, "; ".join(plan.explanation) or plan.summary)
            if plan.sourced:
                if plan.allocations or plan.backordered:
                    self._sourcing_summary = plan.summary
                return plan
            why = "; ".join(f"line {u.line_id} ({u.item_code} ×{u.quantity}): {u.reason}" for u in plan.unsourceable)
            await self._park(f"plan_sourcing: cannot be sourced: {why}",
                             "Receive or transfer stock, or change the channel's sourcing policy, then send `retry` "
                             "(sourcing is planned again); or cancel the lines (POST /orders/{channel}/{id}/lines/"
                             "cancel) or the order", skippable=False)

    async def _place(self, plan: SourcingPlan, planned: list[str]) -> list[NodeRelease]:
        """One release per allocation of `plan`, reserved at its node (its undo registered first); the lines of
        `planned` the plan backorders wait for stock. Returns the releases reserved."""
        placed = []
        self._backordered = [b for b in self._backordered if b.line_id not in planned] + list(plan.backordered)
        for b in plan.backordered:
            self._record("backordered", StepState.WAITING,
                         f"line {b.line_id} ({b.item_code} ×{b.quantity}) waits for stock: {b.reason}")
        for alloc in plan.allocations:
            self._release_seq += 1
            rel = NodeRelease(ref=release_reference(self._wf_id, alloc.node_id, self._release_seq), node_id=alloc.node_id,
                              kind=alloc.kind, adapter=alloc.adapter, location=alloc.location, lines=alloc.lines)
            self._releases.append(rel)
            if await self._reserve_node(rel):
                placed.append(self._release(rel.ref))
        return placed

    def _release(self, ref: str) -> NodeRelease:
        return next(r for r in self._releases if r.ref == ref)

    def _update_release(self, ref: str, **changes: Any) -> NodeRelease:
        for i, r in enumerate(self._releases):
            if r.ref == ref:
                self._releases[i] = r.model_copy(update=changes)
                return self._releases[i]
        raise KeyError(ref)

    @staticmethod
    def _where(rel: NodeRelease) -> str:
        return f"{KIND_WORD.get(rel.kind, rel.kind)} {rel.node_id}"

    def _lines_text(self, rel: NodeRelease) -> str:
        ids = rel.line_ids
        return f"line{'s' if len(ids) > 1 else ''} {', '.join(ids)}"

    async def _node_step(self, name: str, activity: Any, arg: Any, summary: str) -> tuple[Any, str | None]:
        """Run a node's step; a node's refusal (NodeRefused, OutOfStock, VendorRejected) is returned as its message
        instead of parking (the lines are re-sourced), any other fault parks or fails as a step does."""
        if self.rb.amending:  # a line cancellation is changing the documents this step works on
            await workflow.wait_condition(lambda: not self.rb.amending)
        self._check_cancel()
        record = self._record(name, StepState.RUNNING, summary)
        self.rb.busy = True
        try:
            result = await self._execute(activity, arg, summary)
        except ActivityError as err:
            self.rb.busy = False
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type in REFUSAL_ERRORS:
                message = failure_message(err)
                self._finish(record, StepState.FAILED, f"refused: {message}")
                return None, message
            self._finish(record, StepState.FAILED, failure_message(err))
            return await self._step(name, activity, arg, summary), None
        self.rb.busy = False
        self._finish(record, StepState.DONE, None)
        return result, None

    async def _reserve_node(self, rel: NodeRelease) -> bool:
        units = sum(ln.quantity for ln in rel.lines)
        self._register(f"release_node_stock:{rel.ref}", SplitFulfillmentActivities.release_node_stock,
                       NodeReserveInput(release=rel), f"Give back the stock reserved at {rel.node_id}")
        items = ", ".join(f"{ln.quantity} × {ln.item_code}" for ln in rel.lines)
        _, refused = await self._node_step("reserve_at_node", SplitFulfillmentActivities.reserve_at_node,
                                           NodeReserveInput(release=rel),
                                           f"Reserve {units} unit(s) at {rel.node_id} for {self._lines_text(rel)}: "
                                           f"{items}")
        if refused is not None:
            await self._reroute(rel, refused, [])
            return False
        self._update_release(rel.ref, state="reserved")
        return True

    async def _release_node(self, rel: NodeRelease) -> None:
        if self.rb.amending:  # a line cancellation may be changing this release's lines
            await workflow.wait_condition(lambda: not self.rb.amending)
        rel = self._release(rel.ref)  # as it is now (its lines changed, or it left the order)
        if rel.state != "reserved":
            return
        self._register(f"cancel_node_release:{rel.ref}", SplitFulfillmentActivities.cancel_node_release,
                       NodeReserveInput(release=rel), f"Cancel the fulfillment request at {rel.node_id}")
        prices = {line.line_id: line.unit_price.amount for line in self._order.lines}
        pickup = rel.role == "pos" and self._order.pickup_store is not None and workflow.patched(STORE_PATCH)
        inp = NodeReleaseInput(release=rel, order_ref=self._wf_id, ship_to=self._order.shipping_address,
                               currency=self._order.currency, unit_prices=prices, pickup=pickup,
                               recipient=self._order.customer.name if rel.role == "pos" else None)
        how = ("as a purchase order" if rel.role == "supplier" else "for click-and-collect" if pickup
               else "for ship-from-store" if rel.role == "pos" else "for picking")
        ref, refused = await self._node_step("release_to_node", SplitFulfillmentActivities.release_to_node, inp,
                                             f"Release {self._lines_text(rel)} to {self._where(rel)} {how}")
        if refused is not None:
            await self._reroute(self._release(rel.ref), refused, [])
            return
        assert isinstance(ref, NodeReleaseRef)
        self._update_release(rel.ref, state="released", release_id=ref.release_id, released_at=workflow.now())
        if rel.role == "supplier" and self._next_poll is None:
            self._next_poll = workflow.now() + timedelta(seconds=self._input.supplier_poll_seconds)

    def _unshipped(self, line_ids: list[str]) -> list[ResolvedLine]:
        wanted = set(line_ids)
        return [r for r in self._to_ship() if r.line_id in wanted]

    async def _reroute(self, rel: NodeRelease, reason: str, line_ids: list[str], *, withdraw: bool = True) -> None:
        """The node refused (some of) the release's lines: take them off the node (the request cancelled or amended,
        the stock given back), plan them again without the node, reserve and release them there; what no node has
        is backordered (where the policy allows) or parks with the reason. `withdraw=False`: a supplier that
        rejected the lines itself has no request for them to cancel or amend."""
        refused = [lid for lid in rel.line_ids if not line_ids or lid in line_ids]
        lines = self._unshipped(refused)
        self._record("node_refused", StepState.DONE,
                     f"{self._where(rel)} refused line(s) {', '.join(refused)}: {reason}")
        self._excluded[rel.node_id] = reason
        keep = [ln for ln in rel.lines if ln.line_id not in refused and self._unshipped([ln.line_id])]
        state = rel.state
        if not keep:  # the node leaves the order: its undo steps run now and are no longer registered
            self.rb.undo = [u for u in self.rb.undo
                            if u.name not in (f"cancel_node_release:{rel.ref}", f"release_node_stock:{rel.ref}")]
        steps = []
        picked_at_store = state == "prepared" and rel.role == "pos" and workflow.patched(STORE_AMEND_PATCH)
        if (state in ("released", "acknowledged") or picked_at_store) and withdraw:  # picked: the store refuses, it parks
            steps.append(Undo(f"amend_node_release:{rel.ref}", SplitFulfillmentActivities.amend_node_release,
                              NodeAmendInput(release=rel, lines=keep),
                              f"Take line(s) {', '.join(refused)} off the request at {rel.node_id}") if keep
                         else Undo(f"cancel_node_release:{rel.ref}", SplitFulfillmentActivities.cancel_node_release,
                                   NodeReserveInput(release=rel), f"Cancel the fulfillment request at {rel.node_id}"))
        if state in LIVE:
            steps.append(Undo(f"reduce_node_reservation:{rel.ref}", SplitFulfillmentActivities.reduce_node_reservation,
                              NodeAmendInput(release=rel, lines=keep),
                              f"Give back the stock of line(s) {', '.join(refused)} at {rel.node_id}") if keep
                         else Undo(f"release_node_stock:{rel.ref}", SplitFulfillmentActivities.release_node_stock,
                                   NodeReserveInput(release=rel), f"Give back the stock reserved at {rel.node_id}"))
        done_before = len(self.rb.compensated)
        await self._run_undo(steps)
        withdrawn = [u.name for u in steps if "node_release" in u.name]
        if withdrawn and withdrawn[0] not in self.rb.compensated[done_before:]:  # the node may still ship them: do not send twice
            await self._park(f"{withdrawn[0].split(':')[0]}: {rel.node_id} did not take line(s) {', '.join(refused)} "
                             f"off its request ({reason})",
                             f"Make sure {rel.node_id} will not ship them, then send `retry` (they are re-sourced); "
                             "or cancel the order", skippable=False)
        if keep:
            self._update_release(rel.ref, lines=keep, reason=reason)
        else:
            self._update_release(rel.ref, state="refused", reason=reason)
        if not lines:
            return
        plan = await self._plan(lambda: self._unshipped(refused),
                                f"Re-source line(s) {', '.join(refused)} without {rel.node_id}")
        placed = await self._place(plan, refused)
        if self._releasing:
            for new in placed:
                if self._release(new.ref).state == "reserved":
                    await self._release_node(self._release(new.ref))

    async def _split_loop(self, inp: OrderFulfillmentInput, deadline: Any) -> None:
        while not self._fully_shipped():
            now = workflow.now()
            if self._next_poll is not None and now >= self._next_poll:
                await self._poll_suppliers()
                continue
            timers = [] if self._late else [deadline - now]
            if self._next_poll is not None:
                timers.append(self._next_poll - now)
            timeout = max(min(timers), timedelta(seconds=1)) if timers else None
            try:
                await workflow.wait_condition(
                    lambda: bool(self._pending_shipments or self._node_shipments or self._refusals or self._receipts
                                 or self._shortfalls or self._short_picks or self._store_events)
                    or self.rb.cancel is not None,
                    timeout=timeout, timeout_summary="Shipment SLA or the next supplier poll")
            except TimeoutError:
                if not self._late and workflow.now() >= deadline:
                    self._late = True
                    self._record("sla_breached", StepState.DONE,
                                 f"Not fully shipped within {inp.sla_hours}h; order marked late, still waiting")
                    self._set_status(self.rb.status, self.rb.reason)
                continue
            if self.rb.cancel is not None and not (self._pending_shipments or self._node_shipments
                                                   or self._completions()):
                self._check_cancel()
            while self._pending_shipments:
                shipment = self._pending_shipments.pop(0)
                self._node_shipments.append((None, shipment))
            while self._store_events:
                await self._on_store_event(self._store_events.pop(0))
            while self._node_shipments:
                ref, shipment = self._node_shipments.pop(0)
                await self._process_node_shipment(ref, shipment)
            while self._refusals:
                refusal = self._refusals.pop(0)
                rel = self._release_for(refusal.release_ref, refusal.node_id)
                if rel is None:
                    self._record("node_refused", StepState.DONE,
                                 f"{refusal.node_id or refusal.release_ref}: {refusal.reason} (no open release there)")
                    continue
                await self._reroute(rel, refusal.reason, refusal.line_ids,
                                    withdraw=refusal.timed_out or rel.role != "supplier")
            await self._split_stock_news()
            while self._receipts:
                await self._on_receipt(self._receipts.pop(0))
            self._check_cancel()

    @staticmethod
    def _is(rel: NodeRelease, ref: str) -> bool:
        """`ref` names the release: its whole reference, its `<node id>/<n>` within this order (a signal reaches
        one order only), or its WMS release / purchase order id."""
        return rel.ref == ref or rel.release_id == ref or ("/" in ref and rel.ref.split("/")[-2:] == ref.split("/")[-2:])

    def _release_for(self, ref: str | None, node_id: str | None) -> NodeRelease | None:
        live = [r for r in self._releases if r.state in LIVE]
        if ref is not None:
            return next((r for r in live if self._is(r, ref)), None)
        return next((r for r in live if r.node_id == node_id), None)

    def _release_of_shipment(self, shipment: Shipment) -> NodeRelease | None:
        """A shipment that does not name its node: the release that holds its first line (a line is on one node)."""
        by_sku = {line.channel_sku: line.line_id for line in self._order.lines}
        for sl in shipment.lines:
            lid = sl.line_id if sl.line_id in self._shipped else by_sku.get(sl.channel_sku)
            for r in self._releases:
                if r.state in LIVE | {"shipped"} and lid in r.line_ids:
                    return r
        return None

    async def _process_node_shipment(self, ref: str | None, shipment: Shipment) -> None:
        rel = self._release_for(ref, None) if ref is not None else self._release_of_shipment(shipment)
        if rel is None and ref is not None:
            rel = next((r for r in self._releases if self._is(r, ref)), None)
        if rel is None:
            self._record("shipment_ignored", StepState.FAILED,
                         f"shipment {shipment.shipment_id} matches no release of this order")
            return
        self._shipments.append(shipment)
        self.rb.undo.clear()  # shipped goods are not undone by compensation; a return handles them
        skus = {line.line_id: line.channel_sku for line in self._order.lines}
        for (lid, item), qty in shipped_components(rel, shipment, skus).items():
            self._component_shipped[(lid, item)] = self._component_shipped.get((lid, item), 0) + qty
        for lid in rel.line_ids:
            parts = [p for r in self._releases for p in r.lines if p.line_id == lid]
            per = {p.item_code: units_per_line_unit(p) for p in parts}
            done = min(self._component_shipped.get((lid, item), 0) // n for item, n in per.items())
            self._shipped[lid] = max(self._shipped.get(lid, 0), done)
        if not self._unshipped(rel.line_ids):
            self._update_release(rel.ref, state="shipped")
        await self._step("post_delivery", SplitFulfillmentActivities.post_node_delivery,
                         NodeDeliveryInput(release=self._release(rel.ref), shipment=shipment),
                         f"Post delivery for shipment {shipment.shipment_id} from {rel.node_id}")
        self._set_status(OrderStatus.SHIPPED if self._fully_shipped() else OrderStatus.PARTIALLY_SHIPPED)
        tracking = f" ({shipment.carrier} {shipment.tracking_number})" if shipment.tracking_number else ""
        await self._step("confirm_shipment", OrderActivities.confirm_shipment,
                         ShipmentConfirmInput(channel=self._order.channel,
                                              external_order_id=self._order.external_order_id, shipment=shipment),
                         f"Confirm shipment {shipment.shipment_id}{tracking} from {rel.node_id} to "
                         f"{self._order.channel}", skippable=True)

    # -- ship-from-store and click-and-collect (issue 20, item 3) ----------------------------------------------------
    def _completions(self) -> bool:
        """A store's pick-up or shipment waits to be counted (a cancel then is too late, like a shipment)."""
        return any(e.state == StoreFulfillmentState.COMPLETED for e in self._store_events)

    async def _on_store_event(self, event: StoreFulfillmentEvent) -> None:
        """What a store did with its fulfillment request: accepted it, picked it (PREPARED: ready for pick-up or
        packed), handed it over (COMPLETED: the customer collected it, or the store shipped it: the node's shipment),
        or refused it (CANCELED / FAILED: its lines are re-sourced)."""
        workflow.patched(STORE_PATCH)  # runs that started before it never receive the signal
        rel = self._release_for(event.ref, None)
        if rel is None or rel.role != "pos":
            self._record("store_event_ignored", StepState.DONE,
                         f"{event.actor}: {event.state.value} for {event.ref}: no open store request of this order")
            return
        pickup = self._order.pickup_store is not None
        where = f"store {rel.node_id}"
        if event.state in (StoreFulfillmentState.PROPOSED, StoreFulfillmentState.RESERVED):
            if rel.state == "released":
                self._update_release(rel.ref, state="acknowledged")
            self._record("store_accepted", StepState.DONE, f"{event.actor}: {where} accepted {self._lines_text(rel)}")
        elif event.state == StoreFulfillmentState.PREPARED:
            self._update_release(rel.ref, state="prepared")
            self._record("store_picked", StepState.DONE,
                         f"{event.actor}: {where} picked {self._lines_text(rel)}"
                         + (", ready for the customer to collect" if pickup else ", packed for shipping"))
        elif event.state == StoreFulfillmentState.COMPLETED:
            lines = [ShipmentLine(line_id=r.line_id, channel_sku=r.channel_sku, quantity=r.quantity)
                     for r in self._unshipped(rel.line_ids)]
            self._record("store_collected" if pickup else "store_shipped", StepState.DONE,
                         f"{event.actor}: " + (f"the customer collected {self._lines_text(rel)} at {where}" if pickup
                                               else f"{where} shipped {self._lines_text(rel)}")
                         + (f" ({event.carrier} {event.tracking_number})" if event.tracking_number else ""))
            if not lines:
                return
            shipment = Shipment(shipment_id=f"{rel.node_id}:{rel.ref.rsplit('/', 1)[-1]}:"
                                            f"{'collected' if pickup else 'shipped'}",
                                carrier=event.carrier, tracking_number=event.tracking_number,
                                shipped_at=event.occurred_at, lines=lines)
            if shipment.shipment_id in self._seen_shipments:
                return
            self._seen_shipments.add(shipment.shipment_id)
            await self._process_node_shipment(rel.ref, shipment)
        else:  # CANCELED / FAILED at the store: it has no request left to withdraw
            await self._reroute(rel, f"{event.actor}: {where} {event.state.value.lower()} the request"
                                + (f" ({event.reason})" if event.reason else ""), [], withdraw=False)

    async def _poll_suppliers(self) -> None:
        """Read each open drop-ship release's answers: its 855 (a rejection re-sources), its 856s (shipments); a
        supplier that has not acknowledged within NODE_ACK_TIMEOUT is re-sourced."""
        now = workflow.now()
        open_ = [r for r in self._releases if r.role == "supplier" and r.state in ("released", "acknowledged")]
        self._next_poll = now + timedelta(seconds=self._input.supplier_poll_seconds) if open_ else None
        for rel in open_:
            try:
                updates: NodeUpdates = await self._execute(
                    SplitFulfillmentActivities.poll_node, NodeReserveInput(release=rel),
                    f"Read {rel.node_id}'s answers to purchase order {rel.release_id}")
            except ActivityError as err:
                self._record("poll_node", StepState.FAILED, f"{rel.node_id}: {failure_message(err)}")
                continue
            if updates.acknowledged and rel.state == "released":
                self._update_release(rel.ref, state="acknowledged")
                self._record("node_acknowledged", StepState.DONE,
                             f"{rel.node_id} acknowledged purchase order {rel.release_id}")
            if updates.refusal is not None:
                self._refusals.append(updates.refusal)
            for shipment in updates.shipments:
                if shipment.shipment_id not in self._seen_shipments:
                    self._seen_shipments.add(shipment.shipment_id)
                    self._node_shipments.append((rel.ref, shipment))
            late = rel.released_at is not None and now - rel.released_at >= NODE_ACK_TIMEOUT
            if late and self._release(rel.ref).state == "released" and not updates.shipments:
                hours = int(NODE_ACK_TIMEOUT.total_seconds() // 3600)
                self._refusals.append(NodeRefusal(release_ref=rel.ref, reason=f"no acknowledgement of purchase "
                                                  f"order {rel.release_id} within {hours}h", timed_out=True))

    async def _split_stock_news(self) -> None:
        """A store sale that took a node's reserved units, or a node's short pick: the node cannot ship those lines;
        they are re-sourced like a refusal."""
        while self._shortfalls or self._short_picks:
            if self._shortfalls:
                sf = self._shortfalls.pop(0)
                rel = next((r for r in self._releases if r.state in LIVE and r.location == sf.location
                            and any(ln.item_code == sf.item_code for ln in r.lines)), None)
                at = f" at {sf.store}" if sf.store else ""
                if rel is None:
                    self._record("stock_shortfall", StepState.DONE,
                                 f"{sf.quantity} × {sf.item_code} taken by a store sale{at}: no open release there")
                    continue
                ids = [ln.line_id for ln in rel.lines if ln.item_code == sf.item_code]
                if rel.role == "pos" and workflow.patched(STORE_PATCH) and not workflow.patched(STORE_AMEND_PATCH):
                    ids = []  # runs before store-amend-v1: the store's request was withdrawn whole and re-sourced
                # since: the store keeps its other lines (its request amended until the staff pick it)
                await self._reroute(rel, f"{sf.quantity} × {sf.item_code} taken by a store sale{at} "
                                    f"({sf.cause_event_id})", ids)
            else:
                pick = self._short_picks.pop(0)
                rel = self._release_for(pick.release_id, None)
                what = ", ".join(f"{x.quantity} × {x.channel_sku}" for x in pick.lines)
                if rel is None:
                    self._record("short_pick", StepState.DONE, f"picked short: {what} (no open release "
                                 f"{pick.release_id})")
                    continue
                await self._reroute(rel, f"picked short: {what}", [x.line_id for x in pick.lines])

    async def _on_receipt(self, receipt: StockReceived) -> None:
        """Stock arrived: the backordered lines that need the item are planned again; what is placed now is
        reserved and released, the rest keeps waiting."""
        wanted = [b for b in self._backordered
                  if receipt.item_code == b.item_code or any(c.item_code == receipt.item_code for c in b.components)]
        at = f" at {receipt.location}" if receipt.location else ""
        self._record("stock_received", StepState.DONE,
                     f"{receipt.quantity} × {receipt.item_code} received{at} ({receipt.event_id}); "
                     + (f"line(s) {', '.join(b.line_id for b in wanted)} planned again" if wanted
                        else "no backordered line needs it"))
        ids = [b.line_id for b in wanted if self._unshipped([b.line_id])]
        if not ids:
            return
        plan = await self._plan(lambda: self._unshipped(ids), f"Source backordered line(s) {', '.join(ids)}")
        placed = await self._place(plan, ids)
        for rel in placed:
            if self._release(rel.ref).state == "reserved":
                await self._release_node(self._release(rel.ref))
        if placed:
            self._record("backorder_released", StepState.DONE,
                         "; ".join(f"{self._lines_text(r)} to {r.node_id}" for r in placed))

    async def _forget_backorders(self) -> None:
        """The order ends: lines it backordered wait for no receipt any more (InventorySync stops telling it)."""
        if not (self._split and any(s.name == "backordered" for s in self.rb.steps)
                and workflow.patched(BACKORDER_WAITS_PATCH)):
            return
        try:
            await self._execute(InventoryActivities.forget_backorders, OrderKeysInput(keys=[self._wf_id]),
                                "Forget the order's backordered lines", UNDO_OPTIONS)
        except ActivityError as err:  # InventorySync removes them when it cannot tell the order any more
            workflow.logger.warning("backorders of %s not forgotten: %s", self._wf_id, failure_message(err))

    def _split_view(self) -> SplitView:
        return SplitView(split=self._split, summary=self._sourcing_summary, releases=list(self._releases),
                         backordered=list(self._backordered), excluded=dict(self._excluded))

    # -- compensation, corrections and status ----------------------------------------------------------------
    def _committed(self) -> bool:
        return any(self._shipped.values())

    def _cancel_refusal(self) -> str | None:
        if any(self._shipped.values()) or self.rb.status in SHIPPED_STATUSES:
            return self.RUNBOOK.cancel_refused
        return None

    def _on_analyst_action(self, kind: str, who: AnalystAction) -> str:
        if kind == "resume":
            self._apply_corrections(self._pending_corrections, who)
            kind = "retry"
        self._pending_corrections = None
        return kind

    def _accept_resume(self, request: AnalystRequest) -> None:
        self._pending_corrections = request.corrections
        self.rb.pending = ("resume", AnalystAction(actor=request.actor, reason=request.reason))

    def _validate_resume(self, request: AnalystRequest) -> None:
        if request.corrections is None or (
                request.corrections.shipping_address is None and not request.corrections.sku_corrections):
            raise ValueError("resume needs corrections: a shipping_address or sku_corrections")

    async def _compensate(self, action: AnalystAction) -> None:
        if self.rb.amending:
            await workflow.wait_condition(lambda: not self.rb.amending)
        self._set_status(OrderStatus.CANCELLING, action.reason)
        undo = list(reversed(self.rb.undo))
        self.rb.undo.clear()
        if action.actor != f"channel:{self._order.channel}":
            undo.append(Undo("notify_channel_cancelled", OrderActivities.notify_channel_cancelled,
                              ChannelCancelInput(channel=self._order.channel,
                                                 external_order_id=self._order.external_order_id,
                                                 reason=action.reason or "cancelled"),
                              f"Tell {self._order.channel} the order is cancelled"))
        await self._run_undo(undo)

    def _apply_corrections(self, corrections: OrderCorrections | None, who: AnalystAction) -> None:
        if corrections is None:
            return
        update: dict[str, Any] = {}
        notes = []
        if corrections.shipping_address is not None:
            update["shipping_address"] = corrections.shipping_address
            notes.append("shipping address")
        if corrections.sku_corrections:
            lines = []
            for line in self._order.lines:
                new_sku = corrections.sku_corrections.get(line.channel_sku)
                lines.append(line.model_copy(update={"channel_sku": new_sku}) if new_sku else line)
                if new_sku:
                    notes.append(f"SKU {line.channel_sku} → {new_sku}")
            update["lines"] = lines
        self._order = self._order.model_copy(update=update)
        self._record("corrected_data", StepState.DONE, f"{who.actor} corrected {', '.join(notes) or 'nothing'}")

    # -- bookkeeping ------------------------------------------------------------------------------------
    def _set_status(self, status: OrderStatus, reason: str | None = None) -> None:
        self.rb.status = status
        if status != OrderStatus.NEEDS_ATTENTION:
            self.rb.reason = reason
        wanted: list[SearchAttributeUpdate[Any]] = [
            sa.ORDER_STATUS.value_set(status.value), sa.NEEDS_ATTENTION.value_set(status == OrderStatus.NEEDS_ATTENTION)]
        self._upsert_changed(wanted)
        workflow.set_current_details(self._details())
        changed = (status, self._late, self._erp_so) != self._last_projected
        if changed and (status in PROJECTED_MILESTONES or self._last_projected[0] == OrderStatus.NEEDS_ATTENTION):
            self._last_projected = (status, self._late, self._erp_so)
            self._projection_version += 1
            upd = RunStatusUpdate(
                workflow_id=self._wf_id, kind="order", channel=self._order.channel,
                external_id=self._order.external_order_id, reference=self._order.order_number,
                status=status.value, needs_attention=status == OrderStatus.NEEDS_ATTENTION, reason=self.rb.reason,
                suggested_action=self.rb.action_hint, erp_ref=self._erp_so, late=self._late,
                version=self._projection_version, started_at=workflow.info().start_time, changed_at=workflow.now(),
            )
            self._queue_projection(upd)

    def _upsert_changed(self, wanted: list) -> None:
        """Upsert only the attributes whose value differs from what the run already carries."""
        changed = [u for u in wanted if self._sa_current.get(u.key.name) != u.value]
        if changed:
            workflow.upsert_search_attributes(changed)
            self._sa_current.update({u.key.name: u.value for u in changed})

    def _details(self) -> str:
        parts = [f"**Status:** {self.rb.status.value}{' (late)' if self._late else ''}"]
        if self.rb.reason:
            parts.append(f"**Reason:** {self.rb.reason}")
        if self._erp_so:
            parts.append(f"**ERP sales order:** {self._erp_so}")
        shipped = sum(self._shipped.values())
        ordered = sum(line.quantity for line in self._order.lines)
        parts.append(f"**Shipped:** {shipped}/{ordered} unit(s)")
        if self._split:
            parts.append(f"**Sourcing:** {self._sourcing_summary or 'not planned yet'}")
            for r in self._releases:
                ref = f" ({r.release_id})" if r.release_id else ""
                why = f": {r.reason}" if r.reason and r.state == "refused" else ""
                parts.append(f"- {self._where(r)}{ref}: {self._lines_text(r)}, {r.state}{why}")
            for b in self._backordered:
                parts.append(f"- line {b.line_id} backordered: waits for {b.item_code}")
        return "\n\n".join(parts)

    # -- signals and queries ----------------------------------------------------------------------------
    @workflow.signal
    def resume(self, request: AnalystRequest) -> None:
        """Retry the parked step with corrected data (a fixed address or SKU)."""
        self._accept_resume(request)

    act = analyst_update(OrderView)

    @workflow.update
    async def cancel_lines(self, request: LineCancelRequest) -> OrderView:
        """Cancel units of some lines before shipment: the warehouse release, tax, ERP sales order and
        reservation shrink, in that order (the warehouse is the one that may refuse: then nothing changes)."""
        async with self.rb.handler_lock:  # one line cancellation at a time, each against the order as it is then
            await workflow.wait_condition(lambda: not self.rb.busy)  # the main line is not inside an activity
            return await self._cancel_lines(request)

    async def _cancel_lines(self, request: LineCancelRequest) -> OrderView:
        try:  # re-checked: a shipment or another change may have come in meanwhile
            self._refuse_line_cancel(request)
        except ValueError as refused:
            raise ApplicationError(str(refused), type="LineCancelRefused") from None
        self.rb.amending = True
        wanted = {c.line_id: c.quantity for c in request.lines}
        lines = [line.model_copy(update={"quantity": line.quantity - wanted.get(line.line_id, 0)})
                 for line in self._order.lines if line.quantity > wanted.get(line.line_id, 0)]
        order = self._order.model_copy(update={"lines": lines, "total": None})
        keep = {line.line_id: line.quantity for line in lines}
        resolved = [r.model_copy(update={"quantity": keep[r.line_id]}) for r in self._resolved if r.line_id in keep]
        what = ", ".join(f"{c.quantity} × line {c.line_id}" for c in request.lines)
        record = self._record("cancel_lines", StepState.RUNNING, f"{request.actor}: cancel {what} ({request.reason})")
        key = self._wf_id
        try:
            if self._wms_release:
                await self._execute(OrderActivities.amend_wms_release, WmsAmendInput(external_ref=key, lines=resolved),
                                    f"Amend warehouse release: cancel {what}")
            changed = self._node_changes(keep) if self._split else []
            for rel, left in changed:  # the nodes first (a drop-ship supplier refuses any change: nothing changes)
                if rel.state not in ("released", "acknowledged", "prepared"):
                    continue
                if left:
                    await self._execute(SplitFulfillmentActivities.amend_node_release,
                                        NodeAmendInput(release=rel, lines=left),
                                        f"Amend the request at {rel.node_id}: cancel {what}")
                else:
                    await self._execute(SplitFulfillmentActivities.cancel_node_release, NodeReserveInput(release=rel),
                                        f"Cancel the request at {rel.node_id}: cancel {what}")
            # after the warehouse agreed, the platform's own documents follow; retried until they do
            if self._tax is not None:
                self._tax = await self._execute(OrderActivities.requote_tax,
                                                TaxQuoteInput(transaction_code=key, order=order),
                                                "Re-price tax for the remaining lines", UNDO_OPTIONS)
            if self._erp_so:
                await self._execute(OrderActivities.amend_sales_order,
                                    SalesOrderInput(external_ref=key, order=order, lines=resolved, tax=self._tax),
                                    f"Amend ERP sales order {self._erp_so}", UNDO_OPTIONS)
            if self._reserved:
                await self._execute(OrderActivities.reduce_reservation, ReserveInput(key=key, lines=resolved),
                                    "Give back the reserved stock of the cancelled units", UNDO_OPTIONS)
            for rel, left in changed:
                if left:
                    await self._execute(SplitFulfillmentActivities.reduce_node_reservation,
                                        NodeAmendInput(release=rel, lines=left),
                                        f"Give back the stock of the cancelled units at {rel.node_id}", UNDO_OPTIONS)
                else:
                    await self._execute(SplitFulfillmentActivities.release_node_stock, NodeReserveInput(release=rel),
                                        f"Give back the stock reserved at {rel.node_id}", UNDO_OPTIONS)
        except ActivityError as err:
            message = failure_message(err)
            self._finish(record, StepState.FAILED, f"lines not cancelled: {message}")
            raise ApplicationError(f"lines not cancelled: {message}", type="LineCancelRefused") from None
        finally:
            self.rb.amending = False
        self._order = order
        self._resolved = resolved
        if self._split:
            self._apply_node_changes(changed, keep)
        self._finish(record, StepState.DONE, None)
        workflow.set_current_details(self._details())
        return self.status()

    def _node_changes(self, keep: dict[str, int]) -> list[tuple[NodeRelease, list[ComponentLine]]]:
        """Each open release the line cancellation changes, with what it is still to ship (drop-ship first: a
        supplier refuses, and then nothing has changed)."""
        out = []
        for rel in sorted((r for r in self._releases if r.state in LIVE), key=lambda r: r.role != "supplier"):
            lines = []
            for ln in rel.lines:
                left = keep.get(ln.line_id, 0)
                if left <= 0:
                    continue
                lines.append(ln.model_copy(update={"quantity": ln.per_kit * left, "kit_quantity": left})
                             if ln.kit_quantity else ln.model_copy(update={"quantity": left}))
            if lines != rel.lines:
                out.append((rel, lines))
        return out

    def _apply_node_changes(self, changed: list[tuple[NodeRelease, list[ComponentLine]]], keep: dict[str, int]) -> None:
        for rel, lines in changed:
            if lines:
                self._update_release(rel.ref, lines=lines)
            else:
                self._update_release(rel.ref, state="cancelled", reason="its lines were cancelled")
                self.rb.undo = [u for u in self.rb.undo
                                if u.name not in (f"cancel_node_release:{rel.ref}", f"release_node_stock:{rel.ref}")]
        self._backordered = [b.model_copy(update={"quantity": keep[b.line_id]}) for b in self._backordered
                             if keep.get(b.line_id, 0) > 0]

    @cancel_lines.validator
    def _validate_cancel_lines(self, request: LineCancelRequest) -> None:
        self._refuse_line_cancel(request)

    def _refuse_line_cancel(self, request: LineCancelRequest) -> None:
        if self.rb.status in (OrderStatus.COMPLETED, OrderStatus.CANCELLED, OrderStatus.FAILED, OrderStatus.CANCELLING):
            raise ValueError(f"the order is {self.rb.status.value}; its lines cannot change")
        if any(self._shipped.values()) or self.rb.status in SHIPPED_STATUSES:
            raise ValueError("goods have shipped; cancel what is left by a return instead")
        if self.rb.amending:
            raise ValueError("another line cancellation is in progress; try again in a moment")
        current = {line.line_id: line for line in self._order.lines}
        for c in request.lines:
            line = current.get(c.line_id)
            if line is None:
                raise ValueError(f"line {c.line_id} is not on the order (lines: {', '.join(current)})")
            if c.quantity > line.quantity:
                raise ValueError(f"line {c.line_id} has {line.quantity} unit(s); cannot cancel {c.quantity}")
        wanted = {c.line_id: c.quantity for c in request.lines}
        if all(line.quantity <= wanted.get(line.line_id, 0) for line in self._order.lines if line.requires_shipping):
            raise ValueError("that cancels every unit to ship; cancel the order instead")

    @workflow.signal
    def shipment(self, shipment: Shipment) -> None:
        if shipment.shipment_id in self._seen_shipments:
            return
        self._seen_shipments.add(shipment.shipment_id)
        self._pending_shipments.append(shipment)

    @workflow.signal
    def node_shipment(self, shipment: NodeShipment) -> None:
        """A shipment from one node of a split order (names the release or the node)."""
        if shipment.shipment.shipment_id in self._seen_shipments:
            return
        self._seen_shipments.add(shipment.shipment.shipment_id)
        self._node_shipments.append((shipment.release_ref or self._ref_of_node(shipment.node_id), shipment.shipment))

    def _ref_of_node(self, node_id: str | None) -> str | None:
        rel = self._release_for(None, node_id) if node_id else None
        return rel.ref if rel else None

    @workflow.signal
    def store_fulfillment(self, event: StoreFulfillmentEvent) -> None:
        """A store's pick confirmation, the customer's pick-up, the store's shipment or refusal (its staff through
        /pos/stores/…, or the POS's own webhook): an event of the order, with the actor."""
        if event.event_id in self._seen_store_events:
            return
        self._seen_store_events.add(event.event_id)
        self._store_events.append(event)

    @workflow.signal
    def node_refused(self, refusal: NodeRefusal) -> None:
        """A node of a split order refused its lines (a WMS exception, a supplier's rejection): re-sourced."""
        self._refusals.append(refusal)

    @workflow.signal
    def stock_received(self, receipt: StockReceived) -> None:
        """Stock arrived somewhere: backordered lines that need the item are sourced again."""
        if receipt.event_id not in self._seen_receipts:
            self._seen_receipts.add(receipt.event_id)
            self._receipts.append(receipt)

    @workflow.query
    def sourcing(self) -> SplitView:
        """The split: each node's release (lines, state, reference), backordered lines, nodes excluded and why."""
        return self._split_view()

    @workflow.signal
    def stock_shortfall(self, shortfall: StockShortfall) -> None:
        """A store sale took units this order's reservation held (the inventory ledger's shortfall)."""
        seen = f"shortfall:{shortfall.cause_event_id}:{shortfall.item_code}:{shortfall.location}"
        if seen not in self._seen_stock_news:
            self._seen_stock_news.add(seen)
            self._shortfalls.append(shortfall)

    @workflow.signal
    def short_pick(self, pick: ShortPick) -> None:
        """The warehouse picked fewer units than released."""
        seen = f"short_pick:{pick.release_id}:{pick.reported_at.isoformat()}"
        if seen not in self._seen_stock_news:
            self._seen_stock_news.add(seen)
            self._short_picks.append(pick)

    @workflow.query
    def status(self) -> OrderView:
        return OrderView(
            workflow_id=self._wf_id, status=self.rb.status, reason=self.rb.reason, late=self._late,
            erp_sales_order_id=self._erp_so, wms_release_id=self._wms_release, invoice_id=self._invoice,
            tax_transaction_code=self._tax.transaction_code if self._tax else None,
            shipments=list(self._shipments), shipped_quantities=dict(self._shipped),
            ordered_quantities={line.line_id: line.quantity for line in self._order.lines}, steps=list(self.rb.steps),
            compensations=list(self.rb.compensated),
        )
