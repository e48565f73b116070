"""Issue 17 on the time-skipping server: a store sale that took units an order's reservation held
(`stock_shortfall`) is re-sourced before anything is released; after the release the order re-sources or, when
nothing is free, takes the units off the warehouse request and parks until stock is back; a warehouse that is
already picking refuses the change and the order parks; a short pick (`short_pick`) parks until the stock is
back, then releases the short units again. Stand-ins of tests/workflows/test_order_fulfillment.py."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from temporalio import activity

from activities.orders import ResourceInput, WmsAmendInput
from canonical.fulfillment import OrderFulfillmentInput
from canonical.inventory import ShortPick, ShortPickLine, StockShortfall
from canonical.ops import AnalystRequest
from canonical.order import OrderStatus
from tests.workflows.test_order_fulfillment import Fake, _order, _run, _shipment, _status, _until
from workflows.order_fulfillment import OrderFulfillment

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


class ShortFake(Fake):
    def all(self) -> list:
        fake = self

        @activity.defn(name="resource_stock")
        async def resource_stock(inp: ResourceInput) -> int:
            fake.hit("resource_stock", inp)
            return inp.quantity

        return [*super().all(), resource_stock]


def _shortfall(wf_id: str, quantity: int = 1, event: str = "pos-sale-1") -> StockShortfall:
    return StockShortfall(reservation_key=wf_id, item_code="ITEM-SKU-1", location="STORE-1", quantity=quantity,
                          cause_source="pos", cause_event_id=event, store="STORE-1", occurred_at=NOW)


def _retry(who: str = "ana") -> AnalystRequest:
    return AnalystRequest(action="retry", actor=who, reason="stock received")


def _amended(fake: Fake) -> list[dict[str, int]]:
    return [{x.line_id: x.quantity for x in arg.lines} for name, arg in fake.calls if name == "amend_wms_release"
            and isinstance(arg, WmsAmendInput)]


async def test_a_shortfall_before_the_release_is_re_sourced_first(ts_env):
    fake = ShortFake(fail={"create_sales_order": ("InvalidOrder", 1)})  # parks before the release
    inp = OrderFulfillmentInput(order=_order((2,)))

    async def during(handle):
        await _until(handle, _status(OrderStatus.NEEDS_ATTENTION), "parked before the release")
        await handle.signal(OrderFulfillment.stock_shortfall, _shortfall(inp.order.workflow_id, 1))
        await handle.signal(OrderFulfillment.stock_shortfall, _shortfall(inp.order.workflow_id, 1))  # a duplicate
        await handle.execute_update(OrderFulfillment.act, _retry())
        await _until(handle, _status(OrderStatus.RELEASED), "released")
        await handle.signal(OrderFulfillment.shipment, _shipment("S1", ("L1", 2)))

    result, view, _ = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.COMPLETED
    names = fake.names()
    assert names.count("resource_stock") == 1, "one re-sourcing per shortfall, duplicates ignored"
    assert names.index("resource_stock") < names.index("release_to_wms")
    arg = fake.arg("resource_stock")
    assert (arg.item_code, arg.quantity, arg.token, arg.store) == ("ITEM-SKU-1", 1, "pos-sale-1", "STORE-1")
    assert any(s.name == "stock_shortfall" and "store sale at STORE-1" in (s.detail or "") for s in view.steps)


async def test_a_shortfall_nothing_can_cover_before_the_release_parks_until_retry(ts_env):
    fake = ShortFake(fail={"create_sales_order": ("InvalidOrder", 1), "resource_stock": ("OutOfStock", 1)})
    inp = OrderFulfillmentInput(order=_order((2,)))

    async def during(handle):
        await _until(handle, _status(OrderStatus.NEEDS_ATTENTION), "parked before the release")
        await handle.signal(OrderFulfillment.stock_shortfall, _shortfall(inp.order.workflow_id, 2))
        await handle.execute_update(OrderFulfillment.act, _retry())
        view = await _until(handle, lambda v: v.status == OrderStatus.NEEDS_ATTENTION
                            and "resource_stock" in (v.reason or ""), "parked on re-sourcing")
        assert "release_to_wms" not in fake.names(), "nothing is released while the units are missing"
        assert view.reason.startswith("resource_stock: ")
        await handle.execute_update(OrderFulfillment.act, _retry())
        await _until(handle, _status(OrderStatus.RELEASED), "released")
        await handle.signal(OrderFulfillment.shipment, _shipment("S1", ("L1", 2)))

    result, _, _ = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.COMPLETED
    assert fake.names().count("resource_stock") == 2


async def test_after_the_release_the_short_units_leave_the_warehouse_request_until_re_sourced(ts_env):
    # re-sourcing fails twice: once tried at once, once as the parked step; the retry then succeeds
    fake = ShortFake(fail={"resource_stock": ("OutOfStock", 2)})
    inp = OrderFulfillmentInput(order=_order((3,)))

    async def during(handle):
        await _until(handle, _status(OrderStatus.RELEASED), "released")
        await handle.signal(OrderFulfillment.stock_shortfall, _shortfall(inp.order.workflow_id, 2))
        await _until(handle, _status(OrderStatus.NEEDS_ATTENTION), "parked on re-sourcing")
        assert _amended(fake) == [{"L1": 1}], "the warehouse is asked to ship only the unit still there"
        await handle.execute_update(OrderFulfillment.act, _retry())
        await _until(handle, lambda v: len(_amended(fake)) == 2, "released again")
        await handle.signal(OrderFulfillment.shipment, _shipment("S1", ("L1", 3)))

    result, _, handle = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.COMPLETED
    assert _amended(fake) == [{"L1": 1}, {"L1": 3}], "once re-sourced, every unit goes back to the warehouse"
    if os.environ.get("RETAILFLOW_RECORD_REPLAY"):  # re-record tests/replay's pin of this path (then seal it)
        (Path(__file__).parents[1] / "replay" / "histories" / "order_shortfall_after_release_parked_then_retried.json"
         ).write_text((await handle.fetch_history()).to_json() + "\n")
    assert fake.names().count("resource_stock") == 3


async def test_after_the_release_a_shortfall_re_sourced_at_once_changes_nothing_at_the_warehouse(ts_env):
    fake = ShortFake()
    inp = OrderFulfillmentInput(order=_order((2,)))

    async def during(handle):
        await _until(handle, _status(OrderStatus.RELEASED), "released")
        await handle.signal(OrderFulfillment.stock_shortfall, _shortfall(inp.order.workflow_id, 1))
        await _until(handle, lambda v: any(s.name == "resource_stock" for s in v.steps), "re-sourced")
        await handle.signal(OrderFulfillment.shipment, _shipment("S1", ("L1", 2)))

    result, view, _ = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.COMPLETED
    assert _amended(fake) == [] and fake.names().count("resource_stock") == 1
    assert not any(s.state.value == "parked" for s in view.steps)


async def test_a_warehouse_already_picking_refuses_the_change_and_the_order_parks(ts_env):
    fake = ShortFake(fail={"resource_stock": ("OutOfStock", 2), "amend_wms_release": ("CannotCancel", 1)})
    inp = OrderFulfillmentInput(order=_order((2,)))

    async def during(handle):
        await _until(handle, _status(OrderStatus.RELEASED), "released")
        await handle.signal(OrderFulfillment.stock_shortfall, _shortfall(inp.order.workflow_id, 1))
        view = await _until(handle, lambda v: v.status == OrderStatus.NEEDS_ATTENTION
                            and "amend_wms_release" in (v.reason or ""), "parked on the warehouse's refusal")
        assert "CannotCancel" not in view.reason and "refused" in view.reason
        await handle.execute_update(OrderFulfillment.act, AnalystRequest(action="skip", actor="ana",
                                                                         reason="the warehouse short-picks it"))
        await _until(handle, lambda v: v.status == OrderStatus.NEEDS_ATTENTION
                     and "resource_stock" in (v.reason or ""), "parked on re-sourcing")
        await handle.execute_update(OrderFulfillment.act, _retry())
        await _until(handle, lambda v: len(_amended(fake)) == 2, "released again")
        await handle.signal(OrderFulfillment.shipment, _shipment("S1", ("L1", 2)))

    result, _, _ = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.COMPLETED


async def test_a_short_pick_parks_then_releases_the_short_units_again(ts_env):
    fake = ShortFake()
    inp = OrderFulfillmentInput(order=_order((3,)))
    pick = ShortPick(release_id="REL-1", external_ref=inp.order.workflow_id, reported_at=NOW,
                     lines=[ShortPickLine(line_id="L1", channel_sku="SKU-1", item_code="ITEM-SKU-1", quantity=2)])

    async def during(handle):
        await _until(handle, _status(OrderStatus.RELEASED), "released")
        await handle.signal(OrderFulfillment.shipment, _shipment("S1", ("L1", 1)))  # what was there
        await handle.signal(OrderFulfillment.short_pick, pick)
        view = await _until(handle, _status(OrderStatus.NEEDS_ATTENTION), "parked on the short pick")
        assert "picked short: 2 × SKU-1" in view.reason and view.shipped_quantities == {"L1": 1}
        assert _amended(fake) == []
        await handle.signal(OrderFulfillment.short_pick, pick)  # the same report again: ignored
        await handle.execute_update(OrderFulfillment.act, _retry())
        await _until(handle, lambda v: len(_amended(fake)) == 1, "released again")
        await handle.signal(OrderFulfillment.shipment, _shipment("S2", ("L1", 2)))

    result, view, _ = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.COMPLETED and view.shipped_quantities == {"L1": 3}
    assert _amended(fake) == [{"L1": 2}], "only the short units go back to the warehouse"


async def test_the_shortfall_handlers_leave_an_order_without_news_unchanged(ts_env):
    fake = ShortFake()
    inp = OrderFulfillmentInput(order=_order((1,)))

    async def during(handle):
        await _until(handle, _status(OrderStatus.RELEASED), "released")
        await handle.signal(OrderFulfillment.shipment, _shipment("S1", ("L1", 1)))

    result, _, handle = await _run(ts_env, fake, inp, during)
    assert result.status == OrderStatus.COMPLETED and "resource_stock" not in fake.names()
    markers = [e async for e in handle.fetch_history_events() if e.HasField("marker_recorded_event_attributes")]
    assert not any(b"stock-shortfall" in p.data for e in markers
                   for v in e.marker_recorded_event_attributes.details.values() for p in v.payloads), \
        "no patch marker: the history keeps its shape when nothing happened"
