"""Composition root for finance: the settlement activities with their store, report source and settings.

The report source is chosen here: the embedded folder `<data_dir>/settlements`, and when the Amazon channel runs on
the SP-API adapter (RETAILFLOW_MARKETPLACE_ADAPTERS) Amazon's settlement reports are downloaded from the Reports API
into that folder before each listing, and when the Shopify channel runs on the Shopify adapter its paid Shopify
Payments payouts are fetched from the Admin API into that folder likewise (nothing connects until a fetch runs)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from activities.finance import SettlementActivities
from adapters.marketplace.settlement_reports import LocalSettlementReports, SettlementReportSource
from adapters.ports import Adapters
from adapters.pricing.book import PriceBook
from adapters.settlements.store import SettlementStore
from canonical.settlement_matching import FinanceConfig
from runtime.settings import Settings, get_settings


def finance_config(settings: Settings) -> FinanceConfig:
    """The account map and accounts; with stores configured (RETAILFLOW_STORES) each store's channel books to its
    legal entity, in that entity's currency (RETAILFLOW_LEGAL_ENTITIES, rates RETAILFLOW_FINANCE_FX_RATES). Without
    stores every settlement books to RETAILFLOW_FINANCE_LEGAL_ENTITY in its own currency, as before."""
    directory = settings.store_directory()
    configured = directory.configured
    return FinanceConfig(account_map=settings.finance_account_map, suspense_account=settings.finance_suspense_account,
                         clearing_account=settings.finance_clearing_account, legal_entity=settings.finance_legal_entity,
                         channel_entities={s.channel: s.legal_entity for s in directory} if configured else {},
                         entities=directory.entities if configured else {}, fx_rates=settings.finance_fx_rates)


def build_settlement_reports(settings: Settings, engine: Engine | None = None) -> SettlementReportSource:
    """The folder; Amazon's Reports API downloading into it for each channel routed to SP-API (the single-store
    channel, or each Amazon store of RETAILFLOW_STORES with its own seller's token; provider = the channel);
    Shopify's payouts (GraphQL Admin API, or REST with RETAILFLOW_SHOPIFY_ADMIN_API=rest) downloading into it for each channel on the Shopify adapter. All may be on:
    each downloads only for its own provider, then lists from the folder."""
    local = LocalSettlementReports(Path(settings.data_dir) / "settlements")
    reports: SettlementReportSource = local
    amazon_channels = sorted(c for c, n in settings.marketplace_adapters.items() if n.strip().lower() == "amazon")
    if amazon_channels:  # each seller (the single-store channel, or each Amazon store of RETAILFLOW_STORES)
        from adapters.marketplace.amazon_sp import AmazonSettlementReports, build_amazon_sp
        from runtime.registry import channel_settings

        for channel in amazon_channels:  # provider = the channel: each store's reports in its own folder
            reports = AmazonSettlementReports(build_amazon_sp(channel_settings(settings, channel, "amazon")),
                                              local if reports is local else _Chained(local, reports),
                                              provider=channel)
    shopify_channels = sorted(c for c, n in settings.marketplace_adapters.items() if n.strip().lower() == "shopify")
    if shopify_channels:  # each shop (the single-shop channel, or each store of RETAILFLOW_STORES) with its own API
        from adapters.marketplace.shopify_payouts_api import (
            ShopifyPayoutReports,
            ShopifyPayoutsApi,
            build_shopify_payouts_api,
        )
        from runtime.registry import channel_settings

        for channel in shopify_channels:
            shop_settings = channel_settings(settings, channel, "shopify")
            auth = None
            if engine is not None and settings.shopify_app_auth != "static":  # the installed shop's own token
                from runtime.shopify_auth import shopify_auth_for

                auth = shopify_auth_for(shop_settings, engine)
            api: ShopifyPayoutsApi
            if settings.shopify_admin_api == "graphql":  # shopifyPaymentsAccount payouts / balanceTransactions
                from adapters.marketplace.shopify_graphql import build_shopify_graphql
                from adapters.marketplace.shopify_payouts_graphql import ShopifyPayoutsGraphQL
                from runtime.observability import observe_shopify_cost

                api = ShopifyPayoutsGraphQL(build_shopify_graphql(shop_settings, auth=auth, channel=channel,
                                                                  on_cost=observe_shopify_cost))
            else:
                api = build_shopify_payouts_api(shop_settings, auth=auth)
            reports = ShopifyPayoutReports(api, local, provider=channel, inner=reports)
    return reports


class _Chained:
    """Downloads into `local`'s folders, lists and resolves through `inner` (the sources chained before)."""

    def __init__(self, local: LocalSettlementReports, inner: SettlementReportSource) -> None:
        self.local, self.inner = local, inner

    def folder(self, provider: str) -> Path:
        return self.local.folder(provider)

    def list_reports(self, provider: str):
        return self.inner.list_reports(provider)

    def resolve(self, provider: str, source: str) -> Path:
        return self.inner.resolve(provider, source)


def build_finance_activities(adapters: Adapters, settings: Settings | None = None, engine: Engine | None = None,
                             *, reports: SettlementReportSource | None = None) -> SettlementActivities:
    """The settlement store lives on the platform database: `engine`, by default the one the status projection
    writes to (the worker's adapters always carry it)."""
    settings = settings or get_settings()
    if engine is None:
        if adapters.projection is None:
            raise ValueError("finance needs the platform database: pass `engine` or adapters with a projection")
        engine = adapters.projection.engine
    return SettlementActivities(SettlementStore(engine), adapters.erp,
                                reports if reports is not None else build_settlement_reports(settings, engine),
                                finance_config(settings), promotions=PriceBook(engine))
