"""Activities of the Amazon order poll (workflows/amazon_poll.py): list one getOrders page, start an order's
workflow, pass on a cancellation. The SP-API client is built from settings on first use (nothing connects when
the worker is built)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import datetime

import structlog
from pydantic import BaseModel, ConfigDict
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.orders import business_errors
from adapters.marketplace.amazon_sp import AmazonMappingError, AmazonSpApi, OrdersPage, build_amazon_sp
from canonical.fulfillment import AnalystAction
from canonical.order import CanonicalModel, UtcDatetime, order_workflow_id
from retailflow.settings import Settings, get_settings

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


class AmazonActivities:
    def __init__(self, settings: Settings | None = None, api_factory: Callable[[], AmazonSpApi] | None = None) -> None:
        self._settings = settings
        self._factory = api_factory
        self._api: AmazonSpApi | None = None
        self._lock = threading.Lock()

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = get_settings()
        return self._settings

    @property
    def api(self) -> AmazonSpApi:
        with self._lock:
            if self._api is None:
                self._api = self._factory() if self._factory else build_amazon_sp(self.settings)
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
        # the one place orders are started (business-key id, search attributes, summary)
        from api.intake import start_order

        wf_id = order_workflow_id(self.settings.amazon_channel, inp.amazon_order_id)
        try:
            order = await asyncio.to_thread(self.api.fetch_order, inp.amazon_order_id)
        except AmazonMappingError as exc:
            log.warning("amazon.order_rejected", external_id=inp.amazon_order_id, error=str(exc))
            return StartedOrder(workflow_id=wf_id, rejected=str(exc))
        started_id, duplicate = await start_order(activity.client(), self.settings, order)
        log.info("amazon.order_started", external_id=inp.amazon_order_id, workflow_id=started_id,
                 duplicate=duplicate)
        return StartedOrder(workflow_id=started_id, duplicate=duplicate)

    @activity.defn(name="amazon_cancel_order")
    async def cancel_order(self, inp: AmazonOrderInput) -> bool:
        """Amazon cancelled the order (buyer or Amazon): cancel its workflow if it is running."""
        from api.intake import signal_workflow

        wf_id = order_workflow_id(self.settings.amazon_channel, inp.amazon_order_id)
        return await signal_workflow(activity.client(), wf_id, "cancel", AnalystAction(
            actor=f"channel:{self.settings.amazon_channel}", reason="cancelled in Amazon"))

    def all(self) -> list:
        return [self.list_orders, self.start_order, self.cancel_order]


async def start_amazon_poll(client: Client, settings: Settings) -> str:
    """Start the poll once (`poll:{channel}`); an already running poll is left alone."""
    wf_id = f"poll:{settings.amazon_channel}"
    try:
        await client.start_workflow(
            POLL_WORKFLOW, AmazonPollInput(channel=settings.amazon_channel,
                                           interval_seconds=settings.amazon_poll_interval_seconds,
                                           lookback_hours=settings.amazon_poll_lookback_hours),
            id=wf_id, task_queue=settings.queue_for("orders"), id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"Poll Amazon orders every {settings.amazon_poll_interval_seconds}s")
    except WorkflowAlreadyStartedError:
        pass
    return wf_id
