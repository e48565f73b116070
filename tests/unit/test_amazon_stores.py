"""Several Amazon stores (issue 16): each Amazon store of RETAILFLOW_STORES routed to "amazon" gets its own settings
(channel, seller, marketplace, the seller's refresh token; the LWA app shared), its own order poll and feed, its own
settlement report source, and production names a store missing any of them. No network: clients are built, never
called (the sandbox run is tests/contract/test_amazon_stores.py)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from pydantic import SecretStr

import worker
from adapters.marketplace.amazon_sp import AmazonSettlementReports, AmazonSpApi
from adapters.marketplace.settlement_reports import LocalSettlementReports
from adapters.marketplace.shopify_payouts_api import ShopifyPayoutReports
from adapters.sql import make_engine
from runtime.finance import build_settlement_reports
from runtime.registry import build_marketplace, channel_settings
from runtime.settings import Settings

DE = {"channel": "amazon-de", "vendor": "amazon", "legal_entity": "retail-de", "currency": "EUR",
      "seller_id": "A-SELLER-DE", "marketplace_id": "A1PA6795UKMFR9", "amazon_refresh_token": "Atzr|de"}
UK = {"channel": "amazon-uk", "vendor": "amazon", "legal_entity": "retail-uk", "currency": "GBP",
      "seller_id": "A-SELLER-UK", "marketplace_id": "A1F83G8C2ARO7P", "amazon_refresh_token": "Atzr|uk"}
SHOP = {"channel": "shopify-de", "vendor": "shopify", "shop_domain": "de-shop.myshopify.com",
        "legal_entity": "retail-de", "currency": "EUR", "webhook_secret": "shpss_de",
        "admin_base_url": "http://127.0.0.1:9991", "admin_access_token": "shpat_de"}
ENTITIES = {"retail-de": {"name": "Retail DE GmbH", "currency": "EUR"},
            "retail-uk": {"name": "Retail UK Ltd", "currency": "GBP"}}
BOTH = {"amazon-de": "amazon", "amazon-uk": "amazon"}


@pytest.fixture(autouse=True)
def _no_retailflow_env(monkeypatch):
    for key in [k for k in os.environ if k.startswith("RETAILFLOW_")
                and k not in ("RETAILFLOW_CODEC_KEYS", "RETAILFLOW_TEST_DATABASE_URL")]:
        monkeypatch.delenv(key)


def stores(*entries: dict, routes: dict[str, str] | None = None, **kw) -> Settings:
    return Settings(_env_file=None, stores=list(entries), legal_entities=ENTITIES,
                    marketplace_adapters=BOTH if routes is None else routes, **kw)


def refresh_of(api: AmazonSpApi) -> str:
    return api.http._client.auth.tokens._refresh.get_secret_value()


# -- channel_settings ------------------------------------------------------------------------------------------
def test_each_amazon_store_gets_its_own_channel_seller_marketplace_and_refresh_token():
    s = stores(DE, UK)
    shared = (s.amazon_channel, s.amazon_seller_id, s.amazon_marketplace_id, s.amazon_refresh_token.get_secret_value())
    de, uk = channel_settings(s, "amazon-de", "amazon"), channel_settings(s, "amazon-uk", "amazon")
    assert (de.amazon_channel, de.amazon_seller_id, de.amazon_marketplace_id,
            de.amazon_refresh_token.get_secret_value()) == ("amazon-de", "A-SELLER-DE", "A1PA6795UKMFR9", "Atzr|de")
    assert (uk.amazon_channel, uk.amazon_seller_id, uk.amazon_marketplace_id,
            uk.amazon_refresh_token.get_secret_value()) == ("amazon-uk", "A-SELLER-UK", "A1F83G8C2ARO7P", "Atzr|uk")
    assert isinstance(de.amazon_refresh_token, SecretStr) and "Atzr|de" not in repr(de.stores)
    # one LWA app: its client id and secret are shared
    assert (de.amazon_lwa_client_id, de.amazon_lwa_client_secret) == (s.amazon_lwa_client_id,
                                                                      s.amazon_lwa_client_secret)
    # the shared settings are untouched, and a channel that is no store keeps them
    assert (s.amazon_channel, s.amazon_seller_id, s.amazon_marketplace_id,
            s.amazon_refresh_token.get_secret_value()) == shared
    assert channel_settings(s, "amazon", "amazon") is s


@pytest.mark.parametrize("field", ["seller_id", "marketplace_id", "amazon_refresh_token"])
@pytest.mark.parametrize("value", [None, "  "])
def test_a_store_missing_its_seller_marketplace_or_token_is_refused_never_the_single_store_credentials(field, value):
    s = stores({**DE, field: value}, UK)
    with pytest.raises(ValueError, match=rf"store 'amazon-de' has no {field} \(RETAILFLOW_STORES\).*Amazon SP-API"):
        channel_settings(s, "amazon-de", "amazon")
    assert channel_settings(s, "amazon-uk", "amazon").amazon_seller_id == "A-SELLER-UK"


def test_a_store_of_another_vendor_routed_to_amazon_is_refused():
    with pytest.raises(ValueError, match="store 'shopify-de' is a shopify store; .* Amazon SP-API"):
        channel_settings(stores(SHOP), "shopify-de", "amazon")
    with pytest.raises(ValueError, match="store 'amazon-de' is a amazon store; .* Shopify Admin API"):
        channel_settings(stores(DE), "amazon-de", "shopify")


def test_build_marketplace_routes_each_amazon_store_to_its_own_client(tmp_path):
    s = stores(DE, UK, routes={**BOTH, "amazon": "amazon"})
    channels = build_marketplace(s, make_engine(f"sqlite:///{tmp_path / 'rf.db'}"))  # built, never connected
    de, uk, legacy = (channels.by_channel[c] for c in ("amazon-de", "amazon-uk", "amazon"))
    assert (de.channel, de.seller_id, de.marketplace_id, refresh_of(de)) == (
        "amazon-de", "A-SELLER-DE", "A1PA6795UKMFR9", "Atzr|de")
    assert (uk.channel, uk.seller_id, uk.marketplace_id, refresh_of(uk)) == (
        "amazon-uk", "A-SELLER-UK", "A1F83G8C2ARO7P", "Atzr|uk")
    assert (legacy.channel, legacy.seller_id, legacy.marketplace_id) == (
        "amazon", s.amazon_seller_id, s.amazon_marketplace_id)
    with pytest.raises(ValueError, match="store 'amazon-de' has no seller_id"):
        build_marketplace(stores({**DE, "seller_id": None}), make_engine(f"sqlite:///{tmp_path / 'rf.db'}"))


# -- the worker's polls and feeds ------------------------------------------------------------------------------
def test_without_stores_the_single_amazon_channel_is_polled_as_before():
    assert worker.amazon_poll_channels(Settings(_env_file=None)) == ["amazon"]
    assert worker.amazon_poll_channels(Settings(_env_file=None, amazon_channel="amazon-us")) == ["amazon-us"]
    # only Shopify stores (or Amazon stores not routed to the SP-API): the single channel is still polled
    assert worker.amazon_poll_channels(stores(SHOP, DE, routes={"shopify-de": "shopify"})) == ["amazon"]


def test_each_amazon_store_routed_to_amazon_is_polled_and_the_single_channel_only_when_routed_too():
    assert worker.amazon_poll_channels(stores(UK, SHOP, DE)) == ["amazon-de", "amazon-uk"]
    assert worker.amazon_poll_channels(stores(UK, DE, routes={"amazon-uk": "amazon"})) == ["amazon-uk"]
    assert worker.amazon_poll_channels(stores(UK, DE, routes={**BOTH, "amazon": "amazon"})) == [
        "amazon", "amazon-de", "amazon-uk"]
    # the single channel's name taken by a store: that store, never a second poll of it
    own = {**DE, "channel": "amazon"}
    assert worker.amazon_poll_channels(stores(own, routes={"amazon": "amazon"})) == ["amazon"]
    assert worker.amazon_poll_channels(stores(own, routes={})) == []


def test_each_feed_is_the_stores_own_sp_api_client():
    acts = worker.order_poll_activities(stores(DE, UK))
    de, uk = acts.feed("amazon-de"), acts.feed("amazon-uk")
    assert isinstance(de, AmazonSpApi) and de is acts.feed("amazon-de")  # built once, on first use
    assert (de.channel, de.seller_id, de.marketplace_id, refresh_of(de)) == (
        "amazon-de", "A-SELLER-DE", "A1PA6795UKMFR9", "Atzr|de")
    assert (uk.channel, uk.seller_id, uk.marketplace_id, refresh_of(uk)) == (
        "amazon-uk", "A-SELLER-UK", "A1F83G8C2ARO7P", "Atzr|uk")
    from temporalio.exceptions import ApplicationError

    with pytest.raises(ApplicationError, match="no order feed is configured for channel 'amazon'"):
        acts.feed("amazon")
    legacy = worker.order_poll_activities(Settings(_env_file=None)).feed("amazon")
    assert (legacy.channel, legacy.marketplace_id) == ("amazon", "ATVPDKIKX0DER")


def test_a_misconfigured_amazon_store_stops_the_worker_before_it_polls():
    with pytest.raises(ValueError, match="store 'amazon-uk' has no amazon_refresh_token"):
        worker.order_poll_activities(stores(DE, {**UK, "amazon_refresh_token": None}))


@pytest.mark.parametrize(("entries", "expected"), [((), ["amazon"]), ((DE, UK), ["amazon-de", "amazon-uk"])])
def test_the_worker_starts_one_order_poll_per_amazon_channel(tmp_path, monkeypatch, entries, expected):
    started: list[dict] = []

    async def fake_start(client, **kw):
        started.append(kw)
        return f"poll:{kw['channel']}"

    async def fake_connect(settings, runtime=None):
        return object()

    monkeypatch.setattr(worker, "start_order_poll", fake_start)
    monkeypatch.setattr(worker, "connect_client", fake_connect)
    monkeypatch.setattr(worker, "build_domain_workers", lambda *a, **k: [])
    monkeypatch.setattr(worker, "build_partner_workers", lambda *a, **k: [])
    s = stores(*entries, routes=BOTH if entries else {}, data_dir=tmp_path, amazon_poll_enabled=True,
               database_url=f"sqlite:///{tmp_path / 'rf.db'}", local_wms_enabled=False,
               inventory_outbox_poll_seconds=0, worker_metrics_port=None)
    stop = asyncio.Event()
    stop.set()
    asyncio.run(worker.run_worker(s, stop=stop))
    assert [kw["channel"] for kw in started] == expected
    assert {kw["task_queue"] for kw in started} == {s.queue_for("orders")}


# -- settlement reports ----------------------------------------------------------------------------------------
def _chain(source) -> list:
    """The downloading sources of a chain, outermost first, down to the folder."""
    out = []
    while not isinstance(source, LocalSettlementReports):
        out.append(source)
        source = source.inner if isinstance(source, ShopifyPayoutReports) else getattr(source.local, "inner",
                                                                                        source.local)
    return out


def test_one_amazon_settlement_source_per_store_each_downloading_only_its_own(tmp_path):
    s = stores(DE, UK, SHOP, routes={**BOTH, "shopify-de": "shopify"}, data_dir=tmp_path)
    outer = build_settlement_reports(s)
    chain = _chain(outer)
    amazon = [x for x in chain if isinstance(x, AmazonSettlementReports)]
    assert [x.provider for x in chain] == ["shopify-de", "amazon-uk", "amazon-de"]
    assert [(x.api.channel, x.api.seller_id, x.api.marketplace_id, refresh_of(x.api)) for x in amazon] == [
        ("amazon-uk", "A-SELLER-UK", "A1F83G8C2ARO7P", "Atzr|uk"),
        ("amazon-de", "A-SELLER-DE", "A1PA6795UKMFR9", "Atzr|de")]
    downloads: list[tuple[str, Path]] = []
    for source in amazon:  # the Reports API call itself is tests/contract's: here, who downloads where
        source.api.download_settlements = (lambda folder, who=source.provider: downloads.append((who, folder)))
    folder = LocalSettlementReports(tmp_path / "settlements")
    folder.folder("amazon-de").mkdir(parents=True)
    assert outer.list_reports("amazon-de") == folder.list_reports("amazon-de")
    assert downloads == [("amazon-de", tmp_path / "settlements" / "amazon-de")]
    outer.list_reports("amazon-uk")
    outer.list_reports("shopify-uk")  # no source of its own: listed from the folder, nothing downloaded
    assert downloads[1:] == [("amazon-uk", tmp_path / "settlements" / "amazon-uk")]


def test_without_stores_one_amazon_source_as_before(tmp_path):
    single = build_settlement_reports(Settings(_env_file=None, data_dir=tmp_path,
                                               marketplace_adapters={"amazon": "amazon"}))
    assert isinstance(single, AmazonSettlementReports) and single.provider == "amazon"
    assert isinstance(single.local, LocalSettlementReports)
    assert single.api.marketplace_id == "ATVPDKIKX0DER"
    with pytest.raises(ValueError, match="store 'amazon-de' has no marketplace_id"):
        build_settlement_reports(stores({**DE, "marketplace_id": None}, data_dir=tmp_path))


# -- production --------------------------------------------------------------------------------------------------
def test_production_names_each_amazon_store_without_its_seller_marketplace_or_token():
    base = {"shopify_webhook_secret": "shpss_x", "square_webhook_signature_key": "sq", "local_wms_webhook_secret": "w",
            "amazon_lwa_client_id": "amzn1.application-oa2-client.prod", "amazon_lwa_client_secret": "lwa-secret",
            "amazon_refresh_token": "Atzr|single"}
    assert stores(DE, UK, env="production", **base).production_problems() == []
    bad = stores({**DE, "seller_id": None, "amazon_refresh_token": " "}, {**UK, "marketplace_id": ""},
                 env="production", **base)
    routed = "(RETAILFLOW_MARKETPLACE_ADAPTERS routes the channel to the Amazon SP-API)"
    assert bad.production_problems() == [
        f"RETAILFLOW_STORES[amazon-de]: seller_id is not set {routed}",
        f"RETAILFLOW_STORES[amazon-de]: amazon_refresh_token is not set {routed}",
        f"RETAILFLOW_STORES[amazon-uk]: marketplace_id is not set {routed}"]
    # not routed to the SP-API (the embedded channel): nothing to say; outside production: nothing
    assert stores({**DE, "seller_id": None}, routes={}, env="production", **base).production_problems() == []
    assert stores({**DE, "seller_id": None}).production_problems() == []
