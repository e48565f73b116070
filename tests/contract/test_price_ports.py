"""The price port of each channel against its vendor's API shape (docs/pricing.md): the Shopify GraphQL Admin
sandbox (productVariantsBulkUpdate, productVariants read back), the Amazon SP-API sandbox (Listings Items
2021-08-01 patchListingsItem / getListingsItem offers) and Square's Catalog API (search by SKU, whole-object upsert
with version, retrieve) through a MockTransport that answers in Square's documented shapes. The pricing activities
publish a promotion to Shopify and Amazon with each channel's own SKUs and read it back from both."""

from __future__ import annotations

import json
import os
from decimal import Decimal

import httpx
import pytest
from pydantic import SecretStr

from activities.pricing import PricingActivities, PublishLineInput
from adapters.http import VendorHttp
from adapters.marketplace.amazon_sp import build_amazon_sp
from adapters.marketplace.by_channel import ChannelMarketplaces
from adapters.marketplace.shopify_graphql import build_shopify_graphql
from adapters.pos.square_catalog import SquareCatalog
from adapters.pos.square_catalog import channel_rejected as square_rejected
from adapters.pricing.book import PriceBook
from adapters.pricing.local import LocalPrices
from canonical.errors import ChannelRejected
from canonical.money import Money
from canonical.pricing import PriceChange
from runtime.pricing import build_price_channels
from runtime.settings import Settings
from sandbox.amazon import create_app as amazon_app
from sandbox.shopify import create_app as shopify_app
from tests.contract.serve_sandbox import serve

TOKEN, CID, CSECRET, REFRESH = "shpat_test", "amzn1.app", "secret", "Atzr|refresh"


@pytest.fixture(autouse=True)
def _no_retailflow_env(monkeypatch):
    for key in [k for k in os.environ if k.startswith("RETAILFLOW_")
                and k not in ("RETAILFLOW_CODEC_KEYS", "RETAILFLOW_TEST_DATABASE_URL")]:
        monkeypatch.delenv(key)


@pytest.fixture
def shopify():
    with serve(shopify_app(access_token=TOKEN, webhook_url="http://127.0.0.1:9/none", webhook_secret="s",
                           client_id="c")) as url:
        yield url


@pytest.fixture
def amazon():
    with serve(amazon_app(client_id=CID, client_secret=CSECRET, refresh_token=REFRESH)) as url:
        yield url


def settings(shop_url: str, amazon_url: str) -> Settings:
    return Settings(_env_file=None, shopify_admin_base_url=shop_url, shopify_admin_access_token=SecretStr(TOKEN),
                    amazon_sp_base_url=amazon_url, amazon_lwa_token_url=f"{amazon_url}/auth/o2/token",
                    amazon_lwa_client_id=CID, amazon_lwa_client_secret=SecretStr(CSECRET),
                    amazon_refresh_token=SecretStr(REFRESH),
                    pricing_channel_currencies={"shopify": "USD", "amazon": "USD"})


class Xref:
    def channel_skus_of(self, channel: str, item_code: str) -> list[str]:
        return {("shopify", "MUG"): ["SH-MUG-1", "SH-MUG-2"], ("amazon", "MUG"): ["AMZ-MUG"]}[(channel, item_code)]


