"""All configuration, from environment variables `RETAILFLOW_*` (and an optional `.env`)."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, NonNegativeInt, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from canonical.inventory import ChannelInventoryPolicy
from canonical.pos import PosAccounts
from canonical.stores import LegalEntity, Store, StoreDirectory
from workflows.search_attributes import REGISTRATION

CHANNEL_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")  # as canonical.order.Order.channel allows

# the custom search attributes to register (name → kind), declared once in workflows/search_attributes.py
SEARCH_ATTRIBUTES: dict[str, str] = REGISTRATION

# Settlement amount types → GL accounts (override with RETAILFLOW_FINANCE_ACCOUNT_MAP as JSON). Customer money
# (principal, tax, shipping charged, and the promotions that reduced it) clears the receivable booked at invoicing:
# the clearing account. The sales order is already net of a coupon, so a promotion is no expense here.
# Keys resolve most specific first (canonical.finance.ACCOUNT_RULE_ORDER, docs/finance.md).
DEFAULT_FINANCE_ACCOUNT_MAP: dict[str, str] = {
    "deposit": "1010",  # bank
    "ItemPrice/*": "1150", "Refund/ItemPrice/*": "1150", "charge/amount": "1150", "refund/amount": "1150",
    "ItemFees/Commission": "6100", "ItemFees/RefundCommission": "6100", "ItemFees/VariableClosingFee": "6100",
    "*/fee": "6105",  # payment processing fees (Shopify Payments)
    "ItemFees/FBAPerUnitFulfillmentFee": "6110", "ItemFees/FBAPerOrderFulfillmentFee": "6110",
    "ItemFees/FBAWeightBasedFee": "6110", "ItemFees/ShippingChargeback": "6120", "ItemFees/*": "6190",
    "Promotion/*": "1150", "ItemWithheldTax/*": "2210",
    "other-transaction/Current Reserve Amount": "1160", "other-transaction/Previous Reserve Amount Balance": "1160",
    "reserved_funds/amount": "1160",
    "other-transaction/*": "6140", "adjustment/amount": "6140", "dispute/amount": "6140", "*/Subscription Fee": "6190",
}


# The platform's domains: each can run on its own task queue (and worker group), so a backlog in one (a
# million-line settlement, a flood of stock events) never delays another's workflows (docs/deployment.md).
DOMAINS = ("orders", "returns", "inventory", "finance", "pos", "pricing")


class _Group(BaseSettings):
    """A group of settings: every field is read from `RETAILFLOW_<FIELD>` (or `.env`), as before the grouping."""

    model_config = SettingsConfigDict(env_prefix="RETAILFLOW_", env_file=".env", extra="ignore")


class DatabaseSettings(_Group):
    """The platform database (docs/deployment.md)."""

    data_dir: Path = Field(default=Path(".data"), description="Where the embedded stack keeps its files")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default is SQLite at <data_dir>/retailflow.db"
    )
    migrate_on_start: bool = Field(
        default=True, description="`retailflow worker` and `retailflow api` bring the database to the head "
        "migration before they start (serialized across replicas); false where a release job runs "
        "`retailflow db upgrade` first")

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'retailflow.db').resolve()}"


class TemporalSettings(_Group):
    """The Temporal cluster and the task queues (docs/deployment.md): address, namespace, TLS / mTLS / API key, domains and partner queues."""

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = "retailflow-orders"
    temporal_tls: bool | None = Field(
        default=None, description="TLS to the frontend; default on when an API key or a client cert is set")
    temporal_api_key: SecretStr | None = Field(default=None, description="Temporal Cloud API key (Bearer)")
    temporal_tls_client_cert_path: Path | None = Field(default=None, description="mTLS client certificate (PEM)")
    temporal_tls_client_key_path: Path | None = Field(default=None, description="mTLS client private key (PEM)")
    temporal_tls_server_ca_path: Path | None = Field(
        default=None, description="CA that signed the server's certificate (PEM); default the system roots")
    temporal_tls_server_name: str | None = Field(default=None, description="TLS SNI / server name override")
    worker_versioning: bool = Field(
        default=False, description="Worker Deployment Versioning (docs/deployment.md, 'Safe deploys'): workers poll "
        "as version <deployment>.<build id>; orders and returns stay on the version they started on (pinned), the "
        "other workflows move to the current version (auto-upgrade). Set the current version with `retailflow "
        "deploy set-current` after a new version's workers are up")
    worker_deployment_name: str = Field(default="retailflow", description="The Worker Deployment's name")
    worker_build_id: str | None = Field(
        default=None, description="This worker's build id; default the package version (retailflow 0.1.0 → 0.1.0)")

    @property
    def effective_worker_build_id(self) -> str:
        if self.worker_build_id:
            return self.worker_build_id
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("retailflow")
        except PackageNotFoundError:
            return "0.0.0+source"
    partner_activity_rate_limits: dict[str, float] = Field(
        default_factory=dict, description="Activity-only workers per partner task queue and their server-side "
        'activities/second, e.g. {"retailflow-erp": 5}')
    partner_fairness_key_rate_limits: dict[str, float] = Field(
        default_factory=dict, description="Partner queue → activities/second per fairness key (the shop: an "
        "activity inherits its workflow's key, the order's channel), for a partner whose quota is per shop, e.g. "
        '{"retailflow-shopify": 2} (Shopify\'s Admin API quota is per shop): one shop\'s burst waits in its own '
        "lane instead of spending the others' share. Set on the Temporal server at worker start "
        "(needs matching.enableFairness)")
    breaker_failure_threshold: int = Field(default=5, ge=1, description="Transient failures in a row on a partner "
                                           "queue that open its circuit breaker (workflows/partner_breaker.py)")
    breaker_open_seconds: float = Field(default=30.0, gt=0, description="How long an open breaker holds the "
                                        "partner queue (rate 0) before it lets a probe through")
    breaker_probe_rate: float = Field(default=0.2, gt=0, description="Activities/second a half-open breaker "
                                      "lets through: the waiting activities are the probe")
    domain_task_queues: dict[str, str] = Field(
        default_factory=dict, description="Task queue per domain (orders, returns, inventory, finance, pos), e.g. "
        '{"finance": "retailflow-finance"}; a domain not listed uses RETAILFLOW_TASK_QUEUE. Every process (API, '
        "workers, CLI) needs the same value")
    worker_domains: list[str] = Field(
        default_factory=lambda: list(DOMAINS), description="The domains whose workflows this worker process runs, "
        'e.g. ["finance"] for a finance-only worker group')
    activity_task_queues: dict[str, str] = Field(
        default_factory=dict, description="Activity name → task queue the workflows send that step to, e.g. "
        '{"create_sales_order": "retailflow-erp"}: a partner queue of RETAILFLOW_PARTNER_ACTIVITY_RATE_LIMITS. '
        "A key `<activity>@<channel>` routes that step of one channel's orders and returns only, e.g. "
        '{"confirm_shipment@amazon": "retailflow-amazon", "confirm_shipment": "retailflow-shopify"}: each '
        "marketplace on its own partner queue, so its circuit breaker holds only its own steps; a run looks up "
        "`<activity>@<its channel>` first, then `<activity>`. Fixed per run when it starts")
    worker_max_concurrent_workflow_tasks: int = Field(
        default=8, ge=1, le=1000, description="Workflow tasks one worker runs at once (the SDK's default is 100). "
        "Workflow code is CPU on one event loop, so more in flight adds no throughput; a small number keeps the "
        "backlog on the Temporal server, where priority and fairness order it (a task the worker has already taken "
        "waits in the worker's FIFO instead): measured with `retailflow simulate peak`, docs/operations.md")
    worker_sticky_queue_timeout_seconds: float = Field(
        default=10.0, gt=0, le=600, description="How long a workflow's next task waits on the worker that has it "
        "cached (its sticky queue, first come first served) before any worker may take it from the shared queue, "
        "where priority and fairness order it (the SDK's default is 10 s)")
    worker_graceful_shutdown_seconds: float = Field(
        default=10.0, ge=0, description="On SIGTERM, running activities get this long to finish before they are "
        "cancelled and handed back to the server for another worker")

    @field_validator("partner_fairness_key_rate_limits")
    @classmethod
    def _positive_key_rates(cls, v: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        bad = sorted(q for q, rate in v.items() if not q or rate <= 0)
        if bad:
            raise ValueError(f"per-key rate of {', '.join(bad)}: must be a positive number of activities/second")
        unknown = sorted(set(v) - set(info.data.get("partner_activity_rate_limits") or {}))
        if unknown:
            raise ValueError(f"per-key rate of {', '.join(unknown)}: not a partner queue of "
                             "RETAILFLOW_PARTNER_ACTIVITY_RATE_LIMITS")
        return v

    @field_validator("activity_task_queues")
    @classmethod
    def _activity_routes(cls, v: dict[str, str]) -> dict[str, str]:
        for key, queue in v.items():
            activity, at, channel = key.partition("@")
            if not activity or not queue or (at and not CHANNEL_NAME.fullmatch(channel)):
                raise ValueError(f"activity route {key!r} → {queue!r}: the key is an activity name or "
                                 "<activity>@<channel> (a channel as orders name it, e.g. amazon), the value a "
                                 "task queue")
        return v

    @field_validator("domain_task_queues", "worker_domains")
    @classmethod
    def _known_domains(cls, v):
        unknown = sorted(set(v) - set(DOMAINS))
        if unknown:
            raise ValueError(f"unknown domain(s) {', '.join(unknown)}; the domains are {', '.join(DOMAINS)}")
        return v

    def unserved_activity_queues(self) -> list[str]:
        """Queues RETAILFLOW_ACTIVITY_TASK_QUEUES routes steps to that no worker of these settings polls (neither a
        partner queue nor a domain's): those steps would wait for ever unless another worker group serves them."""
        served = set(self.partner_activity_rate_limits) | {self.queue_for(d) for d in DOMAINS}
        return sorted(set(self.activity_task_queues.values()) - served)

    def queue_for(self, domain: str) -> str:
        """The task queue a domain's workflows run on (RETAILFLOW_DOMAIN_TASK_QUEUES, else RETAILFLOW_TASK_QUEUE)."""
        if domain not in DOMAINS:
            raise ValueError(f"unknown domain {domain!r}")
        return self.domain_task_queues.get(domain) or self.task_queue


class ApiSettings(_Group):
    """The API process: bind address, how the embedded WMS reaches it, webhook size limit."""

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_base_url: str | None = Field(default=None, description="How the embedded WMS reaches the API")
    max_webhook_bytes: int = 2 * 1024 * 1024
    quarantine_unsigned_bytes: int = Field(
        default=4096, ge=0, description="Of a delivery refused for its signature (401), only this many bytes are "
        "quarantined: an unauthenticated sender cannot fill the database")
    quarantine_unsigned_max_rows: int = Field(
        default=10_000, ge=0, description="At most this many deliveries refused for their signature are kept; "
        "the oldest go first. Authentic deliveries not yet taken are never dropped")
    quarantine_retention_days: int = Field(
        default=30, ge=1, description="`retailflow ops prune-quarantine` deletes resolved copies and refused "
        "signatures older than this; unresolved authentic deliveries stay until an analyst resolves them")
    max_request_bytes: int = Field(
        default=2 * 1024 * 1024, gt=0, description="Every other route refuses a larger body with 413 before "
        "reading it whole (webhooks: RETAILFLOW_MAX_WEBHOOK_BYTES)")
    @property
    def effective_api_base_url(self) -> str:
        return self.api_base_url or f"http://{self.api_host}:{self.api_port}"


class OrderSettings(_Group):
    """Order-to-fulfillment and returns (docs/returns.md)."""

    order_sla_hours: int = 48
    allow_backorder: bool = False
    fulfillment_network_file: Path = Field(
        default=Path(__file__).resolve().parents[1] / "fulfillment.toml", description="The fulfillment network: "
        "nodes, sourcing policy per channel, kits, item flags (docs/fulfillment.md); default the repository's "
        "fulfillment.toml")
    supplier_poll_seconds: int = Field(
        default=900, ge=1, le=86_400, description="How often a split order reads its drop-ship suppliers' answers "
        "(855, 856, 810) from the drop folder; taken by each order when it starts")
    split_fulfillment_channels: list[str] = Field(
        default_factory=list, description="Channels whose orders are sourced over the fulfillment network (reserved, "
        "released and tracked per node; docs/fulfillment.md); each needs a policy in the network file. Empty: every "
        "order is released whole to the one warehouse")
    # drop-ship suppliers over EDI (`supplier:edi` nodes; docs/fulfillment.md, "Supplier settings")
    supplier_drop_folder: Path | None = Field(
        default=None, description="The EDI drop folder (outbound/, inbound/, archive/, quarantine/) of the "
        "embedded stack; default <data_dir>/edi. Ignored when supplier_sftp_host is set")
    supplier_edi_id: str = Field(default="RETAILFLOW", max_length=15, description="Our X12 interchange id (ISA06 "
                                 "of what we send, ISA08 of what we accept)")
    supplier_edi_qualifier: str = Field(default="ZZ", min_length=2, max_length=2, description="Our ISA05 qualifier")
    supplier_edi_usage: str = Field(default="P", pattern="^[PT]$", description="ISA15: P production, T test")
    supplier_partner_qualifiers: dict[str, str] = Field(
        default_factory=dict, description='Supplier id (the node id) → its ISA qualifier, e.g. {"ACME": "01"}; '
        'default "ZZ"')
    supplier_edifact_partners: list[str] = Field(
        default_factory=list, description="Suppliers that take EDIFACT ORDERS D.96A instead of an X12 850")
    supplier_sftp_host: str | None = Field(default=None, description="The suppliers' SFTP server; unset: the local "
                                           "drop folder")
    supplier_sftp_port: int = 22
    supplier_sftp_username: str = ""
    supplier_sftp_password: SecretStr | None = None
    supplier_sftp_private_key_pem: SecretStr | None = None
    supplier_sftp_known_host_key: str = Field(default="", description='The server\'s host key as in known_hosts '
                                              '("ssh-ed25519 AAAA..."); required with supplier_sftp_host')
    supplier_sftp_base_dir: str = "."
    # returns: channels that refund at once (marketplaces such as Amazon); the others refund on receipt
    refund_before_receipt_channels: list[str] = ["amazon"]
    return_window_days: int = 30
    return_receipt_timeout_days: int = 21
    fairness_weights: dict[str, float] = Field(
        default_factory=dict, description="Task-queue fairness weight per store (channel, POS store or settlement "
        "provider; default 1.0): within a priority, stores are served in proportion to their weight "
        "(workflows/priorities.py)")
    order_burst_per_minute: float = Field(
        default=30, ge=0, description="A store's orders per minute (per intake process) that start at order "
        "priority; the orders above it (a flash sale) start one level lower, behind the other stores' orders, so "
        "they keep their latency (starters/bursts.py). 0: never demote")
    order_burst_allowance: int = Field(default=10, ge=1, description="Orders a store may start at once above "
                                       "RETAILFLOW_ORDER_BURST_PER_MINUTE before they are demoted (the bucket)")

    @field_validator("fairness_weights")
    @classmethod
    def _positive_weights(cls, v: dict[str, float]) -> dict[str, float]:
        bad = sorted(k for k, w in v.items() if not (0 < w <= 1000))
        if bad:
            raise ValueError(f"fairness weights must be > 0 and <= 1000: {', '.join(bad)}")
        return v


class InventorySettings(_Group):
    """Inventory availability (docs/inventory.md)."""

    default_location: str = "MAIN"

    inventory_channels: dict[str, ChannelInventoryPolicy] = Field(
        default_factory=lambda: {
            "shopify": ChannelInventoryPolicy(locations=["MAIN"], low_stock_threshold=5, publish_window_seconds=60),
            "amazon": ChannelInventoryPolicy(locations=["MAIN"], share=Decimal("0.5"), safety_stock=2,
                                             low_stock_threshold=3, publish_window_seconds=300),
        },
        description='Per channel: eligible locations, allocation share, safety stock per location, low-stock '
        'threshold, publish window, backorder policy; JSON, e.g. {"shopify": {"locations": ["MAIN"], '
        '"share": "0.8", "safety_stock": 1, "low_stock_threshold": 5, "publish_window_seconds": 60}}')
    inventory_store_buffers: dict[str, NonNegativeInt] = Field(
        default_factory=dict, description='Per store location, units held back from every online channel (the '
        'shelf the store sells from), on top of each channel\'s safety stock; JSON location → units, e.g. '
        '{"STORE-1": 2}')
    inventory_sync_events_per_run: int = Field(
        default=500, gt=0, description="InventorySync continues as new after this many events")
    inventory_outbox_poll_seconds: float = Field(
        default=2.0, ge=0, description="How often the worker tells InventorySync about ERP stock changes; 0 off")
    inventory_drift_threshold: int = Field(
        default=10, ge=0, description="Drift beyond this many units per SKU and location parks for an analyst")


class FinanceSettings(_Group):
    """Settlement reconciliation (docs/finance.md)."""

    finance_account_map: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_FINANCE_ACCOUNT_MAP),
        description="Settlement amount type/description → GL account; keys `Type/Description`, `Type/*`, "
        "`*/Description`, `TransactionType/Type/Description`; `deposit` is the bank account")
    finance_clearing_account: str = Field(default="1150", description="Marketplace clearing (sales receivable)")
    finance_suspense_account: str = Field(default="1999", description="Where skipped differences are parked")
    finance_legal_entity: str = "main"
    finance_fx_rates: dict[str, dict[date, Decimal]] = Field(
        default_factory=dict, description='Exchange rates for settlements in a currency other than their legal '
        'entity\'s books (RETAILFLOW_LEGAL_ENTITIES): JSON, "SOURCE/BOOKS" → a rate (units of BOOKS per SOURCE) or '
        '{effective date: rate}, e.g. {"EUR/GBP": {"2026-11-01": "0.8617"}}; the rate of a posting date is the '
        "latest effective on or before it, the inverse pair serves too. No rate: the settlement parks")

    @field_validator("finance_fx_rates", mode="before")
    @classmethod
    def _fx_rates(cls, v):
        """A plain rate for a pair is effective from the start of time."""
        if isinstance(v, dict):
            return {str(pair).strip().upper(): (rate if isinstance(rate, dict) else {date.min.isoformat(): rate})
                    for pair, rate in v.items()}
        return v


