"""The price port: what a channel (a marketplace, a shop, a POS) offers to set and read back a price. The
vendor clients implement it in their own modules (Shopify GraphQL `publish_price`/`read_price`, Amazon SP-API's
Listings Items, Square's Catalog, the embedded POS price list); `PriceChannels` routes a channel to its client."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from canonical.errors import ChannelRejected
from canonical.money import Money
from canonical.pricing import ChannelPrice


@runtime_checkable
class PricePort(Protocol):
    def publish_price(self, channel: str, sku: str, price: Money, compare_at: Money | None = None) -> None:
        """Set what `channel` shows for its SKU `sku`: an absolute value, so a repeat is harmless. Raise
        canonical.errors.ChannelRejected (or a VendorRejected) when the channel refuses it."""

    def read_price(self, channel: str, sku: str) -> ChannelPrice | None:
        """What the channel shows now for `sku` (None: it has no price for it)."""


class _NoPricePort:
    """A vendor channel whose client has no price port (e.g. Shopify's legacy REST client): refused, never
    priced in the embedded list instead."""

    lists_by_channel_sku = True

    def __init__(self, channel: str, client: str) -> None:
        self.message = (f"channel {channel} runs on {client}, which has no price port (Shopify: the GraphQL Admin API, "
                        "RETAILFLOW_SHOPIFY_ADMIN_API=graphql)")

    def publish_price(self, channel: str, sku: str, price: Money, compare_at: Money | None = None) -> None:
        raise ChannelRejected(self.message)

    def read_price(self, channel: str, sku: str) -> ChannelPrice | None:
        raise ChannelRejected(self.message)


class PriceChannels:
    """Routes each channel to its price port: an explicit one (`by_channel`, e.g. a Square location), else the
    channel's marketplace client when it has the price port (Shopify, Amazon), else the embedded POS list."""

    def __init__(self, default: PricePort, by_channel: dict[str, Any] | None = None,
                 marketplace: Any = None) -> None:
        self.default = default
        self.by_channel = dict(by_channel or {})
        self.marketplace = marketplace

    def for_channel(self, channel: str) -> Any:
        if channel in self.by_channel:
            return self.by_channel[channel]
        market = self.marketplace
        if market is not None:
            target = market.for_channel(channel) if hasattr(market, "for_channel") else market
            if isinstance(target, PricePort) and getattr(target, "lists_by_channel_sku", False):
                return target
            if channel in getattr(market, "by_channel", {}):  # a vendor channel whose client cannot price
                return _NoPricePort(channel, type(target).__name__)
        return self.default

    def lists_by_channel_sku(self, channel: str) -> bool:
        """Whether the channel knows the item by its own SKUs (a vendor channel) rather than the ERP item code."""
        return bool(getattr(self.for_channel(channel), "lists_by_channel_sku", False))

    def applies_async(self, channel: str) -> bool:
        """Whether the channel applies an accepted price a little later (Amazon): a read-back that still shows the
        old price is then worth reading again before it counts as not applied."""
        return bool(getattr(self.for_channel(channel), "applies_async", False))

    def publish_price(self, channel: str, sku: str, price: Money, compare_at: Money | None = None) -> None:
        self.for_channel(channel).publish_price(channel, sku, price, compare_at)

    def read_price(self, channel: str, sku: str) -> ChannelPrice | None:
        return self.for_channel(channel).read_price(channel, sku)
