"""Routes each marketplace call to the adapter configured for its channel (RETAILFLOW_MARKETPLACE_ADAPTERS,
e.g. {"shopify": "shopify", "amazon": "amazon"}); other channels go to the default (the embedded one). Each
Shopify store of several (RETAILFLOW_STORES, issue 16) is its own channel with its own Admin API client, built
from that store's base URL and token (runtime/registry.py hands each channel its settings)."""

from __future__ import annotations

from typing import Any

from canonical.order import Shipment
from canonical.returns import Refund


class ChannelMarketplaces:
    def __init__(self, default: Any, by_channel: dict[str, Any]) -> None:
        self.default = default
        self.by_channel = dict(by_channel)

    def for_channel(self, channel: str) -> Any:
        return self.by_channel.get(channel, self.default)

    def confirm_shipment(self, channel: str, external_order_id: str, shipment: Shipment) -> None:
        self.for_channel(channel).confirm_shipment(channel, external_order_id, shipment)

    def notify_cancelled(self, channel: str, external_order_id: str, reason: str) -> None:
        self.for_channel(channel).notify_cancelled(channel, external_order_id, reason)

    def refund(self, refund: Refund) -> None:
        self.for_channel(refund.channel).refund(refund)

    def notify_return_not_received(self, channel: str, external_order_id: str, return_id: str) -> None:
        self.for_channel(channel).notify_return_not_received(channel, external_order_id, return_id)

    def publish_availability(self, channel: str, sku: str, quantity: int, *, key: str | None = None) -> None:
        self.for_channel(channel).publish_availability(channel, sku, quantity, key=key)

    def __getattr__(self, name: str) -> Any:  # the embedded adapter's read helpers (updates, refunds, ...)
        return getattr(self.default, name)


def build_vendor_marketplace(name: str, settings: Any) -> Any:
    """`shopify` → Shopify Admin REST, `amazon` → SP-API; built lazily (nothing connects until called)."""
    if name == "shopify":
        from adapters.marketplace.shopify_admin import build_shopify_admin

        return build_shopify_admin(settings)
    if name == "amazon":
        from adapters.marketplace.amazon_sp import build_amazon_sp

        return build_amazon_sp(settings)
    raise ValueError(f"unknown marketplace adapter {name!r}")
