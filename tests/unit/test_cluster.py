"""Client connection options for a Temporal cluster (plain, TLS, mTLS, API key) and the worker-fleet settings."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError
from temporalio.service import TLSConfig

from runtime.cluster import ClusterConfigError, client_connect_options
from runtime.settings import Settings

CERT = b"-----BEGIN CERTIFICATE-----\nMIIBclient\n-----END CERTIFICATE-----\n"
KEY = b"-----BEGIN PRIVATE KEY-----\nMIIEkey\n-----END PRIVATE KEY-----\n"
CA = b"-----BEGIN CERTIFICATE-----\nMIIBca\n-----END CERTIFICATE-----\n"


@pytest.fixture(autouse=True)
def _no_retailflow_env(monkeypatch):
    """The defaults under test, whatever the shell running the tests exports."""
    for key in [k for k in os.environ if k.startswith("RETAILFLOW_")]:
        monkeypatch.delenv(key)


def settings(**kw) -> Settings:
    return Settings(_env_file=None, **kw)


@pytest.fixture
def pems(tmp_path):
    paths = {}
    for name, data in (("cert", CERT), ("key", KEY), ("ca", CA)):
        paths[name] = tmp_path / f"{name}.pem"
        paths[name].write_bytes(data)
    return paths


def test_plaintext_by_default():
    assert client_connect_options(settings()) == {
        "target_host": "localhost:7233", "namespace": "default", "tls": False}


def test_namespace_and_address_from_settings():
    opts = client_connect_options(settings(temporal_address="temporal:7233", temporal_namespace="retailflow"))
    assert (opts["target_host"], opts["namespace"]) == ("temporal:7233", "retailflow")


def test_api_key_turns_tls_on():
    opts = client_connect_options(settings(
        temporal_address="retailflow.a1b2c.tmprl.cloud:7233", temporal_namespace="retailflow.a1b2c",
        temporal_api_key="secret-key"))
    assert opts == {"target_host": "retailflow.a1b2c.tmprl.cloud:7233", "namespace": "retailflow.a1b2c",
                    "tls": True, "api_key": "secret-key"}


def test_api_key_from_environment_is_secret(monkeypatch):
    monkeypatch.setenv("RETAILFLOW_TEMPORAL_API_KEY", "from-env")
    s = Settings(_env_file=None)
    assert "from-env" not in repr(s)
    assert client_connect_options(s)["api_key"] == "from-env"


def test_tls_alone_uses_system_roots():
    assert client_connect_options(settings(temporal_tls=True))["tls"] is True


def test_mtls_reads_the_pem_files(pems):
    opts = client_connect_options(settings(
        temporal_tls_client_cert_path=pems["cert"], temporal_tls_client_key_path=pems["key"]))
    tls = opts["tls"]
    assert isinstance(tls, TLSConfig)
    assert (tls.client_cert, tls.client_private_key, tls.server_root_ca_cert, tls.domain) == (CERT, KEY, None, None)
    assert "api_key" not in opts


def test_private_ca_and_server_name(pems):
    tls = client_connect_options(settings(
        temporal_tls_server_ca_path=pems["ca"], temporal_tls_server_name="temporal.internal"))["tls"]
    assert isinstance(tls, TLSConfig)
    assert (tls.server_root_ca_cert, tls.domain, tls.client_cert) == (CA, "temporal.internal", None)


def test_mtls_and_api_key_together(pems):
    opts = client_connect_options(settings(
        temporal_api_key="k", temporal_tls_client_cert_path=pems["cert"], temporal_tls_client_key_path=pems["key"]))
    assert isinstance(opts["tls"], TLSConfig) and opts["api_key"] == "k"


def test_cert_without_key_is_refused(pems):
    with pytest.raises(ClusterConfigError, match="both"):
        client_connect_options(settings(temporal_tls_client_cert_path=pems["cert"]))


def test_missing_file_is_named(tmp_path):
    missing = tmp_path / "nope.pem"
    with pytest.raises(ClusterConfigError, match="nope.pem"):
        client_connect_options(settings(temporal_tls_server_ca_path=missing))


def test_empty_file_is_refused(tmp_path):
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"\n")
    with pytest.raises(ClusterConfigError, match="empty"):
        client_connect_options(settings(temporal_tls_server_ca_path=empty))


def test_tls_off_with_credentials_is_refused(pems):
    with pytest.raises(ClusterConfigError, match="plaintext"):
        client_connect_options(settings(temporal_tls=False, temporal_api_key="k"))
    with pytest.raises(ClusterConfigError, match="plaintext"):
        client_connect_options(settings(temporal_tls=False, temporal_tls_server_ca_path=pems["ca"]))


def test_blank_api_key_is_refused():
    with pytest.raises(ClusterConfigError, match="empty"):
        client_connect_options(settings(temporal_api_key="  "))


def test_fleet_settings_from_environment(monkeypatch):
    monkeypatch.setenv("RETAILFLOW_PARTNER_ACTIVITY_RATE_LIMITS", '{"retailflow-erp": 5, "retailflow-tax": 0.5}')
    monkeypatch.setenv("RETAILFLOW_WORKER_GRACEFUL_SHUTDOWN_SECONDS", "30")
    s = Settings(_env_file=None)
    assert s.partner_activity_rate_limits == {"retailflow-erp": 5.0, "retailflow-tax": 0.5}
    assert s.worker_graceful_shutdown_seconds == 30
    with pytest.raises(ValidationError):
        Settings(_env_file=None, worker_graceful_shutdown_seconds=-1)


async def test_api_and_worker_connect_with_the_same_options(monkeypatch, pems):
    """The API's Temporal client is built exactly like the worker's: address, namespace, mTLS, API key, data
    converter and interceptors (the API used to connect with address and namespace only)."""
    import temporalio.client
    from fastapi import HTTPException

    import worker
    from api.deps import TemporalConnector

    calls: list[dict] = []

    async def fake_connect(**kwargs):
        calls.append(kwargs)
        raise ConnectionRefusedError("no cluster in a unit test")

    monkeypatch.setattr(temporalio.client.Client, "connect", staticmethod(fake_connect))
    s = settings(temporal_address="cluster.example:7233", temporal_namespace="retail.prod",
                 temporal_api_key="k3y", temporal_tls_client_cert_path=pems["cert"],
                 temporal_tls_client_key_path=pems["key"], temporal_tls_server_ca_path=pems["ca"])
    with pytest.raises(ConnectionRefusedError):
        await worker.connect_client(s)
    with pytest.raises(HTTPException) as refused:
        await TemporalConnector(s).get()
    assert refused.value.status_code == 503
    worker_kw, api_kw = calls

    def comparable(kw: dict) -> dict:
        return {**kw, "interceptors": [type(i) for i in kw["interceptors"]]}

    assert comparable(api_kw) == comparable(worker_kw)
    assert api_kw["api_key"] == "k3y" and isinstance(api_kw["tls"], TLSConfig)
    assert api_kw["tls"].client_cert == CERT and api_kw["tls"].server_root_ca_cert == CA
    assert api_kw["target_host"] == "cluster.example:7233" and api_kw["namespace"] == "retail.prod"
