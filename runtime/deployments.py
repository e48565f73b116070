"""Worker Deployment Versioning operations (docs/deployment.md, "Safe deploys"): make a build id the current
version of the platform's Worker Deployment, or ramp a share of new runs to it, and describe the deployment.
Used by `retailflow deploy …` and the deploy tests; the server refuses a version no worker has polled as."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from temporalio.api.enums.v1 import RoutingConfigUpdateState
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
    SetWorkerDeploymentRampingVersionRequest,
)
from temporalio.client import Client


@dataclass(frozen=True)
class DeploymentState:
    name: str
    current_build_id: str | None
    ramping_build_id: str | None
    ramp_percentage: float
    versions: list[str]
    propagated: bool = True  # the routing change has reached every task queue partition (the server says so)


async def set_current(client: Client, deployment: str, build_id: str, *, identity: str = "retailflow-cli") -> None:
    """New runs (and auto-upgrade ones at their next task) go to `build_id`; pinned runs stay where they started."""
    await client.workflow_service.set_worker_deployment_current_version(SetWorkerDeploymentCurrentVersionRequest(
        namespace=client.namespace, deployment_name=deployment, build_id=build_id, identity=identity))


async def set_ramping(client: Client, deployment: str, build_id: str, percentage: float, *,
                      identity: str = "retailflow-cli") -> None:
    """Send `percentage` % of new runs to `build_id` (a canary) while the rest go to the current version."""
    await client.workflow_service.set_worker_deployment_ramping_version(SetWorkerDeploymentRampingVersionRequest(
        namespace=client.namespace, deployment_name=deployment, build_id=build_id, percentage=percentage,
        identity=identity))


async def describe(client: Client, deployment: str) -> DeploymentState:
    resp = await client.workflow_service.describe_worker_deployment(DescribeWorkerDeploymentRequest(
        namespace=client.namespace, deployment_name=deployment))
    info = resp.worker_deployment_info
    routing = info.routing_config
    current = routing.current_deployment_version.build_id or None
    ramping = routing.ramping_deployment_version.build_id or None
    return DeploymentState(name=info.name, current_build_id=current, ramping_build_id=ramping,
                           ramp_percentage=routing.ramping_version_percentage,
                           versions=[v.deployment_version.build_id for v in info.version_summaries],
                           propagated=info.routing_config_update_state
                           != RoutingConfigUpdateState.ROUTING_CONFIG_UPDATE_STATE_IN_PROGRESS)


async def wait_propagated(client: Client, deployment: str, *, timeout: float = 30.0) -> DeploymentState:
    """Until the server reports the last routing change reached every task queue partition: before that, a task
    may still go to the previous version (an auto-upgrade run's next task among them). TimeoutError after `timeout`."""
    async with asyncio.timeout(timeout):
        while not (state := await describe(client, deployment)).propagated:
            await asyncio.sleep(0.2)
    return state
