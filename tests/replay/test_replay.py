"""Recorded histories replay deterministically against the current workflow code.

A change that breaks one of these needs `workflow.patched(...)` (old runs are still open in production).
Order histories `order_completed`, `order_parked_unknown_sku_then_retried` and `order_cancelled_before_shipment`
were recorded from `retailflow dev` runs; the return histories `return_parked_then_retried` and
`return_cancelled_awaiting_receipt` on the time-skipping server with stand-in activities before ReturnToRefund moved
onto workflows/runbook.py. The other histories (orders, returns, store days, settlements, inventory drift) were
recorded from the workflow tests (tests/workflows) on the time-skipping server just before every workflow that
parks moved onto the one Runbook (RunbookState/RunbookConfig): they pin the command sequence each had then.

Since the payload codec (runtime/codec.py) they are sealed as a worker with the codec records them
(`python -m tests.replay.seal`, under the test key tests/replay/codec-keys.json) and replay through the codec's
data converter; `order_completed_precodec` stays in clear and must still replay (runs started before the codec).

Patches are retired in Temporal's stages (docs/deployment.md "Safe deploys", "Patches"): `patched` →
`deprecate_patch` → removed. Every patch is at `deprecate_patch` today, so: the histories recorded before a patch
existed were recorded again from today's code (`python -m tests.replay.record`: `order_completed`,
`order_completed_precodec`, `order_cancelled_before_shipment`, `order_parked_unknown_sku_then_retried` and the four
settlement histories without a marker; same scenarios, same names), and each deprecated patch keeps at least one
history recorded while it was `patched` (`test_each_deprecated_patch_replays_a_run_started_while_it_was_patched`;
`return_over_refund_parked_then_skipped`, `inventory_sync_shortfall_told_orders` and
`storeday_shortfall_told_orders` were recorded from the code before the deprecation for that).

Issue 21's workflows (`python -m tests.replay.record price_approved_published_reverted
parity_difference_parked_then_retried`): PricePublication approved by two, published to two channels at its time,
verified and reverted at its end; ParityCheck parked on a changed tax line in the shadow ERP, retried twice (the
second after the fix) to completion.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from runtime.codec import ENCODING, data_converter
from tests.replay.seal import PRECODEC, payloads_of, replay_keyring
from workflows.inventory_drift import InventoryDrift
from workflows.inventory_sync import BACKORDER_RECEIPTS_PATCH, SHORTFALL_PATCH, InventorySync
from workflows.order_fulfillment import (
    BACKORDER_WAITS_PATCH,
    PROJECTION_PATCH,
    SA_ON_CHANGE_PATCH,
    SPLIT_PATCH,
    STOCK_NEWS_PATCH,
    STORE_AMEND_PATCH,
    STORE_PATCH,
    OrderFulfillment,
)
from workflows.parity_check import ParityCheck
from workflows.price_publication import PricePublication
from workflows.return_to_refund import OVER_REFUND_PATCH, ReturnToRefund
from workflows.settlement_reconciliation import ALREADY_POSTED_PATCH, SettlementReconciliation
from workflows.store_day import BACKORDER_RECEIPTS_PATCH as STORE_DAY_BACKORDER_PATCH
from workflows.store_day import StoreDay

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
WORKFLOWS = [OrderFulfillment, ReturnToRefund, StoreDay, SettlementReconciliation, InventoryDrift, InventorySync,
             PricePublication, ParityCheck]
# Every patch the workflows still name, all at the deprecate_patch stage: removed from the code in the release after
# the one that deprecated them, once no run started while they were `patched` is open (docs/deployment.md).
DEPRECATED_PATCHES = {PROJECTION_PATCH, SA_ON_CHANGE_PATCH, STOCK_NEWS_PATCH, OVER_REFUND_PATCH, ALREADY_POSTED_PATCH,
                      SHORTFALL_PATCH}
# Patches at the `patched` stage: new branches whose runs the histories pin (issue 20's split fulfillment, its
# store fulfillments, and backorders released by a receipt through InventorySync).
ACTIVE_PATCHES = {SPLIT_PATCH, STORE_PATCH, STORE_AMEND_PATCH, BACKORDER_WAITS_PATCH, BACKORDER_RECEIPTS_PATCH,
                  STORE_DAY_BACKORDER_PATCH}


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path):
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=WORKFLOWS, data_converter=data_converter(replay_keyring()))
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


def test_histories_are_present():
    assert {p.stem for p in HISTORIES} >= {
        "order_completed", "order_parked_unknown_sku_then_retried", "order_cancelled_before_shipment",
        "order_lines_cancelled_before_shipment", "order_parked_then_resumed_with_corrections",
        "order_failed_after_shipment_parked_then_retried", "order_shortfall_after_release_parked_then_retried",
        "return_parked_then_retried", "return_cancelled_awaiting_receipt", "return_paid_then_parked_cancel_refused",
        "storeday_parked_then_skipped", "storeday_cancelled_before_close", "storeday_closed_then_adjusted",
        "settlement_parked_then_skipped_to_suspense", "settlement_parked_then_retried",
        "settlement_cancelled_while_parked", "settlement_stage_parked_skip_refused", "settlement_posted_started_again",
        "drift_parked_then_approved", "drift_parked_then_retried", "drift_parked_then_skipped", "drift_cancelled_while_parked",
        "return_over_refund_parked_then_skipped", "inventory_sync_shortfall_told_orders", "storeday_shortfall_told_orders",
        "price_approved_published_reverted", "parity_difference_parked_then_retried",  # issue 21
        "order_backorder_released_by_receipt", "inventory_sync_backorder_receipt_told_order",  # issue 20 backorders
        "storeday_return_told_backorders",
        "order_store_sale_withdrawn_whole", "order_store_sale_amended",  # issue 20: a store sale before store-amend-v1, after
    }


def patch_markers(path: Path) -> list[dict]:
    """The patch markers of a history: [{"id": ..., "deprecated": ...}]."""
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    return [json.loads(e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)
            for e in history.events if e.HasField("marker_recorded_event_attributes")
            and e.marker_recorded_event_attributes.marker_name == "core_patch"]


def test_each_deprecated_patch_replays_a_run_started_while_it_was_patched():
    """The deprecate_patch stage must still replay the runs the previous release started with `patched` (their
    markers say deprecated: false); histories from today's code carry deprecated markers (what the removal in the
    next release will skip)."""
    markers = {p.stem: patch_markers(p) for p in HISTORIES}
    for patch in DEPRECATED_PATCHES:
        assert any({"id": patch, "deprecated": False} in m for m in markers.values()), patch
        assert any({"id": patch, "deprecated": True} in m for m in markers.values()) or patch in {
            STOCK_NEWS_PATCH, OVER_REFUND_PATCH, SHORTFALL_PATCH}, patch  # those only on stock news / over-refunds
    assert {m["id"] for ms in markers.values() for m in ms} <= DEPRECATED_PATCHES | ACTIVE_PATCHES, \
        "a history names an unknown patch"
    for patch in ACTIVE_PATCHES:
        assert any({"id": patch, "deprecated": False} in m for m in markers.values()), patch


def test_histories_are_sealed_but_one_from_before_the_codec():
    """Every payload of the re-recorded histories is encrypted (only search attributes, headers and core's own
    marker data are not payloads the codec sees); the pre-codec history is all clear text."""
    assert {p.stem for p in HISTORIES} >= PRECODEC
    for path in HISTORIES:
        payloads = payloads_of(path.read_text())
        assert payloads, path.stem
        encrypted = [p.metadata.get("encoding") == ENCODING for p in payloads]
        if path.stem in PRECODEC:
            assert not any(encrypted), path.stem
            assert any(b"jon@example.com" in p.data for p in payloads)  # what the others seal
        else:
            assert all(encrypted), f"{path.stem}: {encrypted.count(False)} payloads in clear"
            assert not any(b"@example.com" in p.data for p in payloads), path.stem
