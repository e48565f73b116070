"""`retailflow dev --profile vendors [--sandbox]`: the settings it gives the worker and the API, and the sandboxes it
builds for them (same credentials, webhooks back to this API)."""

from __future__ import annotations

import pytest

from retailflow.profiles import apply_profile
from runtime.registry import build_erp, build_marketplace, build_tax, build_wms
from runtime.settings import Settings
from sandbox.stack import app_kwargs, build_app


def test_embedded_profile_changes_nothing():
    settings = Settings(api_port=9100)
    assert apply_profile(settings, "embedded", sandbox=True) is settings


def test_vendors_profile_selects_every_vendor_adapter_and_points_them_at_the_sandboxes(monkeypatch):
    monkeypatch.setenv("RETAILFLOW_SANDBOX_PORTS", '{"erpnext": 9202, "amazon": 9204}')
    monkeypatch.setenv("RETAILFLOW_MARKETPLACE_ADAPTERS", '{"ebay": "local"}')
    settings = apply_profile(Settings(api_port=9100), "vendors", sandbox=True)
    assert (settings.erp_adapter, settings.tax_adapter, settings.wms_adapter) == ("erpnext", "avalara", "shipstation")
    assert settings.marketplace_adapters == {"ebay": "local", "shopify": "shopify", "amazon": "amazon"}
    assert settings.erpnext_base_url == "http://127.0.0.1:9202"
    assert settings.avalara_base_url == "http://127.0.0.1:8101"  # not configured: the default port
    assert settings.amazon_sp_base_url == "http://127.0.0.1:9204"
    assert settings.amazon_lwa_token_url == "http://127.0.0.1:9204/auth/o2/token"
    assert settings.amazon_poll_enabled and settings.amazon_poll_interval_seconds == 10
    assert settings.api_port == 9100  # what the command line set is kept


def test_the_environment_wins_over_the_profiles_demo_defaults_and_base_urls_without_sandbox(monkeypatch):
    monkeypatch.setenv("RETAILFLOW_AMAZON_POLL_INTERVAL_SECONDS", "300")
    monkeypatch.setenv("RETAILFLOW_ERPNEXT_BASE_URL", "https://erp.example.com")
    settings = apply_profile(Settings(), "vendors", sandbox=False)
    assert settings.amazon_poll_interval_seconds == 300
    assert settings.erpnext_base_url == "https://erp.example.com"  # a real ERPNext site
    assert apply_profile(Settings(), "vendors", sandbox=True).erpnext_base_url == "http://127.0.0.1:8102"


def test_unknown_profile_is_refused():
    with pytest.raises(ValueError, match="unknown profile"):
        apply_profile(Settings(), "prod")


def test_the_registry_builds_the_vendor_adapters_of_the_profile(engine):
    settings = apply_profile(Settings(), "vendors", sandbox=True)
    assert type(build_erp(settings, engine)).__name__ == "ErpNext"
    assert type(build_tax(settings, engine)).__name__ == "AvalaraTax"
    assert type(build_wms(settings, engine)).__name__ == "ShipStationWms"
    channels = build_marketplace(settings, engine)
    assert {c: type(a).__name__ for c, a in channels.by_channel.items()} == {"shopify": "ShopifyGraphQL",
                                                                           "amazon": "AmazonOrdersV2026"}


def test_sandboxes_are_built_with_the_platforms_credentials_and_call_back_its_api():
    settings = Settings(api_port=9100, shipstation_webhook_token="tok", sandbox_ship_after_seconds=0.5)
    shopify = app_kwargs("shopify", settings)
    assert shopify["webhook_url"] == "http://127.0.0.1:9100/webhooks/shopify"
    assert shopify["webhook_secret"] == settings.shopify_webhook_secret.get_secret_value()
    shipstation = app_kwargs("shipstation", settings)
    assert shipstation["webhook_url"] == "http://127.0.0.1:9100/webhooks/shipstation?token=tok"
    assert shipstation["ship_after_seconds"] == 0.5
    assert app_kwargs("erpnext", settings)["api_key"] == settings.erpnext_api_key
    for name in ("avatax", "erpnext", "shopify", "amazon", "shipstation"):
        assert build_app(name, settings).title.endswith("(retailflow sandbox)")
