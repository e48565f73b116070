"""The Shopify sandbox's app authorization: Shopify's OAuth endpoints for one shop, answering like Shopify.

* `GET /admin/oauth/authorize?client_id&scope&redirect_uri&state` — the merchant's consent page; the sandbox
  approves at once (as a merchant clicking "Install" would) and redirects to `redirect_uri` with `code`, `hmac`,
  `host`, `shop`, `state` and `timestamp`, the hmac computed as Shopify does (HMAC-SHA256 with the client secret
  over the other parameters sorted, hex). An unknown client id answers 400 like Shopify's "invalid client" page.
* `POST /admin/oauth/access_token` (form or JSON) — `code` (single use, 10 minutes; `expiring=1` gives a 3600 s
  token with a refresh token lasting 90 days), `grant_type=refresh_token` (a new access and refresh token; the old
  access token stops working), `grant_type=client_credentials` (86399 s, no refresh token) and the token exchange
  of a session token (HS256 JWT signed with the client secret, `aud` the client id, `dest` the shop). Errors are
  OAuth JSON (`{"error": "invalid_grant", "error_description": ...}`) with 400, 401 for a wrong client secret.
* `POST /_admin/oauth/scopes` — what the merchant grants (default: everything asked), to test a missing scope;
  `GET /_admin/oauth/tokens` — the tokens issued (kind, expiry; not the tokens).

Issued access tokens are accepted by the Admin API routes (REST and GraphQL) until they expire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse

from adapters.marketplace.shopify_oauth import REQUIRED_SCOPES

CODE_TTL = 600
EXPIRING_TTL = 3600
REFRESH_TTL = 90 * 24 * 3600
CLIENT_CREDENTIALS_TTL = 86399


class AccessTokens:
    """The tokens the Admin routes accept: the configured static ones (never expire) and those issued here
    (until their expiry). Iterating yields only the valid ones, so a constant-time comparison over the set
    works as it does over a plain set."""

    def __init__(self, static: set[str] | None = None, *, clock=time.time) -> None:
        self.static = set(static or ())
        self.issued: dict[str, float | None] = {}
        self._clock = clock

    def add(self, token: str, expires_at: float | None = None) -> None:
        self.issued[token] = expires_at

    def revoke(self, token: str) -> None:
        self.issued.pop(token, None)
        self.static.discard(token)

    def __iter__(self) -> Iterator[str]:
        now = self._clock()
        yield from self.static
        yield from (t for t, exp in self.issued.items() if exp is None or exp > now)

    def __contains__(self, token: object) -> bool:
        return any(isinstance(token, str) and hmac.compare_digest(token, t) for t in self)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def session_token(client_id: str, client_secret: str, shop: str, *, now: float | None = None) -> str:
    """A session token as App Bridge hands an embedded app (HS256 with the client secret): for tests and demos."""
    now = int(time.time() if now is None else now)
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = _b64url(json.dumps({"iss": f"https://{shop}/admin", "dest": f"https://{shop}", "aud": client_id,
                                 "sub": "42", "exp": now + 60, "nbf": now - 5, "iat": now,
                                 "jti": secrets.token_hex(8), "sid": secrets.token_hex(8)}).encode())
    sig = _b64url(hmac.new(client_secret.encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest())
    return f"{header}.{claims}.{sig}"


def _verify_session_token(token: str, client_id: str, client_secret: str, shop: str) -> str | None:
    """None when valid, else why not."""
    parts = token.split(".")
    if len(parts) != 3:
        return "subject_token is not a JWT"
    sig = _b64url(hmac.new(client_secret.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(sig, parts[2]):
        return "subject_token signature is invalid"
    try:
        claims = json.loads(_b64url_decode(parts[1]))
    except ValueError:
        return "subject_token claims are not JSON"
    now = time.time()
    if claims.get("aud") != client_id or claims.get("dest") != f"https://{shop}":
        return "subject_token was not issued for this app and shop"
    if not (claims.get("nbf", 0) - 5 <= now < claims.get("exp", 0)):
        return "subject_token is expired"
    return None


def install_oauth(app: FastAPI, *, tokens: AccessTokens, shop: str, client_id: str, client_secret: str,
                  app_scopes: str = ",".join(REQUIRED_SCOPES)) -> None:
    """`app_scopes`: the scopes of the app's version (what client credentials and token exchange grant)."""
    codes: dict[str, dict[str, Any]] = {}
    refresh_tokens: dict[str, dict[str, Any]] = {}
    state: dict[str, Any] = {"granted": None, "issued": []}
    app.state.oauth = state

    def oauth_error(status: int, error: str, description: str) -> JSONResponse:
        return JSONResponse({"error": error, "error_description": description}, status_code=status)

    def issue(scopes: str, *, expiring: bool, ttl: int | None, kind: str) -> dict[str, Any]:
        access = "shpua_" + secrets.token_hex(16) if expiring else "shpat_" + secrets.token_hex(16)
        now = time.time()
        expires_in = ttl if (expiring or ttl) else None
        tokens.add(access, now + expires_in if expires_in else None)
        body: dict[str, Any] = {"access_token": access, "scope": scopes}
        if expires_in:
            body["expires_in"] = expires_in
        if expiring:
            refresh = "shprt_" + secrets.token_hex(16)
            refresh_tokens[refresh] = {"scopes": scopes, "expires_at": now + REFRESH_TTL, "access": access}
            body["refresh_token"] = refresh
            body["refresh_token_expires_in"] = REFRESH_TTL
        state["issued"].append({"kind": kind, "expires_in": expires_in, "scope": scopes})
        return body

    @app.get("/admin/oauth/authorize", tags=["oauth"])
    def authorize(request: Request):
        q = request.query_params
        if q.get("client_id") != client_id:
            return JSONResponse({"errors": "Oauth error invalid_request: The client_id is invalid"}, 400)
        if not q.get("redirect_uri"):
            return JSONResponse({"errors": "Oauth error invalid_request: redirect_uri is missing"}, 400)
        asked = q.get("scope", "")
        granted = asked if state["granted"] is None else state["granted"]
        code = secrets.token_hex(16)
        codes[code] = {"scopes": granted, "expires_at": time.time() + CODE_TTL}
        params = {"code": code, "host": _b64url(f"admin.shopify.com/store/{shop.split('.')[0]}".encode()),
                  "shop": shop, "state": q.get("state", ""), "timestamp": str(int(time.time()))}
        message = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
        params["hmac"] = hmac.new(client_secret.encode(), message.encode(), hashlib.sha256).hexdigest()
        return RedirectResponse(f"{q['redirect_uri']}?{urlencode(params)}", status_code=302)

    @app.post("/admin/oauth/access_token", tags=["oauth"])
    async def access_token(request: Request):
        if request.headers.get("content-type", "").startswith("application/json"):
            form = {k: str(v) for k, v in (await request.json()).items()}
        else:
            form = dict(parse_qsl((await request.body()).decode()))  # application/x-www-form-urlencoded
        if form.get("client_id") != client_id:
            return oauth_error(400, "invalid_client", "Client ID is invalid")
        if not hmac.compare_digest(str(form.get("client_secret", "")), client_secret):
            return oauth_error(401, "invalid_client", "Client authentication failed")
        grant = form.get("grant_type") or "authorization_code"
        expiring = form.get("expiring") == "1"
        if grant == "authorization_code":
            entry = codes.pop(form.get("code", ""), None)  # single use
            if entry is None or entry["expires_at"] < time.time():
                return oauth_error(400, "invalid_grant", "The authorization code was not found or was already used")
            return issue(entry["scopes"], expiring=expiring, ttl=EXPIRING_TTL if expiring else None, kind=grant)
        if grant == "refresh_token":
            entry = refresh_tokens.pop(form.get("refresh_token", ""), None)
            if entry is None or entry["expires_at"] < time.time():
                return oauth_error(400, "invalid_grant", "The refresh token is invalid or expired")
            tokens.revoke(entry["access"])
            return issue(entry["scopes"], expiring=True, ttl=EXPIRING_TTL, kind=grant)
        if grant == "client_credentials":
            granted = state["granted"] if state["granted"] is not None else app_scopes
            return issue(granted, expiring=False, ttl=CLIENT_CREDENTIALS_TTL, kind=grant)
        if grant == "urn:ietf:params:oauth:grant-type:token-exchange":
            why = _verify_session_token(form.get("subject_token", ""), client_id, client_secret, shop)
            if why:
                return oauth_error(400, "invalid_subject_token", why)
            granted = state["granted"] if state["granted"] is not None else app_scopes
            return issue(granted, expiring=expiring, ttl=EXPIRING_TTL if expiring else None, kind="token_exchange")
        return oauth_error(400, "unsupported_grant_type", f"grant_type {grant!r} is not supported")

    @app.post("/_admin/oauth/scopes", tags=["sandbox admin"])
    def set_scopes(body: dict[str, Any]) -> dict:
        """{"scope": "read_orders,write_orders"}: what the merchant grants from now on (null: what is asked)."""
        state["granted"] = body.get("scope")
        return {"granted": state["granted"]}

    @app.get("/_admin/oauth/tokens", tags=["sandbox admin"])
    def issued() -> dict:
        return {"issued": state["issued"]}
