"""ChannelOrderPoll on the time-skipping server with stand-in activities (same names): every page of the feed
walked, `start` orders started once, boundary orders not restarted, cancellations passed on, `wait` orders left,
the cursor kept across continue-as-new and not advanced by a failed poll; and the starter replacing a run of the
poll's earlier vendor-named type."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from temporalio import activity, workflow
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.order_poll import FeedOrderInput, FeedPageInput, OrderPollInput, StartedOrder
from canonical.order_feed import FeedAction, FeedOrder, FeedPage
from starters.polls import start_order_poll
from workflows.order_poll import ChannelOrderPoll

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _o(oid: str, action: FeedAction, minutes: int, status: str = "Unshipped") -> FeedOrder:
    return FeedOrder(external_order_id=oid, status=status, action=action,
                     last_update_date=T0 + timedelta(minutes=minutes))


class Channel:
    def __init__(self) -> None:
        self.orders = [_o("A-1", FeedAction.START, 1), _o("A-2", FeedAction.WAIT, 2, "Pending"),
                       _o("A-3", FeedAction.START, 3), _o("A-4", FeedAction.WAIT, 3, "Shipped"),
                       _o("A-5", FeedAction.CANCEL, 3, "Canceled")]
        self.calls: list[FeedPageInput] = []
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.fail = False

    @activity.defn(name="list_channel_orders")
    def list_orders(self, inp: FeedPageInput) -> FeedPage:
        assert inp.channel == "amazon"
        self.calls.append(inp)
        if self.fail:
            raise ApplicationError("credentials refused", type="VendorAuthFailed", non_retryable=True)
        rows = [o for o in self.orders if inp.updated_after is None or o.last_update_date >= inp.updated_after]
        start = int(inp.next_token or 0)
        page = rows[start:start + 2]
        return FeedPage(orders=page, next_token=str(start + 2) if start + 2 < len(rows) else None)

    @activity.defn(name="start_channel_order")
    def start_order(self, inp: FeedOrderInput) -> StartedOrder:
        duplicate = inp.external_order_id in self.started
        self.started.append(inp.external_order_id)
        return StartedOrder(workflow_id=f"order:{inp.channel}:{inp.external_order_id}", duplicate=duplicate)

    @activity.defn(name="cancel_channel_order")
    def cancel_order(self, inp: FeedOrderInput) -> bool:
        self.cancelled.append(inp.external_order_id)
        return True


async def test_poll_starts_each_new_order_once_and_keeps_its_cursor(ts_env):
    fake = Channel()
    queue = f"order-poll-{uuid.uuid4()}"
    async with Worker(ts_env.client, task_queue=queue, workflows=[ChannelOrderPoll],
                      activities=[fake.list_orders, fake.start_order, fake.cancel_order],
                      activity_executor=ThreadPoolExecutor(4)):
        handle = await ts_env.client.start_workflow(
            ChannelOrderPoll.run, OrderPollInput(channel="amazon", cursor=T0, interval_seconds=60, polls_per_run=2),
            id=f"poll:amazon:{uuid.uuid4()}", task_queue=queue)
        await ts_env.sleep(30)
        view = await handle.query(ChannelOrderPoll.status)
        assert fake.started == ["A-1", "A-3"]  # `wait` orders (pending, shipped by the marketplace) are left
        assert fake.cancelled == ["A-5"]
        assert view.cursor == T0 + timedelta(minutes=3) and view.started == 2
        assert [c.next_token for c in fake.calls[:3]] == [None, "2", "4"]  # every page of the first poll
        # the next polls (and a continue-as-new) start nothing again: orders at the cursor are remembered
        await ts_env.sleep(200)
        assert fake.started == ["A-1", "A-3"]
        assert all(c.updated_after == T0 + timedelta(minutes=3) for c in fake.calls[3:])
        # a new order updated later is started; a failing poll keeps the cursor
        fake.orders.append(_o("A-6", FeedAction.START, 10))
        await handle.signal(ChannelOrderPoll.poll_now)
        await ts_env.sleep(5)
        assert fake.started[-1] == "A-6"
        fake.fail = True
        await ts_env.sleep(120)
        view = await handle.query(ChannelOrderPoll.status)
        assert view.cursor == T0 + timedelta(minutes=10) and "credentials refused" in (view.last_error or "")
        await handle.terminate()


@workflow.defn(name="AmazonOrderPoll", sandboxed=False)  # a test stand-in: nothing to protect
class LegacyPoll:
    """Stands for a run of the poll's earlier type, still open at `poll:{channel}` when the new code deploys."""

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


async def test_the_starter_replaces_a_run_of_the_earlier_vendor_named_poll(ts_env):
    fake = Channel()
    fake.orders = []
    queue = f"order-poll-{uuid.uuid4()}"
    channel = f"amazon-{uuid.uuid4().hex[:6]}"
    async with Worker(ts_env.client, task_queue=queue, workflows=[ChannelOrderPoll, LegacyPoll],
                      activities=[fake.list_orders, fake.start_order, fake.cancel_order],
                      activity_executor=ThreadPoolExecutor(4)):
        legacy = await ts_env.client.start_workflow(LegacyPoll.run, id=f"poll:{channel}", task_queue=queue)
        wf_id = await start_order_poll(ts_env.client, channel=channel, task_queue=queue, interval_seconds=60,
                                       lookback_hours=24)
        that_run = ts_env.client.get_workflow_handle(legacy.id, run_id=legacy.result_run_id)
        assert (await that_run.describe()).status == WorkflowExecutionStatus.TERMINATED
        current = await ts_env.client.get_workflow_handle(wf_id).describe()
        assert current.workflow_type == "ChannelOrderPoll" and current.status == WorkflowExecutionStatus.RUNNING
        # a second start leaves the running channel poll alone
        assert await start_order_poll(ts_env.client, channel=channel, task_queue=queue, interval_seconds=60,
                                      lookback_hours=24) == wf_id
        again = await ts_env.client.get_workflow_handle(wf_id).describe()
        assert again.run_id == current.run_id
        await ts_env.client.get_workflow_handle(wf_id).terminate()
