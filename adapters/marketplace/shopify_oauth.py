"""Shopify app authorization: the OAuth grants Shopify documents for an app's access to a shop, and the httpx
auth that puts a shop's current token on every Admin API request.

* **Authorization code grant** (a merchant installs the app; shopify.dev "Authenticate a standalone or API-only
  app"): `install_url` sends the merchant to `https://{shop}/admin/oauth/authorize` with the app's client id,
  the scopes, the redirect URI and a `state` nonce; Shopify redirects back with `code`, `shop`, `state`,
  `timestamp`, `host` and `hmac`. `verify_query_hmac` checks the hmac (HMAC-SHA256 with the client secret over
  the other parameters sorted by name, `k=v` joined with `&`, hex; compared in constant time), `check_state`
  the nonce, `ShopifyOAuth.exchange_code` the code for an **expiring offline token** (`expiring=1`: one hour,
  with a refresh token; Shopify requires expiring offline tokens of public apps from 2027-01-01).
* **Refresh** (`grant_type=refresh_token`): a new access token and a new refresh token before the old expires.
* **Token exchange** (embedded apps, `urn:ietf:params:oauth:grant-type:token-exchange`): a session token (ID
  token) from App Bridge for an offline token, no redirect.
* **Client credentials** (`grant_type=client_credentials`; apps of the merchant's own organization, installed in
  its shops): the app's id and secret for a token that lasts 24 hours, fetched again when it runs out.

The state nonce is signed (HMAC with the client secret over shop, nonce and time), so any API replica can check
the callback without a session store; it expires after `STATE_MAX_AGE` seconds. Secrets are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlencode

import httpx
import structlog

from adapters.http import send, vendor_message
from canonical.errors import ChannelRejected
from canonical.vendor_errors import VendorAuthFailed, VendorUnavailable
from canonical.vendor_versions import VendorApiVersion

log = structlog.get_logger(__name__)

VENDOR = "shopify-oauth"
API_VERSIONS = (
    VendorApiVersion("shopify", "OAuth (/admin/oauth/authorize, /admin/oauth/access_token)", "unversioned",
                     released=None, sunset=None,
                     source="https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens",
                     note="the OAuth endpoints carry no API version; non-expiring offline tokens of public apps are "
                          "refused from 2027-01-01 (expiring tokens are requested)"),
)
SHOP_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")
STATE_MAX_AGE = 600  # seconds a merchant has between the install link and the callback
CALLBACK_MAX_AGE = 24 * 3600  # a callback whose `timestamp` is older is refused (a replayed link)
REFRESH_MARGIN = timedelta(minutes=5)  # refresh this long before the access token expires
GRANT_AUTHORIZATION_CODE = "authorization_code"
GRANT_REFRESH = "refresh_token"
GRANT_CLIENT_CREDENTIALS = "client_credentials"
GRANT_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
OFFLINE_TOKEN_TYPE = "urn:shopify:params:oauth:token-type:offline-access-token"

# What the platform's Shopify operations need (GraphQL Admin API): orders read/cancel/tag/refund, fulfillment of
# the merchant-managed fulfillment orders, inventory levels, variant prices, locations, Shopify Payments payouts.
REQUIRED_SCOPES = ("read_orders", "write_orders", "read_merchant_managed_fulfillment_orders",
                   "write_merchant_managed_fulfillment_orders", "read_inventory", "write_inventory",
                   "read_products", "write_products", "read_locations", "read_shopify_payments_payouts")


class OAuthRefused(ValueError):
    """A callback or token answer the platform does not accept (bad hmac, stale state, missing scopes…)."""


def normalize_shop(shop: str | None) -> str:
    """`name.myshopify.com` in lower case; anything else (a URL, another host) is refused: the token request
    goes to this host, so it must be a Shopify shop."""
    value = (shop or "").strip().lower()
    if value.startswith("https://"):
        value = value[len("https://"):]
    value = value.rstrip("/")
    if not SHOP_PATTERN.fullmatch(value):
        raise OAuthRefused(f"not a shop domain (name.myshopify.com): {shop!r}")
    return value


def parse_scopes(text: str | Iterable[str] | None) -> frozenset[str]:
    if text is None:
        return frozenset()
    items = text.split(",") if isinstance(text, str) else text
    return frozenset(s.strip() for s in items if s and s.strip())


def missing_scopes(required: Iterable[str], granted: Iterable[str]) -> list[str]:
    """The required scopes the grant lacks; `write_x` includes `read_x` (Shopify answers the write scope only)."""
    have = set(granted)
    have |= {"read_" + s[len("write_"):] for s in have if s.startswith("write_")}
    return sorted(s for s in required if s not in have)


# -- the install link and the callback ---------------------------------------------------------------------------
def sign_state(secret: str, shop: str, *, now: float | None = None, nonce: str | None = None) -> str:
    ts = int(time.time() if now is None else now)
    nonce = nonce or secrets.token_urlsafe(16)
    mac = hmac.new(secret.encode(), f"{shop}|{nonce}|{ts}".encode(), hashlib.sha256).hexdigest()[:32]
    return f"{nonce}.{ts}.{mac}"


def check_state(secret: str, state: str | None, shop: str, *, now: float | None = None,
                max_age: int = STATE_MAX_AGE) -> None:
    parts = (state or "").split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        raise OAuthRefused("state is missing or malformed")
    nonce, ts, mac = parts
    want = hmac.new(secret.encode(), f"{shop}|{nonce}|{ts}".encode(), hashlib.sha256).hexdigest()[:32]
    if not hmac.compare_digest(mac, want):
        raise OAuthRefused("state was not issued for this shop by this app")
    age = (time.time() if now is None else now) - int(ts)
    if age > max_age or age < -60:
        raise OAuthRefused(f"state expired ({int(age)} s old; an install link is valid for {max_age} s)")


def install_url(authorize_base: str, *, client_id: str, scopes: Iterable[str], redirect_uri: str,
                state: str) -> str:
    """Shopify's authorize URL for an offline token (no `grant_options[]=per-user`)."""
    query = urlencode({"client_id": client_id, "scope": ",".join(scopes), "redirect_uri": redirect_uri,
                       "state": state})
    return f"{authorize_base.rstrip('/')}/admin/oauth/authorize?{query}"