class PosSettings(_Group):
    """POS store days and the Square webhook (docs/pos.md)."""

    square_webhook_signature_key: SecretStr = Field(
        default=SecretStr("retailflow-dev-square-key"), description="Square webhook subscription's signature key")
    square_notification_url: str = Field(
        default="http://127.0.0.1:8000/webhooks/square", description="The notification URL exactly as configured "
        "in Square (it is part of what Square signs)")
    square_webhook_max_age_seconds: int = Field(
        default=72 * 3600 + 300, ge=0, description="Replay window: a notification whose `created_at` is older "
        "is quarantined (409), not processed. Default: Square's documented retry span (up to 72 hours after the "
        "event) plus 5 minutes; 0 turns the check off")
    store_timezones: dict[str, str] = Field(default_factory=dict, description='Store id → IANA time zone, e.g. '
                                            '{"L1": "America/New_York"}; default UTC')
    store_locations: dict[str, str] = Field(default_factory=dict, description="Store id → stock location; "
                                            "default the store id")
    pos_accounts: PosAccounts = Field(default_factory=PosAccounts, description="GL accounts of store-day journals")
    pos_late_window_hours: int = Field(default=168, ge=0, description="How long after close late POS "
                                       "transactions still post (as adjustment journals)")
    pos_adjustment_delay_seconds: int = Field(default=300, ge=0, description="Late transactions are batched "
                                              "this long into one adjustment journal")


