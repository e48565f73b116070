"""Composition of Shopify app authorization from settings (RETAILFLOW_SHOPIFY_APP_*): the token store (sealed
with the codec keyring), the OAuth token endpoint of a shop, and the per-request auth the Admin clients use.

`shopify_auth_for(settings, engine)` is None for `shopify_app_auth=static` (the configured token goes in a header
once), else a `ShopifyTokenAuth` that reads the shop's token from the database, refreshes it before it expires
(authorization code) or fetches one (client credentials). The install flow (`install_link`, `complete_install`)
is what `retailflow shopify install` and the API's /shopify/oauth routes run.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from sqlalchemy import Engine

from adapters.marketplace.shopify_oauth import (
    OAuthRefused,
    ShopifyOAuth,
    ShopifyTokenAuth,
    ShopToken,
    ShopTokens,
    check_callback,
    check_state,
    install_url,
    missing_scopes,
    normalize_shop,
    sign_state,
)
from adapters.marketplace.shopify_tokens import ShopifyTokenStore
from runtime.codec import keyring_from_settings
from runtime.settings import Settings


def token_store(settings: Settings, engine: Engine) -> ShopifyTokenStore:
    return ShopifyTokenStore(engine, keyring_from_settings(settings))


def _secret(settings: Settings) -> str:
    return settings.shopify_webhook_secret.get_secret_value()  # Shopify: the app's client secret signs both


def shop_base_url(settings: Settings, shop: str) -> str:
    """Where a configured shop's Admin API and OAuth endpoints are: its store's admin_base_url, the single-shop
    base URL, else OAuthRefused (only the retailer's own shops may install: the token request must not go to an
    arbitrary host)."""
    for entry in settings.stores:
        if entry.vendor == "shopify" and (entry.shop_domain or "").strip().lower() == shop:
            if not entry.admin_base_url:
                raise OAuthRefused(f"store {entry.channel!r} ({shop}) has no admin_base_url (RETAILFLOW_STORES)")
            return entry.admin_base_url
    if settings.effective_shopify_shop_domain == shop:
        return settings.shopify_admin_base_url
    raise OAuthRefused(f"{shop} is not one of the retailer's Shopify shops (RETAILFLOW_STORES / "
                       "RETAILFLOW_SHOPIFY_SHOP_DOMAIN)")


def oauth_for(settings: Settings, shop: str, *, transport: httpx.BaseTransport | None = None) -> ShopifyOAuth:
    http = httpx.Client(timeout=httpx.Timeout(30.0, connect=5.0), transport=transport, follow_redirects=False)
    return ShopifyOAuth(http, shop_base_url(settings, shop), shop, client_id=settings.shopify_app_client_id,
                        client_secret=_secret(settings))


def shopify_auth_for(settings: Settings, engine: Engine, *,
                     transport: httpx.BaseTransport | None = None) -> httpx.Auth | None:
    if settings.shopify_app_auth == "static":
        return None
    shop = settings.effective_shopify_shop_domain
    if not shop:
        raise ValueError("RETAILFLOW_SHOPIFY_APP_AUTH needs the shop's domain: RETAILFLOW_SHOPIFY_SHOP_DOMAIN "
                         "(or a store's shop_domain)")
    shop = normalize_shop(shop)
    tokens = ShopTokens(shop, token_store(settings, engine), oauth_for(settings, shop, transport=transport),
                        client_credentials=settings.shopify_app_auth == "client_credentials",
                        required_scopes=settings.shopify_app_scope_list)
    return ShopifyTokenAuth(tokens)


def install_link(settings: Settings, shop: str) -> str:
    """The link a merchant opens to install the app on `shop` (a configured shop): Shopify's authorize page."""
    shop = normalize_shop(shop)
    base = shop_base_url(settings, shop)
    return install_url(base, client_id=settings.shopify_app_client_id, scopes=settings.shopify_app_scope_list,
                       redirect_uri=settings.shopify_oauth_redirect_uri, state=sign_state(_secret(settings), shop))


@dataclass(frozen=True)
class Installed:
    shop: str
    scopes: frozenset[str]
    expiring: bool


def complete_install(settings: Settings, engine: Engine, params: list[tuple[str, str]], *,
                     transport: httpx.BaseTransport | None = None) -> Installed:
    """The callback: hmac, timestamp and state verified, the code exchanged for an expiring offline token, its
    scopes checked, the token sealed and stored. OAuthRefused (→ 400/403) for anything Shopify did not sign."""
    verified = check_callback(params, secrets_=[s.get_secret_value() for s in settings.shopify_webhook_secrets])
    shop = verified["shop"]
    check_state(_secret(settings), verified.get("state"), shop)
    code = verified.get("code")
    if not code:
        raise OAuthRefused("the callback has no code (the merchant declined?)")
    token: ShopToken = oauth_for(settings, shop, transport=transport).exchange_code(code)
    lacking = missing_scopes(settings.shopify_app_scope_list, token.scopes)
    if lacking:
        raise OAuthRefused(f"{shop} granted too few scopes (missing {', '.join(lacking)}); nothing was stored")
    token_store(settings, engine).save(token)
    return Installed(shop=shop, scopes=token.scopes, expiring=token.expires_at is not None)
