"""RETAILFLOW_ENV=production refuses to start the API or the worker with a published default or an empty
secret, naming each setting; development (the default) starts as before."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.settings import ProductionConfigError, Settings

CLI = str(Path(sys.executable).parent / "retailflow")
SET = {"shopify_webhook_secret": "shpss_a1b2c3", "square_webhook_signature_key": "sq-key-9f8e",
       "local_wms_webhook_secret": "wms-7d6c",
       "codec_keys": f"p1:{base64.b64encode(os.urandom(32)).decode()}"}  # the payload codec's (runtime/codec.py)


@pytest.fixture(autouse=True)
def _no_retailflow_env(monkeypatch):
    for key in [k for k in os.environ if k.startswith("RETAILFLOW_")]:
        monkeypatch.delenv(key)


def settings(**kw) -> Settings:
    return Settings(_env_file=None, **kw)


def test_development_accepts_the_defaults():
    assert settings().production_problems() == []
    settings().check_production()


def test_production_names_every_default_secret_in_use():
    problems = settings(env="production").production_problems()
    assert problems == ["RETAILFLOW_SHOPIFY_WEBHOOK_SECRET is the published development default",
                        "RETAILFLOW_SQUARE_WEBHOOK_SIGNATURE_KEY is the published development default",
                        "RETAILFLOW_LOCAL_WMS_WEBHOOK_SECRET is the published development default",
                        "RETAILFLOW_CODEC_KEYS (or RETAILFLOW_CODEC_KEY_FILE) is not set"]


def test_production_checks_the_credentials_of_the_selected_vendors_only():
    ok = settings(env="production", **SET)
    assert ok.production_problems() == []  # embedded adapters: no vendor credentials in use
    vendors = settings(env="production", erp_adapter="erpnext", wms_adapter="shipstation",
                       marketplace_adapters={"shopify": "shopify"}, erpnext_api_secret="real", **SET)
    assert vendors.production_problems() == [
        "RETAILFLOW_ERPNEXT_API_KEY is the published development default",
        "RETAILFLOW_SHIPSTATION_API_KEY is the published development default",
        "RETAILFLOW_SHIPSTATION_API_SECRET is the published development default",
        "RETAILFLOW_SHIPSTATION_WEBHOOK_TOKEN is not set",
        "RETAILFLOW_SHOPIFY_ADMIN_ACCESS_TOKEN is the published development default"]


def test_an_empty_secret_is_refused():
    s = settings(env="production", **{**SET, "shopify_webhook_secret": "  "})
    assert s.production_problems() == ["RETAILFLOW_SHOPIFY_WEBHOOK_SECRET is not set"]


def test_the_api_refuses_to_start():
    from api.app import create_app

    with pytest.raises(ProductionConfigError, match="RETAILFLOW_LOCAL_WMS_WEBHOOK_SECRET"):
        create_app(settings(env="production"))
    assert create_app(settings(env="production", **SET)) is not None


async def test_the_worker_refuses_to_start_before_it_connects(tmp_path):
    from worker import run_worker

    with pytest.raises(ProductionConfigError, match="RETAILFLOW_SHOPIFY_WEBHOOK_SECRET"):
        # nothing listens on this address: a worker that got past the check would fail differently
        await run_worker(settings(env="production", data_dir=tmp_path, temporal_address="127.0.0.1:9"))


@pytest.mark.parametrize("command", ["api", "worker"])
def test_the_commands_exit_with_one_line_per_setting(tmp_path, command):
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "RETAILFLOW_ENV": "production",
           "RETAILFLOW_DATA_DIR": str(tmp_path), "RETAILFLOW_SHOPIFY_WEBHOOK_SECRET": "shpss_a1b2c3"}
    done = subprocess.run([CLI, command], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "RETAILFLOW_SQUARE_WEBHOOK_SIGNATURE_KEY is the published development default" in done.stderr
    assert "RETAILFLOW_LOCAL_WMS_WEBHOOK_SECRET" in done.stderr and "SHOPIFY_WEBHOOK_SECRET" not in done.stderr
    assert "RETAILFLOW_CODEC_KEYS (or RETAILFLOW_CODEC_KEY_FILE) is not set" in done.stderr
    assert not (tmp_path / "retailflow.db").exists()  # refused before touching the database