class PricingSettings(_Group):
    """Price and promotion publication (docs/pricing.md)."""

    pricing_channel_currencies: dict[str, str] = Field(
        default_factory=lambda: {"shopify": "USD", "amazon": "USD", "pos": "USD"},
        description='Channel (or store) → the currency it sells in, e.g. {"shopify": "USD", "amazon-de": "EUR"}; '
                    "a price change for a channel not listed is refused")
    pricing_price_adapters: dict[str, str] = Field(
        default_factory=dict, description='Channel → its price port when it is not the channel\'s marketplace '
        'client: "square" (Square Catalog) or "local" (the embedded POS price list); default: the marketplace '
        "client when it has a price port (Shopify, Amazon), else the embedded POS price list")
    pricing_approver_roles: list[str] = Field(
        default_factory=lambda: ["finance", "admin"], description="Roles that may approve or reject price changes")
    pricing_second_approval_depth: Decimal = Field(
        default=Decimal("0.30"), ge=0, le=1, description="A discount deeper than this (0.30: 30 % below the "
        "regular price) needs a second, different approver")
    pricing_approval_timeout_hours: int = Field(
        default=72, gt=0, description="A change set not approved within this ends (cancelled)")
    square_access_token: SecretStr | None = Field(default=None, description="Square access token (Catalog API)")
    square_api_base_url: str = Field(default="https://connect.squareup.com",
                                     description="Square API base URL (the sandbox: https://connect.squareupsandbox.com)")
    square_store_locations: dict[str, str] = Field(
        default_factory=dict, description="Store node id → Square location id: `pos:square` nodes get their store "
        "fulfillments as Square orders (docs/fulfillment.md); needs RETAILFLOW_SQUARE_ACCESS_TOKEN")


