"""An expected business fault (a canonical BusinessError in an activity) is logged as ONE structured event (type,
message, workflow id, activity), not also as the Temporal worker's plain-text traceback ("Completing activity as
failed"); an unexpected failure keeps its traceback. On the Temporal dev server, with a real worker."""

from __future__ import annotations

import concurrent.futures
import logging
import uuid
from datetime import timedelta

import pytest
from structlog.testing import capture_logs
from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.orders import business_errors
from canonical.errors import UnknownSku
from canonical.vendor_errors import VendorRateLimited

pytestmark = pytest.mark.integration


@activity.defn(name="bf_resolve_skus")
@business_errors
def resolve(sku: str) -> str:
    raise UnknownSku(f"no ERP item for shopify SKU {sku}")


@activity.defn(name="bf_broken")
@business_errors
def broken(sku: str) -> str:
    raise ApplicationError(f"a bug around {sku}", type="KeyError", non_retryable=True)


@activity.defn(name="bf_throttled")
@business_errors
def throttled(sku: str) -> str:
    raise VendorRateLimited("erpnext answered 429 to GET /api/resource/Item; retry after 1s", vendor="erpnext",
                            retry_after=0.1)


@workflow.defn(name="BusinessFaultLog")
class FaultWorkflow:
    @workflow.run
    async def run(self, step: str) -> str:
        try:
            await workflow.execute_activity(step, "SKU2006-35", start_to_close_timeout=timedelta(seconds=10),
                                            retry_policy=RetryPolicy(maximum_attempts=1))
        except ActivityError as err:
            return f"{type(err.cause).__name__}: {err.cause}"
        return "ok"


def _sdk_failures(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "temporalio.activity" and "Completing activity as failed"
            in r.getMessage()]


async def test_a_business_fault_is_one_structured_event_without_the_sdk_traceback(dev_env, caplog):
    queue = f"bf-{uuid.uuid4().hex[:8]}"
    caplog.set_level(logging.DEBUG, logger="temporalio.activity")
    with capture_logs() as events:
        async with Worker(dev_env.client, task_queue=queue, workflows=[FaultWorkflow],
                          activities=[resolve, broken, throttled],
                          activity_executor=concurrent.futures.ThreadPoolExecutor(2),
                          workflow_runner=UnsandboxedWorkflowRunner()):
            wf_id = f"bf:{uuid.uuid4().hex[:8]}"
            result = await dev_env.client.execute_workflow("BusinessFaultLog", "bf_resolve_skus", id=wf_id,
                                                           task_queue=queue)
            assert result == "ApplicationError: UnknownSku: no ERP item for shopify SKU SKU2006-35"
            faults = [e for e in events if e.get("event") == "activity.business_error"]
            assert len(faults) == 1, events
            fault = faults[0]
            assert fault["log_level"] == "warning" and fault["workflow_id"] == wf_id
            assert fault["activity"] == "bf_resolve_skus" and fault["error_type"] == "UnknownSku"
            assert fault["error"] == "no ERP item for shopify SKU SKU2006-35"
            assert "exc_info" not in fault and "exception" not in fault
            assert _sdk_failures(caplog) == [], [r.getMessage() for r in _sdk_failures(caplog)]

            # the control: an unexpected failure is still logged by the SDK with its traceback
            await dev_env.client.execute_workflow("BusinessFaultLog", "bf_broken", id=f"{wf_id}-bug", task_queue=queue)
            failures = _sdk_failures(caplog)
            assert len(failures) == 1 and failures[0].exc_info is not None
            assert "a bug around SKU2006-35" in str(failures[0].exc_info[1])
            assert [e for e in events if e.get("event") == "activity.business_error"] == [fault]


async def test_a_transient_vendor_fault_is_one_structured_line_per_attempt(dev_env, caplog):
    """At peak a throttling ERP refuses thousands of attempts: each is one `activity.vendor_retry` line (activity,
    attempt, workflow, error, Retry-After), not the SDK's plain-text traceback."""
    queue = f"bf-{uuid.uuid4().hex[:8]}"
    caplog.set_level(logging.DEBUG, logger="temporalio.activity")
    with capture_logs() as events:
        async with Worker(dev_env.client, task_queue=queue, workflows=[FaultWorkflow], activities=[throttled],
                          activity_executor=concurrent.futures.ThreadPoolExecutor(2),
                          workflow_runner=UnsandboxedWorkflowRunner()):
            wf_id = f"bf:{uuid.uuid4().hex[:8]}"
            result = await dev_env.client.execute_workflow("BusinessFaultLog", "bf_throttled", id=wf_id,
                                                           task_queue=queue)
    assert result.startswith("ApplicationError: RateLimited: erpnext answered 429"), result
    retries = [e for e in events if e.get("event") == "activity.vendor_retry"]
    assert len(retries) == 1, events
    assert retries[0]["workflow_id"] == wf_id and retries[0]["activity"] == "bf_throttled"
    assert retries[0]["attempt"] == 1 and retries[0]["error_type"] == "RateLimited"
    assert retries[0]["retry_after"] == 0.1 and retries[0]["task_queue"] == queue
    assert _sdk_failures(caplog) == [], [r.getMessage() for r in _sdk_failures(caplog)]
