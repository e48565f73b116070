"""A partner's circuit breaker on the dev server (issue 19, back-pressure and circuit breaking): the platform's
activity interceptor counts a partner queue's transient failures, the worker's relay reports them to
`breaker:{queue}` (workflows/partner_breaker.py), which opens after the threshold by setting the queue's dispatch
rate to 0 on the Temporal server: while the partner is down nothing is attempted (no retry is burnt, nothing
fails; the orders wait with a pending activity). After `open_seconds` it lets a probe through (half-open); once
the partner answers, it closes and every waiting run completes. State: its query and the breaker gauge."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from datetime import timedelta

import httpx
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY
from temporalio import activity, workflow
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.common import RetryPolicy
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.breakers import BreakerActivities
from activities.orders import business_errors
from adapters.http import VendorHttp
from api.app import create_app
from canonical.breakers import BreakerView
from canonical.vendor_errors import VendorRateLimited, VendorUnavailable
from runtime.breakers import REPORTS, breaker_id, relay_breaker_reports
from runtime.observability import CorrelationInterceptor, set_partner_breaker_state
from runtime.settings import Settings
from tests.auth import headers, make_key
from worker import temporal_cli_path
from workflows.partner_breaker import PartnerBreaker

pytestmark = pytest.mark.integration

PARTNER = {"down": True, "attempts": 0}


@activity.defn(name="call_partner")
def call_partner() -> str:
    PARTNER["attempts"] += 1
    if PARTNER["down"]:
        raise VendorUnavailable("erp answered 503 Service Unavailable", vendor="erp", status=503)
    return "booked"


@workflow.defn(name="UsesPartner", sandboxed=False)
class UsesPartner:
    @workflow.run
    async def run(self, queue: str) -> str:
        return await workflow.execute_activity(
            "call_partner", task_queue=queue, result_type=str, start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200), backoff_coefficient=1.0,
                                     maximum_interval=timedelta(milliseconds=200)))


@pytest_asyncio.fixture(scope="module")
async def env():
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=temporal_cli_path(),
                                                dev_server_extra_args=["--log-level", "error"])
    try:
        yield env
    finally:
        await env.shutdown()


def gauge(queue: str) -> float | None:
    return REGISTRY.get_sample_value("retailflow_partner_breaker_state", {"partner": queue})


async def state(client, queue: str) -> BreakerView:
    return await client.get_workflow_handle(breaker_id(queue)).query("state", result_type=BreakerView)


async def until(check, timeout: float = 30.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            if await check():
                return
        except Exception:  # noqa: BLE001 - the breaker may not exist yet
            pass
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def test_a_partner_that_keeps_failing_is_held_then_probed_and_every_run_completes(env, engine):
    PARTNER.update(down=True, attempts=0)
    tag = uuid.uuid4().hex[:6]
    main, partner = f"main-{tag}", f"erp-{tag}"
    settings = Settings(_env_file=None, task_queue=main, partner_activity_rate_limits={partner: 50},
                        breaker_failure_threshold=3, breaker_open_seconds=3, breaker_probe_rate=1)
    reports, stop = REPORTS, asyncio.Event()
    reports.watch({partner})
    client = env.client
    pool = concurrent.futures.ThreadPoolExecutor(4)
    try:
        async with Worker(client, task_queue=main, workflows=[UsesPartner, PartnerBreaker],
                          activities=BreakerActivities(on_state=set_partner_breaker_state).all(),
                          activity_executor=pool), \
                Worker(client, task_queue=partner, activities=[call_partner], activity_executor=pool,
                       interceptors=[CorrelationInterceptor()], max_task_queue_activities_per_second=50):
            relay = asyncio.create_task(relay_breaker_reports(client, settings, stop=stop, reports=reports,
                                                              interval=0.2))
            runs = [await client.start_workflow(UsesPartner.run, partner, id=f"uses-{tag}-{n}", task_queue=main)
                    for n in range(2)]

            async def opened() -> bool:
                return (await state(client, partner)).state == "open"
            await until(opened)
            assert gauge(partner) == 1.0
            api = create_app(settings, engine=engine, client=client)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://api",
                                         headers=headers(make_key(engine, "viewer"))) as http:
                (row,) = (await http.get("/ops/breakers")).json()
            assert (row["queue"], row["state"], row["trips"]) == (partner, "open", 1)
            await asyncio.sleep(0.5)  # the attempts in flight when it opened come back
            held_at = PARTNER["attempts"]
            await asyncio.sleep(2.0)  # open: the queue dispatches nothing
            assert PARTNER["attempts"] == held_at, "attempts went on while the breaker was open"
            statuses = [(await r.describe()).status.name for r in runs]
            assert statuses == ["RUNNING", "RUNNING"]  # waiting, not failed

            PARTNER["down"] = False  # the partner is back: the half-open probe gets through and closes it

            async def closed() -> bool:
                return (await state(client, partner)).state == "closed"
            await until(closed)
            assert [await r.result() for r in runs] == ["booked", "booked"]
            view = await state(client, partner)
            assert view.trips >= 1 and view.consecutive_failures == 0 and "503" in (view.last_error or "")
            assert gauge(partner) == 0.0
            stop.set()
            await relay
            await client.get_workflow_handle(breaker_id(partner)).terminate("test over")
    finally:
        reports.watch(set())
        pool.shutdown(wait=False)


@activity.defn(name="call_rated_partner")
def call_rated_partner() -> str:
    """A vendor call whose answer says the rate it allows, as SP-API's every answer does."""
    def amazon(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"payload": {}}, headers={"x-amzn-RateLimit-Limit": "2.0"})

    VendorHttp("amazon", "https://sellingpartnerapi-na.amazon.com", transport=httpx.MockTransport(amazon)).json(
        "GET", "/orders/2026-01-01/orders")
    return "ok"


