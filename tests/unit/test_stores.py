"""Several shops (issue 16): the store directory, RETAILFLOW_STORES / RETAILFLOW_LEGAL_ENTITIES from the
environment, the single-shop settings as one default store, duplicates refused, production problems, and
Shopify intake picking the store by X-Shopify-Shop-Domain (no Temporal server: the pipeline's fake client)."""

from __future__ import annotations

import json
import os

import pytest
from pydantic import SecretStr, ValidationError

from adapters.marketplace import shopify
from api.intake import pipeline
from api.intake.registry import SOURCES
from canonical.stores import LegalEntity, Store, StoreDirectory
from runtime.registry import build_marketplace
from runtime.settings import Settings
from tests.conftest import fixture_bytes
from tests.unit.test_intake_pipeline import FakeClient, quarantined

DE_SECRET, UK_SECRET = "shpss_de_secret", "shpss_uk_secret"
UK_DOMAIN = "uk-shop.myshopify.com"
STORES = [
    {"channel": "shopify-de", "vendor": "shopify", "shop_domain": "DE-Shop.myshopify.com", "legal_entity": "retail-de",
     "currency": "eur", "webhook_secret": DE_SECRET, "locations": ["BER"],
     "admin_base_url": "http://127.0.0.1:9991", "admin_access_token": "shpat_de"},
    {"channel": "shopify-uk", "vendor": "shopify", "shop_domain": "uk-shop.myshopify.com", "legal_entity": "retail-uk",
     "currency": "GBP", "webhook_secret": UK_SECRET, "previous_webhook_secret": "shpss_uk_old"},
    {"channel": "amazon-eu", "vendor": "amazon", "legal_entity": "retail-de", "currency": "EUR",
     "seller_id": "A1SELLER", "marketplace_id": "A1PA6795UKMFR9"},
]
ENTITIES = {"retail-de": {"name": "Retail DE GmbH", "currency": "EUR"},
            "retail-uk": {"name": "Retail UK Ltd", "currency": "GBP", "fx_account": "7920"}}


@pytest.fixture(autouse=True)
def _no_retailflow_env(monkeypatch):
    for key in [k for k in os.environ if k.startswith("RETAILFLOW_")
                and k not in ("RETAILFLOW_CODEC_KEYS", "RETAILFLOW_TEST_DATABASE_URL")]:
        monkeypatch.delenv(key)


def multi(**kw) -> Settings:
    return Settings(_env_file=None, stores=STORES, legal_entities=ENTITIES, **kw)


# -- the directory ---------------------------------------------------------------------------------------
def test_directory_looks_stores_up_by_channel_and_domain():
    entities = {"main": LegalEntity(name="Main", currency="USD"), "de": LegalEntity(name="DE", currency="EUR")}
    de = Store(channel="shopify-de", vendor="shopify", legal_entity="de", currency="eur",
               shop_domain=" De-Shop.MyShopify.com ")
    local = Store(channel="local", vendor="local", legal_entity="main", currency="USD")
    d = StoreDirectory([de, local], entities, "main", configured=True)
    assert de.shop_domain == "de-shop.myshopify.com" and de.currency == "EUR"
    assert d.by_shop_domain("DE-SHOP.myshopify.com") is de and d.by_shop_domain("other.myshopify.com") is None
    assert d.by_shop_domain(None) is None and d.by_shop_domain("") is None
    assert d.by_channel("shopify-de") is de and d.by_channel("shopify") is None
    assert d.entity_of("shopify-de").name == "DE" and d.entity_of("unknown").name == "Main"
    assert d.shopify_stores() == [de] and d.configured


@pytest.mark.parametrize("channel", ["Shopify", "-de", "shop_de", "", "x" * 64, "de shop"])
def test_channel_names_are_validated(channel):
    with pytest.raises(ValidationError, match="channel"):
        Store(channel=channel, vendor="shopify", legal_entity="main", currency="USD")


