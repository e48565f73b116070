"""Two Amazon stores (issue 16) against the SP-API sandbox: one LWA app authorized by two sellers (each its own
refresh token), each store's order feed (built by worker.order_poll_activities from RETAILFLOW_STORES) polls with
its own marketplace id and seller's token, sees only its own orders, and maps them to its own channel, so the
orders start as `order:amazon-de:<id>` and `order:amazon-uk:<id>`. Orders are the published sandbox getOrders row
and getOrderItems (tests/fixtures/amazon, SOURCES.md) with their id, marketplace and currency changed."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import httpx
import pytest
from temporalio.testing import ActivityEnvironment

import worker
from activities.order_poll import FeedOrderInput, FeedPageInput
from canonical.errors import ChannelRejected
from canonical.order_feed import FeedAction
from runtime.settings import Settings
from sandbox.amazon import create_app
from tests.conftest import fixture_bytes
from tests.contract.serve_sandbox import serve
from tests.unit.test_intake_pipeline import FakeClient

CID, CSECRET, SINGLE = "client-id", "client-secret", "Atzr|single-store"
DE_TOKEN, UK_TOKEN = "Atzr|seller-de", "Atzr|seller-uk"
DE_MKT, UK_MKT = "A1PA6795UKMFR9", "A1F83G8C2ARO7P"  # Amazon.de, Amazon.co.uk (SP-API marketplace ids)
ORDER = json.loads(fixture_bytes("amazon", "orders_v0_getOrders_200_sandbox_TEST_CASE_200.json"))["payload"]["Orders"][0]
ITEMS = json.loads(fixture_bytes("amazon", "orders_v0_getOrderItems_200_sandbox.json"))["payload"]["OrderItems"]
STORES = [
    {"channel": "amazon-de", "vendor": "amazon", "legal_entity": "retail-de", "currency": "EUR",
     "seller_id": "A-SELLER-DE", "marketplace_id": DE_MKT, "amazon_refresh_token": DE_TOKEN},
    {"channel": "amazon-uk", "vendor": "amazon", "legal_entity": "retail-uk", "currency": "GBP",
     "seller_id": "A-SELLER-UK", "marketplace_id": UK_MKT, "amazon_refresh_token": UK_TOKEN},
]
ENTITIES = {"retail-de": {"name": "Retail DE GmbH", "currency": "EUR"},
            "retail-uk": {"name": "Retail UK Ltd", "currency": "GBP"}}


@pytest.fixture(autouse=True)
def _no_retailflow_env(monkeypatch):
    for key in [k for k in os.environ if k.startswith("RETAILFLOW_")
                and k not in ("RETAILFLOW_CODEC_KEYS", "RETAILFLOW_TEST_DATABASE_URL")]:
        monkeypatch.delenv(key)


@pytest.fixture
def sandbox():
    app = create_app(client_id=CID, client_secret=CSECRET, refresh_token=SINGLE,
                     sellers={DE_TOKEN: "A-SELLER-DE", UK_TOKEN: "A-SELLER-UK"})
    with serve(app) as url:
        yield url


def seed(url: str, order_id: str, marketplace: str, currency: str, seller: str | None) -> None:
    order = json.loads(json.dumps(ORDER).replace('"USD"', f'"{currency}"'))
    items = json.loads(json.dumps(ITEMS).replace('"USD"', f'"{currency}"'))
    if marketplace != "ATVPDKIKX0DER":  # Amazon.de/.co.uk prices include VAT: the total is the item price
        order["OrderTotal"] = {"CurrencyCode": currency, "Amount": "10.00"}
    body = {"order": {**order, "AmazonOrderId": order_id, "MarketplaceId": marketplace},
            "items": [dict(i, QuantityShipped=0) for i in items]}
    if seller is not None:
        body["seller_id"] = seller
    assert httpx.post(f"{url}/_admin/orders", json=body).status_code == 201


def settings(url: str, stores: list[dict] = STORES) -> Settings:
    return Settings(_env_file=None, stores=stores, legal_entities=ENTITIES,
                    marketplace_adapters={"amazon-de": "amazon", "amazon-uk": "amazon"},
                    amazon_sp_base_url=url, amazon_lwa_token_url=f"{url}/auth/o2/token",
                    amazon_lwa_client_id=CID, amazon_lwa_client_secret=CSECRET, amazon_refresh_token=SINGLE)


async def test_each_store_polls_its_own_marketplace_as_its_own_seller_and_names_orders_by_its_channel(sandbox):
    seed(sandbox, "302-0000001-0000001", DE_MKT, "EUR", "A-SELLER-DE")
    seed(sandbox, "202-0000002-0000002", UK_MKT, "GBP", "A-SELLER-UK")
    seed(sandbox, "302-0000003-0000003", DE_MKT, "EUR", "A-SELLER-UK")  # the UK seller on Amazon.de
    seed(sandbox, "111-0000004-0000004", "ATVPDKIKX0DER", "USD", None)  # the single-store seller's
    s = settings(sandbox)
    assert worker.amazon_poll_channels(s) == ["amazon-de", "amazon-uk"]
    acts = worker.order_poll_activities(s)
    sent: dict[str, list[httpx.Request]] = {}
    lwa: dict[str, list[str]] = {}
    for channel in ("amazon-de", "amazon-uk"):
        sent[channel], lwa[channel] = [], []
        feed = acts.feed(channel)
        feed.http._client.event_hooks["request"].append(sent[channel].append)
        feed.raw.event_hooks["request"].append(  # the LWA token exchange (client id/secret shared)
            lambda r, c=channel: lwa[c].append(parse_qs(r.content.decode())["refresh_token"][0]))
    since = datetime.now(UTC) - timedelta(hours=1)

    pages = {c: acts.list_orders(FeedPageInput(channel=c, updated_after=since)) for c in ("amazon-de", "amazon-uk")}
    assert [o.external_order_id for o in pages["amazon-de"].orders] == ["302-0000001-0000001"]
    assert [o.external_order_id for o in pages["amazon-uk"].orders] == ["202-0000002-0000002"]
    assert all(o.action == FeedAction.START for p in pages.values() for o in p.orders)
    assert [r.url.params["marketplaceIds"] for r in sent["amazon-de"]] == [DE_MKT]  # Orders API v2026-01-01
    assert [r.url.params["marketplaceIds"] for r in sent["amazon-uk"]] == [UK_MKT]
    assert s.amazon_marketplace_id == "ATVPDKIKX0DER" and s.amazon_channel == "amazon"  # shared: unchanged

    client = FakeClient()
    env = ActivityEnvironment(client=client)  # type: ignore[arg-type]
    de = await env.run(acts.start_order, FeedOrderInput(channel="amazon-de", external_order_id="302-0000001-0000001"))
    uk = await env.run(acts.start_order, FeedOrderInput(channel="amazon-uk", external_order_id="202-0000002-0000002"))
    assert (de.workflow_id, uk.workflow_id) == ("order:amazon-de:302-0000001-0000001",
                                                "order:amazon-uk:202-0000002-0000002")
    assert not de.rejected and not uk.rejected
    assert [wf_id for _, wf_id in client.starts] == [de.workflow_id, uk.workflow_id]
    # each fetched its own order with its own seller's token: the other seller's order is not theirs to read
    assert {r.url.path for r in sent["amazon-de"][1:]} == {"/orders/2026-01-01/orders/302-0000001-0000001"}
    assert lwa == {"amazon-de": [DE_TOKEN], "amazon-uk": [UK_TOKEN]}  # one LWA exchange each, its seller's token
    with pytest.raises(ChannelRejected, match="404 from GET /orders/2026-01-01/orders/202-0000002-0000002"):
        await env.run(acts.start_order, FeedOrderInput(channel="amazon-de", external_order_id="202-0000002-0000002"))
    assert len(client.starts) == 2


def test_each_seller_token_sees_only_its_own_orders_and_the_single_store_token_as_before(sandbox):
    seed(sandbox, "302-0000001-0000001", DE_MKT, "EUR", "A-SELLER-DE")
    seed(sandbox, "111-0000004-0000004", "ATVPDKIKX0DER", "USD", None)
    since = datetime.now(UTC) - timedelta(hours=1)
    legacy = worker.order_poll_activities(Settings(
        _env_file=None, amazon_sp_base_url=sandbox, amazon_lwa_token_url=f"{sandbox}/auth/o2/token",
        amazon_lwa_client_id=CID, amazon_lwa_client_secret=CSECRET, amazon_refresh_token=SINGLE))
    page = legacy.list_orders(FeedPageInput(channel="amazon", updated_after=since))
    assert [o.external_order_id for o in page.orders] == ["111-0000004-0000004"]
    assert legacy.feed("amazon").fetch_order("111-0000004-0000004").workflow_id == "order:amazon:111-0000004-0000004"
    wrong = {**STORES[0], "amazon_refresh_token": "Atzr|not-authorized"}
    bad = worker.order_poll_activities(settings(sandbox, [wrong, STORES[1]]))
    with pytest.raises(Exception, match="invalid_grant|refresh"):  # never the single store's token instead
        ActivityEnvironment().run(bad.list_orders, FeedPageInput(channel="amazon-de", updated_after=since))
