"""Who is calling: API keys and OIDC bearer tokens, and the roles each route requires.

Credentials: `Authorization: Bearer <API key or OIDC JWT>`, or `X-API-Key: <API key>`; under `/codec/` also the
cookie `rf_session` holding an API key (the Temporal Web UI calls the codec endpoint with `credentials:
include`). No credentials, unknown, expired or revoked ones answer 401 with `WWW-Authenticate: Bearer`; a
principal whose role the route does not allow answers 403. Webhooks keep their vendors' signatures, `/healthz`
and `/metrics` stay open (README "Access").

A `store` principal (a store's staff) carries its store ids (`Principal.stores`: an API key's scope, or the
OIDC store claim) and is admitted by the store routes only (`StoreReader`, `StoreStaff`: the list and the moves of
`/pos/stores/{store_id}/fulfillments`), for its own stores: `require_store` answers 403 for any other store.

    @router.post("/things/{id}/actions/{action}")
    async def act(..., principal: Analyst): ...   # principal.name is the actor recorded in the history
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import jwt
import structlog
from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import SQLAlchemyError

from adapters.platform.api_keys import PREFIX, ApiKeyStore
from canonical.access import PERSONAL_DATA_ROLES, SCOPED_ROLES, Role, highest_role, store_ids
from runtime.settings import AuthSettings

__all__ = ["Admin", "Analyst", "Finance", "Principal", "Role", "StoreReader", "StoreStaff", "Viewer", "authenticate",
           "require", "require_store"]

log = structlog.get_logger(__name__)

SESSION_COOKIE = "rf_session"
CODEC_PREFIX = "/codec/"

# the security schemes OpenAPI declares (the Authorize button of /docs); auto_error=False: 401 is ours to answer
bearer_scheme = HTTPBearer(
    auto_error=False, scheme_name="bearer", bearerFormat="API key (rfk_…) or OIDC JWT",
    description="`Authorization: Bearer <key>` with an API key from `retailflow keys create`, or an access token "
                "from the configured OIDC issuer")
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="apiKey",
                              description="An API key from `retailflow keys create`")


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: `key:<name>` or `oidc:<sub>`; recorded as the actor of what it does."""

    name: str
    role: Role
    via: str  # "api_key" | "oidc"
    stores: frozenset[str] = frozenset()  # a store principal's scope; empty (unused) for the other roles

    def acts_for(self, store_id: str) -> bool:
        """Whether the principal may act for this store: a store principal for its own stores, the other roles
        (that a route admits at all) for every store."""
        return self.role not in SCOPED_ROLES or store_id in self.stores

    def sees_personal_data(self) -> bool:
        """Customers' names, e-mails, phones and addresses are shown to analysts and admins only."""
        return self.role in PERSONAL_DATA_ROLES


def _unauthorized(detail: str, *, error: str | None = None) -> HTTPException:
    challenge = "Bearer" if error is None else f'Bearer error="{error}"'
    return HTTPException(401, detail, headers={"WWW-Authenticate": challenge})


