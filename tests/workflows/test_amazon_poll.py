"""AmazonOrderPoll on the time-skipping server with stand-in activities (same names): NextToken pages walked,
fulfillable orders started once, boundary orders not restarted, cancellations passed on, the cursor kept
across continue-as-new and not advanced by a failed poll."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.amazon import AmazonOrderInput, AmazonPollInput, OrdersPageInput, StartedOrder
from adapters.marketplace.amazon_sp import OrdersPage, OrderSummary
from workflows.amazon_poll import AmazonOrderPoll

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _o(oid: str, status: str, minutes: int, channel: str = "MFN") -> OrderSummary:
    return OrderSummary(amazon_order_id=oid, order_status=status, fulfillment_channel=channel,
                        last_update_date=T0 + timedelta(minutes=minutes))


class Amazon:
    def __init__(self) -> None:
        self.orders = [_o("A-1", "Unshipped", 1), _o("A-2", "Pending", 2), _o("A-3", "Unshipped", 3),
                       _o("A-4", "Unshipped", 3, "AFN"), _o("A-5", "Canceled", 3)]
        self.calls: list[OrdersPageInput] = []
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.fail = False

    @activity.defn(name="amazon_list_orders")
    def list_orders(self, inp: OrdersPageInput) -> OrdersPage:
        self.calls.append(inp)
        if self.fail:
            raise ApplicationError("credentials refused", type="VendorAuthFailed", non_retryable=True)
        rows = [o for o in self.orders if inp.last_updated_after is None or o.last_update_date >= inp.last_updated_after]
        start = int(inp.next_token or 0)
        page = rows[start:start + 2]
        return OrdersPage(orders=page, next_token=str(start + 2) if start + 2 < len(rows) else None)

    @activity.defn(name="amazon_start_order")
    def start_order(self, inp: AmazonOrderInput) -> StartedOrder:
        duplicate = inp.amazon_order_id in self.started
        self.started.append(inp.amazon_order_id)
        return StartedOrder(workflow_id=f"order:amazon:{inp.amazon_order_id}", duplicate=duplicate)

    @activity.defn(name="amazon_cancel_order")
    def cancel_order(self, inp: AmazonOrderInput) -> bool:
        self.cancelled.append(inp.amazon_order_id)
        return True


async def test_poll_starts_each_new_order_once_and_keeps_its_cursor(ts_env):
    fake = Amazon()
    queue = f"amazon-poll-{uuid.uuid4()}"
    async with Worker(ts_env.client, task_queue=queue, workflows=[AmazonOrderPoll],
                      activities=[fake.list_orders, fake.start_order, fake.cancel_order],
                      activity_executor=ThreadPoolExecutor(4)):
        handle = await ts_env.client.start_workflow(
            AmazonOrderPoll.run, AmazonPollInput(cursor=T0, interval_seconds=60, polls_per_run=2),
            id=f"poll:amazon:{uuid.uuid4()}", task_queue=queue)
        await ts_env.sleep(30)
        view = await handle.query(AmazonOrderPoll.status)
        assert fake.started == ["A-1", "A-3"]  # Pending waits; AFN is Amazon's to ship
        assert fake.cancelled == ["A-5"]
        assert view.cursor == T0 + timedelta(minutes=3) and view.started == 2
        assert [c.next_token for c in fake.calls[:3]] == [None, "2", "4"]  # every page of the first poll
        # the next polls (and a continue-as-new) start nothing again: orders at the cursor are remembered
        await ts_env.sleep(200)
        assert fake.started == ["A-1", "A-3"]
        assert all(c.last_updated_after == T0 + timedelta(minutes=3) for c in fake.calls[3:])
        # a new order updated later is started; a failing poll keeps the cursor
        fake.orders.append(_o("A-6", "Unshipped", 10))
        await handle.signal(AmazonOrderPoll.poll_now)
        await ts_env.sleep(5)
        assert fake.started[-1] == "A-6"
        fake.fail = True
        await ts_env.sleep(120)
        view = await handle.query(AmazonOrderPoll.status)
        assert view.cursor == T0 + timedelta(minutes=10) and "credentials refused" in (view.last_error or "")
        await handle.terminate()