class ObservabilitySettings(_Group):
    """Logs, metrics and tracing."""

    log_level: str = "INFO"
    log_json: bool | None = Field(default=None, description="JSON logs; default JSON unless stderr is a TTY")
    metrics_host: str = "127.0.0.1"
    worker_metrics_port: int | None = Field(default=9464, description="Worker's /metrics port; 0 disables")
    temporal_sdk_metrics_port: int | None = Field(default=9465, description="Temporal SDK metrics port; 0 disables")
    otel_enabled: bool = Field(default=False, description="OpenTelemetry tracing of workflows and activities")
    otel_service_name: str = "retailflow"
    # Business SLOs: the thresholds of the Prometheus alert rules (runtime/alerts.py, `retailflow ops
    # alert-rules`, deploy/prometheus/alerts.yml; what each means and what to do: docs/operations.md)
    slo_quantile: float = Field(default=0.95, gt=0, lt=1, description="The latency SLOs hold for this quantile "
                                "(0.95: 95 of 100 orders, shipments, publications within the threshold)")
    slo_order_ingestion_seconds: float = Field(
        default=5.0, gt=0, description="Webhook received → its order workflow started (retailflow_order_"
        "ingestion_seconds), at the SLO quantile over 10 minutes")
    slo_erp_booking_seconds: float = Field(
        default=900.0, gt=0, description="Order workflow started → ERP sales order booked (retailflow_order_"
        "erp_booking_seconds), at the SLO quantile over 30 minutes")
    slo_inventory_publication_seconds: float = Field(
        default=120.0, gt=0, description="Availability publication issued → the channel acknowledged it, per "
        "channel (retailflow_inventory_publication_seconds), at the SLO quantile over 15 minutes")
    slo_shipment_confirmation_seconds: float = Field(
        default=3600.0, gt=0, description="Warehouse shipped → the channel confirmed the shipment, per channel "
        "(retailflow_shipment_confirmation_seconds), at the SLO quantile over 1 hour")
    slo_parked_run_age_seconds: float = Field(
        default=4 * 3600.0, gt=0, description="No run waits for an analyst longer than this "
        "(retailflow_parked_run_oldest_age_seconds)")
    slo_parked_runs: NonNegativeInt = Field(default=25, description="Parked runs of one kind above this alert "
                                            "(retailflow_parked_runs)")
    slo_unmatched_settlement_lines: NonNegativeInt = Field(
        default=0, description="Open settlement lines nobody matched above this alert, once they last 6 hours "
        "(retailflow_settlement_unmatched_lines)")
    slo_quarantined_per_hour: float = Field(
        default=10.0, ge=0, description="Deliveries quarantined per hour per source above this alert "
        "(retailflow_quarantined_total)")
    slo_quarantine_open: NonNegativeInt = Field(
        default=50, description="Quarantined deliveries not yet replayed above this alert "
        "(retailflow_quarantine_open)")
    slo_breaker_open_seconds: float = Field(
        default=300.0, gt=0, description="A partner's circuit breaker open longer than this alerts "
        "(retailflow_partner_breaker_state)")
    slo_alert_for_seconds: float = Field(
        default=300.0, ge=0, description="How long a latency SLO must be breached before its alert fires (`for:`)")
    alerts_runbook_base_url: str = Field(
        default="docs/operations.md", description="Where the alerts' runbook_url annotations point (each alert "
        "adds #its-name): e.g. your repository's URL of docs/operations.md")


class AdapterSelection(_Group):
    """Which adapter serves each role (runtime/registry.py, docs/vendors.md)."""

    erp_adapter: str = Field(default="local", description='"local" | "erpnext"')
    erp_routing_file: Path | None = Field(default=None, description="ERP coexistence (docs/erp-migration.md): a "
                                          "routing file (erp_routing.toml) naming several ERPs and which process of "
                                          "which store or legal entity posts to which, dual-run included; set, it "
                                          "replaces RETAILFLOW_ERP_ADAPTER")
    tax_adapter: str = Field(default="local", description='"local" | "avalara"')
    wms_adapter: str = Field(default="local", description='"local" | "shipstation" | "shipbob"')
    marketplace_adapters: dict[str, str] = Field(default_factory=dict, description='Channel → "local" | '
                                                 '"shopify" | "amazon", e.g. {"shopify": "shopify"}; default local')


class EmbeddedWmsSettings(_Group):
    """The embedded WMS (adapters/wms/local.py) and its shipper in the worker."""

    local_wms_webhook_secret: SecretStr = SecretStr("retailflow-dev-wms-secret")
    local_wms_ship_after_seconds: float = 10.0
    local_wms_poll_seconds: float = 1.0
    local_wms_enabled: bool = Field(default=True, description="Run the embedded WMS shipper inside the worker")