def query_hmac(params: Iterable[tuple[str, str]], secret: str) -> str:
    """The hmac Shopify puts on its redirects: the parameters but `hmac` (and the legacy `signature`), sorted,
    `k=v` joined with `&`, HMAC-SHA256 with the client secret, hex."""
    message = "&".join(f"{k}={v}" for k, v in sorted((k, v) for k, v in params if k not in ("hmac", "signature")))
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def verify_query_hmac(params: Iterable[tuple[str, str]], secrets_: Iterable[str]) -> bool:
    items = list(params)
    given = next((v for k, v in items if k == "hmac"), "")
    ok = False
    for secret in secrets_:  # every secret is tried (a rotation), each comparison constant-time
        ok |= hmac.compare_digest(query_hmac(items, secret), given)
    return ok and bool(given)


def check_callback(params: Iterable[tuple[str, str]], *, secrets_: Iterable[str], now: float | None = None,
                   max_age: int = CALLBACK_MAX_AGE) -> dict[str, str]:
    """The verified callback's parameters (`shop` normalized), or OAuthRefused saying why."""
    items = list(params)
    if not verify_query_hmac(items, list(secrets_)):
        raise OAuthRefused("hmac does not verify (not a redirect from Shopify for this app)")
    out = dict(items)
    out["shop"] = normalize_shop(out.get("shop"))
    ts = out.get("timestamp", "")
    if not ts.isdigit() or abs((time.time() if now is None else now) - int(ts)) > max_age:
        raise OAuthRefused("timestamp missing or too old")
    return out


# -- tokens ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShopToken:
    """One shop's access: the token, what it may do and until when (None: it does not expire)."""

    shop: str
    access_token: str = field(repr=False)
    scopes: frozenset[str]
    grant: str
    obtained_at: datetime
    expires_at: datetime | None = None
    refresh_token: str | None = field(default=None, repr=False)
    refresh_expires_at: datetime | None = None

    def fresh(self, now: datetime | None = None, margin: timedelta = REFRESH_MARGIN) -> bool:
        return self.expires_at is None or (now or datetime.now(UTC)) + margin < self.expires_at


def token_from_answer(shop: str, grant: str, body: Any, *, now: datetime | None = None) -> ShopToken:
    if not isinstance(body, Mapping) or not isinstance(body.get("access_token"), str) or not body["access_token"]:
        raise ChannelRejected(f"Shopify's token endpoint answered {shop} without an access_token")
    now = now or datetime.now(UTC)

    def after(key: str) -> datetime | None:
        value = body.get(key)
        return now + timedelta(seconds=int(value)) if isinstance(value, int | float) and value > 0 else None

    return ShopToken(shop=shop, access_token=body["access_token"], scopes=parse_scopes(body.get("scope")),
                     grant=grant, obtained_at=now, expires_at=after("expires_in"),
                     refresh_token=body.get("refresh_token") or None,
                     refresh_expires_at=after("refresh_token_expires_in"))