def test_duplicates_and_unknown_entities_are_refused():
    entities = {"main": LegalEntity(name="Main", currency="USD")}
    a = Store(channel="a", vendor="shopify", legal_entity="main", currency="USD", shop_domain="a.myshopify.com")
    with pytest.raises(ValueError, match="listed twice"):
        StoreDirectory([a, a], entities, "main", configured=True)
    b = Store(channel="b", vendor="shopify", legal_entity="main", currency="USD", shop_domain="A.myshopify.com")
    with pytest.raises(ValueError, match="shop domain 'a.myshopify.com' is listed for both 'a' and 'b'"):
        StoreDirectory([a, b], entities, "main", configured=True)
    c = Store(channel="c", vendor="shopify", legal_entity="nowhere", currency="USD")
    with pytest.raises(ValueError, match="unknown legal entity 'nowhere'"):
        StoreDirectory([c], entities, "main", configured=True)
    with pytest.raises(ValueError, match="default legal entity"):
        StoreDirectory([], entities, "other", configured=False)


# -- settings --------------------------------------------------------------------------------------------
def test_stores_and_entities_are_read_from_the_environment_as_json(monkeypatch):
    monkeypatch.setenv("RETAILFLOW_STORES", json.dumps(STORES))
    monkeypatch.setenv("RETAILFLOW_LEGAL_ENTITIES", json.dumps(ENTITIES))
    s = Settings(_env_file=None)
    d = s.store_directory()
    assert d.configured and [x.channel for x in d] == ["shopify-de", "shopify-uk", "amazon-eu"]
    assert d.by_shop_domain("de-shop.myshopify.com").channel == "shopify-de"
    assert d.by_channel("shopify-de").locations == ["BER"]
    assert d.entity_of("shopify-uk") == LegalEntity(name="Retail UK Ltd", currency="GBP", fx_account="7920")
    assert d.entity_of("shopify-de").fx_account == "7910"
    assert d.entity_of("square") == LegalEntity(name="main", currency="USD")  # the default entity is added
    assert [x.get_secret_value() for x in s.shopify_store_secrets("shopify-uk")] == [UK_SECRET, "shpss_uk_old"]
    assert [x.get_secret_value() for x in s.shopify_store_secrets("shopify-de")] == [DE_SECRET]
    assert s.shopify_store_secrets("shopify") == [] and s.shopify_store_secrets("amazon-eu") == []
    assert "shpss" not in repr(s.stores)  # secrets stay secret


def test_bad_store_settings_are_refused_when_they_load(monkeypatch):
    dup = [STORES[0], {**STORES[1], "shop_domain": "de-shop.myshopify.com"}]
    with pytest.raises(ValidationError, match="listed for both"):
        Settings(_env_file=None, stores=dup, legal_entities=ENTITIES)
    with pytest.raises(ValidationError, match="unknown legal entity 'retail-uk'"):
        Settings(_env_file=None, stores=STORES, legal_entities={"retail-de": ENTITIES["retail-de"]})
    monkeypatch.setenv("RETAILFLOW_STORES", "[{\"channel\": \"x\"}]")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


def test_without_stores_the_single_shop_settings_are_one_default_store():
    s = Settings(_env_file=None, shopify_webhook_secret="legacy", shopify_previous_webhook_secret="older",
                 shopify_channel="shop", finance_legal_entity="acme", default_currency="CAD")
    d = s.store_directory()
    assert not d.configured
    shop = d.by_channel("shop")
    assert shop == Store(channel="shop", vendor="shopify", legal_entity="acme", currency="CAD")
    assert d.by_channel("amazon").vendor == "amazon" and d.by_channel("amazon").seller_id == s.amazon_seller_id
    assert d.entity_of("shop") == LegalEntity(name="acme", currency="CAD")
    assert [x.get_secret_value() for x in s.shopify_store_secrets("shop")] == ["legacy", "older"]
    assert s.shopify_store_secrets("other") == []
    assert Settings(_env_file=None).default_currency == "USD"


