"""Composition root for adapters: builds the configured set. Nothing connects until `build_adapters` runs."""

from __future__ import annotations

from sqlalchemy import Engine

from adapters.erp.base import ErpAdapter
from adapters.erp.local import LocalErp
from adapters.inventory.ledger import InventoryLedger
from adapters.marketplace.base import MarketplaceAdapter
from adapters.marketplace.local import LocalMarketplace
from adapters.platform.projection import StatusProjection
from adapters.ports import Adapters
from adapters.tax.base import TaxAdapter
from adapters.tax.local import LocalTax
from adapters.wms.base import WmsAdapter
from adapters.wms.local import LocalWms
from runtime.settings import Settings


def build_adapters(settings: Settings, engine: Engine) -> Adapters:
    """The embedded adapters on the platform database (vendor adapters are selected here as they land)."""
    return Adapters(
        erp=build_erp(settings, engine),
        wms=build_wms(settings, engine),
        tax=build_tax(settings, engine),
        marketplace=build_marketplace(settings, engine),
        projection=StatusProjection(engine),
        inventory=InventoryLedger(engine, policies=settings.inventory_channels,
                                  default_backorder=settings.allow_backorder,
                                  store_buffers=settings.inventory_store_buffers),
    )


# -- selection per role (RETAILFLOW_ERP_ADAPTER, _TAX_ADAPTER, _WMS_ADAPTER, _MARKETPLACE_ADAPTERS) -------------
# Vendor modules are imported only when selected. An unknown name is a configuration error: ValueError.

def _unknown(role: str, name: str, known: tuple[str, ...]) -> ValueError:
    return ValueError(f"unknown {role} adapter {name!r} (RETAILFLOW_{role.upper()}_ADAPTER); one of: {', '.join(known)}")


def build_erp(settings: Settings, engine: Engine) -> ErpAdapter:
    if settings.erp_routing_file is not None:  # several ERPs, routed per process and store (docs/erp-migration.md)
        from runtime.erp_routing import build_routing_erp, load_routing

        return build_routing_erp(settings, engine, load_routing(settings.erp_routing_file))
    name = settings.erp_adapter.strip().lower()
    if name == "local":
        return LocalErp(engine, default_location=settings.default_location)
    if name == "erpnext":
        from adapters.erp.erpnext import ErpNext
        from adapters.erp.holds import ReservationHolds

        return ErpNext.from_settings(settings, holds=ReservationHolds(engine))
    raise _unknown("erp", name, ("local", "erpnext"))


def build_tax(settings: Settings, engine: Engine) -> TaxAdapter:
    name = settings.tax_adapter.strip().lower()
    if name == "local":
        return LocalTax(engine)
    if name == "avalara":
        from adapters.tax.avalara import AvalaraTax

        return AvalaraTax.from_settings(settings)
    raise _unknown("tax", name, ("local", "avalara"))


def build_wms(settings: Settings, engine: Engine) -> WmsAdapter:
    name = settings.wms_adapter.strip().lower()
    if name == "local":
        return LocalWms(engine, ship_after_seconds=settings.local_wms_ship_after_seconds)
    if name == "shipstation":  # returns are received by the embedded WMS (ShipStation V1 has no inbound API)
        from adapters.wms.shipstation import build_shipstation

        return build_shipstation(settings, returns=LocalWms(engine, ship_after_seconds=0))
    if name == "shipbob":  # a 3PL: ShipBob ships, and receives returns through its Returns API
        from adapters.wms.shipbob import build_shipbob

        return build_shipbob(settings)
    raise _unknown("wms", name, ("local", "shipstation", "shipbob"))


