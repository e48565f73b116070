"""Adapter profiles of `retailflow dev --profile NAME`: which adapter each role uses, as Settings overrides.

* ``embedded`` (the default): every role on the embedded adapters (nothing changes).
* ``vendors``: the vendor adapters of issue 7 — Shopify (Admin API) and Amazon (SP-API, with the order poll) as
  channels, ERPNext as the ERP, Avalara AvaTax for tax, ShipStation as the WMS. Base URLs and credentials come
  from the settings (``RETAILFLOW_ERPNEXT_BASE_URL``…), whose defaults are the local sandboxes; with
  ``--sandbox`` the base URLs are pointed at the sandboxes the dev stack starts (`sandbox_urls`), which are built
  with the same credentials.

A value set explicitly in the environment (``RETAILFLOW_AMAZON_POLL_INTERVAL_SECONDS``…) wins over a profile's
demo default; the adapter selection itself is what the profile is, so it always applies.
"""

from __future__ import annotations

from typing import Any

from runtime.settings import Settings

PROFILES = ("embedded", "vendors")

# Demo defaults of the vendors profile, used unless the environment sets them.
VENDOR_DEFAULTS: dict[str, Any] = {
    "amazon_poll_enabled": True,
    "amazon_poll_interval_seconds": 10,
}


def sandbox_urls(settings: Settings) -> dict[str, str]:
    """Sandbox name → base URL (``RETAILFLOW_SANDBOX_HOST`` and ``RETAILFLOW_SANDBOX_PORTS``)."""
    from sandbox import DEFAULT_PORTS

    host = settings.sandbox_host
    return {name: f"http://{host}:{settings.sandbox_ports.get(name, port)}" for name, port in DEFAULT_PORTS.items()}


def vendor_overrides(settings: Settings, *, sandbox: bool) -> dict[str, Any]:
    """The Settings fields the vendors profile changes."""
    out: dict[str, Any] = {
        "erp_adapter": "erpnext",
        "tax_adapter": "avalara",
        "wms_adapter": "shipstation",
        "marketplace_adapters": {**settings.marketplace_adapters, settings.shopify_channel: "shopify",
                                 settings.amazon_channel: "amazon"},
    }
    out.update({k: v for k, v in VENDOR_DEFAULTS.items() if k not in settings.model_fields_set})
    if sandbox:
        urls = sandbox_urls(settings)
        out.update({
            "avalara_base_url": urls["avatax"],
            "erpnext_base_url": urls["erpnext"],
            "shopify_admin_base_url": urls["shopify"],
            "amazon_sp_base_url": urls["amazon"],
            "amazon_lwa_token_url": urls["amazon"] + "/auth/o2/token",
            "shipstation_base_url": urls["shipstation"],
        })
    return out


def apply_profile(settings: Settings, profile: str, *, sandbox: bool = False) -> Settings:
    """`settings` with the profile's adapters (a new, validated Settings; `settings` is unchanged)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; one of: {', '.join(PROFILES)}")
    if profile == "embedded":
        return settings
    overrides = vendor_overrides(settings, sandbox=sandbox)
    values = {name: getattr(settings, name) for name in settings.model_fields_set}
    return Settings(**{**values, **overrides})