class OidcVerifier:
    """Verifies OIDC access tokens (JWT) with PyJWT against the issuer's JWKS: signature (asymmetric algorithms
    only, never `none` or HS*), `iss`, `aud`, `exp`, `nbf`; the role from the configured claim."""

    def __init__(self, settings: AuthSettings) -> None:
        problems = settings.oidc_problems()
        if problems:
            raise ValueError("; ".join(problems))
        assert settings.oidc_issuer and settings.oidc_audience
        self.issuer: str = settings.oidc_issuer
        self.audience: str = settings.oidc_audience
        self.algorithms = list(settings.oidc_algorithms)
        self.leeway = settings.oidc_leeway_seconds
        self.role_claim = settings.oidc_role_claim
        self.role_map = dict(settings.oidc_role_map)
        self.store_claim = settings.oidc_store_claim
        self.store_map = dict(settings.oidc_store_map)
        self._client: jwt.PyJWKClient | None = None
        self._file: Path | None = settings.oidc_jwks_file
        self._file_set: tuple[float, list[jwt.PyJWK]] | None = None
        if settings.oidc_jwks_url:
            self._client = jwt.PyJWKClient(settings.oidc_jwks_url, cache_jwk_set=True,
                                           lifespan=settings.oidc_jwks_cache_seconds, timeout=10)

    @staticmethod
    def _usable(keys) -> list[jwt.PyJWK]:
        # symmetric (`oct`) keys never verify a token: with them a public value could sign one (alg confusion)
        return [k for k in keys if k.key_type in ("RSA", "EC", "OKP") and k.public_key_use in (None, "sig")]

    def _file_keys(self) -> list[jwt.PyJWK]:
        assert self._file is not None
        mtime = self._file.stat().st_mtime
        if self._file_set is None or self._file_set[0] != mtime:  # re-read when it changes (key rotation)
            jwk_set = jwt.PyJWKSet.from_dict(json.loads(self._file.read_text()))
            self._file_set = (mtime, self._usable(jwk_set.keys))
        return self._file_set[1]

    def _key_for(self, header: dict[str, Any]) -> jwt.PyJWK:
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise jwt.InvalidTokenError("kid must be a string")
        if self._client is not None:
            try:
                # a kid not in the cached set refetches it once per cooldown (PyJWKClient), for rotated keys
                keys = [self._client.get_signing_key(kid)] if kid else self._client.get_signing_keys()
            except jwt.PyJWKClientConnectionError:
                raise  # the issuer is unreachable: 503, not the caller's fault
            except jwt.PyJWKClientError as exc:
                raise jwt.InvalidTokenError(str(exc)) from None
            keys = self._usable(keys)
            if kid is None and len(keys) == 1:
                return keys[0]
            match = next((k for k in keys if kid is not None and k.key_id == kid), None)
        else:
            keys = self._file_keys()
            if kid is None and len(keys) == 1:
                return keys[0]
            match = next((k for k in keys if kid is not None and k.key_id == kid), None)
        if match is None:
            raise jwt.InvalidTokenError(f"no signing key {'for kid ' + repr(kid) if kid else 'matches'} in the JWKS")
        return match

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; jwt.InvalidTokenError (401) or PermissionError (403: no role)."""
        header = jwt.get_unverified_header(token)
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise jwt.InvalidAlgorithmError(f"algorithm {alg!r} is not accepted")
        key = self._key_for(header)
        family = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}.get(alg[:2])
        if key.key_type != family:
            raise jwt.InvalidAlgorithmError(f"the key {key.key_id!r} is {key.key_type}, not a key for {alg}")
        declared = key._jwk_data.get("alg") if isinstance(key._jwk_data, dict) else None
        if declared and declared != alg:
            raise jwt.InvalidAlgorithmError(f"the key {key.key_id!r} is for {declared}, not {alg}")
        claims = jwt.decode(token, key.key, algorithms=[alg], audience=self.audience, issuer=self.issuer,
                            leeway=self.leeway,
                            options={"require": ["exp", "iss", "aud", "sub"], "verify_signature": True})
        role = highest_role(_claim(claims, self.role_claim), self.role_map)
        sub = str(claims["sub"])
        if not sub.strip() or len(sub) > 190:  # the actor recorded is `oidc:<sub>`, at most 200 characters
            raise jwt.InvalidTokenError("the token's sub is empty or longer than 190 characters")
        if role is None:
            raise PermissionError(f"the token of {sub!r} carries no retailflow role in its {self.role_claim!r} "
                                  f"claim (one of {', '.join(Role)})")
        if role in SCOPED_ROLES:
            stores = store_ids(_claim(claims, self.store_claim), self.store_map)
            if not stores:
                raise PermissionError(f"the token of {sub!r} has role {role.value} but names no store in its "
                                      f"{self.store_claim!r} claim")
            return Principal(name=f"oidc:{sub}", role=role, via="oidc", stores=stores)
        return Principal(name=f"oidc:{sub}", role=role, via="oidc")


def _claim(claims: dict[str, Any], path: str) -> Any:
    """The value at a dotted claim path (`realm_access.roles`), None if it is not there."""
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _oidc(request: Request) -> OidcVerifier | None:
    state = request.app.state
    verifier = getattr(state, "oidc_verifier", None)
    if verifier is None:
        settings: AuthSettings = state.settings
        if not (settings.oidc_issuer or settings.oidc_jwks_url or settings.oidc_jwks_file):
            return None
        try:
            verifier = OidcVerifier(settings)
        except ValueError as exc:
            log.error("oidc misconfigured; bearer tokens are refused", problem=str(exc))
            return None
        state.oidc_verifier = verifier
    return verifier


async def _from_api_key(request: Request, key: str) -> Principal:
    engine = request.app.state.engine
    if engine is None:
        raise HTTPException(503, "the platform database is not ready", headers={"Retry-After": "5"})
    store = ApiKeyStore(engine)
    try:
        record = await asyncio.to_thread(store.verify, key)
        if record is None:  # say why only to whoever holds the right secret
            known = await asyncio.to_thread(store.lookup, key)
            if known is not None:
                raise _unauthorized(f"API key {known.name!r} is {known.state()}", error="invalid_token")
            raise _unauthorized("invalid API key", error="invalid_token")
    except SQLAlchemyError:
        raise HTTPException(503, "the platform database is unavailable; try again",
                            headers={"Retry-After": "5"}) from None
    return Principal(name=f"key:{record.name}", role=record.role, via="api_key", stores=frozenset(record.stores))


async def _from_jwt(request: Request, token: str) -> Principal:
    verifier = _oidc(request)
    if verifier is None:
        raise _unauthorized("invalid credentials (not an API key, and no OIDC issuer is configured)",
                            error="invalid_token")
    try:
        return await asyncio.to_thread(verifier.verify, token)
    except PermissionError as exc:
        raise HTTPException(403, str(exc)) from None
    except jwt.PyJWKClientConnectionError as exc:  # the issuer's JWKS cannot be fetched
        log.warning("oidc jwks unavailable", error=str(exc))
        raise HTTPException(503, "the OIDC issuer's keys cannot be fetched now; try again",
                            headers={"Retry-After": "5"}) from None
    except (jwt.PyJWTError, ValueError, TypeError, OSError) as exc:  # bad token, or an unreadable JWKS file
        raise _unauthorized(f"invalid token: {exc}", error="invalid_token") from None


async def authenticate(request: Request, bearer: HTTPAuthorizationCredentials | None,
                       api_key: str | None) -> Principal:
    """The principal of the request's credentials; 401 when there are none or they do not hold."""
    if bearer is not None and bearer.credentials:
        token = bearer.credentials.strip()
        if token.startswith(PREFIX + "_"):
            return await _from_api_key(request, token)
        return await _from_jwt(request, token)
    if api_key:
        return await _from_api_key(request, api_key.strip())
    if request.url.path.startswith(CODEC_PREFIX) and (cookie := request.cookies.get(SESSION_COOKIE)):
        return await _from_api_key(request, cookie.strip())
    raise _unauthorized("credentials required: Authorization: Bearer <API key or OIDC token>, or X-API-Key")


