"""`retailflow shopify webhooks` (runtime/shopify_webhooks.py) against the Shopify sandbox's GraphQL Admin API: one
subscription per topic the intake serves, at the platform's /webhooks/shopify; `--check` reports and exits 1 while
one is missing; a second sync creates nothing. And the worker's Shopify order poll reads the shop's `orders`."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from typer.testing import CliRunner

from adapters.marketplace.shopify_graphql import WEBHOOK_TOPICS
from canonical.order_feed import FeedAction
from runtime.registry import build_adapters
from runtime.settings import Settings
from runtime.shopify_webhooks import sync_webhooks
from sandbox.common import ServedApp
from sandbox.shopify import create_app
from tests.conftest import fixture_bytes

TOKEN = "shpat_subscriptions"


def settings(url: str, **extra) -> Settings:
    return Settings(_env_file=None, marketplace_adapters={"shopify": "shopify"}, shopify_admin_base_url=url,
                    shopify_admin_access_token=TOKEN, api_base_url="https://retailflow.example.com", **extra)


def test_subscriptions_are_created_once_per_topic_and_checked(engine):
    with ServedApp(create_app(access_token=TOKEN, webhook_url="", webhook_secret="s", client_id="c")) as shop:
        s = settings(shop.base_url)
        assert sync_webhooks(s, engine, check_only=True) == {"shopify": {t: "missing" for t in WEBHOOK_TOPICS}}
        assert sync_webhooks(s, engine) == {"shopify": {t: "created" for t in WEBHOOK_TOPICS}}
        assert sync_webhooks(s, engine) == {"shopify": {t: "exists" for t in WEBHOOK_TOPICS}}
        subs = shop.app.state.store.collection("webhook_subscriptions").values()
        assert sorted(w["topic"] for w in subs) == sorted(WEBHOOK_TOPICS)
        assert {w["uri"] for w in subs} == {"https://retailflow.example.com/webhooks/shopify"}
        env = {"RETAILFLOW_MARKETPLACE_ADAPTERS": '{"shopify": "shopify"}',
               "RETAILFLOW_SHOPIFY_ADMIN_BASE_URL": shop.base_url, "RETAILFLOW_SHOPIFY_ADMIN_ACCESS_TOKEN": TOKEN,
               "RETAILFLOW_API_BASE_URL": "https://elsewhere.example.com",
               "RETAILFLOW_DATABASE_URL": engine.url.render_as_string(hide_password=False)}
        from retailflow.cli import app
        from runtime.settings import get_settings

        get_settings.cache_clear()  # the CLI reads the environment given here, not settings another test cached
        result = CliRunner().invoke(app, ["shopify", "webhooks", "--check"], env=env)
        assert result.exit_code == 1 and "ORDERS_CREATE\tmissing" in result.output  # another intake URL
        result = CliRunner().invoke(app, ["shopify", "webhooks"], env=env)
        get_settings.cache_clear()
        assert result.exit_code == 0 and result.output.count("\tcreated") == len(WEBHOOK_TOPICS), result.output


def test_the_order_poll_reads_the_shops_orders_over_graphql(engine):
    with ServedApp(create_app(access_token=TOKEN, webhook_url="", webhook_secret="s", client_id="c")) as shop:
        body = fixture_bytes("shopify", "webhook_orders_create_sample_v2024.json").replace(
            b'"financial_status": "voided"', b'"financial_status": "paid"')  # the sample is voided: never started
        assert httpx.post(f"{shop.base_url}/_admin/orders", content=body).status_code == 201
        s = settings(shop.base_url, shopify_poll_enabled=True)
        import worker

        assert worker.shopify_poll_channels(s) == ["shopify"]
        acts = worker.order_poll_activities(s, build_adapters(s, engine))
        feed = acts.feed("shopify")
        page = feed.feed_page(datetime(2020, 1, 1, tzinfo=UTC))  # the sample order is dated 2024
        (row,) = page.orders
        assert row.external_order_id == "820982911946154508" and row.action == FeedAction.START
        assert feed.fetch_order(row.external_order_id).external_order_id == "820982911946154508"
        assert worker.shopify_poll_channels(s.model_copy(update={"shopify_admin_api": "rest"})) == []
