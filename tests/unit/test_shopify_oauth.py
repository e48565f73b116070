"""Shopify app authorization (adapters/marketplace/shopify_oauth.py, runtime/shopify_auth.py, the API's
/shopify/oauth routes) against the sandbox's OAuth endpoints (sandbox/shopify_oauth.py) on loopback: the install
link, the hmac-verified callback, the code exchanged for an expiring offline token sealed per shop, refresh before
expiry and after a 401, scopes checked, client credentials and token exchange."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from sqlalchemy import select

from adapters import sql as db
from adapters.crypto import new_key
from adapters.http import VendorHttp
from adapters.marketplace.shopify_oauth import (
    OAuthRefused,
    ShopifyOAuth,
    ShopTokens,
    check_callback,
    check_state,
    missing_scopes,
    normalize_shop,
    query_hmac,
    sign_state,
)
from api.app import create_app
from canonical.vendor_errors import VendorAuthFailed
from runtime.settings import Settings
from runtime.shopify_auth import complete_install, install_link, oauth_for, shopify_auth_for, token_store
from sandbox.common import ServedApp
from sandbox.shopify_oauth import AccessTokens, install_oauth, session_token

SHOP = "retailflow-sandbox.myshopify.com"
CLIENT_ID = "rf-test-client"
SECRET = "rf-test-client-secret"
KEYS = "k1:" + base64.b64encode(new_key()).decode()


def fake_shop() -> tuple[FastAPI, AccessTokens]:
    """Shopify's OAuth endpoints plus one Admin route that takes the issued tokens."""
    app = FastAPI()
    tokens = AccessTokens({"shpat_static"})
    install_oauth(app, tokens=tokens, shop=SHOP, client_id=CLIENT_ID, client_secret=SECRET)

    @app.get("/admin/api/2026-10/shop.json")
    def shop(request: Request):
        if request.headers.get("x-shopify-access-token", "") not in tokens:
            return JSONResponse({"errors": "[API] Invalid API key or access token"}, 401)
        return {"shop": {"myshopify_domain": SHOP}}

    return app, tokens


@pytest.fixture
def sandbox():
    app, tokens = fake_shop()
    with ServedApp(app) as served:
        served.tokens = tokens
        yield served


@pytest.fixture
def settings(sandbox) -> Settings:
    return Settings(_env_file=None, shopify_app_auth="authorization_code", shopify_app_client_id=CLIENT_ID,
                    shopify_webhook_secret=SECRET, shopify_admin_base_url=sandbox.base_url,
                    shopify_shop_domain=SHOP, codec_keys=KEYS, api_base_url="http://127.0.0.1:9")