def test_production_names_each_shop_without_its_own_secret_or_admin_credentials():
    base = {"shopify_webhook_secret": "shpss_x", "square_webhook_signature_key": "sq", "local_wms_webhook_secret": "w"}
    assert multi(env="production", **base).production_problems() == []
    stores = [{**STORES[0], "webhook_secret": None, "admin_access_token": None},
              {**STORES[1], "webhook_secret": "  ", "shop_domain": None}]
    s = Settings(_env_file=None, env="production", stores=stores, legal_entities=ENTITIES,
                 marketplace_adapters={"shopify-de": "shopify"}, **base)
    assert s.production_problems() == [  # the single-shop secrets are not in use once the shops are stores
        "RETAILFLOW_STORES[shopify-de]: webhook_secret is not set",
        "RETAILFLOW_STORES[shopify-de]: admin_access_token is not set (RETAILFLOW_MARKETPLACE_ADAPTERS routes the "
        "channel to the Shopify Admin API)",
        "RETAILFLOW_STORES[shopify-uk]: shop_domain is not set (its deliveries could not be told apart)",
        "RETAILFLOW_STORES[shopify-uk]: webhook_secret is not set"]
    assert Settings(_env_file=None, stores=stores, legal_entities=ENTITIES).production_problems() == []
    # a channel routed to the Admin API that is no store still needs the single-shop token
    legacy = Settings(_env_file=None, env="production", stores=STORES, legal_entities=ENTITIES,
                      marketplace_adapters={"shopify": "shopify"}, **{**base, "shopify_webhook_secret": ""})
    assert "RETAILFLOW_SHOPIFY_ADMIN_ACCESS_TOKEN is the published development default" in legacy.production_problems()
    assert not any("SHOPIFY_WEBHOOK_SECRET" in p for p in legacy.production_problems())


# -- per-store Shopify Admin clients ---------------------------------------------------------------------
def test_each_shopify_store_gets_its_own_admin_client(engine):
    s = multi(marketplace_adapters={"shopify-de": "shopify", "shopify": "shopify"})
    channels = build_marketplace(s, engine)
    de, legacy = channels.by_channel["shopify-de"], channels.by_channel["shopify"]
    assert str(de.http._client.base_url).rstrip("/") == "http://127.0.0.1:9991"
    assert de.http._client.headers["X-Shopify-Access-Token"] == "shpat_de"
    assert str(legacy.http._client.base_url).rstrip("/") == s.shopify_admin_base_url  # single-shop settings
    assert s.shopify_admin_base_url == "http://127.0.0.1:8103"  # the shared settings are not changed
    with pytest.raises(ValueError, match="store 'shopify-uk' has no admin_base_url"):
        build_marketplace(multi(marketplace_adapters={"shopify-uk": "shopify"}), engine)


# -- intake: the store by X-Shopify-Shop-Domain ----------------------------------------------------------
def _order(currency: str = "EUR", order_id: str = "820982911946154508") -> bytes:
    body = fixture_bytes("shopify", "webhook_orders_create_sample_v2024.json").replace(b'"USD"', f'"{currency}"'.encode())
    return body.replace(b"820982911946154508", order_id.encode())


async def _send(engine, settings, fake, body, *, secret, domain, webhook_id="wh-1", replay=False):
    async def get():
        return fake

    headers = {"Content-Type": "application/json", "X-Shopify-Topic": "orders/create",
               "X-Shopify-Webhook-Id": webhook_id, "X-Shopify-Hmac-Sha256": shopify.compute_hmac(body, secret)}
    if domain is not None:
        headers["X-Shopify-Shop-Domain"] = domain
    return await pipeline.take(SOURCES["shopify"], engine, get, settings, body, headers, replay=replay)


async def test_each_shop_is_verified_with_its_own_secret_and_named_by_its_channel(engine):
    s, fake = multi(), FakeClient()
    de = await _send(engine, s, fake, _order("EUR", "1001"), secret=DE_SECRET, domain="de-shop.myshopify.com",
                     webhook_id="de-1")
    uk = await _send(engine, s, fake, _order("GBP", "1001"), secret="shpss_uk_old", domain="UK-shop.myshopify.com",
                     webhook_id="uk-1")
    assert (de.status_code, de.body["workflow_id"]) == (202, "order:shopify-de:1001")
    assert (uk.status_code, uk.body["workflow_id"]) == (202, "order:shopify-uk:1001")  # same id, other shop
    assert [wf for _, wf in fake.starts] == ["order:shopify-de:1001", "order:shopify-uk:1001"]
    assert quarantined(engine) == []