class ShopifySettings(_Group):
    """Shopify: webhooks (secrets, rotation) and the Admin API (docs/vendors.md)."""

    shopify_channel: str = "shopify"
    shopify_webhook_secret: SecretStr = Field(
        default=SecretStr("retailflow-dev-shopify-secret"),
        description="Shopify app client secret used to verify X-Shopify-Hmac-Sha256",
    )
    shopify_webhook_max_age_seconds: int = Field(
        default=4 * 3600 + 300, ge=0, description="Replay window: a delivery whose X-Shopify-Triggered-At is "
        "older is quarantined (409), not processed. Default: Shopify's documented retry span (8 tries over 4 "
        "hours) plus 5 minutes; 0 turns the check off")
    shopify_previous_webhook_secret: SecretStr | None = Field(
        default=None, description="The previous secret, accepted during a secret rotation"
    )
    @property
    def shopify_webhook_secrets(self) -> list[SecretStr]:
        return [s for s in (self.shopify_webhook_secret, self.shopify_previous_webhook_secret) if s is not None]

    shopify_admin_base_url: str = Field(default="http://127.0.0.1:8103", description="https://<shop>.myshopify.com")
    shopify_admin_api_version: str = Field(default="2026-10", description="Admin API version (GraphQL and REST); "
                                           "a stable version Shopify still supports (`retailflow vendors versions`)")
    shopify_admin_api: Literal["graphql", "rest"] = Field(
        default="graphql", description="graphql: the GraphQL Admin API (fulfillment orders, inventorySetQuantities "
        "compare-and-set, refundCreate, cost-based throttling); rest: the legacy REST Admin API")
    shopify_poll_enabled: bool = Field(default=False, description="The worker starts a ChannelOrderPoll of each "
                                       "Shopify channel (GraphQL `orders`): catches orders whose webhook never came")
    shopify_poll_interval_seconds: int = Field(default=300, ge=30)
    shopify_poll_lookback_hours: int = Field(default=24, ge=1)
    shopify_admin_access_token: SecretStr = Field(default=SecretStr("shpat_retailflow_sandbox"),
                                                  description="Admin API access token (X-Shopify-Access-Token)")
    shopify_location_id: str | None = Field(default=None, description="Location whose inventory levels are set; "
                                            "default the shop's first active location")
    shopify_shop_domain: str | None = Field(default=None, description="The shop (name.myshopify.com) of the "
                                            "single-shop settings; default the Admin base URL's host when it is one")
    shopify_app_auth: Literal["static", "authorization_code", "client_credentials"] = Field(
        default="static", description="How the Admin API token is obtained: static (RETAILFLOW_SHOPIFY_ADMIN_"
        "ACCESS_TOKEN / a store's admin_access_token), authorization_code (the merchant installs the app: "
        "`retailflow shopify install SHOP`; expiring offline tokens, refreshed, sealed per shop in the database) "
        "or client_credentials (an app of the merchant's own organization: 24-hour tokens fetched as needed)")
    shopify_app_client_id: str = Field(default="retailflow-dev-client-id", description="The app's client id (API "
                                       "key); its client secret is RETAILFLOW_SHOPIFY_WEBHOOK_SECRET")
    shopify_app_scopes: str = Field(
        default="read_orders,write_orders,read_merchant_managed_fulfillment_orders,"
        "write_merchant_managed_fulfillment_orders,read_inventory,write_inventory,read_products,write_products,"
        "read_locations,read_shopify_payments_payouts",
        description="Scopes the install asks for and every token must have (write_x includes read_x)")

    @property
    def shopify_app_scope_list(self) -> list[str]:
        return [s.strip() for s in self.shopify_app_scopes.split(",") if s.strip()]

    @property
    def effective_shopify_shop_domain(self) -> str | None:
        if self.shopify_shop_domain:
            return self.shopify_shop_domain.strip().lower()
        from urllib.parse import urlsplit

        host = (urlsplit(self.shopify_admin_base_url).hostname or "").lower()
        return host if host.endswith(".myshopify.com") else None


class AmazonSettings(_Group):
    """Amazon SP-API and the order poll (docs/vendors.md)."""

    amazon_channel: str = "amazon"
    amazon_sp_base_url: str = Field(default="http://127.0.0.1:8104",
                                    description="e.g. https://sellingpartnerapi-na.amazon.com")
    amazon_lwa_token_url: str = Field(default="http://127.0.0.1:8104/auth/o2/token",
                                      description="https://api.amazon.com/auth/o2/token")
    amazon_lwa_client_id: str = "amzn1.application-oa2-client.retailflow-sandbox"
    amazon_lwa_client_secret: SecretStr = SecretStr("retailflow-sandbox-lwa-secret")
    amazon_refresh_token: SecretStr = SecretStr("Atzr|retailflow-sandbox-refresh-token")
    amazon_marketplace_id: str = "ATVPDKIKX0DER"
    amazon_seller_id: str = Field(default="A-RETAILFLOW-SANDBOX", description="Merchant token, for feeds")
    amazon_orders_api_version: Literal["2026-01-01", "v0"] = Field(
        default="2026-01-01", description="Orders API for order reads: 2026-01-01 (searchOrders/getOrder, no RDT) or v0 "
        "(deprecated; its getOrders/getOrder/getOrderItems are removed on 2027-03-27). Shipment confirmation is "
        "v0 confirmShipment with both")
    amazon_poll_enabled: bool = Field(default=False, description="The worker starts the Amazon channel's ChannelOrderPoll")
    amazon_poll_interval_seconds: int = Field(default=120, gt=0)
    amazon_poll_lookback_hours: int = Field(default=24, gt=0, description="First poll: orders updated since")


class ShipStationSettings(_Group):
    """ShipStation V1 (docs/vendors.md)."""

    shipstation_base_url: str = Field(default="http://127.0.0.1:8105", description="https://ssapi.shipstation.com")
    shipstation_api_key: SecretStr = SecretStr("retailflow-sandbox-key")
    shipstation_api_secret: SecretStr = SecretStr("retailflow-sandbox-secret")
    shipstation_store_id: int | None = None
    shipstation_webhook_token: SecretStr | None = Field(
        default=None, description="When set, POST /webhooks/shipstation requires ?token=<this> (V1 signs nothing)")


class ShipBobSettings(_Group):
    """ShipBob Developer API 2026-01, the 3PL (docs/vendors.md)."""

    shipbob_base_url: str = Field(default="http://127.0.0.1:8106", description="https://api.shipbob.com or "
                                  "https://sandbox-api.shipbob.com (the adapter adds the version, /2026-01)")
    shipbob_access_token: SecretStr = Field(default=SecretStr("retailflow-sandbox-shipbob-pat"),
                                            description="Personal Access Token (or OAuth access token), Bearer")
    shipbob_channel_id: int = Field(default=100102, description="The channel with write scopes (GET /channel)")
    shipbob_shipping_method: str = Field(default="Standard", description="shipping_method of each order (the "
                                         "merchant's ship option names in ShipBob)")
    shipbob_return_fulfillment_center_id: int | None = Field(
        default=None, description="Fulfillment center that receives returns (GET /fulfillment-center); none: "
        "return announcements are refused")
    shipbob_webhook_secret: SecretStr = Field(
        default=SecretStr("whsec_cmV0YWlsZmxvdy1zYW5kYm94LXNoaXBib2Itc2VjcmV0"),
        description="The subscription's whsec_ secret: webhooks are verified with it (Standard Webhooks)")


