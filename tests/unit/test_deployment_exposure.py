"""What the production compose exposes (issue 15, docs/deployment.md "Exposure"): only the API and the Web UI
are published; the Web UI signs users in with OIDC and decrypts payloads through the API's codec endpoint with
the user's token; the codec keys reach the API and every worker; every such value is required from .env."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = re.compile(r"\$\{(?P<var>[A-Z0-9_]+):\?[^}]+\}")


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.temporal.yml").read_text())["services"]


def env(service: dict) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def required(value: str) -> str | None:
    """The variable a value requires from .env (`${VAR:?message}`), if it is exactly that."""
    match = REQUIRED.fullmatch(value)
    return match["var"] if match else None


def test_only_the_api_and_the_web_ui_are_published(services):
    published = {name for name, svc in services.items() if svc.get("ports") or svc.get("network_mode") == "host"}
    assert published == {"api", "temporal-ui"}
    # the frontend is reached by its compose name only: every client of it is a service on the network
    assert "ports" not in services["temporal"]
    assert env(services["api"])["RETAILFLOW_TEMPORAL_ADDRESS"] == "temporal:7233" == \
        env(services["worker"])["RETAILFLOW_TEMPORAL_ADDRESS"]


def test_the_web_ui_signs_users_in_with_oidc(services):
    ui = env(services["temporal-ui"])
    assert ui["TEMPORAL_AUTH_ENABLED"] == "true"
    for var in ("TEMPORAL_AUTH_PROVIDER_URL", "TEMPORAL_AUTH_CLIENT_ID", "TEMPORAL_AUTH_CLIENT_SECRET",
                "TEMPORAL_AUTH_CALLBACK_URL"):
        assert required(ui[var]) == var, f"{var} must be required from .env, not defaulted: {ui[var]!r}"
    assert "openid" in ui["TEMPORAL_AUTH_SCOPES"].split(",")
    assert ui["TEMPORAL_ADDRESS"] == "temporal:7233"  # the frontend on the compose network


def test_the_web_ui_decrypts_through_the_api_codec_with_the_users_token(services):
    ui, api = env(services["temporal-ui"]), env(services["api"])
    endpoint = ui["TEMPORAL_CODEC_ENDPOINT"]
    assert endpoint.endswith("}/codec") and required(endpoint.removesuffix("/codec")) == "RETAILFLOW_PUBLIC_API_URL"
    assert ui["TEMPORAL_CODEC_PASS_ACCESS_TOKEN"] == "true"  # the API verifies the same OIDC token
    assert ui["TEMPORAL_CODEC_INCLUDE_CREDENTIALS"] == "false"
    # the API accepts the Web UI's origin (CORS for /codec/*) and verifies its users' tokens
    assert required(api["RETAILFLOW_CODEC_CORS_ORIGINS"]) == "TEMPORAL_UI_PUBLIC_URL" == \
        required(ui["TEMPORAL_CORS_ORIGINS"])
    for var in ("RETAILFLOW_OIDC_ISSUER", "RETAILFLOW_OIDC_AUDIENCE", "RETAILFLOW_OIDC_JWKS_URL"):
        assert required(api[var]) == var


def test_the_codec_keys_reach_the_api_and_every_worker_from_env(services):
    keys = {name: env(services[name]).get("RETAILFLOW_CODEC_KEYS") for name in ("api", "worker")}
    assert set(keys.values()) != {None} and len(set(keys.values())) == 1, keys  # the same keys everywhere
    assert required(keys["api"]) == "RETAILFLOW_CODEC_KEYS"
    for name, svc in services.items():  # nobody but the retailflow processes holds them
        if not name.startswith(("api", "worker", "migrate")):
            assert "RETAILFLOW_CODEC_KEYS" not in env(svc), name
