"""`retailflow worker` and `retailflow api` alone, against an existing Temporal, with `catalog import`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from retailflow.catalog import DEMO_CATALOG
from retailflow.devstack import port_open
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "retailflow")


def test_worker_and_api_run_alone_against_existing_temporal(dev_env, tmp_path):
    api_port = free_port()
    env = {
        **os.environ,
        "RETAILFLOW_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "RETAILFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'platform.db'}",
        "RETAILFLOW_TASK_QUEUE": f"standalone-{api_port}",
        "RETAILFLOW_API_PORT": str(api_port),
        "RETAILFLOW_LOCAL_WMS_SHIP_AFTER_SECONDS": "0.5",
        "RETAILFLOW_LOG_JSON": "true",
        "RETAILFLOW_WORKER_METRICS_PORT": "0",
        "RETAILFLOW_TEMPORAL_SDK_METRICS_PORT": "0",
    }
    imported = subprocess.run([CLI, "catalog", "import", str(DEMO_CATALOG)], env=env, capture_output=True,
                              text=True, timeout=60)
    assert imported.returncode == 0 and "imported 5 row(s)" in imported.stdout, imported.stderr

    bad = tmp_path / "bad.csv"
    bad.write_text("channel,channel_sku,item_code,name,location,on_hand,unit_price,currency\n"
                   "shopify,X1,ITEM-X,Thing,MAIN,-3,1.00,USD\n")
    rejected = subprocess.run([CLI, "catalog", "import", str(bad)], env=env, capture_output=True, text=True, timeout=60)
    assert rejected.returncode == 2 and "line 2" in rejected.stderr

    created = subprocess.run([CLI, "keys", "create", "--name", "it-viewer", "--role", "viewer"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("rfk_") and "shown once" in created.stderr
    auth = {"Authorization": f"Bearer {key}"}

    worker = subprocess.Popen([CLI, "worker"], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    api = subprocess.Popen([CLI, "api"], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    try:
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", api_port):
            assert api.poll() is None and worker.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.2)
        sent = subprocess.run([CLI, "shopify", "send", "--as-new-order",
                               "tests/fixtures/shopify/webhook_orders_create_sample_v2024.json"],
                              env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        wf_id = sent.stdout.split('"workflow_id": "')[1].split('"')[0]
        channel, external_id = wf_id.split(":")[1:]
        status = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and status != "completed":
            resp = httpx.get(f"http://127.0.0.1:{api_port}/orders/{channel}/{external_id}", headers=auth, timeout=10)
            status = resp.json().get("status") if resp.status_code == 200 else None
            time.sleep(0.3)
        assert status == "completed"
        # `keys list` shows the key but never its secret; `keys revoke` locks it out at once
        listed = subprocess.run([CLI, "keys", "list"], env=env, capture_output=True, text=True, timeout=60)
        assert "it-viewer" in listed.stdout and "viewer" in listed.stdout and key.split("_", 2)[2] not in listed.stdout
        revoked = subprocess.run([CLI, "keys", "revoke", "it-viewer"], env=env, capture_output=True, text=True,
                                 timeout=60)
        assert revoked.returncode == 0, revoked.stderr
        resp = httpx.get(f"http://127.0.0.1:{api_port}/orders/{channel}/{external_id}", headers=auth, timeout=10)
        assert resp.status_code == 401 and "revoked" in resp.json()["detail"]
    finally:
        for proc in (worker, api):
            proc.send_signal(signal.SIGTERM)
        outputs = [proc.communicate(timeout=30)[0] for proc in (worker, api)]
    assert worker.returncode == 0, outputs[0][-2000:]
    assert "worker.stopped" in outputs[0]
    assert api.returncode == 0, outputs[1][-2000:]