class AvalaraSettings(_Group):
    """Avalara AvaTax (docs/vendors.md)."""

    avalara_base_url: str = Field(default="http://127.0.0.1:8101",
                                  description="https://sandbox-rest.avatax.com or https://rest.avatax.com")
    avalara_account_id: str = "1100000000"
    avalara_license_key: SecretStr = SecretStr("retailflow-sandbox-avatax-license-key")
    avalara_company_code: str = "DEFAULT"
    avalara_default_tax_code: str = Field(default="P0000000", description="AvaTax code of tangible goods")
    avalara_shipping_tax_code: str = Field(default="FR020100", description="AvaTax code of shipping charges")
    avalara_ship_from: dict[str, str] | None = Field(
        default=None, description='Warehouse address {"line1", "city", "region", "postalCode", "country"}; '
        'none: the ship-to address is sent as SingleLocation')
    avalara_timeout_seconds: float = Field(default=20.0, gt=0)


class ErpNextSettings(_Group):
    """ERPNext (docs/vendors.md)."""

    erpnext_base_url: str = Field(default="http://127.0.0.1:8102", description="https://<site>.erpnext.com")
    erpnext_api_key: str = "retailflow-sandbox-api-key"
    erpnext_api_secret: SecretStr = SecretStr("retailflow-sandbox-api-secret")
    erpnext_company: str = "Retailflow Demo"
    erpnext_warehouse: str = Field(default="Stores - RD", description="Warehouse orders ship from and returns "
                                   "restock into")
    erpnext_customers: dict[str, str] = Field(default_factory=dict, description="Channel → ERPNext Customer; "
                                              "default a customer named after the channel")
    erpnext_tax_account: str = "Sales Tax Payable - RD"
    erpnext_shipping_account: str = "Freight and Forwarding Charges - RD"
    erpnext_account_map: dict[str, str] = Field(default_factory=dict, description="Platform GL account → "
                                                "ERPNext account name for journals; default the code as given")
    erpnext_timeout_seconds: float = Field(default=30.0, gt=0)


class SandboxSettings(_Group):
    """The vendor sandboxes of the dev stack (sandbox/, never the product path)."""

    sandbox_host: str = "127.0.0.1"
    sandbox_ports: dict[str, int] = Field(default_factory=dict, description='Sandbox name → port, e.g. '
                                          '{"avatax": 8101}; default sandbox.DEFAULT_PORTS')
    sandbox_seed: int = Field(default=0, description="Seed of the sandboxes' fault injection")
    sandbox_ship_after_seconds: float | None = Field(
        default=5.0, ge=0, description="The ShipStation sandbox ships each order awaiting shipment this long after "
        "it is created, then sends SHIP_NOTIFY; none: only `POST /_admin/ship/{orderId}` ships")


class StoreEntry(Store):
    """One entry of RETAILFLOW_STORES: the store and its secrets (Shopify: the app's webhook secret, the one
    before it during a rotation, the Admin API base URL and access token; Amazon: the seller's LWA refresh token
    for the one LWA app whose client id and secret, RETAILFLOW_AMAZON_LWA_CLIENT_*, every store shares)."""

    webhook_secret: SecretStr | None = None
    previous_webhook_secret: SecretStr | None = None
    admin_base_url: str | None = None
    admin_access_token: SecretStr | None = None
    amazon_refresh_token: SecretStr | None = None

    def store(self) -> Store:
        return Store(**self.model_dump(include=set(Store.model_fields)))


