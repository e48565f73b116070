"""Vendor API versions (issue 18 item 4): every adapter that calls a vendor declares the API version it speaks and
that version's documented sunset; the configured versions are not past it (this test fails the day one is, and
warns within 90 days); `retailflow vendors versions` lists them and exits 1 when one is past."""

from __future__ import annotations

import ast
import warnings
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from canonical.vendor_versions import (
    WARN_DAYS,
    VendorApiVersion,
    lifecycle,
    quarterly_release,
    quarterly_sunset,
)
from runtime.settings import Settings
from runtime.vendor_versions import (
    NO_VENDOR_API,
    amazon_orders_version,
    declared_by_module,
    declared_versions,
    shopify_rest_version,
)

ROOT = Path(__file__).resolve().parents[2]
SUNSET = date(2027, 3, 27)


def version(sunset: date | None) -> VendorApiVersion:
    return VendorApiVersion("acme", "Orders", "v1", released=None, sunset=sunset, source="https://example.test")


# -- lifecycle -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("today", "expected"), [
    (SUNSET - timedelta(days=WARN_DAYS + 1), "ok"),
    (SUNSET - timedelta(days=WARN_DAYS), "warn"),   # exactly 90 days before: warn
    (SUNSET - timedelta(days=1), "warn"),
    (SUNSET, "past"),                               # the sunset day itself: the vendor no longer serves it
    (SUNSET + timedelta(days=400), "past"),
])
def test_lifecycle_boundaries(today: date, expected: str) -> None:
    assert lifecycle(version(SUNSET), today) == expected


def test_no_documented_sunset_is_ok() -> None:
    assert lifecycle(version(None), date(2099, 1, 1)) == "ok"


def test_quarterly_sunset_is_twelve_months_after_release() -> None:
    assert quarterly_release("2026-10") == date(2026, 10, 1)
    assert quarterly_sunset("2026-10") == date(2027, 10, 1)
    assert quarterly_sunset("2026-01") == date(2027, 1, 1)
    assert quarterly_sunset("2024-07") == date(2025, 7, 1)
    with pytest.raises(ValueError):
        quarterly_sunset("unstable")


def test_shopify_2024_07_is_past_and_2026_10_is_ok_on_2026_12_02() -> None:
    today = date(2026, 12, 2)
    assert lifecycle(shopify_rest_version("Admin REST", "2024-07"), today) == "past"
    assert lifecycle(shopify_rest_version("Admin REST", "2026-01"), today) == "warn"  # supported until 2027-01-01
    assert lifecycle(shopify_rest_version("Admin REST", "2026-10"), today) == "ok"
    odd = shopify_rest_version("Admin REST", "unstable")
    assert odd.sunset is None and "no support guarantee" in odd.note


# -- every adapter declares ------------------------------------------------------------------------------------

