"""docker-compose.temporal.yml, checked without a Docker engine: services, pinned images, ports, healthchecks,
start order, that every RETAILFLOW_* variable is a setting (and parses as one), and that the namespace job
registers exactly the search attributes the workflows use."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

from runtime.settings import SEARCH_ATTRIBUTES, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.temporal.yml"
LONG_RUNNING = {"postgresql", "temporal", "temporal-ui", "api", "worker"}
ONE_SHOT = {"temporal-schema", "temporal-namespace", "migrate"}
APP = {"migrate", "api", "worker"}
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


# stand-ins that must parse: the codec keys (a test key, 32 bytes of "k"), the URLs
STAND_INS = {"RETAILFLOW_LOG_LEVEL": "INFO", "RETAILFLOW_CODEC_KEYS": "k1:a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=",
             "RETAILFLOW_PUBLIC_API_URL": "https://api.example.com",
             "TEMPORAL_UI_PUBLIC_URL": "https://temporal.example.com"}


def _interpolate(value: str) -> str:
    """What `docker compose` substitutes, with a stand-in for each variable taken from .env."""
    return INTERPOLATION.sub(lambda m: STAND_INS.get(m.group(1), f"x-{m.group(1).lower()}"), value)


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment as a mapping"
    return {k: str(v) for k, v in env.items()}


def _depends(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    assert isinstance(deps, dict), "depends_on with conditions, not a bare list"
    return {name: spec["condition"] for name, spec in deps.items()}


def test_services(services):
    assert set(services) == LONG_RUNNING | ONE_SHOT


def test_images_are_pinned(services):
    for name, svc in services.items():
        image = svc["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image!r} is not a pinned version"
    assert services["postgresql"]["image"].startswith("postgres:")
    assert services["temporal"]["image"].startswith("temporalio/server:")  # not the deprecated auto-setup
    assert services["temporal-ui"]["image"].startswith("temporalio/ui:")
    for name in ("temporal-schema", "temporal-namespace"):
        assert services[name]["image"].startswith("temporalio/admin-tools:")
    # admin-tools and server of the same release: the schema the tool writes is the one the server expects
    assert services["temporal"]["image"].split(":")[1] == services["temporal-schema"]["image"].split(":")[1]
    for name in APP:
        assert services[name]["build"]["dockerfile"] == "Dockerfile"
        assert services[name]["image"] == services["api"]["image"]


def test_ports(services):
    def host_ports(svc):
        """(host address, host port) → container port; an address-less mapping binds every interface."""
        out = {}
        for p in svc.get("ports", []):
            parts = str(p).split(":")
            out[(parts[0] if len(parts) == 3 else "0.0.0.0", parts[-2])] = parts[-1]
        return out

    # only the API and the Web UI (both behind sign-in); Temporal's frontend on the compose network only
    # (tests/unit/test_deployment_exposure.py checks the sign-in that goes with it)
    assert "ports" not in services["temporal"]
    assert host_ports(services["temporal-ui"]) == {("0.0.0.0", "8080"): "8080"}
    assert host_ports(services["api"]) == {("0.0.0.0", "8000"): "8000"}
    assert _env(services["api"])["RETAILFLOW_API_PORT"] == "8000"
    assert _env(services["api"])["RETAILFLOW_API_HOST"] == "0.0.0.0"
    # the database is reached on the compose network only
    assert "ports" not in services["postgresql"]
    # `--scale worker=N`: no fixed name, no host port
    assert "ports" not in services["worker"] and "container_name" not in services["worker"]
    assert not any("container_name" in svc for svc in services.values())


def test_healthchecks(services):
    for name in ("postgresql", "temporal", "api"):
        check = services[name]["healthcheck"]["test"]
        assert check[0] in ("CMD", "CMD-SHELL") and len(check) > 1, name
    assert "pg_isready" in " ".join(services["postgresql"]["healthcheck"]["test"])
    assert "7233" in services["temporal"]["healthcheck"]["test"]
    assert "/healthz" in " ".join(services["api"]["healthcheck"]["test"])


def test_start_order(services):
    assert _depends(services["temporal-schema"]) == {"postgresql": "service_healthy"}
    assert _depends(services["temporal"]) == {"temporal-schema": "service_completed_successfully"}
    assert _depends(services["temporal-namespace"]) == {"temporal": "service_healthy"}
    assert _depends(services["temporal-ui"]) == {"temporal": "service_healthy"}
    assert _depends(services["migrate"]) == {"postgresql": "service_healthy"}
    for name in ("api", "worker"):
        assert _depends(services[name]) == {"migrate": "service_completed_successfully",
                                            "temporal-namespace": "service_completed_successfully"}
    for name, svc in services.items():
        for dep, condition in _depends(svc).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy; it has no check"
            elif condition == "service_completed_successfully":
                assert dep in ONE_SHOT, f"{name} waits for {dep} to exit, but it runs forever"
            else:
                pytest.fail(f"{name} → {dep}: unexpected condition {condition}")
    for name in ONE_SHOT:  # a one-shot job may retry, but is never restarted after it succeeded
        assert services[name].get("restart", "no").startswith(("no", "on-failure")), name


def test_retailflow_env_vars_are_settings(services):
    fields = set(Settings.model_fields)
    for name in APP:
        env = _env(services[name])
        assert env, name
        for key in env:
            assert key.startswith("RETAILFLOW_"), f"{name}: {key} — configure retailflow only via RETAILFLOW_*"
            assert key.removeprefix("RETAILFLOW_").lower() in fields, f"{name}: {key} is not a setting"


def test_retailflow_env_parses_as_settings(services, monkeypatch):
    for name in APP:
        with monkeypatch.context() as m:
            for key, value in _env(services[name]).items():
                m.setenv(key, _interpolate(value))
            settings = Settings(_env_file=None)
        url = make_url(settings.effective_database_url)
        assert (url.drivername, url.host, url.database) == ("postgresql+psycopg", "postgresql", "retailflow")
        assert settings.temporal_address == "temporal:7233"
        assert settings.temporal_namespace == "retailflow"
    pg = _env(services["postgresql"])
    assert (pg["POSTGRES_USER"], pg["POSTGRES_DB"]) == ("retailflow", "retailflow")
    worker = _env(services["worker"])
    with monkeypatch.context() as m:
        for key, value in worker.items():
            m.setenv(key, _interpolate(value))
        grace = Settings(_env_file=None).worker_graceful_shutdown_seconds
    assert grace > 0
    assert int(services["worker"]["stop_grace_period"].removesuffix("s")) > grace


def test_secrets_are_required_not_defaulted(services):
    env = _env(services["api"])
    for key in ("RETAILFLOW_SHOPIFY_WEBHOOK_SECRET", "RETAILFLOW_LOCAL_WMS_WEBHOOK_SECRET",
                "RETAILFLOW_SQUARE_WEBHOOK_SIGNATURE_KEY"):
        assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", env[key]), f"{key} must come from .env, not a default"
    assert ":?" in _env(services["postgresql"])["POSTGRES_PASSWORD"]


def test_the_stack_runs_in_production_mode_with_every_secret_it_uses_from_env(services):
    """RETAILFLOW_ENV=production for the API and the workers, and each secret that mode checks is required
    from .env (so the stack starts only with real values)."""
    for name in ("api", "worker"):
        env = _env(services[name])
        assert env["RETAILFLOW_ENV"] == "production"
        with pytest.MonkeyPatch.context() as m:
            for key in [k for k in os.environ if k.startswith("RETAILFLOW_")]:
                m.delenv(key)
            for key, value in env.items():
                m.setenv(key, _interpolate(value))
            s = Settings(_env_file=None)
            assert s.env == "production" and s.production_problems() == []
            for field in s.secrets_in_use():
                assert f"RETAILFLOW_{field.upper()}" in env, f"{name}: {field} is checked but not passed"


def test_namespace_and_search_attributes(services):
    job = _env(services["temporal-namespace"])
    pairs = dict(p.split("=", 1) for p in job["SEARCH_ATTRIBUTES"].split())
    assert pairs == SEARCH_ATTRIBUTES
    assert job["NAMESPACE"] == _env(services["worker"])["RETAILFLOW_TEMPORAL_NAMESPACE"]
    assert job["NAMESPACE"] == _env(services["api"])["RETAILFLOW_TEMPORAL_NAMESPACE"]
    assert _env(services["temporal-ui"])["TEMPORAL_DEFAULT_NAMESPACE"] == job["NAMESPACE"]
    script = _mounted_script(services["temporal-namespace"])
    assert "operator namespace create" in script and "operator search-attribute create" in script
    assert "$SEARCH_ATTRIBUTES" in script


def _mounted_script(svc: dict) -> str:
    command = svc["command"][-1]
    for volume in svc["volumes"]:
        host, container = volume.split(":")[:2]
        if container == command:
            path = ROOT / host
            assert path.is_file(), f"{host} is mounted but missing"
            return path.read_text()
    raise AssertionError(f"{command} is not mounted")


def test_temporal_schema_setup_with_postgres12(services):
    script = _mounted_script(services["temporal-schema"])
    assert "temporal-sql-tool --plugin postgres12" in script
    for step in ("create", "setup-schema -v 0.0", "update-schema -d"):
        assert step in script
    assert "/etc/temporal/schema/postgresql/v12" in script
    assert "/temporal/versioned" in script and "/visibility/versioned" in script
    server = _env(services["temporal"])
    job = _env(services["temporal-schema"])
    assert server["DB"] == "postgres12"
    for key in ("POSTGRES_SEEDS", "POSTGRES_USER", "POSTGRES_PWD", "DBNAME", "VISIBILITY_DBNAME"):
        assert server[key] == job[key], key
    assert server["BIND_ON_IP"] == "0.0.0.0"
    dynamic = server["DYNAMIC_CONFIG_FILE_PATH"]
    mounts = dict(v.split(":")[:2][::-1] for v in services["temporal"]["volumes"])
    host_dir = mounts[str(Path(dynamic).parent)]
    config = yaml.safe_load((ROOT / host_dir / Path(dynamic).name).read_text())
    assert config["system.forceSearchAttributesCacheRefreshOnRead"][0]["value"] is True


def test_dockerfile():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\s*$", text, re.M)
    assert re.search(r"^RUN pip install \.", text, re.M)
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1] not in ("root", "0")
    assert re.search(r'^CMD \["retailflow", "api"\]', text, re.M)  # exec form: PID 1 receives SIGTERM
    for path in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for src in path.split():
            assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"


def test_app_commands(services):
    assert services["api"]["command"] == ["retailflow", "api"]
    assert services["worker"]["command"] == ["retailflow", "worker"]
    assert services["migrate"]["command"] == ["retailflow", "db", "upgrade"]
