"""The circuit breaker's activities: the partner task queue's dispatch rate (Temporal's task-queue config: 0 holds
every task in the queue, nothing is attempted, nothing fails; the workflows wait) and the state metric."""

from __future__ import annotations

from collections.abc import Callable

from temporalio import activity
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import RateLimit
from temporalio.api.workflowservice.v1 import UpdateTaskQueueConfigRequest

from canonical.breakers import BreakerState

StateObserver = Callable[[str, BreakerState], None]


class BreakerActivities:
    def __init__(self, *, on_state: StateObserver | None = None) -> None:
        self.on_state = on_state

    @activity.defn(name="set_partner_queue_rate")
    async def set_partner_queue_rate(self, queue: str, rate: float | None, reason: str) -> None:
        """Dispatch at most `rate` activity tasks/second on `queue` (server-side, for every worker); None lifts the
        limit set here (the workers' own limit applies again)."""
        client = activity.client()
        update = UpdateTaskQueueConfigRequest.RateLimitUpdate(reason=reason[:200])
        if rate is not None:
            update.rate_limit.CopyFrom(RateLimit(requests_per_second=rate))
        await client.workflow_service.update_task_queue_config(UpdateTaskQueueConfigRequest(
            namespace=client.namespace, identity="retailflow-breaker", task_queue=queue,
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY, update_queue_rate_limit=update))

    @activity.defn(name="observe_breaker_state")
    def observe_breaker_state(self, queue: str, state: BreakerState) -> None:
        if self.on_state is not None:
            self.on_state(queue, state)

    def all(self) -> list:
        return [self.set_partner_queue_rate, self.observe_breaker_state]
