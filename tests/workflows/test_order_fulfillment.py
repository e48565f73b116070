"""OrderFulfillment on the time-skipping server with same-name stand-in activities: the happy path, partial
shipments, the SLA timer, cancel before shipment with every compensation, failure at each later step with
the compensation that must have run, parking then retry / skip / cancel / resume with corrections."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.common import SearchAttributeKey
from temporalio.worker import Worker

from activities.orders import (
    ChannelCancelInput,
    DeliveryInput,
    KeyInput,
    OrderInput,
    ReserveInput,
    SalesOrderInput,
    ShipmentConfirmInput,
    TaxQuoteInput,
    WmsAmendInput,
    WmsReleaseInput,
)
from canonical.fulfillment import (
    AnalystAction,
    InvoiceRef,
    LineCancel,
    LineCancelRequest,
    OrderFulfillmentInput,
    Reservation,
    ReservedLine,
    ResolvedLine,
    SalesOrderRef,
    StepState,
    WmsReleaseRef,
)
from canonical.money import Money
from canonical.ops import AnalystRequest, OrderCorrections
from canonical.order import (
    Address,
    Order,
    OrderLine,
    OrderStatus,
    Shipment,
    ShipmentLine,
    TaxQuote,
    TaxQuoteLine,
)
from tests.workflows.standins import StandIns
from workflows.order_fulfillment import OrderFulfillment

NOW = datetime(2026, 11, 1, tzinfo=UTC)
ADDRESS = Address(name="Ada", line1="1 Main St", city="Louisville", region="KY", postal_code="40202", country="US")

# Undo steps in the order compensation must run them: the reverse of registration, then the channel.
UNDO_AFTER_RELEASE = ["cancel_wms_release", "cancel_sales_order", "void_tax", "release_stock",
                      "notify_channel_cancelled"]


class Fake(StandIns):
    """Stand-in activities under the real names (failure injection: tests/workflows/standins.py)."""

    def all(self) -> list:
        fake = self

        @activity.defn(name="validate_order")
        async def validate_order(inp: OrderInput) -> None:
            fake.hit("validate_order", inp)

        @activity.defn(name="resolve_skus")
        async def resolve_skus(inp: OrderInput) -> list[ResolvedLine]:
            fake.hit("resolve_skus", inp)
            return [ResolvedLine(line_id=line.line_id, channel_sku=line.channel_sku, item_code=f"ITEM-{line.channel_sku}",
                                 quantity=line.quantity) for line in inp.order.lines]

        @activity.defn(name="reserve_stock")
        async def reserve_stock(inp: ReserveInput) -> Reservation:
            fake.hit("reserve_stock", inp)
            return Reservation(key=inp.key, lines=[ReservedLine(item_code=r.item_code, location="MAIN",
                                                                quantity=r.quantity) for r in inp.lines])

        @activity.defn(name="release_stock")
        async def release_stock(inp: KeyInput) -> bool:
            fake.hit("release_stock", inp)
            return True

        @activity.defn(name="quote_tax")
        async def quote_tax(inp: TaxQuoteInput) -> TaxQuote:
            fake.hit("quote_tax", inp)
            return _quote(inp)

        @activity.defn(name="void_tax")
        async def void_tax(inp: KeyInput) -> bool:
            fake.hit("void_tax", inp)
            return True

        @activity.defn(name="create_sales_order")
        async def create_sales_order(inp: SalesOrderInput) -> SalesOrderRef:
            fake.hit("create_sales_order", inp)
            return SalesOrderRef(erp_sales_order_id="SO-1", external_ref=inp.external_ref)

        @activity.defn(name="cancel_sales_order")
        async def cancel_sales_order(inp: KeyInput) -> bool:
            fake.hit("cancel_sales_order", inp)
            return True

        @activity.defn(name="release_to_wms")
        async def release_to_wms(inp: WmsReleaseInput) -> WmsReleaseRef:
            fake.hit("release_to_wms", inp)
            return WmsReleaseRef(release_id="REL-1", external_ref=inp.external_ref)

        @activity.defn(name="cancel_wms_release")
        async def cancel_wms_release(inp: KeyInput) -> bool:
            fake.hit("cancel_wms_release", inp)
            return True

        @activity.defn(name="post_delivery")
        async def post_delivery(inp: DeliveryInput) -> None:
            fake.hit("post_delivery", inp)

        @activity.defn(name="confirm_shipment")
        async def confirm_shipment(inp: ShipmentConfirmInput) -> None:
            fake.hit("confirm_shipment", inp)

        @activity.defn(name="notify_channel_cancelled")
        async def notify_channel_cancelled(inp: ChannelCancelInput) -> None:
            fake.hit("notify_channel_cancelled", inp)

        @activity.defn(name="create_invoice")
        async def create_invoice(inp: KeyInput) -> InvoiceRef:
            fake.hit("create_invoice", inp)
            return InvoiceRef(invoice_id="INV-1", external_ref=inp.key, total=Money.of("21.20", "USD"))

        @activity.defn(name="commit_tax")
        async def commit_tax(inp: KeyInput) -> None:
            fake.hit("commit_tax", inp)

        @activity.defn(name="amend_wms_release")
        async def amend_wms_release(inp: WmsAmendInput) -> bool:
            fake.hit("amend_wms_release", inp)
            return True

        @activity.defn(name="requote_tax")
        async def requote_tax(inp: TaxQuoteInput) -> TaxQuote:
            fake.hit("requote_tax", inp)
            return _quote(inp)

        @activity.defn(name="amend_sales_order")
        async def amend_sales_order(inp: SalesOrderInput) -> bool:
            fake.hit("amend_sales_order", inp)
            return True

        @activity.defn(name="reduce_reservation")
        async def reduce_reservation(inp: ReserveInput) -> int:
            fake.hit("reduce_reservation", inp)
            return 1

        record_run_status = fake.record_run_status()

        return [validate_order, resolve_skus, reserve_stock, release_stock, quote_tax, void_tax, create_sales_order,
                cancel_sales_order, release_to_wms, cancel_wms_release, post_delivery, confirm_shipment,
                notify_channel_cancelled, create_invoice, commit_tax, record_run_status, amend_wms_release, requote_tax,
                amend_sales_order, reduce_reservation]


def _quote(inp: TaxQuoteInput) -> TaxQuote:
    """6 % on every line, as a tax engine would price it."""
    cur = inp.order.currency
    lines = [TaxQuoteLine(line_id=line.line_id, taxable_amount=line.net, rate="0.06", tax=line.net * Decimal("0.06"))
             for line in inp.order.lines]
    total = Money.zero(cur)
    for line in lines:
        total = total + line.tax
    return TaxQuote(transaction_code=inp.transaction_code, currency=cur, jurisdiction="US-KY", taxes_included=False,
                    shipping_tax=Money.zero(cur), total_tax=total, lines=lines)


def _order(quantities: tuple[int, ...] = (2,), sku_prefix: str = "SKU") -> Order:
    return Order(
        channel="shopify", external_order_id=uuid.uuid4().hex[:12], order_number="#1001", created_at=NOW,
        currency="USD", taxes_included=False, shipping_address=ADDRESS,
        lines=[OrderLine(line_id=f"L{i}", channel_sku=f"{sku_prefix}-{i}", quantity=q, unit_price=Money.of("10.00", "USD"))
               for i, q in enumerate(quantities, start=1)],
    )


def _shipment(shipment_id: str, *lines: tuple[str, int]) -> Shipment:
    return Shipment(shipment_id=shipment_id, carrier="UPS", tracking_number=f"1Z{shipment_id}", shipped_at=NOW,
                    lines=[ShipmentLine(line_id=lid, channel_sku=f"SKU-{lid[1:]}", quantity=q) for lid, q in lines])


async def _until(handle, predicate, what: str, timeout: float = 20):
    deadline = asyncio.get_running_loop().time() + timeout
    view = None
    while asyncio.get_running_loop().time() < deadline:
        view = await handle.query(OrderFulfillment.status)
        if predicate(view):
            return view
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached {what}; last {view.status if view else None}: {view.reason if view else ''}")


def _status(status: OrderStatus):
    return lambda view: view.status == status


async def _run(ts_env, fake: Fake, inp: OrderFulfillmentInput, during=None):
    """Run one order to its end; `during(handle)` drives it (signals, shipments). Returns (result or
    WorkflowFailureError, final view, handle)."""
    tq = f"of-{uuid.uuid4()}"
    async with Worker(ts_env.client, task_queue=tq, workflows=[OrderFulfillment], activities=fake.all()):
        handle = await ts_env.client.start_workflow(OrderFulfillment.run, inp, id=inp.order.workflow_id,
                                                    task_queue=tq, static_summary="test order")
        if during is not None:
            await during(handle)
        try:
            result = await handle.result()
        except WorkflowFailureError as err:
            result = err
        return result, await handle.query(OrderFulfillment.status), handle


def _ship_all(*shipments: Shipment):
    async def during(handle):
        await _until(handle, _status(OrderStatus.RELEASED), "released")
        for s in shipments:
            await handle.signal(OrderFulfillment.shipment, s)
    return during


def _undo_names(fake: Fake) -> list[str]:
    undo = set(UNDO_AFTER_RELEASE)
    return [n for n in fake.names() if n in undo]


# -- happy path and shipments -----------------------------------------------------------------------------
async def test_happy_path_runs_every_step_once_in_order_and_keeps_search_attributes(ts_env):
    fake, inp = Fake(), OrderFulfillmentInput(order=_order((2,)))
    result, view, handle = await _run(ts_env, fake, inp, _ship_all(_shipment("S1", ("L1", 2))))
    assert result.status == OrderStatus.COMPLETED and view.status == OrderStatus.COMPLETED
    assert result.erp_sales_order_id == "SO-1" and result.invoice_id == "INV-1"
    assert result.tax is not None and result.tax.total_tax == Money.of("1.20", "USD")
    assert fake.names() == ["validate_order", "resolve_skus", "reserve_stock", "quote_tax", "create_sales_order",
                            "release_to_wms", "post_delivery", "confirm_shipment", "create_invoice", "commit_tax"]
    # every side effect carries the workflow id as its idempotency key
    assert fake.arg("create_sales_order").external_ref == inp.order.workflow_id
    assert fake.arg("quote_tax").transaction_code == inp.order.workflow_id
    assert view.compensations == [] and view.shipped_quantities == {"L1": 2} and not view.late
    desc = await handle.describe()
    attrs = desc.typed_search_attributes
    assert attrs.get(SearchAttributeKey.for_keyword("OrderStatus")) == "completed"
    assert attrs.get(SearchAttributeKey.for_keyword("ExternalOrderId")) == inp.order.external_order_id
    assert attrs.get(SearchAttributeKey.for_keyword("Channel")) == "shopify"
    assert attrs.get(SearchAttributeKey.for_bool("NeedsAttention")) is False
    assert [p.status for p in fake.projections] == ["received", "released", "shipped", "completed"]


async def test_search_attributes_are_upserted_only_when_they_change(ts_env):
    """Started as the intake starts it (search attributes set at the start), a run upserts each status once
    and never re-sends Channel, ExternalOrderId or an unchanged NeedsAttention: every upsert is a history
    event and a visibility write on the server."""
    from temporalio.common import SearchAttributePair, TypedSearchAttributes

    from workflows import search_attributes as sa

    fake, inp = Fake(), OrderFulfillmentInput(order=_order((2,)))
    tq = f"of-{uuid.uuid4()}"
    async with Worker(ts_env.client, task_queue=tq, workflows=[OrderFulfillment], activities=fake.all()):
        handle = await ts_env.client.start_workflow(
            OrderFulfillment.run, inp, id=inp.order.workflow_id, task_queue=tq,
            search_attributes=TypedSearchAttributes([
                SearchAttributePair(sa.CHANNEL, "shopify"),
                SearchAttributePair(sa.EXTERNAL_ORDER_ID, inp.order.external_order_id),
                SearchAttributePair(sa.ORDER_STATUS, "received"), SearchAttributePair(sa.NEEDS_ATTENTION, False)]))
        await _ship_all(_shipment("S1", ("L1", 2)))(handle)
        await handle.result()
    upserts = [e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
               async for e in handle.fetch_history_events() if e.HasField("upsert_workflow_search_attributes_event_attributes")]
    keys = [k for fields in upserts for k in fields if k != "TemporalChangeVersion"]
    assert "Channel" not in keys and "ExternalOrderId" not in keys and "NeedsAttention" not in keys
    statuses = [fields["OrderStatus"].data.decode().strip('"') for fields in upserts if "OrderStatus" in fields]
    assert statuses == ["validated", "reserved", "booked", "released", "shipped", "invoiced", "completed"]


async def test_partial_shipments_add_up_and_duplicates_are_ignored(ts_env):
    fake, inp = Fake(), OrderFulfillmentInput(order=_order((3, 1)))

    async def during(handle):
        await _until(handle, _status(OrderStatus.RELEASED), "released")
        await handle.signal(OrderFulfillment.shipment, _shipment("S1", ("L1", 2)))
        view = await _until(handle, _status(OrderStatus.PARTIALLY_SHIPPED), "partially shipped")
        assert view.shipped_quantities == {"L1": 2, "L2": 0}
        await handle.signal(OrderFulfillment.shipment, _shipment("S1", ("L1", 2)))  # the same event again
        await handle.signal(OrderFulfillment.shipment, _shipment("S2", ("L1", 1), ("L2", 1)))

    result, view, _ = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.COMPLETED
    assert view.shipped_quantities == {"L1": 3, "L2": 1}
    assert [s.shipment_id for s in view.shipments] == ["S1", "S2"]
    counts = fake.count()
    assert counts["post_delivery"] == 2 and counts["confirm_shipment"] == 2 and counts["create_invoice"] == 1
    assert fake.names().index("create_invoice") > max(i for i, n in enumerate(fake.names()) if n == "confirm_shipment")


async def test_sla_timer_marks_the_order_late_without_failing_it(ts_env):
    fake, inp = Fake(), OrderFulfillmentInput(order=_order((1,)), sla_hours=24)

    async def during(handle):
        await _until(handle, _status(OrderStatus.RELEASED), "released")
        await ts_env.sleep(timedelta(hours=25))  # time skips: the SLA timer fires
        view = await _until(handle, lambda v: v.late, "late")
        assert view.status == OrderStatus.RELEASED and "sla_breached" in [s.name for s in view.steps]
        await handle.signal(OrderFulfillment.shipment, _shipment("S1", ("L1", 1)))

    result, view, _ = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.COMPLETED and view.late
    assert any(p.late for p in fake.projections)


async def test_lines_that_need_no_shipping_do_not_hold_the_order(ts_env):
    order = _order((1,))
    gift_card = OrderLine(line_id="GC", channel_sku="GIFT", quantity=1, unit_price=Money.of("25.00", "USD"),
                          requires_shipping=False)
    order = order.model_copy(update={"lines": [*order.lines, gift_card]})
    result, view, _ = await _run(ts_env, Fake(), OrderFulfillmentInput(order=order), _ship_all(_shipment("S1", ("L1", 1))))
    assert result.status == OrderStatus.COMPLETED


# -- cancel before shipment ----------------------------------------------------------------------------
async def test_cancel_before_shipment_runs_every_compensation_in_reverse_once(ts_env):
    fake, inp = Fake(), OrderFulfillmentInput(order=_order((2,)))

    async def during(handle):
        await _until(handle, _status(OrderStatus.RELEASED), "released")
        await handle.signal(OrderFulfillment.cancel, AnalystAction(actor="ana", reason="customer asked"))

    result, view, _ = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.CANCELLED and view.reason == "customer asked"
    assert _undo_names(fake) == UNDO_AFTER_RELEASE
    assert view.compensations == UNDO_AFTER_RELEASE
    assert all(c == 1 for n, c in fake.count().items() if n in UNDO_AFTER_RELEASE)
    for name in UNDO_AFTER_RELEASE[:-1]:
        assert fake.arg(name).key == inp.order.workflow_id
    assert "create_invoice" not in fake.names() and "commit_tax" not in fake.names()


async def test_cancel_from_the_channel_does_not_notify_the_channel_back(ts_env):
    fake, inp = Fake(), OrderFulfillmentInput(order=_order((1,)))

    async def during(handle):
        await _until(handle, _status(OrderStatus.RELEASED), "released")
        await handle.signal(OrderFulfillment.cancel, AnalystAction(actor="channel:shopify", reason="orders/cancelled"))

    result, view, _ = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.CANCELLED
    assert view.compensations == UNDO_AFTER_RELEASE[:-1]


async def test_temporal_cancellation_compensates_then_ends_cancelled(ts_env):
    fake, inp = Fake(), OrderFulfillmentInput(order=_order((1,)))

    async def during(handle):
        await _until(handle, _status(OrderStatus.RELEASED), "released")
        await handle.cancel()

    result, view, _ = await _run(ts_env, fake, inp, during)
    assert isinstance(result, WorkflowFailureError)
    assert view.status == OrderStatus.CANCELLED and view.compensations == UNDO_AFTER_RELEASE


async def test_cancel_after_shipment_is_refused_and_the_order_completes(ts_env):
    fake, inp = Fake(), OrderFulfillmentInput(order=_order((2,)))

    async def during(handle):
        await _until(handle, _status(OrderStatus.RELEASED), "released")
        await handle.signal(OrderFulfillment.shipment, _shipment("S1", ("L1", 1)))
        await _until(handle, _status(OrderStatus.PARTIALLY_SHIPPED), "partially shipped")
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(OrderFulfillment.act, AnalystRequest(action="cancel", actor="ana", reason="customer asked"))
        await handle.signal(OrderFulfillment.cancel, AnalystAction(actor="ana", reason="too late"))
        await _until(handle, lambda v: "cancel_refused" in [s.name for s in v.steps], "cancel refused")
        await handle.signal(OrderFulfillment.shipment, _shipment("S2", ("L1", 1)))

    result, view, _ = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.COMPLETED and view.compensations == []
    assert not set(fake.names()) & set(UNDO_AFTER_RELEASE)


# -- failure at each later step: exactly the undo steps registered so far run, in reverse ------------------
@pytest.mark.parametrize(("step", "undo"), [
    ("reserve_stock", ["release_stock", "notify_channel_cancelled"]),
    ("quote_tax", ["void_tax", "release_stock", "notify_channel_cancelled"]),
    ("create_sales_order", ["cancel_sales_order", "void_tax", "release_stock", "notify_channel_cancelled"]),
    ("release_to_wms", UNDO_AFTER_RELEASE),
])
async def test_unrecoverable_failure_runs_the_compensation_registered_so_far(ts_env, step, undo):
    fake, inp = Fake({step: ("fatal", 1)}), OrderFulfillmentInput(order=_order((1,)))
    result, view, _ = await _run(ts_env, fake, inp)
    assert isinstance(result, WorkflowFailureError)
    assert result.cause.type == "OrderFailed" and step in result.cause.message
    assert view.status == OrderStatus.FAILED and view.reason.startswith(f"{step} failed")
    assert view.compensations == undo
    assert [n for n in fake.names() if n.startswith(("release_stock", "void_tax", "cancel_", "notify_"))] == undo


@pytest.mark.parametrize("step", ["post_delivery", "confirm_shipment", "create_invoice", "commit_tax"])
async def test_failure_after_shipment_parks_instead_of_undoing_and_retry_completes(ts_env, step):
    fake, inp = Fake({step: ("fatal", 1)}), OrderFulfillmentInput(order=_order((1,)))

    async def during(handle):
        await _ship_all(_shipment("S1", ("L1", 1)))(handle)
        view = await _until(handle, _status(OrderStatus.NEEDS_ATTENTION), "parked")
        assert view.reason.startswith(step)
        await handle.execute_update(OrderFulfillment.act, AnalystRequest(action="retry", actor="ana", reason="fixed"))

    result, view, _ = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.COMPLETED and view.compensations == []
    assert fake.count()[step] == 2


async def test_transient_failure_is_retried_by_temporal_without_parking(ts_env):
    fake, inp = Fake({"create_sales_order": ("transient", 2)}), OrderFulfillmentInput(order=_order((1,)))
    result, view, _ = await _run(ts_env, fake, inp, _ship_all(_shipment("S1", ("L1", 1))))
    assert result.status == OrderStatus.COMPLETED
    assert fake.count()["create_sales_order"] == 3
    assert OrderStatus.NEEDS_ATTENTION not in [p.status for p in fake.projections]


async def test_transient_failure_that_outlasts_its_budget_parks_and_retry_resumes(ts_env):
    fake = Fake({"release_to_wms": ("transient", 3)})
    inp = OrderFulfillmentInput(order=_order((1,)), step_max_attempts=2)

    async def during(handle):
        view = await _until(handle, _status(OrderStatus.NEEDS_ATTENTION), "parked")
        assert "still failing after 2 attempts" in view.reason
        await handle.signal(OrderFulfillment.retry, AnalystAction(actor="ana", reason="WMS back"))
        await _ship_all(_shipment("S1", ("L1", 1)))(handle)

    result, view, _ = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.COMPLETED and fake.count()["release_to_wms"] == 4


# -- parking ----------------------------------------------------------------------------------------------
async def test_business_error_parks_then_retry_continues_from_the_parked_step(ts_env):
    fake, inp = Fake({"resolve_skus": ("UnknownSku", 1)}), OrderFulfillmentInput(order=_order((1,)))

    async def during(handle):
        view = await _until(handle, _status(OrderStatus.NEEDS_ATTENTION), "parked")
        assert view.reason.startswith("resolve_skus: resolve_skus refused") and "fix it" in view.reason
        desc = await handle.describe()
        assert desc.typed_search_attributes.get(SearchAttributeKey.for_bool("NeedsAttention")) is True
        with pytest.raises(WorkflowUpdateFailedError) as rejected:
            await handle.execute_update(OrderFulfillment.act, AnalystRequest(action="skip", actor="ana", reason="try skip"))
        assert "cannot be skipped" in str(rejected.value.cause)
        view = await handle.execute_update(OrderFulfillment.act,
                                           AnalystRequest(action="retry", actor="ana", reason="mapped the SKU"))
        await _ship_all(_shipment("S1", ("L1", 1)))(handle)

    result, view, handle = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.COMPLETED
    assert fake.count()["resolve_skus"] == 2 and fake.count()["validate_order"] == 1
    retry = next(s for s in view.steps if s.name == "analyst_retry")
    assert retry.detail == "ana: mapped the SKU"
    assert [p.needs_attention for p in fake.projections].count(True) == 1
    desc = await handle.describe()
    assert desc.typed_search_attributes.get(SearchAttributeKey.for_bool("NeedsAttention")) is False


async def test_parked_then_cancel_runs_compensation_for_what_was_done(ts_env):
    fake, inp = Fake({"create_sales_order": ("InvalidOrder", 1)}), OrderFulfillmentInput(order=_order((1,)))

    async def during(handle):
        await _until(handle, _status(OrderStatus.NEEDS_ATTENTION), "parked")
        await handle.execute_update(OrderFulfillment.act, AnalystRequest(action="cancel", actor="ana", reason="fraud"))

    result, view, _ = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.CANCELLED and view.reason == "fraud"
    # the sales order's undo was registered before the step ran (a timed-out step may still have happened)
    assert view.compensations == ["cancel_sales_order", "void_tax", "release_stock", "notify_channel_cancelled"]


async def test_skip_is_allowed_only_where_the_step_may_be_skipped(ts_env):
    fake, inp = Fake({"confirm_shipment": ("ChannelRejected", 1)}), OrderFulfillmentInput(order=_order((1,)))

    async def during(handle):
        await _ship_all(_shipment("S1", ("L1", 1)))(handle)
        await _until(handle, _status(OrderStatus.NEEDS_ATTENTION), "parked")
        await handle.execute_update(OrderFulfillment.act, AnalystRequest(action="skip", actor="ana",
                                                                         reason="channel order archived"))

    result, view, _ = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.COMPLETED and fake.count()["confirm_shipment"] == 1
    assert any(s.name == "confirm_shipment" and s.state == StepState.SKIPPED for s in view.steps)


async def test_resume_with_corrections_applies_them_to_the_retried_step(ts_env):
    fake, inp = Fake({"resolve_skus": ("UnknownSku", 1)}), OrderFulfillmentInput(order=_order((1,), "OLD"))
    fixed = ADDRESS.model_copy(update={"line1": "2 Oak Ave"})

    async def during(handle):
        await _until(handle, _status(OrderStatus.NEEDS_ATTENTION), "parked")
        with pytest.raises(WorkflowUpdateFailedError) as rejected:
            await handle.execute_update(OrderFulfillment.act, AnalystRequest(action="resume", actor="ana", reason="no data"))
        assert "needs corrections" in str(rejected.value.cause)
        await handle.execute_update(OrderFulfillment.act, AnalystRequest(
            action="resume", actor="ana", reason="typo in SKU",
            corrections=OrderCorrections(sku_corrections={"OLD-1": "SKU-1"}, shipping_address=fixed)))
        await _ship_all(_shipment("S1", ("L1", 1)))(handle)

    result, view, _ = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.COMPLETED
    assert fake.arg("resolve_skus", 0).order.lines[0].channel_sku == "OLD-1"
    assert fake.arg("resolve_skus", 1).order.lines[0].channel_sku == "SKU-1"
    assert fake.arg("release_to_wms").ship_to.line1 == "2 Oak Ave"
    assert any(s.name == "corrected_data" and "OLD-1 → SKU-1" in s.detail for s in view.steps)


async def test_actions_on_a_running_order_are_rejected_without_a_trace(ts_env):
    fake, inp = Fake(), OrderFulfillmentInput(order=_order((1,)))

    async def during(handle):
        await _until(handle, _status(OrderStatus.RELEASED), "released")
        with pytest.raises(WorkflowUpdateFailedError) as rejected:
            await handle.execute_update(OrderFulfillment.act, AnalystRequest(action="retry", actor="ana", reason="early"))
        await handle.signal(OrderFulfillment.shipment, _shipment("S1", ("L1", 1)))
        assert "not needs_attention" in str(rejected.value.cause)

    result, view, _ = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.COMPLETED
    assert not any(s.name.startswith("analyst_") for s in view.steps)


async def test_compensation_failure_is_recorded_and_the_rest_still_runs(ts_env):
    fake = Fake({"release_to_wms": ("fatal", 1), "cancel_sales_order": ("CannotCancel", 1)})
    result, view, _ = await _run(ts_env, fake, OrderFulfillmentInput(order=_order((1,))))
    assert isinstance(result, WorkflowFailureError)
    assert view.compensations == ["cancel_wms_release", "void_tax", "release_stock", "notify_channel_cancelled"]
    failed = next(s for s in view.steps if s.name == "undo_cancel_sales_order")
    assert failed.state == StepState.FAILED and "undo failed" in failed.detail


# -- lines cancelled before shipment -------------------------------------------------------------------
def _cancel(*lines: tuple[str, int]) -> LineCancelRequest:
    return LineCancelRequest(actor="ana", reason="customer changed their mind",
                             lines=[LineCancel(line_id=lid, quantity=q) for lid, q in lines])


async def test_cancelling_lines_before_shipment_shrinks_every_document_then_the_rest_ships(ts_env):
    fake, inp = Fake(), OrderFulfillmentInput(order=_order((2, 1)))

    async def during(handle):
        await _until(handle, _status(OrderStatus.RELEASED), "released")
        view = await handle.execute_update(OrderFulfillment.cancel_lines, _cancel(("L1", 1), ("L2", 1)))
        assert view.status == OrderStatus.RELEASED
        await handle.signal(OrderFulfillment.shipment, _shipment("S1", ("L1", 1)))

    result, view, _ = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.COMPLETED  # one unit of L1 was all that was left to ship
    amend = ["amend_wms_release", "requote_tax", "amend_sales_order", "reduce_reservation"]
    assert [n for n in fake.names() if n in amend] == amend
    assert [(r.line_id, r.quantity) for r in fake.arg("amend_wms_release").lines] == [("L1", 1)]
    assert [(r.line_id, r.quantity) for r in fake.arg("reduce_reservation").lines] == [("L1", 1)]
    booked = fake.arg("amend_sales_order")
    assert [(line.line_id, line.quantity) for line in booked.order.lines] == [("L1", 1)]
    assert booked.tax.total_tax == Money.of("0.60", "USD")  # re-priced: 6 % of the one remaining 10.00
    assert result.tax.total_tax == Money.of("0.60", "USD")
    assert any(s.name == "cancel_lines" and s.state == StepState.DONE and "ana" in s.detail for s in view.steps)


async def test_warehouse_refusing_the_change_leaves_the_order_as_it_was(ts_env):
    fake = Fake({"amend_wms_release": ("CannotCancel", 1)})
    inp = OrderFulfillmentInput(order=_order((2, 1)))

    async def during(handle):
        await _until(handle, _status(OrderStatus.RELEASED), "released")
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(OrderFulfillment.cancel_lines, _cancel(("L2", 1)))
        assert "lines not cancelled" in str(refused.value.cause)
        await handle.signal(OrderFulfillment.shipment, _shipment("S1", ("L1", 2)))
        view = await _until(handle, _status(OrderStatus.PARTIALLY_SHIPPED), "partially shipped")
        assert view.shipped_quantities == {"L1": 2, "L2": 0}  # L2 is still owed
        await handle.signal(OrderFulfillment.shipment, _shipment("S2", ("L2", 1)))

    result, view, _ = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.COMPLETED
    assert not {"requote_tax", "amend_sales_order", "reduce_reservation"} & set(fake.names())


async def test_line_cancellations_that_do_not_apply_are_rejected(ts_env):
    fake, inp = Fake(), OrderFulfillmentInput(order=_order((2, 1)))

    async def during(handle):
        await _until(handle, _status(OrderStatus.RELEASED), "released")
        for request, why in [(_cancel(("L9", 1)), "not on the order"), (_cancel(("L1", 3)), "has 2 unit(s)"),
                             (_cancel(("L1", 2), ("L2", 1)), "cancel the order instead")]:
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await handle.execute_update(OrderFulfillment.cancel_lines, request)
            assert why in str(refused.value.cause)
        await handle.signal(OrderFulfillment.shipment, _shipment("S1", ("L1", 1)))
        await _until(handle, _status(OrderStatus.PARTIALLY_SHIPPED), "partially shipped")
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(OrderFulfillment.cancel_lines, _cancel(("L2", 1)))
        assert "goods have shipped" in str(refused.value.cause)
        await handle.signal(OrderFulfillment.shipment, _shipment("S2", ("L1", 1), ("L2", 1)))

    result, _, _ = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.COMPLETED
    assert not {"amend_wms_release", "amend_sales_order"} & set(fake.names())


async def test_cancelling_the_short_line_of_a_parked_order_lets_retry_reserve_the_rest(ts_env):
    fake = Fake({"reserve_stock": ("OutOfStock", 1)})
    inp = OrderFulfillmentInput(order=_order((1, 5)))

    async def during(handle):
        await _until(handle, _status(OrderStatus.NEEDS_ATTENTION), "parked")
        await handle.execute_update(OrderFulfillment.cancel_lines, _cancel(("L2", 5)))
        await handle.execute_update(OrderFulfillment.act, AnalystRequest(action="retry", actor="ana",
                                                                         reason="short line cancelled"))
        await _ship_all(_shipment("S1", ("L1", 1)))(handle)

    result, _, _ = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.COMPLETED
    # nothing was booked yet, so only the order itself changed; the retried step reserved what is left
    assert not {"amend_wms_release", "requote_tax", "amend_sales_order", "reduce_reservation"} & set(fake.names())
    assert [(r.line_id, r.quantity) for r in fake.arg("reserve_stock", 1).lines] == [("L1", 1)]
    assert [line.line_id for line in fake.arg("create_sales_order").order.lines] == ["L1"]
