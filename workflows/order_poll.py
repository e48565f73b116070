"""ChannelOrderPoll (`poll:{channel}`): polls a channel's order feed (an `OrderFeed` adapter: a marketplace
orders API) for orders updated since a cursor and starts one `OrderFulfillment` per new order, as
`order:{channel}:{id}`.

- Each poll walks every page. Orders whose action is `start` (the channel's adapter decides: paid and ours to
  ship) are started by an activity that uses the platform's one start path (reject-duplicate id reuse policy,
  fail on conflict → a duplicate never starts a second run); `cancel` signals `cancel` to their workflow; `wait`
  orders wait for their next update.
- The cursor is the newest update time seen; orders seen exactly at the cursor are remembered so the inclusive
  next poll does not start them again. It only advances after a whole poll succeeded: a failed poll (the
  channel down past the activity's retries, credentials refused) is retried at the next interval from the
  same cursor — nothing is skipped.
- Between polls it sleeps `interval_seconds` (the `poll_now` signal wakes it); after `polls_per_run` polls, or
  when Temporal suggests it, it continues as new carrying the cursor and counters.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.order_poll import (
        FeedOrderInput,
        FeedPageInput,
        OrderPollActivities,
        OrderPollInput,
        OrderPollView,
    )
    from canonical.order_feed import FeedAction, FeedOrder

RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), backoff_coefficient=2.0,
                    maximum_interval=timedelta(minutes=2), maximum_attempts=10)
TIMEOUT = timedelta(seconds=120)


@workflow.defn(name="ChannelOrderPoll")
class ChannelOrderPoll:
    @workflow.init
    def __init__(self, inp: OrderPollInput) -> None:
        self._inp = inp
        self._cursor = inp.cursor
        self._seen = set(inp.seen_at_cursor)
        self._counts = {"started": inp.started, "duplicates": inp.duplicates, "rejected": inp.rejected,
                        "cancelled": inp.cancelled}
        self._polls = 0
        self._wake = False
        self._last_error: str | None = None
        self._rejections: list[str] = []

    @workflow.signal
    def poll_now(self) -> None:
        self._wake = True

    @workflow.query
    def status(self) -> OrderPollView:
        return OrderPollView(cursor=self._cursor, polls=self._polls, last_error=self._last_error,
                              recent_rejections=self._rejections[-20:], **self._counts)

    @workflow.run
    async def run(self, inp: OrderPollInput) -> None:
        if self._cursor is None:
            self._cursor = workflow.now() - timedelta(hours=inp.lookback_hours)
        for _ in range(inp.polls_per_run):
            await self._poll_once()
            self._polls += 1
            if workflow.info().is_continue_as_new_suggested():
                break
            self._wake = False
            try:
                await workflow.wait_condition(lambda: self._wake, timeout=timedelta(seconds=inp.interval_seconds))
            except TimeoutError:
                pass
        workflow.continue_as_new(inp.model_copy(update={
            "cursor": self._cursor, "seen_at_cursor": sorted(self._seen), **self._counts}))

    async def _poll_once(self) -> None:
        cursor, seen = self._cursor, set(self._seen)
        newest, at_newest = cursor, set(seen)
        token: str | None = None
        try:
            while True:
                page = await workflow.execute_activity_method(
                    OrderPollActivities.list_orders,
                    FeedPageInput(channel=self._inp.channel, updated_after=cursor, next_token=token),
                    start_to_close_timeout=TIMEOUT, retry_policy=RETRY,
                    summary=f"{self._inp.channel} orders updated since {cursor:%Y-%m-%d %H:%M:%S}Z"
                            + (" (next page)" if token else ""))
                for o in page.orders:
                    if o.last_update_date == cursor and o.external_order_id in seen:
                        continue  # handled by the previous poll at this very timestamp
                    await self._handle(o)
                    if newest is None or o.last_update_date > newest:
                        newest, at_newest = o.last_update_date, {o.external_order_id}
                    elif o.last_update_date == newest:
                        at_newest.add(o.external_order_id)
                token = page.next_token
                if not token:
                    break
        except ActivityError as exc:
            self._last_error = str(exc.cause or exc)[:500]
            workflow.logger.warning("%s order poll failed, retrying from the same cursor next time: %s",
                                    self._inp.channel, self._last_error)
            return
        self._cursor, self._seen, self._last_error = newest, at_newest, None

    async def _handle(self, o: FeedOrder) -> None:
        channel = self._inp.channel
        if o.action == FeedAction.START:
            result = await workflow.execute_activity_method(
                OrderPollActivities.start_order, FeedOrderInput(channel=channel, external_order_id=o.external_order_id),
                start_to_close_timeout=TIMEOUT, retry_policy=RETRY,
                summary=f"Start {channel} order {o.external_order_id} ({o.status})")
            if result.rejected:
                self._counts["rejected"] += 1
                self._rejections.append(f"{o.external_order_id}: {result.rejected}")
            elif result.duplicate:
                self._counts["duplicates"] += 1
            else:
                self._counts["started"] += 1
        elif o.action == FeedAction.CANCEL:
            if await workflow.execute_activity_method(
                    OrderPollActivities.cancel_order,
                    FeedOrderInput(channel=channel, external_order_id=o.external_order_id),
                    start_to_close_timeout=TIMEOUT, retry_policy=RETRY,
                    summary=f"Cancel order {o.external_order_id} (cancelled in {channel})"):
                self._counts["cancelled"] += 1
