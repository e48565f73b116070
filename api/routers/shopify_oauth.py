"""Shopify app install (OAuth authorization code grant): `GET /shopify/oauth/install` is the app URL Shopify opens
with a signed `shop` (it answers with a redirect to the shop's authorize page), `GET /shopify/oauth/callback` the
redirect URI (hmac, timestamp and state verified; the code exchanged for an expiring offline token, scopes checked,
token sealed per shop). Neither takes the platform's credentials: Shopify's hmac with the app's client secret is
the proof, checked in constant time (runtime/shopify_auth.py, adapters/marketplace/shopify_oauth.py)."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse

from adapters.marketplace.shopify_oauth import OAuthRefused, check_callback
from api.deps import EngineDep, SettingsDep
from canonical.vendor_errors import VendorAuthFailed, VendorUnavailable
from runtime.shopify_auth import complete_install, install_link

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/shopify/oauth", tags=["shopify app"])


def _refused(exc: Exception, status: int = 400) -> JSONResponse:
    log.warning("shopify.install_refused", reason=str(exc)[:300])
    return JSONResponse({"detail": str(exc)}, status_code=status)


@router.get("/install", summary="Shopify app URL: redirect a signed install request to the shop's authorize page",
            responses={302: {"description": "To https://{shop}/admin/oauth/authorize"},
                       400: {"description": "Not signed by Shopify for this app, stale, or not the retailer's shop"}})
def install(request: Request, settings: SettingsDep):
    try:
        verified = check_callback(list(request.query_params.multi_items()),
                                  secrets_=[s.get_secret_value() for s in settings.shopify_webhook_secrets])
        return RedirectResponse(install_link(settings, verified["shop"]), status_code=302)
    except OAuthRefused as exc:
        return _refused(exc)


@router.get("/callback", summary="Shopify OAuth redirect URI: store the shop's offline token",
            responses={200: {"description": "Installed: the shop's token is stored (sealed)"},
                       400: {"description": "hmac, state or timestamp do not verify, or too few scopes granted"},
                       502: {"description": "Shopify refused the code"},
                       503: {"description": "Shopify unreachable; open the install link again"}})
def callback(request: Request, settings: SettingsDep, engine: EngineDep) -> JSONResponse:
    try:
        done = complete_install(settings, engine, list(request.query_params.multi_items()))
    except OAuthRefused as exc:
        return _refused(exc)
    except VendorAuthFailed as exc:
        return _refused(exc, 502)
    except VendorUnavailable as exc:
        return _refused(exc, 503)
    log.info("shopify.app_installed", shop=done.shop, scopes=",".join(sorted(done.scopes)), expiring=done.expiring)
    return JSONResponse({"shop": done.shop, "installed": True, "scopes": sorted(done.scopes),
                         "expiring_token": done.expiring})