def _scope(who: Principal) -> str:
    return f"{who.role.value} of {', '.join(sorted(who.stores)) or 'no store'}"


def require(*roles: Role) -> Callable:
    """A FastAPI dependency: the authenticated Principal, if its role is one of `roles` (else 403)."""
    allowed = frozenset(roles)
    names = ", ".join(r.value for r in Role if r in allowed)

    async def principal(request: Request,
                        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
                        api_key: Annotated[str | None, Depends(api_key_scheme)]) -> Principal:
        who = await authenticate(request, bearer, api_key)
        if who.role not in allowed:
            if who.role in SCOPED_ROLES:
                raise HTTPException(403, f"{who.name} ({_scope(who)}) may only list and move its stores' "
                                         "fulfillments (/pos/stores/{store}/fulfillments); this needs: " + names)
            raise HTTPException(403, f"{who.name} ({who.role.value}) may not do this; it needs: {names}")
        request.state.principal = who
        structlog.contextvars.bind_contextvars(principal=who.name)
        return who

    principal.allowed = allowed  # type: ignore[attr-defined]  # what the route table test reads
    return principal


Viewer = Annotated[Principal, Depends(require(Role.viewer, Role.analyst, Role.finance, Role.admin))]
Analyst = Annotated[Principal, Depends(require(Role.analyst, Role.admin))]
Finance = Annotated[Principal, Depends(require(Role.finance, Role.admin))]
Admin = Annotated[Principal, Depends(require(Role.admin))]


def require_store(*roles: Role) -> Callable:
    """`require(*roles)` for a route under `/pos/stores/{store_id}/`: a store principal is admitted for its own
    stores only (403 naming them for another); the other roles for every store."""
    inner = require(*roles)

    # a default, not Annotated: the annotations are strings (__future__) and `inner` is a local name
    async def principal(request: Request, who: Principal = Depends(inner)) -> Principal:
        store_id = request.path_params.get("store_id")
        if not isinstance(store_id, str) or not who.acts_for(store_id):
            raise HTTPException(403, f"{who.name} ({_scope(who)}) may not act for store {store_id}")
        if who.role in SCOPED_ROLES:
            structlog.contextvars.bind_contextvars(store_id=store_id)
        return who

    principal.allowed = inner.allowed  # type: ignore[attr-defined]  # what the route table test reads
    return principal


# the store fulfillment routes (api/routers/pos.py): the store's staff for their own stores, and as before the
# viewers (the list) and the analysts and admins (the list and the moves)
StoreReader = Annotated[Principal, Depends(require_store(Role.store, Role.viewer, Role.analyst, Role.finance,
                                                         Role.admin))]
StoreStaff = Annotated[Principal, Depends(require_store(Role.store, Role.analyst, Role.admin))]


def document_auth(app) -> None:
    """OpenAPI: every operation that takes credentials also documents its 401 and 403 answers."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                if isinstance(operation, dict) and operation.get("security"):
                    responses = operation.setdefault("responses", {})
                    responses.setdefault("401", {"description": "No credentials, or invalid, expired or revoked "
                                                                "ones (WWW-Authenticate: Bearer)"})
                    responses.setdefault("403", {"description": "The caller's role may not do this"})
        return schema

    app.openapi = openapi
