"""The vendor API versions this deployment speaks, from the adapters' declarations and the settings.

`declared_by_module(settings)` maps each adapter module to the versions it declares (its `API_VERSIONS`
constant, plus the configured ones: Shopify's `shopify_admin_api_version`, the payouts fetcher's own pinned
`API_VERSION`, Amazon's `amazon_orders_api_version`); `declared_versions(settings)` flattens it for
`retailflow vendors versions` and tests/unit/test_vendor_versions.py.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from adapters.erp import erpnext
from adapters.marketplace import amazon_sp, shopify_admin, shopify_graphql, shopify_oauth, shopify_payouts_api
from adapters.pos import square, square_catalog, square_fulfillment
from adapters.tax import avalara
from adapters.wms import shipbob, shipstation
from canonical.vendor_versions import VendorApiVersion, quarterly_release, quarterly_sunset

SHOPIFY_VERSIONING = "https://shopify.dev/docs/api/usage/versioning"
SHOPIFY_NOTE = ("stable versions are supported for a minimum of 12 months from release (quarterly, YYYY-01/04/07/10); "
                "an unsupported version is served as the oldest supported one")

# Adapter modules that talk to no vendor API (the platform's own services): exempt from declaring a version.
NO_VENDOR_API = frozenset({
    "adapters.http",      # the shared HTTP client itself
    "adapters.wms.local",  # the embedded WMS posting to the platform's own webhook
})


def shopify_rest_version(api: str, version: str) -> VendorApiVersion:
    """A Shopify Admin version (REST and GraphQL share the quarterly versions), with its sunset by Shopify's documented minimum (12 months)."""
    try:
        released: date | None = quarterly_release(version)
        sunset: date | None = quarterly_sunset(version)
    except ValueError:  # "unstable" or a malformed value: unknown lifecycle, said in the note
        return VendorApiVersion("shopify", api, version, None, None, SHOPIFY_VERSIONING,
                                note="not a stable YYYY-MM version: no support guarantee")
    if version.split("-")[1] not in ("01", "04", "07", "10"):
        return VendorApiVersion("shopify", api, version, released, sunset, SHOPIFY_VERSIONING,
                                note="Shopify releases only YYYY-01/04/07/10: not a released version")
    return VendorApiVersion("shopify", api, version, released, sunset, SHOPIFY_VERSIONING, note=SHOPIFY_NOTE)


def amazon_orders_version(settings: Any) -> VendorApiVersion:
    configured = str(getattr(settings, "amazon_orders_api_version", "v0"))
    known = amazon_sp.ORDERS_API_VERSIONS.get(configured)
    if known is not None:
        return known
    return VendorApiVersion("amazon", "SP-API Orders", configured, None, None, amazon_sp.ORDERS_API_V0.source,
                            note="unknown Orders API version: no documented lifecycle")


def declared_by_module(settings: Any) -> dict[str, list[VendorApiVersion]]:
    return {
        shopify_graphql.__name__: [shopify_rest_version("GraphQL Admin (orders, fulfillment orders, refunds, inventory, "
                                                        "prices, webhooks)", settings.shopify_admin_api_version)],
        shopify_admin.__name__: [shopify_rest_version("Admin REST (legacy; RETAILFLOW_SHOPIFY_ADMIN_API=rest)",
                                                      settings.shopify_admin_api_version)],
        shopify_payouts_api.__name__: [shopify_rest_version("Admin REST (Shopify Payments payouts; "
                                                            "RETAILFLOW_SHOPIFY_ADMIN_API=rest)",
                                                            shopify_payouts_api.API_VERSION)],
        shopify_oauth.__name__: list(shopify_oauth.API_VERSIONS),
        amazon_sp.__name__: [amazon_orders_version(settings), *amazon_sp.API_VERSIONS],
        square.__name__: list(square.API_VERSIONS),
        square_catalog.__name__: list(square_catalog.API_VERSIONS),
        square_fulfillment.__name__: list(square_fulfillment.API_VERSIONS),
        shipstation.__name__: list(shipstation.API_VERSIONS),
        shipbob.__name__: list(shipbob.API_VERSIONS),
        avalara.__name__: list(avalara.API_VERSIONS),
        erpnext.__name__: list(erpnext.API_VERSIONS),
    }


def declared_versions(settings: Any) -> list[VendorApiVersion]:
    return [v for versions in declared_by_module(settings).values() for v in versions]