def test_a_promotion_published_to_shopify_and_amazon_is_read_back_from_both(shopify, amazon, engine):
    s = settings(shopify, amazon)
    assert httpx.post(f"{shopify}/_admin/products", json=["SH-MUG-1", "SH-MUG-2"]).status_code == 201
    assert httpx.post(f"{amazon}/_admin/listings", json={"sku": "AMZ-MUG", "seller_id": s.amazon_seller_id,
                                                         "price": "20.00", "product_type": "DRINKING_CUP"}
                      ).status_code == 201
    market = ChannelMarketplaces(None, {"shopify": build_shopify_graphql(s), "amazon": build_amazon_sp(s)})
    prices = build_price_channels(s, engine, market)
    acts = PricingActivities(prices, PriceBook(engine), Xref(), s.pricing_channel_currencies)  # type: ignore[arg-type]
    for channel, previous in (("shopify", Decimal("0.00")), ("amazon", Decimal("20.00"))):
        line = PriceChange(item_code="MUG", channel=channel, currency="USD", amount="15.00", compare_at="20.00",
                           effective_from="2027-03-01T00:00:00Z", effective_to="2027-03-08T00:00:00Z",
                           kind="promotion")
        published = acts.publish_price_line(PublishLineInput(change_set_id="SPRING", line_no=0, line=line,
                                                             amount=line.amount, compare_at=line.compare_at,
                                                             actor="key:ann"))
        assert published.previous == previous
        verified = acts.verify_price_line(published)
        assert verified.channel_skus == Xref().channel_skus_of(channel, "MUG")
    # read back from the vendors themselves, SKU by SKU
    for sku in ("SH-MUG-1", "SH-MUG-2"):
        shown = prices.read_price("shopify", sku)
        assert shown is not None and (shown.amount, shown.compare_at, shown.currency) == (
            Decimal("15.00"), Decimal("20.00"), "USD")
    listing = httpx.get(f"{amazon}/_admin/listings").json()["listings"][0]
    assert listing["offers"]["ATVPDKIKX0DER"] == {"amount": "15.00", "currency": "USD"}
    assert listing["list_price"]["ATVPDKIKX0DER"]["amount"] == "20.00"
    shown = prices.read_price("amazon", "AMZ-MUG")
    assert shown is not None and (shown.amount, shown.compare_at) == (Decimal("15.00"), Decimal("20.00"))


def test_the_channels_refuse_what_their_api_refuses(shopify, amazon, engine):
    s = settings(shopify, amazon)
    amazon_client = build_amazon_sp(s)
    with pytest.raises(ChannelRejected, match="no listing"):
        amazon_client.publish_price("amazon", "NOPE", Money.of("1.00", "USD"))
    httpx.post(f"{amazon}/_admin/listings", json={"sku": "AMZ-X", "seller_id": s.amazon_seller_id})
    assert amazon_client.read_price("amazon", "AMZ-X") is None  # listed, no offer yet
    with pytest.raises(ChannelRejected, match="no Shopify variant"):
        build_shopify_graphql(s).publish_price("shopify", "NOPE", Money.of("1.00", "USD"))
    local = LocalPrices(engine, refuse={("pos", "MUG")})
    with pytest.raises(ChannelRejected):
        local.publish_price("pos", "MUG", Money.of("1.00", "USD"))


class FakeSquare:
    """Square's Catalog API shapes (developer.squareup.com/reference/square/catalog-api): SearchCatalogObjects,
    UpsertCatalogObject (whole object, `version` checked: VERSION_MISMATCH otherwise), RetrieveCatalogObject."""

    def __init__(self) -> None:
        self.variation = {"type": "ITEM_VARIATION", "id": "GUN7HNQBH7ZRARYZN52E7O4B", "version": 1604352990016,
                          "is_deleted": False, "present_at_all_locations": True,
                          "item_variation_data": {"item_id": "YNDDANS6FVWXOUZ7HRTEE57I", "name": "Regular",
                                                  "sku": "SQ-MUG", "pricing_type": "FIXED_PRICING",
                                                  "price_money": {"amount": 2000, "currency": "USD"}}}
        self.upserts: list[dict] = []
        self.headers: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.headers.append(request.headers.get("Square-Version", ""))
        if request.url.path == "/v2/catalog/search":
            body = json.loads(request.content)
            match = body["query"]["exact_query"]["attribute_value"] == "SQ-MUG"
            return httpx.Response(200, json={"objects": [self.variation] if match else []})
        if request.url.path == "/v2/catalog/object" and request.method == "POST":
            body = json.loads(request.content)
            obj = body["object"]
            if obj.get("version") != self.variation["version"]:
                return httpx.Response(400, json={"errors": [{"category": "INVALID_REQUEST_ERROR",
                                                             "code": "VERSION_MISMATCH", "detail": "Object version "
                                                             "does not match latest database version."}]})
            self.upserts.append(body)
            self.variation = {**obj, "version": obj["version"] + 1}
            return httpx.Response(200, json={"catalog_object": self.variation})
        if request.url.path == f"/v2/catalog/object/{self.variation['id']}":
            return httpx.Response(200, json={"object": self.variation})
        return httpx.Response(404, json={"errors": [{"code": "NOT_FOUND", "detail": "no such path"}]})