class StoreSettings(_Group):
    """Several shops (issue 16): the stores one platform serves and the legal entities that book them. Empty
    RETAILFLOW_STORES: one default store from the single-shop settings (RETAILFLOW_SHOPIFY_CHANNEL,
    RETAILFLOW_SHOPIFY_WEBHOOK_SECRET, ...), exactly as before."""

    stores: list[StoreEntry] = Field(
        default_factory=list, description='The stores, JSON, e.g. [{"channel": "shopify-de", "vendor": "shopify", '
        '"shop_domain": "de-shop.myshopify.com", "legal_entity": "retail-de", "currency": "EUR", '
        '"webhook_secret": "...", "admin_base_url": "https://de-shop.myshopify.com", "admin_access_token": '
        '"shpat_..."}]; once set, a Shopify delivery from a shop domain not listed is refused (422, quarantined)')
    legal_entities: dict[str, LegalEntity] = Field(
        default_factory=dict, description='Legal entity key → {"name", "currency", "fx_account"}, JSON, e.g. '
        '{"retail-de": {"name": "Retail DE GmbH", "currency": "EUR"}}; RETAILFLOW_FINANCE_LEGAL_ENTITY is added '
        "in RETAILFLOW_DEFAULT_CURRENCY when not listed")
    default_currency: str = Field(default="USD", description="The currency of the default legal entity and of "
                                  "the default store (no RETAILFLOW_STORES)")

    @model_validator(mode="after")
    def _valid_directory(self):
        if self.stores:
            self.store_directory()  # duplicates, unknown legal entities: refused when the settings load
        return self

    def _default_entity(self) -> str:
        return getattr(self, "finance_legal_entity", "main")

    def _entities(self) -> dict[str, LegalEntity]:
        default = self._default_entity()
        entities = dict(self.legal_entities)
        entities.setdefault(default, LegalEntity(name=default, currency=self.default_currency))
        return entities

    def store_directory(self) -> StoreDirectory:
        """The stores (RETAILFLOW_STORES), or the default stores of the single-shop settings."""
        entities, default = self._entities(), self._default_entity()
        if self.stores:
            return StoreDirectory([e.store() for e in self.stores], entities, default, configured=True)
        stores = [Store(channel=getattr(self, "shopify_channel", "shopify"), vendor="shopify", legal_entity=default,
                        currency=self.default_currency)]
        amazon = getattr(self, "amazon_channel", None)
        if amazon and amazon != stores[0].channel:
            stores.append(Store(channel=amazon, vendor="amazon", legal_entity=default, currency=self.default_currency,
                                seller_id=getattr(self, "amazon_seller_id", None),
                                marketplace_id=getattr(self, "amazon_marketplace_id", None)))
        return StoreDirectory(stores, entities, default, configured=False)

    def store_entry(self, channel: str) -> StoreEntry | None:
        return next((e for e in self.stores if e.channel == channel), None)

    def shopify_store_secrets(self, channel: str) -> list[SecretStr]:
        """The webhook secrets a Shopify delivery for `channel` may be signed with: the store's (current, then
        previous), or with no stores configured the single-shop secrets for the default channel."""
        if not self.stores:
            if channel == getattr(self, "shopify_channel", "shopify"):
                return list(getattr(self, "shopify_webhook_secrets", []))
            return []
        entry = self.store_entry(channel)
        if entry is None or entry.vendor != "shopify":
            return []
        return [s for s in (entry.webhook_secret, entry.previous_webhook_secret) if s is not None]

    def store_problems(self) -> list[str]:
        """What keeps the configured Shopify and Amazon stores from being safe in production (one line each)."""
        problems = []
        marketplace = {c: n.strip().lower() for c, n in getattr(self, "marketplace_adapters", {}).items()}
        for entry in self.stores:
            where = f"RETAILFLOW_STORES[{entry.channel}]"
            if entry.vendor == "amazon" and marketplace.get(entry.channel) == "amazon":
                routed = "(RETAILFLOW_MARKETPLACE_ADAPTERS routes the channel to the Amazon SP-API)"
                token = entry.amazon_refresh_token.get_secret_value().strip() if entry.amazon_refresh_token else ""
                for name, value in (("seller_id", (entry.seller_id or "").strip()),
                                    ("marketplace_id", (entry.marketplace_id or "").strip()),
                                    ("amazon_refresh_token", token)):
                    if not value:
                        problems.append(f"{where}: {name} is not set {routed}")
            if entry.vendor != "shopify":
                continue
            if entry.shop_domain is None:
                problems.append(f"{where}: shop_domain is not set (its deliveries could not be told apart)")
            secret = entry.webhook_secret.get_secret_value().strip() if entry.webhook_secret else ""
            if not secret:  # (shops of one public app share its secret: a shared secret is no problem)
                problems.append(f"{where}: webhook_secret is not set")
            if marketplace.get(entry.channel) == "shopify":
                token = entry.admin_access_token.get_secret_value().strip() if entry.admin_access_token else ""
                if not token:
                    problems.append(f"{where}: admin_access_token is not set (RETAILFLOW_MARKETPLACE_ADAPTERS "
                                    "routes the channel to the Shopify Admin API)")
                if not entry.admin_base_url:
                    problems.append(f"{where}: admin_base_url is not set (RETAILFLOW_MARKETPLACE_ADAPTERS routes "
                                    "the channel to the Shopify Admin API)")
        return problems


ASYMMETRIC_JWT_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
                             "EdDSA")


class AuthSettings(_Group):
    """Who may call the API (api/auth.py, README "Access"): API keys live in the platform database
    (`retailflow keys create|list|revoke`); OIDC bearer tokens are JWTs verified against the issuer's JWKS."""

    oidc_issuer: str | None = Field(default=None, description="OIDC issuer (the token's `iss`, exactly); "
                                    "unset: only API keys are accepted")
    oidc_audience: str | None = Field(default=None, description="The `aud` tokens must carry (the API's client id "
                                      "or resource identifier); required with RETAILFLOW_OIDC_ISSUER")
    oidc_jwks_url: str | None = Field(default=None, description="The issuer's JWKS URL (fetched and cached), e.g. "
                                      "https://<issuer>/.well-known/jwks.json")
    oidc_jwks_file: Path | None = Field(default=None, description="A local JWKS file instead of the URL (works "
                                        "offline; re-read when it changes)")
    oidc_role_claim: str = Field(default="roles", description="The claim holding the user's roles (a list or a "
                                 "space-separated string; a dotted path such as realm_access.roles reaches into "
                                 "objects); the highest retailflow role present wins, none: 403")
    oidc_role_map: dict[str, str] = Field(default_factory=dict, description="Claim value → retailflow role, e.g. "
                                          '{"retail-ops": "analyst"}; values not listed are taken as role names')
    oidc_store_claim: str = Field(default="stores", description="The claim holding a `store` principal's store "
                                  "ids (read like the role claim: a list or a space-separated string, a dotted "
                                  "path); a token whose role is store and that names no store: 403")
    oidc_store_map: dict[str, str] = Field(default_factory=dict, description="Claim value → store id, e.g. "
                                           '{"grp-berlin-mitte": "STORE-001"}; when set, values not listed are '
                                           "ignored (a groups claim's other groups), when empty each value is a "
                                           "store id")
    oidc_algorithms: list[str] = Field(default_factory=lambda: list(ASYMMETRIC_JWT_ALGORITHMS),
                                       description="Accepted signature algorithms (asymmetric only)")
    oidc_leeway_seconds: int = Field(default=30, ge=0, le=300, description="Clock skew allowed on exp/nbf/iat")
    oidc_jwks_cache_seconds: int = Field(default=300, gt=0, description="How long the fetched JWKS is kept")
    api_key: SecretStr | None = Field(default=None, description="The API key the CLI's commands that call the "
                                      "API send (Authorization: Bearer); a client setting, the API never reads it")

    @field_validator("oidc_algorithms")
    @classmethod
    def _asymmetric_only(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if a not in ASYMMETRIC_JWT_ALGORITHMS]
        if bad or not v:
            raise ValueError(f"only asymmetric algorithms ({', '.join(ASYMMETRIC_JWT_ALGORITHMS)}) may verify "
                             f"tokens; refused: {', '.join(bad) or 'an empty list'}")
        return v

    def oidc_problems(self) -> list[str]:
        """What keeps the OIDC settings from working (one line each); empty when OIDC is off or complete."""
        if not (self.oidc_issuer or self.oidc_jwks_url or self.oidc_jwks_file):
            return []
        problems = []
        if not self.oidc_issuer:
            problems.append("RETAILFLOW_OIDC_ISSUER is not set (a JWKS is configured)")
        if not self.oidc_audience:
            problems.append("RETAILFLOW_OIDC_AUDIENCE is not set (tokens for any client of the issuer would pass)")
        if not (self.oidc_jwks_url or self.oidc_jwks_file):
            problems.append("neither RETAILFLOW_OIDC_JWKS_URL nor RETAILFLOW_OIDC_JWKS_FILE is set")
        return problems


