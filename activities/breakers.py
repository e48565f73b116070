"""The circuit breaker's activities: the partner task queue's dispatch rate (Temporal's task-queue config: 0 holds
every task in the queue, nothing is attempted, nothing fails; the workflows wait) and the state metric; and the
queue's per-fairness-key rate (`set_key_rate`, set at worker start), for a partner whose quota is per shop.

The two are separate fields of one task-queue config: an UpdateTaskQueueConfig that carries only the queue's rate
(what the breaker sends on open, half-open and close) leaves the per-key default as it was
(tests/integration/test_per_shop_rate_limit.py checks it on the server)."""

from __future__ import annotations

from collections.abc import Callable

from temporalio import activity
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import RateLimit, TaskQueueConfig
from temporalio.api.workflowservice.v1 import UpdateTaskQueueConfigRequest
from temporalio.client import Client

from canonical.breakers import BreakerState

StateObserver = Callable[[str, BreakerState], None]


IDENTITY = "retailflow-breaker"


def _rate_update(rate: float | None, reason: str) -> UpdateTaskQueueConfigRequest.RateLimitUpdate:
    update = UpdateTaskQueueConfigRequest.RateLimitUpdate(reason=reason[:200])
    if rate is not None:  # no rate_limit in the update: the limit set before is removed
        update.rate_limit.CopyFrom(RateLimit(requests_per_second=rate))
    return update


async def set_queue_rate(client: Client, queue: str, rate: float | None, reason: str) -> TaskQueueConfig:
    """Dispatch at most `rate` activity tasks/second on `queue` (every key together); None lifts it."""
    response = await client.workflow_service.update_task_queue_config(UpdateTaskQueueConfigRequest(
        namespace=client.namespace, identity=IDENTITY, task_queue=queue,
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY, update_queue_rate_limit=_rate_update(rate, reason)))
    return response.config


async def set_key_rate(client: Client, queue: str, rate: float | None, reason: str) -> TaskQueueConfig:
    """Dispatch at most `rate` activity tasks/second of each fairness key (each shop) on `queue`, scaled by the
    key's fairness weight; None lifts it. The queue's own rate (the breaker's) is not touched."""
    response = await client.workflow_service.update_task_queue_config(UpdateTaskQueueConfigRequest(
        namespace=client.namespace, identity=IDENTITY, task_queue=queue,
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        update_fairness_key_rate_limit_default=_rate_update(rate, reason)))
    return response.config


class BreakerActivities:
    def __init__(self, *, on_state: StateObserver | None = None) -> None:
        self.on_state = on_state

    @activity.defn(name="set_partner_queue_rate")
    async def set_partner_queue_rate(self, queue: str, rate: float | None, reason: str) -> None:
        """Dispatch at most `rate` activity tasks/second on `queue` (server-side, for every worker); None lifts the
        limit set here (the workers' own limit applies again)."""
        await set_queue_rate(activity.client(), queue, rate, reason)

    @activity.defn(name="observe_breaker_state")
    def observe_breaker_state(self, queue: str, state: BreakerState) -> None:
        if self.on_state is not None:
            self.on_state(queue, state)

    def all(self) -> list:
        return [self.set_partner_queue_rate, self.observe_breaker_state]
