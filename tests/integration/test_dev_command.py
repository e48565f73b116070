"""`retailflow dev` as `make run` runs it: all pieces up, a signed sample order completes, Ctrl-C stops all."""

from __future__ import annotations

import time

import httpx
import pytest

from retailflow.devstack import port_open
from tests.integration.devproc import dev_process

pytestmark = pytest.mark.integration


def test_dev_stack_runs_the_sample_order_and_stops_cleanly(tmp_path):
    with dev_process(tmp_path) as dev:
        assert port_open("127.0.0.1", dev.ui_port), "the Temporal Web UI is not listening"
        assert (dev.data_dir / "temporal.db").exists() and (dev.data_dir / "retailflow.db").exists()

        send = dev.send("tests/fixtures/shopify/webhook_orders_create_sample_v2024.json")
        assert send.returncode == 0, send.stdout + send.stderr
        assert '"duplicate": false' in send.stdout

        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            resp = httpx.get(f"{dev.api}/orders/shopify/820982911946154508", headers=dev.headers, timeout=10)
            if resp.status_code == 200 and (status := resp.json()["status"]) == "completed":
                break
            time.sleep(0.5)
        assert status == "completed"
        assert httpx.get(f"http://127.0.0.1:{dev.ui_port}/", timeout=10).status_code == 200
        worker_text = httpx.get(f"http://127.0.0.1:{dev.worker_metrics}/metrics", timeout=10).text
        assert 'retailflow_activity_seconds_count{activity="create_sales_order"} 1.0' in worker_text
        assert 'retailflow_order_milestone_seconds_count{channel="shopify",milestone="completed"} 1.0' in worker_text
        sdk_text = httpx.get(f"http://127.0.0.1:{dev.sdk_metrics}/metrics", timeout=10).text
        assert "workflow_completed" in sdk_text
        api_text = httpx.get(f"{dev.api}/metrics", timeout=10).text
        assert 'retailflow_webhooks_total{outcome="202",source="shopify"} 1.0' in api_text
    assert dev.proc.returncode == 0, dev.output[-3000:]
    assert "dev.stopped" in dev.output
    # the first start made an admin key and printed it in the banner, and nowhere else (no log line has it)
    assert "dev.admin_key_created" in dev.output
    assert [line for line in dev.output.splitlines() if dev.admin_key in line] == [
        f"  admin API key    {dev.admin_key}",
        f"                   shown once, only its hash is kept: export RETAILFLOW_API_KEY={dev.admin_key}"]
    for port in dev.ports:
        assert not port_open("127.0.0.1", port), f"port {port} still open after Ctrl-C"
