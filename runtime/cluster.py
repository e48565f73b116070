"""How the client reaches a Temporal cluster: plain (the dev server, the compose stack), TLS, mTLS or an API
key (Temporal Cloud, a self-hosted cluster behind TLS). Pure: builds `Client.connect` keyword arguments from
settings, so it is tested without a server. `connect_client` is the one way every process connects (the
worker, the API, the CLI, the bench). See docs/deployment.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from runtime.codec import data_converter, keyring_from_settings
from runtime.observability import CorrelationInterceptor
from runtime.settings import Settings, TemporalSettings
from runtime.tracing import tracing_interceptors


class ClusterConfigError(ValueError):
    """The TLS / API key settings contradict each other or name a file that cannot be read."""


def _read_pem(path: Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise ClusterConfigError(f"cannot read the {what} at {path}: {exc.strerror or exc}") from None
    if not data.strip():
        raise ClusterConfigError(f"the {what} at {path} is empty")
    return data


def client_connect_options(settings: TemporalSettings) -> dict[str, Any]:
    """`target_host`, `namespace`, `tls` and (when set) `api_key` for `temporalio.client.Client.connect`.

    * nothing set: plaintext (the dev server, the compose stack);
    * `RETAILFLOW_TEMPORAL_API_KEY`: TLS with the system roots and the key as a Bearer token (Temporal Cloud);
    * `RETAILFLOW_TEMPORAL_TLS_CLIENT_CERT_PATH` + `..._KEY_PATH`: mTLS (Temporal Cloud's certificate auth or a
      self-hosted cluster); `..._SERVER_CA_PATH` and `..._SERVER_NAME` for a private CA / SNI override;
    * `RETAILFLOW_TEMPORAL_TLS=true` alone: TLS with the system roots, no client identity.
    """
    cert = _read_pem(settings.temporal_tls_client_cert_path, "TLS client certificate")
    key = _read_pem(settings.temporal_tls_client_key_path, "TLS client private key")
    if (cert is None) != (key is None):
        raise ClusterConfigError(
            "mTLS needs both RETAILFLOW_TEMPORAL_TLS_CLIENT_CERT_PATH and RETAILFLOW_TEMPORAL_TLS_CLIENT_KEY_PATH")
    ca = _read_pem(settings.temporal_tls_server_ca_path, "TLS server CA certificate")
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    if api_key is not None and not api_key.strip():
        raise ClusterConfigError("RETAILFLOW_TEMPORAL_API_KEY is set but empty")

    custom_tls = cert is not None or ca is not None or settings.temporal_tls_server_name is not None
    if settings.temporal_tls is False and (custom_tls or api_key):
        raise ClusterConfigError(
            "RETAILFLOW_TEMPORAL_TLS=false contradicts the API key / TLS certificate settings: "
            "an API key or a certificate is never sent in plaintext")

    tls: bool | TLSConfig
    if custom_tls:
        tls = TLSConfig(server_root_ca_cert=ca, domain=settings.temporal_tls_server_name,
                        client_cert=cert, client_private_key=key)
    else:
        tls = bool(settings.temporal_tls) or api_key is not None

    options: dict[str, Any] = {
        "target_host": settings.temporal_address,
        "namespace": settings.temporal_namespace,
        "tls": tls,
    }
    if api_key is not None:
        options["api_key"] = api_key
    return options


def client_options(settings: Settings) -> dict[str, Any]:
    """Every keyword argument of `Client.connect` the platform uses: the cluster options above, the pydantic
    data converter with the encryption codec (runtime/codec.py: payloads are sealed before they reach the
    server), and the correlation and tracing interceptors."""
    return {**client_connect_options(settings), "data_converter": data_converter(keyring_from_settings(settings)),
            "interceptors": [CorrelationInterceptor(), *tracing_interceptors(settings)]}


async def connect_client(settings: Settings, *, runtime: Runtime | None = None) -> Client:
    """The one Temporal connection of every retailflow process (worker, API, CLI, bench)."""
    return await Client.connect(**client_options(settings), runtime=runtime)