def install(settings: Settings, engine, sandbox) -> dict[str, str]:
    """Open the install link as the merchant's browser would; return the callback's parameters."""
    link = install_link(settings, SHOP)
    assert link.startswith(f"{sandbox.base_url}/admin/oauth/authorize?")
    redirect = httpx.get(link, follow_redirects=False)
    assert redirect.status_code == 302
    location = urlsplit(redirect.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == settings.shopify_oauth_redirect_uri
    return dict(parse_qsl(location.query))


def admin(settings, engine) -> VendorHttp:
    return VendorHttp("shopify", settings.shopify_admin_base_url, auth=shopify_auth_for(settings, engine))


def test_install_link_asks_for_the_platforms_scopes_and_a_signed_state(settings):
    query = dict(parse_qsl(urlsplit(install_link(settings, SHOP)).query))
    assert query["client_id"] == CLIENT_ID and query["redirect_uri"] == "http://127.0.0.1:9/shopify/oauth/callback"
    assert set(query["scope"].split(",")) >= {"write_orders", "write_inventory",
                                              "write_merchant_managed_fulfillment_orders"}
    check_state(SECRET, query["state"], SHOP)  # verifies
    with pytest.raises(OAuthRefused, match="not issued for this shop"):
        check_state(SECRET, query["state"], "other.myshopify.com")
    with pytest.raises(OAuthRefused, match="expired"):
        check_state(SECRET, sign_state(SECRET, SHOP, now=time.time() - 3600), SHOP)
    with pytest.raises(OAuthRefused, match="not one of the retailer's Shopify shops"):
        install_link(settings, "stranger.myshopify.com")


def test_the_callback_stores_an_expiring_offline_token_sealed_and_the_admin_api_takes_it(settings, engine, sandbox):
    params = install(settings, engine, sandbox)
    done = complete_install(settings, engine, list(params.items()))
    assert done.shop == SHOP and done.expiring and missing_scopes(settings.shopify_app_scope_list, done.scopes) == []
    stored = token_store(settings, engine).get(SHOP)
    assert stored.access_token.startswith("shpua_") and stored.refresh_token.startswith("shprt_")
    assert stored.expires_at - stored.obtained_at == timedelta(hours=1)
    with engine.connect() as conn:  # sealed: neither token is in the row
        row = conn.execute(select(db.shopify_tokens)).mappings().one()
    assert stored.access_token.encode() not in row["sealed"] and stored.refresh_token.encode() not in row["sealed"]
    assert admin(settings, engine).json("GET", "/admin/api/2026-10/shop.json")["shop"]["myshopify_domain"] == SHOP
    with pytest.raises(VendorAuthFailed, match="invalid_grant|not found or was already used"):
        complete_install(settings, engine, list(params.items()))  # a code is single use


@pytest.mark.parametrize("tamper", ["hmac", "shop", "state", "timestamp"])
def test_a_callback_shopify_did_not_sign_is_refused_and_nothing_is_stored(settings, engine, sandbox, tamper):
    params = install(settings, engine, sandbox)
    if tamper == "hmac":
        params["hmac"] = "0" * 64
    elif tamper == "shop":
        params["shop"] = "other.myshopify.com"
    elif tamper == "state":  # signed again by an attacker without the secret: the hmac no longer verifies either
        params["state"] = sign_state("not-the-secret", SHOP)
        params["hmac"] = query_hmac(params.items(), SECRET)  # even re-signed, the state itself does not verify
    else:
        params["timestamp"] = str(int(time.time()) - 2 * 86400)
        params["hmac"] = query_hmac(params.items(), SECRET)
    with pytest.raises(OAuthRefused):
        complete_install(settings, engine, list(params.items()))
    assert token_store(settings, engine).get(SHOP) is None


def test_too_few_scopes_granted_stores_nothing(settings, engine, sandbox):
    httpx.post(f"{sandbox.base_url}/_admin/oauth/scopes", json={"scope": "read_orders,write_orders"})
    with pytest.raises(OAuthRefused, match="missing .*write_inventory"):
        complete_install(settings, engine, list(install(settings, engine, sandbox).items()))
    assert token_store(settings, engine).get(SHOP) is None


def test_the_token_is_refreshed_before_it_expires_and_the_old_one_stops_working(settings, engine, sandbox):
    complete_install(settings, engine, list(install(settings, engine, sandbox).items()))
    first = token_store(settings, engine).get(SHOP)
    later = [datetime.now(UTC)]
    tokens = ShopTokens(SHOP, token_store(settings, engine), oauth_for(settings, SHOP), clock=lambda: later[0],
                        required_scopes=settings.shopify_app_scope_list)
    assert tokens.token() == first.access_token  # fresh: no refresh
    later[0] = first.expires_at - timedelta(minutes=2)  # inside the refresh margin
    second = tokens.token()
    assert second != first.access_token
    stored = token_store(settings, engine).get(SHOP)
    assert stored.access_token == second and stored.refresh_token != first.refresh_token
    assert first.access_token not in sandbox.tokens and second in sandbox.tokens


def test_a_401_refreshes_once_and_retries(settings, engine, sandbox):
    complete_install(settings, engine, list(install(settings, engine, sandbox).items()))
    first = token_store(settings, engine).get(SHOP)
    sandbox.tokens.revoke(first.access_token)  # Shopify dropped it early
    assert admin(settings, engine).json("GET", "/admin/api/2026-10/shop.json")["shop"]
    assert token_store(settings, engine).get(SHOP).access_token != first.access_token


def test_a_shop_that_never_installed_says_how_to_install(settings, engine):
    with pytest.raises(VendorAuthFailed, match=f"retailflow shopify install {SHOP}"):
        admin(settings, engine).json("GET", "/admin/api/2026-10/shop.json")


def test_client_credentials_fetches_a_24_hour_token_without_an_install(settings, engine, sandbox):
    s = settings.model_copy(update={"shopify_app_auth": "client_credentials"})
    assert admin(s, engine).json("GET", "/admin/api/2026-10/shop.json")["shop"]
    token = token_store(s, engine).get(SHOP)
    assert token.grant == "client_credentials" and token.refresh_token is None
    assert timedelta(hours=23) < token.expires_at - token.obtained_at < timedelta(hours=24)
    oauth = ShopifyOAuth(httpx.Client(), sandbox.base_url, SHOP, client_id=CLIENT_ID, client_secret="wrong")
    with pytest.raises(VendorAuthFailed, match="Client authentication failed"):
        oauth.client_credentials()


def test_token_exchange_trades_a_session_token_for_an_offline_token(sandbox):
    oauth = ShopifyOAuth(httpx.Client(), sandbox.base_url, SHOP, client_id=CLIENT_ID, client_secret=SECRET)
    token = oauth.token_exchange(session_token(CLIENT_ID, SECRET, SHOP))
    assert token.refresh_token and token.expires_at is not None and token.access_token in sandbox.tokens
    with pytest.raises(VendorAuthFailed, match="signature is invalid"):
        oauth.token_exchange(session_token(CLIENT_ID, "forged", SHOP))


def test_static_auth_keeps_the_configured_token_in_the_header(settings, engine):
    assert shopify_auth_for(settings.model_copy(update={"shopify_app_auth": "static"}), engine) is None


def test_shop_domains_and_scopes():
    assert normalize_shop(" https://Shop-1.myshopify.com/ ") == "shop-1.myshopify.com"
    for bad in ("evil.com", "shop.myshopify.com.evil.com", "", None, "a/b.myshopify.com"):
        with pytest.raises(OAuthRefused):
            normalize_shop(bad)
    assert missing_scopes(["read_orders", "write_orders", "read_locations"], ["write_orders"]) == ["read_locations"]
    with pytest.raises(OAuthRefused, match="hmac"):
        check_callback([("shop", SHOP), ("timestamp", str(int(time.time())))], secrets_=[SECRET])


def test_the_api_callback_route_installs_without_api_credentials_and_refuses_a_forgery(settings, engine, sandbox):
    http = TestClient(create_app(settings, engine=engine), raise_server_exceptions=False)
    params = install(settings, engine, sandbox)
    forged = {**params, "hmac": "f" * 64}
    resp = http.get("/shopify/oauth/callback", params=forged)
    assert resp.status_code == 400 and "hmac" in resp.json()["detail"]
    resp = http.get("/shopify/oauth/callback", params=params)
    assert resp.status_code == 200, resp.text
    assert resp.json()["shop"] == SHOP and resp.json()["expiring_token"] is True
    assert "access_token" not in resp.text and token_store(settings, engine).get(SHOP) is not None
    # Shopify's app URL: a signed request for the shop is sent on to its authorize page
    app_url = {"shop": SHOP, "timestamp": str(int(time.time()))}
    app_url["hmac"] = query_hmac(app_url.items(), SECRET)
    resp = http.get("/shopify/oauth/install", params=app_url, follow_redirects=False)
    assert resp.status_code == 302 and resp.headers["location"].startswith(f"{sandbox.base_url}/admin/oauth/authorize")
    assert http.get("/shopify/oauth/install", params={"shop": SHOP}).status_code == 400


def test_the_shopify_sandbox_installs_the_app_and_its_graphql_api_takes_the_stored_token(engine):
    """The vendor profile's shop (sandbox/shopify.py): install through its OAuth endpoints, then the GraphQL
    client built by the registry calls the Admin API with the shop's stored token, not the static one."""
    from adapters.marketplace.shopify_graphql import ShopifyGraphQL
    from runtime.registry import build_shopify
    from sandbox.shopify import create_app as create_shop

    with ServedApp(create_shop(access_token="shpat_static_only", webhook_url="", webhook_secret=SECRET,
                               client_id=CLIENT_ID)) as shop:
        s = Settings(_env_file=None, shopify_app_auth="authorization_code", shopify_app_client_id=CLIENT_ID,
                     shopify_webhook_secret=SECRET, shopify_admin_base_url=shop.base_url, shopify_shop_domain=SHOP,
                     codec_keys=KEYS, api_base_url="http://127.0.0.1:9", shopify_admin_access_token="not-valid")
        client = build_shopify(s, engine, "shopify")
        assert isinstance(client, ShopifyGraphQL)
        with pytest.raises(VendorAuthFailed, match="has not installed the app"):
            client.webhook_subscriptions()
        redirect = httpx.get(install_link(s, SHOP), follow_redirects=False)
        complete_install(s, engine, parse_qsl(urlsplit(redirect.headers["location"]).query))
        assert client.webhook_subscriptions() == []  # the stored token opens the shop
        assert token_store(s, engine).get(SHOP).access_token in shop.app.state.access_tokens