def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def http_adapter_modules() -> set[str]:
    """Every adapters/ module that makes HTTP calls: it imports adapters.http (VendorHttp) or httpx."""
    found = set()
    for path in (ROOT / "adapters").rglob("*.py"):
        imports = _imports(path)
        if "httpx" in imports or any(n == "adapters.http" or n.startswith("adapters.http.") for n in imports):
            found.add(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return found


def test_the_scan_finds_the_known_http_adapters() -> None:
    found = http_adapter_modules()
    assert {"adapters.marketplace.shopify_admin", "adapters.marketplace.shopify_payouts_api",
            "adapters.marketplace.amazon_sp", "adapters.tax.avalara", "adapters.wms.shipstation",
            "adapters.erp.erpnext"} <= found


def undeclared(found: set[str], declared: dict[str, list[VendorApiVersion]]) -> list[str]:
    return sorted(m for m in found - NO_VENDOR_API if not declared.get(m))


def test_a_new_http_adapter_without_a_declaration_is_caught() -> None:
    declared = declared_by_module(Settings(_env_file=None))
    assert undeclared(http_adapter_modules() | {"adapters.newvendor.client"}, declared) == ["adapters.newvendor.client"]
    declared["adapters.tax.avalara"] = []
    assert "adapters.tax.avalara" in undeclared(http_adapter_modules(), declared)


def test_every_http_adapter_declares_its_vendor_api_version() -> None:
    missing = undeclared(http_adapter_modules(), declared_by_module(Settings(_env_file=None)))
    assert not missing, (f"adapters calling a vendor without a declared API version: {missing} — add an "
                         "API_VERSIONS constant (canonical.vendor_versions.VendorApiVersion) and list it in "
                         "runtime/vendor_versions.py declared_by_module()")


def test_exemptions_are_real_modules() -> None:
    for module in NO_VENDOR_API:
        assert (ROOT / Path(*module.split("."))).with_suffix(".py").exists(), module


def test_declarations_are_complete() -> None:
    versions = declared_versions(Settings(_env_file=None))
    assert {v.vendor for v in versions} >= {"shopify", "amazon", "square", "shipstation", "avalara", "erpnext"}
    for v in versions:
        assert v.version and v.api
        assert v.source.startswith("https://"), v
        if v.sunset is None:
            assert v.note, f"{v.vendor} {v.version}: no sunset date needs a note saying why"


def test_configured_versions_follow_the_settings() -> None:
    by_module = declared_by_module(Settings(_env_file=None, shopify_admin_api_version="2026-07"))
    [admin] = by_module["adapters.marketplace.shopify_admin"]
    assert (admin.version, admin.sunset) == ("2026-07", date(2027, 7, 1))
    [payouts] = by_module["adapters.marketplace.shopify_payouts_api"]  # the fetcher's own pin, not the setting
    assert payouts.version == "2026-10"
    amazon = by_module["adapters.marketplace.amazon_sp"]
    orders = [v for v in amazon if v.api == "SP-API Orders"]
    assert len(orders) == 1 and orders[0].version == getattr(Settings(_env_file=None), "amazon_orders_api_version", "v0")


def test_amazon_orders_version_follows_the_setting() -> None:
    v0 = amazon_orders_version(SimpleNamespace())  # before the setting exists: v0
    assert (v0.version, v0.sunset) == ("v0", date(2027, 3, 27))
    new = amazon_orders_version(SimpleNamespace(amazon_orders_api_version="2026-01-01"))
    assert (new.version, new.sunset) == ("2026-01-01", None)
    odd = amazon_orders_version(SimpleNamespace(amazon_orders_api_version="v9"))
    assert odd.sunset is None and "unknown" in odd.note


# -- the gate: configured defaults are not past their sunset today ---------------------------------------------

def test_configured_vendor_api_versions_are_not_past_sunset() -> None:
    today = datetime.now(UTC).date()
    past, soon = [], []
    for v in declared_versions(Settings(_env_file=None)):
        status = lifecycle(v, today)
        if status == "past":
            past.append(f"{v.vendor} {v.api} {v.version}: sunset {v.sunset} ({v.source})")
        elif status == "warn":
            soon.append(f"{v.vendor} {v.api} {v.version}: sunset {v.sunset} ({v.source})")
    for line in soon:
        warnings.warn(f"vendor API version within {WARN_DAYS} days of its sunset: {line}", stacklevel=1)
    assert not past, "configured vendor API versions past their documented sunset:\n" + "\n".join(past)


# -- the CLI ---------------------------------------------------------------------------------------------------

def _run(*args: str, env: dict[str, str] | None = None):
    from retailflow.cli import app

    return CliRunner().invoke(app, ["vendors", "versions", *args], env=env)


def test_cli_lists_every_declared_version() -> None:
    result = _run("--today", "2026-12-02")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["VENDOR", "API", "VERSION", "SUNSET", "STATUS"]
    shopify = [line for line in lines if line.startswith("shopify ") and "unversioned" not in line]
    assert len(shopify) == 3 and all("2026-10" in line and "2027-10-01" in line and " ok " in f"{line} "
                                     for line in shopify)  # GraphQL Admin, REST Admin (legacy), REST payouts
    assert any(line.startswith("shopify ") and "OAuth" in line and "unversioned" in line for line in lines)
    for vendor in ("amazon", "square", "shipstation", "avalara", "erpnext"):
        assert any(line.startswith(vendor + " ") for line in lines), vendor


def test_cli_warns_within_90_days_and_exits_0() -> None:
    # Orders v0 (removed 2027-03-27) selected explicitly: the default may be 2026-01-01
    result = _run("--today", "2027-01-15", env={"RETAILFLOW_AMAZON_ORDERS_API_VERSION": "v0"})
    assert result.exit_code == 0, result.output
    [orders] = [line for line in result.output.splitlines() if line.startswith("amazon ") and " v0 " in line]
    assert "warn (71 days)" in orders


def test_cli_exits_1_when_a_configured_version_is_past() -> None:
    result = _run("--today", "2026-12-02", env={"RETAILFLOW_SHOPIFY_ADMIN_API_VERSION": "2024-07"})
    assert result.exit_code == 1, result.output
    admin = [line for line in result.output.splitlines() if line.startswith("shopify ") and "2024-07" in line]
    assert len(admin) == 2 and all("2025-07-01" in line and "past" in line for line in admin)  # GraphQL and REST
    assert _run("--today", "2027-10-01").exit_code == 1  # the default's own sunset day


def test_cli_rejects_a_bad_date() -> None:
    assert _run("--today", "December").exit_code == 2