def build_marketplace(settings: Settings, engine: Engine) -> MarketplaceAdapter:
    """One adapter for every channel; channels mapped to a vendor in `marketplace_adapters` are routed to it. A
    Shopify store of RETAILFLOW_STORES gets its own Admin API client (its base URL and access token)."""
    known = ("local", "shopify", "amazon")
    for channel, name in settings.marketplace_adapters.items():
        if name.strip().lower() not in known:
            raise ValueError(f"unknown marketplace adapter {name!r} for channel {channel!r} "
                             f"(RETAILFLOW_MARKETPLACE_ADAPTERS); one of: {', '.join(known)}")
    vendors = {c: n.strip().lower() for c, n in settings.marketplace_adapters.items() if n.strip().lower() != "local"}
    if vendors:  # Shopify Admin / Amazon SP-API per channel (docs/vendors.md)
        from adapters.marketplace.by_channel import ChannelMarketplaces, build_vendor_marketplace

        return ChannelMarketplaces(LocalMarketplace(engine), {
            c: build_shopify(channel_settings(settings, c, n), engine, c) if n == "shopify"
            else build_vendor_marketplace(n, channel_settings(settings, c, n)) for c, n in vendors.items()})
    return LocalMarketplace(engine)


def build_shopify(settings: Settings, engine: Engine, channel: str):
    """A Shopify shop's client: the GraphQL Admin API (default) or the legacy REST one
    (RETAILFLOW_SHOPIFY_ADMIN_API). The access token comes per request from `shopify_auth_for`: the configured
    token, or the one stored when the shop installed the app (`retailflow shopify install`)."""
    from runtime.shopify_auth import shopify_auth_for

    auth = shopify_auth_for(settings, engine)
    if settings.shopify_admin_api == "rest":
        from adapters.marketplace.shopify_admin import build_shopify_admin

        return build_shopify_admin(settings, auth=auth)
    from adapters.marketplace.shopify_graphql import build_shopify_graphql
    from runtime.fulfillment_network import pickup_locations
    from runtime.observability import observe_shopify_cost

    return build_shopify_graphql(settings, auth=auth, channel=channel, on_cost=observe_shopify_cost,
                                 pickup_locations=pickup_locations(settings, channel))


def channel_settings(settings: Settings, channel: str, vendor: str) -> Settings:
    """The settings a channel's vendor adapter is built from (a copy; the shared settings are never changed): a
    Shopify store of RETAILFLOW_STORES brings its own Admin API base URL and token; an Amazon store its channel,
    seller id, marketplace id and the seller's LWA refresh token (the LWA app's client id and secret are shared).
    A channel that is no store keeps the single-shop settings (RETAILFLOW_SHOPIFY_ADMIN_*, RETAILFLOW_AMAZON_*)."""
    entry = settings.store_entry(channel)
    if entry is None or vendor not in ("shopify", "amazon"):
        return settings
    routed = "RETAILFLOW_MARKETPLACE_ADAPTERS routes it to the " + (
        "Shopify Admin API" if vendor == "shopify" else "Amazon SP-API")
    if entry.vendor != vendor:
        raise ValueError(f"store {channel!r} is a {entry.vendor} store; {routed}")
    if vendor == "amazon":
        token = entry.amazon_refresh_token
        seller, marketplace = (entry.seller_id or "").strip(), (entry.marketplace_id or "").strip()
        missing = [name for name, value in (("seller_id", seller), ("marketplace_id", marketplace),
                                            ("amazon_refresh_token", token.get_secret_value().strip() if token else ""))
                   if not value]
        if missing:
            # never the single-store credentials: this store's orders would be another seller's
            raise ValueError(f"store {channel!r} has no {' / '.join(missing)} (RETAILFLOW_STORES); {routed}")
        return settings.model_copy(update={"amazon_channel": channel, "amazon_seller_id": seller,
                                           "amazon_marketplace_id": marketplace, "amazon_refresh_token": token})
    static = settings.shopify_app_auth == "static"
    if not entry.admin_base_url or (static and entry.admin_access_token is None):
        # never the single-shop credentials: this store's updates would land in another shop
        raise ValueError(f"store {channel!r} has no admin_base_url / admin_access_token (RETAILFLOW_STORES); "
                         f"{routed}")
    update: dict[str, object] = {"shopify_admin_base_url": entry.admin_base_url, "shopify_shop_domain": entry.shop_domain,
                                 "shopify_location_id": None}  # the shop's own first active location
    if entry.admin_access_token is not None:
        update["shopify_admin_access_token"] = entry.admin_access_token
    return settings.model_copy(update=update)
