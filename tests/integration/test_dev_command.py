"""`retailflow dev` as `make run` runs it: all pieces up, a signed sample order completes, Ctrl-C stops all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from retailflow.devstack import port_open
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_dev_stack_runs_the_sample_order_and_stops_cleanly(tmp_path):
    temporal_port, ui_port, api_port = free_port(), free_port(), free_port()
    worker_metrics, sdk_metrics = free_port(), free_port()
    env = {**os.environ, "RETAILFLOW_LOCAL_WMS_SHIP_AFTER_SECONDS": "1", "RETAILFLOW_LOG_JSON": "true",
           "RETAILFLOW_WORKER_METRICS_PORT": str(worker_metrics),
           "RETAILFLOW_TEMPORAL_SDK_METRICS_PORT": str(sdk_metrics)}
    env.pop("RETAILFLOW_DATABASE_URL", None)
    cli = str(Path(sys.executable).parent / "retailflow")
    proc = subprocess.Popen(
        [cli, "dev", "--demo", "--data-dir", str(tmp_path / "data"), "--temporal-port", str(temporal_port),
         "--ui-port", str(ui_port), "--api-port", str(api_port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not port_open("127.0.0.1", api_port):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the API never came up"
            time.sleep(0.3)
        assert port_open("127.0.0.1", ui_port), "the Temporal Web UI is not listening"
        assert (tmp_path / "data" / "temporal.db").exists() and (tmp_path / "data" / "retailflow.db").exists()

        send = subprocess.run(
            [cli, "shopify", "send", "tests/fixtures/shopify/webhook_orders_create_sample_v2024.json"],
            cwd=ROOT, env={**env, "RETAILFLOW_API_PORT": str(api_port)}, capture_output=True, text=True, timeout=60)
        assert send.returncode == 0, send.stdout + send.stderr
        assert '"duplicate": false' in send.stdout

        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            resp = httpx.get(f"http://127.0.0.1:{api_port}/orders/shopify/820982911946154508", timeout=10)
            if resp.status_code == 200 and (status := resp.json()["status"]) == "completed":
                break
            time.sleep(0.5)
        assert status == "completed"
        ui = httpx.get(f"http://127.0.0.1:{ui_port}/", timeout=10)
        assert ui.status_code == 200
        worker_text = httpx.get(f"http://127.0.0.1:{worker_metrics}/metrics", timeout=10).text
        assert 'retailflow_activity_seconds_count{activity="create_sales_order"} 1.0' in worker_text
        assert 'retailflow_order_milestone_seconds_count{channel="shopify",milestone="completed"} 1.0' in worker_text
        sdk_text = httpx.get(f"http://127.0.0.1:{sdk_metrics}/metrics", timeout=10).text
        assert "temporal_workflow_completed" in sdk_text or "workflow_completed" in sdk_text
        api_text = httpx.get(f"http://127.0.0.1:{api_port}/metrics", timeout=10).text
        assert 'retailflow_webhooks_total{outcome="202",source="shopify"} 1.0' in api_text
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            pytest.fail(f"retailflow dev did not stop on Ctrl-C:\n{out[-3000:]}")
    assert proc.returncode == 0, out[-3000:]
    assert "dev.stopped" in out
    for port in (temporal_port, ui_port, api_port):
        assert not port_open("127.0.0.1", port), f"port {port} still open after Ctrl-C"
