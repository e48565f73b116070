"""Recorded histories replay deterministically against the current workflow code.

A change that breaks one of these needs `workflow.patched(...)` (old runs are still open in production).
Order histories were recorded from `retailflow dev` runs: completed, parked (unknown SKU) then retried, cancelled;
return histories on the time-skipping server with stand-in activities (parked then retried, cancelled while
awaiting receipt) before ReturnToRefund moved onto workflows/runbook.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.order_fulfillment import OrderFulfillment
from workflows.return_to_refund import ReturnToRefund

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path):
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=[OrderFulfillment, ReturnToRefund], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


def test_histories_are_present():
    assert {p.stem for p in HISTORIES} >= {"order_completed", "order_parked_unknown_sku_then_retried",
                                           "order_cancelled_before_shipment", "return_parked_then_retried",
                                           "return_cancelled_awaiting_receipt"}
