"""Deployment pieces against the Temporal dev server: the compose stack's namespace job (the same script the
`temporal-namespace` service runs, with the same `temporal` CLI) and the worker fleet (partner queues with a
server-side rate limit, graceful shutdown)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from temporalio.api.enums.v1 import IndexedValueType, TaskQueueKind, TaskQueueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from adapters.sql import create_schema, make_engine
from runtime.registry import build_adapters
from runtime.settings import SEARCH_ATTRIBUTES, Settings
from worker import build_partner_workers, run_worker

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _compose_env(service: str) -> dict[str, str]:
    compose = yaml.safe_load((ROOT / "docker-compose.temporal.yml").read_text())
    return {k: str(v) for k, v in compose["services"][service]["environment"].items()}


def _run_namespace_job(address: str, namespace: str) -> subprocess.CompletedProcess:
    job = _compose_env("temporal-namespace")
    env = {**os.environ, **job, "TEMPORAL_ADDRESS": address, "NAMESPACE": namespace,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(["sh", str(ROOT / "deploy/temporal/setup-namespace.sh")], env=env,
                          capture_output=True, text=True, timeout=180)


async def test_namespace_job_creates_namespace_and_search_attributes(dev_env):
    address = dev_env.client.service_client.config.target_host
    namespace = f"rf-{uuid.uuid4().hex[:8]}"
    first = _run_namespace_job(address, namespace)
    assert first.returncode == 0, first.stdout + first.stderr
    again = _run_namespace_job(address, namespace)  # a restarted job changes nothing and succeeds
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"namespace {namespace} exists" in again.stdout
    resp = await dev_env.client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace))
    custom = {name: IndexedValueType.Name(t).removeprefix("INDEXED_VALUE_TYPE_").replace("_", "")
              for name, t in resp.custom_attributes.items()}
    wanted = {name: kind.upper() for name, kind in SEARCH_ATTRIBUTES.items()}
    assert custom == wanted


async def _activity_pollers(client, queue: str):
    resp = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
        namespace=client.namespace, task_queue=TaskQueue(name=queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY))
    return list(resp.pollers)


async def test_run_worker_serves_partner_queues_with_server_side_rate(dev_env, tmp_path):
    partner = f"it-partner-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        _env_file=None, temporal_address=dev_env.client.service_client.config.target_host,
        temporal_namespace=dev_env.client.namespace, task_queue=f"it-{uuid.uuid4()}",
        database_url=f"sqlite:///{tmp_path / 'rf.db'}", partner_activity_rate_limits={partner: 7.5},
        worker_metrics_port=0, temporal_sdk_metrics_port=0, local_wms_enabled=False,
        worker_graceful_shutdown_seconds=2)
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(settings, stop=stop))
    try:
        pollers = []
        for _ in range(100):
            pollers = await _activity_pollers(dev_env.client, partner)
            if pollers or task.done():
                break
            await asyncio.sleep(0.1)
        assert not task.done(), task.exception() if task.done() else None
        assert pollers, "no worker polls the partner queue"
        assert {p.rate_per_second for p in pollers} == {7.5}
        assert await _activity_pollers(dev_env.client, settings.task_queue)  # the main queue too
    finally:
        stop.set()
        # graceful shutdown: returns once idle workers have stopped (well within the grace period)
        await asyncio.wait_for(task, timeout=30)


def test_partner_workers_carry_rate_and_grace(dev_env, tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'rf.db'}")
    create_schema(engine)
    adapters = build_adapters(Settings(_env_file=None, local_wms_enabled=False), engine)
    workers = build_partner_workers(dev_env.client, adapters, {"q-b": 2, "q-a": 0.5},
                                    graceful_shutdown_timeout=timedelta(seconds=30))
    configs = [w.config() for w in workers]
    assert [(c["task_queue"], c["max_task_queue_activities_per_second"]) for c in configs] == [
        ("q-a", 0.5), ("q-b", 2)]
    assert all(c["graceful_shutdown_timeout"] == timedelta(seconds=30) and not c["workflows"] for c in configs)
    with pytest.raises(ValueError, match="positive"):
        build_partner_workers(dev_env.client, adapters, {"q": 0})
    engine.dispose()
