"""Marketplace ports: what the platform sends back to a sales channel, and the order feed a channel is polled
through (a channel that pushes webhooks needs none)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from canonical.order import Order, Shipment
from canonical.order_feed import FeedPage
from canonical.returns import Refund


@runtime_checkable
class MarketplaceAdapter(Protocol):
    def confirm_shipment(self, channel: str, external_order_id: str, shipment: Shipment) -> None:
        """Tell the channel a shipment left, with tracking; idempotent by shipment id."""

    def notify_cancelled(self, channel: str, external_order_id: str, reason: str) -> None:
        """Tell the channel the order was cancelled; idempotent per order."""

    def refund(self, refund: Refund) -> None:
        """Pay the refund through the channel; idempotent per refund key (a line is never paid twice)."""

    def notify_return_not_received(self, channel: str, external_order_id: str, return_id: str) -> None:
        """Tell the channel a return was closed because the goods never arrived; idempotent per return."""

    # -- inventory (additive) --
    def publish_availability(self, channel: str, sku: str, quantity: int, *, key: str | None = None) -> None:
        """Set what the channel may sell of `sku` (an absolute quantity, so a repeat is harmless); idempotent by
        `key`. Raise canonical.errors.RateLimited on a 429, ChannelRejected when the channel refuses the SKU.
        `sku` is the ERP item code, or — for an adapter whose `lists_by_channel_sku` is true (a real channel, which
        knows its listings only by its own SKUs) — each of the channel's SKUs for that item (`channel_skus_of`)."""


@runtime_checkable
class OrderFeed(Protocol):
    """A channel polled for its orders (the order poll, workflows/order_poll.py)."""

    def feed_page(self, updated_after: datetime | None, next_token: str | None = None) -> FeedPage:
        """One page of orders updated since `updated_after` (or the page `next_token` names), each with the
        action the channel's rules give it."""

    def fetch_order(self, external_order_id: str) -> Order:
        """The whole order, mapped; raise canonical.order_feed.UnmappableOrder when it cannot be mapped."""


def lists_by_channel_sku(marketplace: object, channel: str) -> bool:
    """Whether the adapter serving `channel` wants the channel's SKUs rather than ERP item codes."""
    target = marketplace.for_channel(channel) if hasattr(marketplace, "for_channel") else marketplace
    return bool(getattr(target, "lists_by_channel_sku", False))
