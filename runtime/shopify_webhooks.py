"""Shopify webhook subscriptions the platform creates and checks (GraphQL `webhookSubscriptions` /
`webhookSubscriptionCreate`): one JSON subscription per topic the intake serves, at `/webhooks/shopify` of the
platform's public URL (RETAILFLOW_API_BASE_URL), for every Shopify channel routed to the GraphQL Admin API.
`retailflow shopify webhooks` runs it; `--check` only reports (exit 1 when a topic is missing)."""

from __future__ import annotations

from sqlalchemy import Engine

from adapters.marketplace.shopify_graphql import WEBHOOK_TOPICS, ShopifyGraphQL
from runtime.registry import build_shopify, channel_settings
from runtime.settings import Settings


def intake_uri(settings: Settings) -> str:
    return f"{settings.effective_api_base_url.rstrip('/')}/webhooks/shopify"


def shopify_channels(settings: Settings) -> list[str]:
    return sorted(c for c, n in settings.marketplace_adapters.items() if n.strip().lower() == "shopify")


def sync_webhooks(settings: Settings, engine: Engine, *, check_only: bool = False,
                  channels: list[str] | None = None) -> dict[str, dict[str, str]]:
    """Per channel, per topic: "exists", "created", or (check only) "missing"."""
    uri = intake_uri(settings)
    out: dict[str, dict[str, str]] = {}
    for channel in channels or shopify_channels(settings):
        shop = build_shopify(channel_settings(settings, channel, "shopify"), engine, channel)
        if not isinstance(shop, ShopifyGraphQL):
            raise ValueError(f"channel {channel!r} uses the REST Admin API (RETAILFLOW_SHOPIFY_ADMIN_API=rest); "
                             "webhook subscriptions are managed through the GraphQL Admin API")
        if check_only:
            have = {(s.get("topic"), s.get("uri")) for s in shop.webhook_subscriptions()}
            out[channel] = {t: "exists" if (t, uri) in have else "missing" for t in WEBHOOK_TOPICS}
        else:
            out[channel] = shop.ensure_webhooks(uri)
    return out
