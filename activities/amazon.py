"""Activities of the Amazon order poll (workflows/amazon_poll.py): list one getOrders page, start an order's
workflow, pass on a cancellation. The SP-API client is built by the injected factory on first use (nothing
connects when the worker is built)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict
from temporalio import activity
from temporalio.client import Client

from activities.orders import business_errors
from adapters.marketplace.amazon_sp import AmazonMappingError, AmazonSpApi, OrdersPage
from canonical.fulfillment import AnalystAction
from canonical.order import CanonicalModel, Order, UtcDatetime, order_workflow_id

log = structlog.get_logger(__name__)

POLL_WORKFLOW = "AmazonOrderPoll"


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OrdersPageInput(_In):
    last_updated_after: datetime | None = None
    next_token: str | None = None


class AmazonOrderInput(_In):
    amazon_order_id: str


class StartedOrder(CanonicalModel):
    workflow_id: str
    duplicate: bool = False
    rejected: str | None = None


class AmazonPollInput(CanonicalModel):
    """State carried across continue-as-new: the LastUpdatedAfter cursor and the ids already handled at it."""

    channel: str = "amazon"
    cursor: UtcDatetime | None = None
    seen_at_cursor: list[str] = []
    lookback_hours: int = 24
    interval_seconds: int = 120
    polls_per_run: int = 200
    started: int = 0
    duplicates: int = 0
    rejected: int = 0
    cancelled: int = 0


class AmazonPollView(CanonicalModel):
    cursor: UtcDatetime | None
    polls: int
    started: int
    duplicates: int
    rejected: int
    cancelled: int
    last_error: str | None = None
    recent_rejections: list[str] = []


# How the poll's activities start and signal order workflows: starters.orders.start_order (bound to the
# settings) and starters.signal_workflow, injected by the composition root (activities never import the API
# or the starters).
OrderStarter = Callable[[Client, Order], Awaitable[tuple[str, bool]]]
Signaller = Callable[[Client, str, str, Any], Awaitable[bool]]


class AmazonActivities:
    def __init__(self, *, channel: str, api_factory: Callable[[], AmazonSpApi], start_order: OrderStarter,
                 signal: Signaller) -> None:
        self.channel = channel
        self._factory = api_factory
        self._start_order = start_order
        self._signal = signal
        self._api: AmazonSpApi | None = None
        self._lock = threading.Lock()

    @property
    def api(self) -> AmazonSpApi:
        with self._lock:
            if self._api is None:
                self._api = self._factory()
            return self._api

    @activity.defn(name="amazon_list_orders")
    @business_errors
    def list_orders(self, inp: OrdersPageInput) -> OrdersPage:
        """One getOrders page (LastUpdatedAfter, or the NextToken of the previous page)."""
        return self.api.orders_page(inp.last_updated_after, inp.next_token)

    @activity.defn(name="amazon_start_order")
    async def start_order(self, inp: AmazonOrderInput) -> StartedOrder:
        """Fetch the order with its items, map it, start `order:amazon:{id}`; a second start is a duplicate, never
        a second run. An order that does not map is reported (the poll goes on), not retried."""
        wf_id = order_workflow_id(self.channel, inp.amazon_order_id)
        try:
            order = await asyncio.to_thread(self.api.fetch_order, inp.amazon_order_id)
        except AmazonMappingError as exc:
            log.warning("amazon.order_rejected", external_id=inp.amazon_order_id, error=str(exc))
            return StartedOrder(workflow_id=wf_id, rejected=str(exc))
        started_id, duplicate = await self._start_order(activity.client(), order)
        log.info("amazon.order_started", external_id=inp.amazon_order_id, workflow_id=started_id,
                 duplicate=duplicate)
        return StartedOrder(workflow_id=started_id, duplicate=duplicate)

    @activity.defn(name="amazon_cancel_order")
    async def cancel_order(self, inp: AmazonOrderInput) -> bool:
        """Amazon cancelled the order (buyer or Amazon): cancel its workflow if it is running."""
        wf_id = order_workflow_id(self.channel, inp.amazon_order_id)
        return await self._signal(activity.client(), wf_id, "cancel", AnalystAction(
            actor=f"channel:{self.channel}", reason="cancelled in Amazon"))

    def all(self) -> list:
        return [self.list_orders, self.start_order, self.cancel_order]


