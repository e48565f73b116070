"""Composition root for pricing: the price ports by channel, the price book and the PricePublication activities
(docs/pricing.md). Nothing connects until an activity runs.

A channel's price port is, in order: RETAILFLOW_PRICING_PRICE_ADAPTERS (`square`: the Square Catalog API with
RETAILFLOW_SQUARE_ACCESS_TOKEN; `local`: the embedded POS price list), else the channel's marketplace client when it
has a price port (Shopify GraphQL Admin, Amazon SP-API Listings Items), else the embedded POS price list."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from activities.pricing import PricingActivities
from adapters.ports import Adapters
from adapters.pricing.base import PriceChannels
from adapters.pricing.book import PriceBook
from adapters.pricing.local import LocalPrices
from runtime.settings import Settings


def build_price_channels(settings: Settings, engine: Engine, marketplace: Any = None) -> PriceChannels:
    by_channel: dict[str, Any] = {}
    square = None
    for channel, name in settings.pricing_price_adapters.items():
        kind = name.strip().lower()
        if kind == "local":
            by_channel[channel] = LocalPrices(engine)
        elif kind == "square":
            if square is None:
                from adapters.pos.square_catalog import build_square_catalog

                square = build_square_catalog(settings)
            by_channel[channel] = square
        else:
            raise ValueError(f"unknown price adapter {name!r} for channel {channel!r} "
                             "(RETAILFLOW_PRICING_PRICE_ADAPTERS); one of: local, square")
    if marketplace is not None:  # Shopify variant prices carry no currency: the shop's is the channel's
        for_channel = getattr(marketplace, "for_channel", None)
        for channel, currency in settings.pricing_channel_currencies.items():
            client = for_channel(channel) if for_channel is not None else marketplace
            if hasattr(client, "shop_currency") and not getattr(client, "shop_currency", None):
                client.shop_currency = currency.upper()
    return PriceChannels(LocalPrices(engine), by_channel, marketplace=marketplace)


def build_pricing_activities(adapters: Adapters, settings: Settings) -> PricingActivities | None:
    """None when the worker has no platform database (no price book)."""
    if adapters.projection is None:
        return None
    engine = adapters.projection.engine
    return PricingActivities(build_price_channels(settings, engine, adapters.marketplace), PriceBook(engine),
                             adapters.erp, settings.pricing_channel_currencies)