async def test_another_shops_secret_is_401_and_an_unknown_domain_422_never_attributed(engine):
    s, fake = multi(), FakeClient()
    wrong = await _send(engine, s, fake, _order("EUR"), secret=UK_SECRET, domain="de-shop.myshopify.com",
                        webhook_id="w-1")
    assert wrong.status_code == 401 and "signature" in wrong.body["detail"]
    unknown = await _send(engine, s, fake, _order("EUR"), secret=DE_SECRET, domain="fr-shop.myshopify.com",
                          webhook_id="w-2")
    assert unknown.status_code == 422 and "'fr-shop.myshopify.com' is not a configured store" in unknown.body["detail"]
    missing = await _send(engine, s, fake, _order("EUR"), secret=DE_SECRET, domain=None, webhook_id="w-3")
    assert missing.status_code == 422 and "no X-Shopify-Shop-Domain" in missing.body["detail"]
    # an unknown domain signed with no configured shop's secret is unauthenticated: 401 (a bounded copy)
    forged = await _send(engine, s, fake, _order("EUR"), secret="guess", domain="fr-shop.myshopify.com",
                         webhook_id="w-4")
    assert forged.status_code == 401
    rows = {r["id"]: r for r in quarantined(engine)}
    assert {rows[o.body["quarantine_id"]]["status_code"] for o in (unknown, missing)} == {422}
    assert rows[unknown.body["quarantine_id"]]["headers"]["x-shopify-shop-domain"] == "fr-shop.myshopify.com"
    assert fake.starts == []


async def test_an_order_in_another_currency_than_its_shop_is_422(engine):
    s, fake = multi(), FakeClient()
    out = await _send(engine, s, fake, _order("GBP"), secret=DE_SECRET, domain="de-shop.myshopify.com")
    assert out.status_code == 422 and "is in GBP, but store shopify-de sells in EUR" in out.body["detail"]
    assert fake.starts == [] and len(quarantined(engine)) == 1


async def test_without_stores_intake_is_as_before(engine):
    s, fake = Settings(_env_file=None, shopify_webhook_secret="legacy"), FakeClient()
    out = await _send(engine, s, fake, _order("USD", "77"), secret="legacy", domain="whatever.myshopify.com")
    assert (out.status_code, out.body["workflow_id"]) == (202, "order:shopify:77")
    none = await _send(engine, s, fake, _order("EUR", "78"), secret="legacy", domain=None, webhook_id="wh-2")
    assert (none.status_code, none.body["workflow_id"]) == (202, "order:shopify:78")  # no currency check either
    bad = await _send(engine, s, fake, _order("USD", "79"), secret="other", domain=None, webhook_id="wh-3")
    assert bad.status_code == 401


def test_store_secrets_are_secret_strings():
    entry = multi().stores[0]
    assert isinstance(entry.webhook_secret, SecretStr) and entry.store().channel == "shopify-de"
    assert "webhook_secret" not in entry.store().model_dump()


async def test_a_cancel_signals_the_order_of_the_shop_that_sent_it(engine):
    s, fake = multi(), FakeClient()
    fake.running |= {"order:shopify-de:1001", "order:shopify-uk:1001"}
    body = _order("GBP", "1001")

    async def get():
        return fake

    headers = {"Content-Type": "application/json", "X-Shopify-Topic": "orders/cancelled", "X-Shopify-Webhook-Id": "c-1",
               "X-Shopify-Hmac-Sha256": shopify.compute_hmac(body, UK_SECRET), "X-Shopify-Shop-Domain": UK_DOMAIN}
    out = await pipeline.take(SOURCES["shopify"], engine, get, s, body, headers)
    assert (out.status_code, out.body["workflow_id"]) == (202, "order:shopify-uk:1001"), out.body
    assert [(wf, name) for wf, name, _ in fake.signals] == [("order:shopify-uk:1001", "cancel")]
    assert fake.signals[0][2].actor == "channel:shopify-uk"