@workflow.defn(name="UsesRatedPartner", sandboxed=False)
class UsesRatedPartner:
    @workflow.run
    async def run(self, queue: str) -> str:
        return await workflow.execute_activity("call_rated_partner", task_queue=queue, result_type=str,
                                               start_to_close_timeout=timedelta(seconds=10))


async def test_the_vendors_advertised_rate_slows_its_queue_before_it_refuses(env):
    tag = uuid.uuid4().hex[:6]
    main, partner = f"main-{tag}", f"amazon-{tag}"
    settings = Settings(_env_file=None, task_queue=main, partner_activity_rate_limits={partner: 50})
    REPORTS.watch({partner})
    stop, client = asyncio.Event(), env.client
    pool = concurrent.futures.ThreadPoolExecutor(4)
    try:
        async with Worker(client, task_queue=main, workflows=[UsesRatedPartner, PartnerBreaker],
                          activities=BreakerActivities(on_state=set_partner_breaker_state).all(),
                          activity_executor=pool), \
                Worker(client, task_queue=partner, activities=[call_rated_partner], activity_executor=pool,
                       interceptors=[CorrelationInterceptor()], max_task_queue_activities_per_second=50):
            relay = asyncio.create_task(relay_breaker_reports(client, settings, stop=stop, interval=0.2))
            assert await client.execute_workflow(UsesRatedPartner.run, partner, id=f"rated-{tag}",
                                                 task_queue=main) == "ok"

            async def slowed() -> bool:
                return (await state(client, partner)).rate == 2.0
            await until(slowed)  # 50/s configured, the vendor says 2/s: the queue now dispatches 2/s
            desc = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
                namespace=client.namespace, task_queue=TaskQueue(name=partner),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY, report_config=True))
            assert desc.config.queue_rate_limit.rate_limit.requests_per_second == 2.0
            assert (await state(client, partner)).state == "closed"
            stop.set()
            await relay
            await client.get_workflow_handle(breaker_id(partner)).terminate("test over")
    finally:
        REPORTS.watch(set())
        pool.shutdown(wait=False)


THROTTLE = {"on": True, "attempts": 0, "refused": 0}


@activity.defn(name="call_throttled_partner")
@business_errors  # as every order step is: the 429 reaches the interceptor as Temporal's retryable error
def call_throttled_partner() -> str:
    THROTTLE["attempts"] += 1
    if THROTTLE["on"]:
        THROTTLE["refused"] += 1
        raise VendorRateLimited("erpnext answered 429 to GET /api/resource/Item; retry after 1s", vendor="erpnext",
                                retry_after=0.2)
    return "booked"


@workflow.defn(name="UsesThrottledPartner", sandboxed=False)
class UsesThrottledPartner:
    @workflow.run
    async def run(self, queue: str) -> str:
        return await workflow.execute_activity("call_throttled_partner", task_queue=queue, result_type=str,
                                               start_to_close_timeout=timedelta(seconds=10))


async def test_a_vendor_answering_429_slows_its_queue_without_opening_and_the_rate_comes_back(env):
    """ERPNext throttling at a quota it does not announce: its 429s halve the partner queue's rate (AIMD), the
    breaker stays closed (the vendor is up), every run completes, and once the 429s stop the rate climbs back."""
    THROTTLE.update(on=True, attempts=0, refused=0)
    tag = uuid.uuid4().hex[:6]
    main, partner = f"main-{tag}", f"erp-{tag}"
    settings = Settings(_env_file=None, task_queue=main, partner_activity_rate_limits={partner: 40},
                        breaker_failure_threshold=3, breaker_probe_rate=0.5)
    REPORTS.watch({partner})
    stop, client = asyncio.Event(), env.client
    pool = concurrent.futures.ThreadPoolExecutor(4)
    try:
        async with Worker(client, task_queue=main, workflows=[UsesThrottledPartner, PartnerBreaker],
                          activities=BreakerActivities(on_state=set_partner_breaker_state).all(),
                          activity_executor=pool), \
                Worker(client, task_queue=partner, activities=[call_throttled_partner], activity_executor=pool,
                       interceptors=[CorrelationInterceptor()], max_task_queue_activities_per_second=40):
            relay = asyncio.create_task(relay_breaker_reports(client, settings, stop=stop, interval=0.2))
            runs = [await client.start_workflow(UsesThrottledPartner.run, partner, id=f"thr-{tag}-{n}",
                                                task_queue=main) for n in range(3)]

            async def cut() -> bool:
                view = await state(client, partner)
                return view.rate is not None and view.rate <= 10
            await until(cut)  # 40 → 20 → 10: halved at most every 2 s while 429s come
            view = await state(client, partner)
            assert (view.state, view.trips) == ("closed", 0), view  # a 429 is not a failure: never opened
            THROTTLE["on"] = False
            assert [await r.result() for r in runs] == ["booked"] * 3
            lowest = (await state(client, partner)).rate
            assert lowest is not None

            async def raised() -> bool:  # quiet reports give the rate back step by step
                # (the runs are done: keep the partner's queue reporting successes, as live traffic would)
                await client.execute_workflow(UsesThrottledPartner.run, partner, id=f"thr-{tag}-{uuid.uuid4().hex[:4]}",
                                              task_queue=main)
                rate = (await state(client, partner)).rate
                return rate is None or rate > lowest
            await until(raised, timeout=60)
            assert THROTTLE["refused"] >= 3
            stop.set()
            await relay
            await client.get_workflow_handle(breaker_id(partner)).terminate("test over")
    finally:
        REPORTS.watch(set())
        pool.shutdown(wait=False)