class ShopifyOAuth:
    """The token endpoint of one shop (`POST {base}/admin/oauth/access_token`)."""

    def __init__(self, http: httpx.Client, base_url: str, shop: str, *, client_id: str, client_secret: str,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.http, self.base_url, self.shop = http, base_url.rstrip("/"), shop
        self.client_id, self._secret, self._clock = client_id, client_secret, clock

    def _refused(self, response: httpx.Response, grant: Any) -> VendorAuthFailed | None:
        """400 from the token endpoint (invalid_grant, a used code, a bad session token): no retry helps."""
        if response.status_code != 400:
            return None
        return VendorAuthFailed(f"Shopify refused the {grant} grant for {self.shop}: {vendor_message(response)}",
                                details={"status": 400})

    def _post(self, grant: str, form: Mapping[str, str]) -> ShopToken:
        url = f"{self.base_url}/admin/oauth/access_token"
        data = {"client_id": self.client_id, "client_secret": self._secret, **form}
        response = send(self.http, VENDOR, "POST", url, data=data, headers={"Accept": "application/json"},
                        error_mapper=self._refused, context=grant)
        try:
            body = response.json()
        except ValueError as exc:
            raise VendorUnavailable(f"{VENDOR} answered {self.shop} with a body that is not JSON",
                                    vendor=VENDOR) from exc
        token = token_from_answer(self.shop, grant, body, now=self._clock())
        log.info("shopify.oauth_token", shop=self.shop, grant=grant, expires_at=token.expires_at,
                 scopes=",".join(sorted(token.scopes)))
        return token

    def exchange_code(self, code: str, *, expiring: bool = True) -> ShopToken:
        form = {"code": code}
        if expiring:
            form["expiring"] = "1"
        return self._post(GRANT_AUTHORIZATION_CODE, form)

    def refresh(self, token: ShopToken) -> ShopToken:
        if not token.refresh_token:
            raise VendorAuthFailed(f"the token of {self.shop} expired and has no refresh token: install the app "
                                   "again (retailflow shopify install)")
        new = self._post(GRANT_REFRESH, {"grant_type": GRANT_REFRESH, "refresh_token": token.refresh_token})
        return new if new.scopes else replace(new, scopes=token.scopes)

    def client_credentials(self) -> ShopToken:
        return self._post(GRANT_CLIENT_CREDENTIALS, {"grant_type": GRANT_CLIENT_CREDENTIALS})

    def token_exchange(self, session_token: str, *, expiring: bool = True) -> ShopToken:
        form = {"grant_type": GRANT_TOKEN_EXCHANGE, "subject_token": session_token,
                "subject_token_type": ID_TOKEN_TYPE, "requested_token_type": OFFLINE_TOKEN_TYPE}
        if expiring:
            form["expiring"] = "1"
        return self._post(GRANT_TOKEN_EXCHANGE, form)


class TokenStore(Protocol):
    def get(self, shop: str) -> ShopToken | None: ...
    def save(self, token: ShopToken) -> None: ...


class ShopTokens:
    """The current token of one shop: read from the store, refreshed (and saved) shortly before it expires, or
    fetched with the client-credentials grant when that is how the app gets its tokens. Thread-safe: activities
    run in a thread pool and share the client."""

    def __init__(self, shop: str, store: TokenStore, oauth: ShopifyOAuth, *, client_credentials: bool = False,
                 required_scopes: Iterable[str] = (), clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.shop, self.store, self.oauth = shop, store, oauth
        self.client_credentials, self.required = client_credentials, tuple(required_scopes)
        self._clock = clock
        self._lock = threading.Lock()
        self._token: ShopToken | None = None
        self._force = False

    def _obtain(self) -> ShopToken:
        now = self._clock()
        if self._token is not None and not self._force and self._token.fresh(now):
            return self._token
        rejected = self._token.access_token if self._force and self._token is not None else None
        token = self.store.get(self.shop)  # another replica may have refreshed it already
        if token is not None and token.fresh(now) and token.access_token != rejected:
            return token
        if self.client_credentials:
            token = self.oauth.client_credentials()
        elif token is None:
            raise VendorAuthFailed(f"shop {self.shop} has not installed the app: run `retailflow shopify install "
                                   f"{self.shop}` and open the link")
        elif token.refresh_token:
            token = self.oauth.refresh(token)
        else:  # a non-expiring token Shopify no longer takes: the app was uninstalled or the token revoked
            raise VendorAuthFailed(f"Shopify refused the token of {self.shop} (app uninstalled or token revoked):"
                                   f" run `retailflow shopify install {self.shop}` again")
        lacking = missing_scopes(self.required, token.scopes)
        if lacking:
            raise VendorAuthFailed(f"shop {self.shop} granted the app too few scopes (missing {', '.join(lacking)}):"
                                   " install it again")
        self.store.save(token)
        return token

    def token(self) -> str:
        with self._lock:
            self._token = self._obtain()
            self._force = False
            return self._token.access_token

    def invalidate(self) -> None:
        """The token was refused: the next call takes a newer stored one or refreshes."""
        with self._lock:
            self._force = True


class ShopifyTokenAuth(httpx.Auth):
    """X-Shopify-Access-Token from `ShopTokens`; a 401 (a token revoked or expired early) refreshes once and
    retries the request."""

    def __init__(self, tokens: ShopTokens) -> None:
        self.tokens = tokens

    def auth_flow(self, request: httpx.Request):
        request.headers["X-Shopify-Access-Token"] = self.tokens.token()
        response = yield request
        if response.status_code == 401:
            self.tokens.invalidate()
            request.headers["X-Shopify-Access-Token"] = self.tokens.token()
            yield request
