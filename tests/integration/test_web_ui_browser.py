"""Proof in a real browser: the Temporal Web UI of the dev stack finds a parked order by its channel order id.

Runs where Debian's `chromium` is installed (`.ci/run` installs it); skipped with the reason otherwise.
Screenshots go to $RETAILFLOW_SCREENSHOT_DIR when set (the README's images were made this way).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.integration.devproc import dev_process

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.integration, pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (apt-get install chromium)")]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--window-size=1500,900"]


def chromium(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{time.monotonic_ns()}"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=15000", *args, url],
                          capture_output=True, text=True, timeout=90)


def wait_status(api: str, external_id: str, wanted: str, timeout: float = 60, headers: dict | None = None) -> dict:
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        resp = httpx.get(f"{api}/orders/shopify/{external_id}", headers=headers, timeout=10)
        if resp.status_code == 200 and (body := resp.json())["status"] == wanted:
            return body
        time.sleep(0.5)
    raise AssertionError(f"order never reached {wanted}: {body}")


def test_web_ui_finds_parked_order_by_external_order_id(tmp_path):
    typo = tmp_path / "order.json"
    original = Path("tests/fixtures/shopify/webhook_orders_create_sample_v2024.json").read_bytes()
    typo.write_bytes(original.replace(b'"SKU2006-035"', b'"SKU2006-35"'))
    shots = Path(os.environ.get("RETAILFLOW_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    external_id = "820982911946154508"
    with dev_process(tmp_path) as dev:
        assert dev.send(str(typo)).returncode == 0
        wait_status(dev.api, external_id, "needs_attention", headers=dev.headers)
        time.sleep(2)  # visibility is eventually consistent
        url = (f"http://127.0.0.1:{dev.ui_port}/namespaces/default/workflows?query="
               + quote(f'ExternalOrderId="{external_id}"'))
        dom = chromium(tmp_path, url, "--dump-dom")
        assert f"order:shopify:{external_id}" in dom.stdout, dom.stdout[-2000:]
        parked = chromium(tmp_path, url.replace(quote(f'ExternalOrderId="{external_id}"'),
                                                quote('NeedsAttention=true AND Channel="shopify"')), "--dump-dom")
        assert f"order:shopify:{external_id}" in parked.stdout
        chromium(tmp_path, url, f"--screenshot={shots / 'web-ui-find-by-external-order-id.png'}")
        assert (shots / "web-ui-find-by-external-order-id.png").stat().st_size > 10_000

        fix = httpx.post(f"{dev.api}/orders/shopify/{external_id}/actions/resume", timeout=30, headers=dev.headers, json={
            "actor": "analyst@example.com", "reason": "storefront SKU typo",
            "corrections": {"sku_corrections": {"SKU2006-35": "SKU2006-035"}}})
        assert fix.status_code == 202, fix.text
        wait_status(dev.api, external_id, "completed", headers=dev.headers)
        detail = f"http://127.0.0.1:{dev.ui_port}/namespaces/default/workflows/order:shopify:{external_id}"
        chromium(tmp_path, detail, "--window-size=1500,1700", f"--screenshot={shots / 'web-ui-order-timeline.png'}")
        assert (shots / "web-ui-order-timeline.png").stat().st_size > 10_000
