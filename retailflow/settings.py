"""All configuration, from environment variables `RETAILFLOW_*` (and an optional `.env`)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SEARCH_ATTRIBUTES: dict[str, str] = {
    "Channel": "Keyword",
    "ExternalOrderId": "Keyword",
    "OrderStatus": "Keyword",
    "NeedsAttention": "Bool",
    "StoreId": "Keyword",
    "SettlementId": "Keyword",
    "Skus": "KeywordList",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RETAILFLOW_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path(".data"), description="Where the embedded stack keeps its files")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default is SQLite at <data_dir>/retailflow.db"
    )

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = "retailflow-orders"

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_base_url: str | None = Field(default=None, description="How the embedded WMS reaches the API")

    shopify_webhook_secret: SecretStr = Field(
        default=SecretStr("retailflow-dev-shopify-secret"),
        description="Shopify app client secret used to verify X-Shopify-Hmac-Sha256",
    )
    shopify_previous_webhook_secret: SecretStr | None = Field(
        default=None, description="The previous secret, accepted during a secret rotation"
    )
    shopify_channel: str = "shopify"
    local_wms_webhook_secret: SecretStr = SecretStr("retailflow-dev-wms-secret")
    local_wms_ship_after_seconds: float = 10.0
    local_wms_poll_seconds: float = 1.0
    local_wms_enabled: bool = Field(default=True, description="Run the embedded WMS shipper inside the worker")
    default_location: str = "MAIN"

    order_sla_hours: int = 48
    allow_backorder: bool = False
    # returns: channels that refund at once (marketplaces such as Amazon); the others refund on receipt
    refund_before_receipt_channels: list[str] = ["amazon"]
    return_window_days: int = 30
    return_receipt_timeout_days: int = 21
    max_webhook_bytes: int = 2 * 1024 * 1024

    metrics_host: str = "127.0.0.1"
    worker_metrics_port: int | None = Field(default=9464, description="Worker's /metrics port; 0 disables")
    temporal_sdk_metrics_port: int | None = Field(default=9465, description="Temporal SDK metrics port; 0 disables")

    otel_enabled: bool = Field(default=False, description="OpenTelemetry tracing of workflows and activities")
    otel_service_name: str = "retailflow"

    log_level: str = "INFO"
    log_json: bool | None = Field(default=None, description="JSON logs; default JSON unless stderr is a TTY")

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'retailflow.db').resolve()}"

    @property
    def shopify_webhook_secrets(self) -> list[SecretStr]:
        return [s for s in (self.shopify_webhook_secret, self.shopify_previous_webhook_secret) if s is not None]

    @property
    def effective_api_base_url(self) -> str:
        return self.api_base_url or f"http://{self.api_host}:{self.api_port}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
