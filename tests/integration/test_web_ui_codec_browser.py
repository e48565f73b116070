"""Proof in a real browser (issue 15): in the Temporal Web UI of `retailflow dev`, an analyst who signed in at the
codec's sign-in page sees the order's customer decrypted; a browser that did not sign in sees ciphertext.

The analyst's steps, as docs/security.md gives them: open `http://localhost:<api>/codec/session` and sign in with
an API key (an HttpOnly cookie for /codec/ only), then in the Web UI's Codec Server settings choose "Use my
browser setting" with the endpoint and "Include cross-origin credentials" (the dev server cannot set that
itself); this test sets that browser setting in the UI's local storage, where the dialog keeps it.

Runs where Debian's `chromium` is installed (`.ci/run` installs it); skipped with the reason otherwise. Driven
through the DevTools protocol (tests/integration/cdp.py); screenshots go to $RETAILFLOW_SCREENSHOT_DIR when set.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.cdp import CHROMIUM, chromium
from tests.integration.devproc import CLI, ROOT, dev_process

pytestmark = [pytest.mark.integration, pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (apt-get install chromium)")]

ORDER = "tests/fixtures/shopify/webhook_orders_create_sample_v2024.json"
EXTERNAL_ID = "820982911946154508"
CUSTOMER = ["jon@example.com", "Steve Shipper", "123 Shipping Street"]


def analyst_key(dev) -> str:
    created = subprocess.run([CLI, "keys", "create", "--name", "browser-analyst", "--role", "analyst"], cwd=ROOT,
                             env={**dev.env, "RETAILFLOW_DATA_DIR": str(dev.data_dir)}, capture_output=True,
                             text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


def wait_completed(dev, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        resp = httpx.get(f"{dev.api}/orders/shopify/{EXTERNAL_ID}", headers=dev.headers, timeout=10)
        if resp.status_code == 200 and (body := resp.json())["status"] == "completed":
            return
        time.sleep(0.5)
    raise AssertionError(f"order never completed: {body}")


async def use_codec_with_credentials(page, ui: str, endpoint: str) -> None:
    """The Web UI's Codec Server dialog, "Use my browser setting" + "Include cross-origin credentials"."""
    await page.goto(ui + "/")
    await page.eval(f"localStorage.setItem('endpoint', {json.dumps(json.dumps(endpoint))});"
                    "localStorage.setItem('includeCredentials', 'true');"
                    "localStorage.setItem('overrideRemoteCodecConfiguration', 'true'); true")


async def test_signed_in_analyst_sees_decrypted_customer_and_others_see_ciphertext(tmp_path):
    shots = Path(os.environ.get("RETAILFLOW_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with dev_process(tmp_path) as dev:
        assert dev.send(ORDER).returncode == 0
        key = analyst_key(dev)
        wait_completed(dev)
        ui, api = f"http://localhost:{dev.ui_port}", f"http://localhost:{dev.api_port}"
        detail = f"{ui}/namespaces/default/workflows/order:shopify:{EXTERNAL_ID}"
        async with chromium(tmp_path / "profile") as browser:
            analyst = await browser.page()
            await analyst.goto(f"{api}/codec/session")  # the sign-in page the dev banner points to
            await analyst.eval(f"document.getElementById('key').value = {json.dumps(key)};"
                               "document.getElementById('f').requestSubmit(); true")
            status = await analyst.wait_for("document.getElementById('status').textContent.startsWith('Signed in')"
                                            " && document.getElementById('status').textContent")
            assert status == "Signed in as key:browser-analyst"
            await use_codec_with_credentials(analyst, ui, f"{api}/codec")
            await analyst.goto(detail)
            await analyst.wait_for("document.body.innerText.includes('jon@example.com')")
            text = await analyst.text()
            assert all(c in text for c in CUSTOMER), text[:3000]
            await analyst.screenshot(shots / "web-ui-codec-decrypted.png")

            stranger = await browser.page()  # another browser profile: same settings, never signed in
            await use_codec_with_credentials(stranger, ui, f"{api}/codec")
            await stranger.goto(detail)
            await stranger.wait_for("document.body.innerText.includes('Codec Server could not connect')")
            await stranger.wait_for("document.body.innerText.includes('Input')")
            text = await stranger.text()
            assert not any(c in text for c in CUSTOMER), text[:3000]
            await stranger.screenshot(shots / "web-ui-codec-encrypted.png")
