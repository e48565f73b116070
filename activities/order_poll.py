"""Activities of the channel order poll (workflows/order_poll.py): list one page of a channel's order feed,
start an order's workflow, pass on a cancellation. Each channel's feed (an `OrderFeed` adapter: a marketplace
orders API) is built by the injected factory on first use (nothing connects when the worker is built); starting and
signalling go through the starters the composition root injects (activities never import the API or the
starters)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.orders import business_errors
from adapters.marketplace.base import OrderFeed
from canonical.fulfillment import AnalystAction
from canonical.order import CanonicalModel, Order, UtcDatetime, order_workflow_id
from canonical.order_feed import FeedPage, UnmappableOrder

log = structlog.get_logger(__name__)


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FeedPageInput(_In):
    channel: str
    updated_after: datetime | None = None
    next_token: str | None = None


class FeedOrderInput(_In):
    channel: str
    external_order_id: str


class StartedOrder(CanonicalModel):
    workflow_id: str
    duplicate: bool = False
    rejected: str | None = None


class OrderPollInput(CanonicalModel):
    """State carried across continue-as-new: the updated-since cursor and the ids already handled at it."""

    channel: str
    cursor: UtcDatetime | None = None
    seen_at_cursor: list[str] = []
    lookback_hours: int = 24
    interval_seconds: int = 120
    polls_per_run: int = 200
    started: int = 0
    duplicates: int = 0
    rejected: int = 0
    cancelled: int = 0


class OrderPollView(CanonicalModel):
    cursor: UtcDatetime | None
    polls: int
    started: int
    duplicates: int
    rejected: int
    cancelled: int
    last_error: str | None = None
    recent_rejections: list[str] = []


OrderStarter = Callable[[Client, Order], Awaitable[tuple[str, bool]]]  # starters.orders.start_order, bound
Signaller = Callable[[Client, str, str, Any], Awaitable[bool]]  # starters.signal_workflow


class OrderPollActivities:
    def __init__(self, *, feeds: Mapping[str, Callable[[], OrderFeed]], start_order: OrderStarter,
                 signal: Signaller) -> None:
        self._factories = dict(feeds)
        self._feeds: dict[str, OrderFeed] = {}
        self._start_order = start_order
        self._signal = signal
        self._lock = threading.Lock()

    def feed(self, channel: str) -> OrderFeed:
        with self._lock:
            if channel not in self._feeds:
                if channel not in self._factories:
                    raise ApplicationError(f"no order feed is configured for channel {channel!r}",
                                           type="NoOrderFeed", non_retryable=True)
                self._feeds[channel] = self._factories[channel]()
            return self._feeds[channel]

    @activity.defn(name="list_channel_orders")
    @business_errors
    def list_orders(self, inp: FeedPageInput) -> FeedPage:
        """One page of the channel's orders updated since the cursor (or the next page)."""
        return self.feed(inp.channel).feed_page(inp.updated_after, inp.next_token)

    @activity.defn(name="start_channel_order")
    async def start_order(self, inp: FeedOrderInput) -> StartedOrder:
        """Fetch the whole order, map it, start `order:{channel}:{id}`; a second start is a duplicate, never a
        second run. An order that does not map is reported (the poll goes on), not retried."""
        wf_id = order_workflow_id(inp.channel, inp.external_order_id)
        try:
            order = await asyncio.to_thread(self.feed(inp.channel).fetch_order, inp.external_order_id)
        except UnmappableOrder as exc:
            log.warning("poll.order_rejected", channel=inp.channel, external_id=inp.external_order_id,
                        error=str(exc))
            return StartedOrder(workflow_id=wf_id, rejected=str(exc))
        started_id, duplicate = await self._start_order(activity.client(), order)
        log.info("poll.order_started", channel=inp.channel, external_id=inp.external_order_id,
                 workflow_id=started_id, duplicate=duplicate)
        return StartedOrder(workflow_id=started_id, duplicate=duplicate)

    @activity.defn(name="cancel_channel_order")
    async def cancel_order(self, inp: FeedOrderInput) -> bool:
        """The channel cancelled the order (buyer or marketplace): cancel its workflow if it is running."""
        wf_id = order_workflow_id(inp.channel, inp.external_order_id)
        return await self._signal(activity.client(), wf_id, "cancel", AnalystAction(
            actor=f"channel:{inp.channel}", reason=f"cancelled in {inp.channel}"))

    def all(self) -> list:
        return [self.list_orders, self.start_order, self.cancel_order]