class CodecSettings(_Group):
    """Personal data sealed at rest (docs/security.md "Encryption"): the AES-256-GCM keys of the Temporal payload
    codec (runtime/codec.py) and of quarantined bodies, and who may call the codec server from a browser."""

    codec_keys: SecretStr | None = Field(
        default=None, description="Codec keys `id:<base64 of 32 bytes>`, comma-separated, the first active (it "
        "seals); the others still open what they sealed, so a key rotates while runs are open")
    codec_key_file: Path | None = Field(
        default=None, description="A key file instead: JSON {\"keys\": [{\"id\": ..., \"key\": <base64>}]} or "
        "`id:<base64>` lines, the first active. Neither set (development only): <data_dir>/codec-keys.json, "
        "created once with a random key (0600)")
    codec_cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://localhost:8233", "http://127.0.0.1:8233"],
        description="Browser origins (the Temporal Web UI) allowed to call /codec/* with credentials, "
        "comma-separated or a JSON list")

    @field_validator("codec_cors_origins", mode="before")
    @classmethod
    def _origins(cls, v):
        if isinstance(v, str):
            text = v.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [o.strip().rstrip("/") for o in text.split(",") if o.strip()]
        return v

    @property
    def dev_codec_key_file(self) -> Path:
        return self.data_dir / "codec-keys.json"  # type: ignore[attr-defined]  # DatabaseSettings, in Settings

    def codec_problems(self) -> list[str]:
        """What keeps the codec keys from working in production (one line each)."""
        from adapters.crypto import Keyring, KeyringError

        if self.codec_keys is None and self.codec_key_file is None:
            return ["RETAILFLOW_CODEC_KEYS (or RETAILFLOW_CODEC_KEY_FILE) is not set"]
        try:
            if self.codec_keys is not None:
                Keyring.from_spec(self.codec_keys.get_secret_value())
            else:
                assert self.codec_key_file is not None
                Keyring.from_file(self.codec_key_file)
        except KeyringError as exc:
            which = "RETAILFLOW_CODEC_KEYS" if self.codec_keys is not None else "RETAILFLOW_CODEC_KEY_FILE"
            return [f"{which}: {exc}"]
        return []


class DeploymentSettings(_Group):
    """Where this process runs. `production` refuses to start with a published default or an empty secret."""

    env: Literal["development", "production"] = Field(
        default="development", description="RETAILFLOW_ENV: `production` makes the API and the worker refuse "
        "every default or empty secret they would use (webhook secrets, the selected vendors' credentials)")


class ProductionConfigError(ValueError):
    """RETAILFLOW_ENV=production with secrets left at their published defaults (or empty): one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("refusing to start with RETAILFLOW_ENV=production:\n" + "\n".join(problems))
        self.problems = problems


class Settings(DeploymentSettings, AuthSettings, DatabaseSettings, TemporalSettings, ApiSettings, OrderSettings,
               InventorySettings, FinanceSettings, PosSettings, PricingSettings, ObservabilitySettings, AdapterSelection,
               EmbeddedWmsSettings, ShopifySettings, AmazonSettings, ShipStationSettings, ShipBobSettings, AvalaraSettings,
               ErpNextSettings, SandboxSettings, CodecSettings, StoreSettings):
    """All of retailflow's settings: the groups above in one object, env `RETAILFLOW_*` (names unchanged by
    the grouping). The composition root hands each adapter or activity the group it needs."""

    @property
    def shopify_oauth_redirect_uri(self) -> str:
        """Where Shopify sends the merchant back after the app install (the API's /shopify/oauth/callback)."""
        return f"{self.effective_api_base_url.rstrip('/')}/shopify/oauth/callback"

    def secrets_in_use(self) -> list[str]:
        """The secret settings this configuration relies on: the webhook secrets of the routes the API always
        serves, and the credentials of each vendor adapter selected."""
        store_channels = {e.channel for e in self.stores}
        shopify_stores = any(e.vendor == "shopify" for e in self.stores)
        # with Shopify stores listed, each store's secret verifies its deliveries (store_problems): the single-shop
        # secret is in use only while no store is listed
        names = ([] if shopify_stores else ["shopify_webhook_secret"]) + ["square_webhook_signature_key",
                                                                          "local_wms_webhook_secret"]
        # a routing file (docs/erp-migration.md) names its ERPs itself: ERPNext's credentials are taken as in use
        if self.erp_adapter.strip().lower() == "erpnext" or self.erp_routing_file is not None:
            names += ["erpnext_api_key", "erpnext_api_secret"]
        if self.tax_adapter.strip().lower() == "avalara":
            names += ["avalara_account_id", "avalara_license_key"]
        if self.wms_adapter.strip().lower() == "shipstation":
            names += ["shipstation_api_key", "shipstation_api_secret", "shipstation_webhook_token"]
        if self.wms_adapter.strip().lower() == "shipbob":
            names += ["shipbob_access_token", "shipbob_webhook_secret"]
        # a channel that is a store brings its own credentials (store_problems); the single-shop ones are in use
        # only for a routed channel that is no store
        shared = {name.strip().lower() for c, name in self.marketplace_adapters.items() if c not in store_channels}
        every = {name.strip().lower() for name in self.marketplace_adapters.values()}
        if "shopify" in shared:
            names += ["shopify_admin_access_token"]
        if "amazon" in every or self.amazon_poll_enabled:
            names += ["amazon_lwa_client_id", "amazon_lwa_client_secret"]  # the one LWA app
        if "amazon" in shared or (self.amazon_poll_enabled and self.amazon_channel not in store_channels
                                  and not any(e.vendor == "amazon" for e in self.stores)):
            names += ["amazon_refresh_token"]
        return names

    def production_problems(self) -> list[str]:
        """One line per secret in use that is empty or still the published default (nothing outside production)."""
        if self.env != "production":
            return []
        problems = []
        for name in self.secrets_in_use():
            value = getattr(self, name)
            raw = value.get_secret_value() if isinstance(value, SecretStr) else value
            default = type(self).model_fields[name].get_default(call_default_factory=True)
            default_raw = default.get_secret_value() if isinstance(default, SecretStr) else default
            if raw is None or not str(raw).strip():
                problems.append(f"RETAILFLOW_{name.upper()} is not set")
            elif raw == default_raw:
                problems.append(f"RETAILFLOW_{name.upper()} is the published development default")
        problems += self.codec_problems()  # RETAILFLOW_CODEC_KEYS / _KEY_FILE: set, parseable, 32-byte keys
        problems += self.oidc_problems()  # an OIDC issuer without audience or JWKS (API keys need no setting)
        problems += self.store_problems()  # RETAILFLOW_STORES: each Shopify shop's own secret and credentials
        return problems

    def check_production(self) -> None:
        """Raise ProductionConfigError when RETAILFLOW_ENV=production meets a default or empty secret."""
        problems = self.production_problems()
        if problems:
            raise ProductionConfigError(problems)


@lru_cache
def get_settings() -> Settings:
    return Settings()