def test_square_catalog_sets_the_variation_price_in_minor_units_with_its_version_and_reads_it_back():
    fake = FakeSquare()
    catalog = SquareCatalog(VendorHttp("square", "https://connect.squareup.com", transport=httpx.MockTransport(fake),
                                       headers={"Square-Version": "2025-10-16"}))
    before = catalog.read_price("store-1", "SQ-MUG")
    assert before is not None and before.amount == Decimal("20.00")
    catalog.publish_price("store-1", "SQ-MUG", Money.of("15.50", "USD"), Money.of("20.00", "USD"))
    sent = fake.upserts[0]
    assert sent["object"]["item_variation_data"]["price_money"] == {"amount": 1550, "currency": "USD"}
    assert sent["object"]["version"] == 1604352990016 and sent["idempotency_key"]
    assert sent["object"]["item_variation_data"]["item_id"] == "YNDDANS6FVWXOUZ7HRTEE57I"  # the whole object
    shown = catalog.read_price("store-1", "SQ-MUG")
    assert shown is not None and shown.amount == Decimal("15.50")
    with pytest.raises(ChannelRejected, match="no Square item variation"):
        catalog.publish_price("store-1", "OTHER", Money.of("1.00", "USD"))
    assert set(fake.headers) == {"2025-10-16"}


def test_square_catalog_against_the_square_sandbox_publishes_reads_back_and_retries_a_stale_version():
    from canonical.vendor_errors import VendorAuthFailed, VendorUnavailable
    from sandbox.square import create_app as square_app

    with serve(square_app(access_token="sq-token")) as url:
        assert httpx.post(f"{url}/_admin/variations", json={"sku": "SQ-MUG", "price": "20.00"}).status_code == 201
        http = VendorHttp("square", url, error_mapper=square_rejected,
                          headers={"Authorization": "Bearer sq-token", "Square-Version": "2025-10-16"})
        catalog = SquareCatalog(http)
        assert catalog.read_price("store-1", "SQ-MUG").amount == Decimal("20.00")
        catalog.publish_price("store-1", "SQ-MUG", Money.of("15.50", "USD"))
        assert catalog.read_price("store-1", "SQ-MUG").amount == Decimal("15.50")
        assert httpx.get(f"{url}/_admin/prices").json()["variations"][0]["price_money"] == {"amount": 1550,
                                                                                           "currency": "USD"}
        # someone else wrote the variation between our read and our write: transient, the retry reads it again
        stale = catalog.variation("SQ-MUG")
        catalog.publish_price("store-1", "SQ-MUG", Money.of("16.00", "USD"))
        with pytest.raises(VendorUnavailable, match="changed"):
            http.request("POST", "/v2/catalog/object", json={"idempotency_key": "k-stale", "object": stale})
        with pytest.raises(ChannelRejected, match="no Square item variation"):
            catalog.publish_price("store-1", "NOPE", Money.of("1.00", "USD"))
        wrong = SquareCatalog(VendorHttp("square", url, error_mapper=square_rejected,
                                         headers={"Authorization": "Bearer nope"}))
        with pytest.raises(VendorAuthFailed, match="401"):
            wrong.read_price("store-1", "SQ-MUG")


def test_a_vendor_channel_whose_client_cannot_price_is_refused_not_priced_locally(engine):
    from adapters.pricing.base import PriceChannels

    class RestOnly:  # a marketplace client without the price port
        lists_by_channel_sku = True

    prices = PriceChannels(LocalPrices(engine), marketplace=ChannelMarketplaces(object(), {"shopify": RestOnly()}))
    with pytest.raises(ChannelRejected, match="no price port"):
        prices.publish_price("shopify", "SH-1", Money.of("1.00", "USD"))
    prices.publish_price("pos", "MUG", Money.of("2.00", "USD"))  # a channel no vendor serves: the embedded list
    assert prices.read_price("pos", "MUG").amount == Decimal("2.00")
