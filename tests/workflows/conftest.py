from __future__ import annotations

import sys
from pathlib import Path

import pytest_asyncio
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from runtime.settings import SEARCH_ATTRIBUTES

TEST_SERVER = str(Path(sys.executable).parent / "temporal-test-server")


async def register_search_attributes(env: WorkflowEnvironment) -> None:
    kinds = {"Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD, "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
             "KeywordList": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST}
    await env.client.operator_service.add_search_attributes(AddSearchAttributesRequest(
        namespace=env.client.namespace,
        search_attributes={name: kinds[kind] for name, kind in SEARCH_ATTRIBUTES.items()},
    ))


@pytest_asyncio.fixture(scope="module")
async def ts_env():
    """A time-skipping test server per test module. The server has one clock for every workflow on it: a run a
    module leaves open (a terminated sync, an order waiting on its SLA timer) fires later with no worker to take
    its task, which holds the time-skipping lock and stalls every later module's timers. A fresh server per
    module (about a second to start) keeps modules independent."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=TEST_SERVER, data_converter=pydantic_data_converter
    )
    await register_search_attributes(env)
    try:
        yield env
    finally:
        await env.shutdown()
