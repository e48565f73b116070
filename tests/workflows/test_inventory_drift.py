"""InventoryDrift on the time-skipping server with the real activities over a SQLite ledger: small differences are
corrected at once, big ones park for an analyst (approve / retry after a fix / skip), and every corrected SKU is
republished through InventorySync (signal-with-start) to the embedded marketplace."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from datetime import UTC, datetime

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.worker import Worker

from activities.inventory import InventoryActivities
from activities.ops import OpsActivities
from adapters.marketplace.local import LocalMarketplace
from adapters.sql import create_schema, make_engine
from canonical.fulfillment import AnalystAction
from canonical.inventory import ChannelInventoryPolicy, DriftInput, InventoryEvent, StockSnapshotLine
from canonical.ops import AnalystRequest
from runtime.registry import build_adapters
from runtime.settings import Settings
from starters.inventory import start_inventory_sync
from workflows.inventory_drift import InventoryDrift
from workflows.inventory_sync import InventorySync

WHO = AnalystAction(actor="ana@example.com", reason="checked the shelf")


@pytest.fixture
def adapters(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'rf.db'}")
    create_schema(engine)
    settings = Settings(inventory_channels={"shopify": ChannelInventoryPolicy(publish_window_seconds=60)})
    adapters = build_adapters(settings, engine)
    for sku, qty in (("CHAIR", 10), ("LAMP", 5)):
        adapters.inventory.apply_event(InventoryEvent(
            source="wms", source_event_id=f"r-{sku}", kind="receipt", sku=sku, location="MAIN", quantity=qty,
            occurred_at=datetime(2026, 1, 1, tzinfo=UTC)))
    snapshot = adapters.inventory.save_snapshot([
        StockSnapshotLine(sku="CHAIR", location="MAIN", on_hand=8),
        StockSnapshotLine(sku="LAMP", location="MAIN", on_hand=50)], "snap-1")
    assert snapshot == "snap-1"
    yield adapters
    engine.dispose()


async def _run(env, adapters, scenario):
    queue = f"drift-{uuid.uuid4().hex[:8]}"
    async with Worker(env.client, task_queue=queue, workflows=[InventoryDrift, InventorySync],
                      activities=[*InventoryActivities(adapters, sync_starter=start_inventory_sync).all(), *OpsActivities(adapters.projection).all()],
                      activity_executor=concurrent.futures.ThreadPoolExecutor(8)):
        handle = await env.client.start_workflow(InventoryDrift.run, DriftInput(snapshot_id="snap-1", threshold=10),
                                                 id=f"inventory-drift:{uuid.uuid4().hex[:8]}", task_queue=queue)
        for _ in range(100):
            if (await handle.query(InventoryDrift.status))["status"] == "needs_attention":
                break
            await asyncio.sleep(0.1)
        status = await handle.query(InventoryDrift.status)
        assert status["status"] == "needs_attention" and [p["sku"] for p in status["parked"]] == ["LAMP"]
        parked = {d["item_code"]: d["status"] for d in adapters.inventory.drift(handle.id)}
        assert parked == {"CHAIR": "corrected", "LAMP": "parked"}  # the small one did not wait
        listed = {r["workflow_id"]: r for r in adapters.projection.list(needs_attention=True)[0]}
        assert "LAMP@MAIN +45" in listed[handle.id]["reason"]
        await scenario(handle)
        result = await handle.result()
        # the republished SKUs reach the channel through InventorySync
        market = adapters.marketplace
        assert isinstance(market, LocalMarketplace)
        for sku in result.republished:
            for _ in range(100):
                if market.publications(sku, "shopify"):
                    break
                await env.sleep(1)
        for sku in result.republished:  # the syncs run on (idle for a day); the next test starts its own
            await env.client.get_workflow_handle(f"inventory:{sku}").terminate()
        return result, handle


def _on_hand(adapters, sku: str) -> int:
    return adapters.inventory.levels(sku)[0].on_hand


async def test_approved_big_difference_is_corrected_and_everything_is_republished(ts_env, adapters):
    async def approve(handle):
        await handle.signal(InventoryDrift.approve, WHO)

    result, handle = await _run(ts_env, adapters, approve)
    assert not adapters.projection.list(needs_attention=True)[0]  # no longer listed as parked
    assert (result.differences, result.corrected, result.skipped) == (2, 2, 0)
    assert (_on_hand(adapters, "CHAIR"), _on_hand(adapters, "LAMP")) == (8, 50)
    assert result.republished == ["CHAIR", "LAMP"]
    assert [p["quantity"] for p in adapters.marketplace.publications("CHAIR", "shopify")] == [8]
    assert [p["quantity"] for p in adapters.marketplace.publications("LAMP", "shopify")] == [50]
    assert {d["item_code"]: d["status"] for d in adapters.inventory.drift(handle.id)} == {
        "CHAIR": "corrected", "LAMP": "corrected"}


async def test_retry_after_a_fix_corrects_what_is_left_within_the_threshold(ts_env, adapters):
    async def fix_then_retry(handle):
        adapters.inventory.apply_event(InventoryEvent(
            source="wms", source_event_id="found-lamps", kind="receipt", sku="LAMP", location="MAIN", quantity=44,
            occurred_at=datetime.now(UTC)))  # the missing receipt, found by the analyst: 49 now
        await handle.signal(InventoryDrift.retry, WHO)

    result, _ = await _run(ts_env, adapters, fix_then_retry)
    assert (result.corrected, result.skipped) == (2, 0) and _on_hand(adapters, "LAMP") == 50


async def test_skip_leaves_the_big_difference_recorded_and_uncorrected(ts_env, adapters):
    async def skip(handle):
        await handle.signal(InventoryDrift.skip, WHO)

    result, handle = await _run(ts_env, adapters, skip)
    assert (result.corrected, result.skipped, result.republished) == (1, 1, ["CHAIR"])
    assert _on_hand(adapters, "LAMP") == 5
    assert {d["item_code"]: d["status"] for d in adapters.inventory.drift(handle.id)}["LAMP"] == "skipped"


async def test_cancel_while_parked_leaves_the_difference_recorded_and_ends_cancelled(ts_env, adapters):
    async def cancel(handle):
        await handle.signal(InventoryDrift.cancel, WHO)

    result, handle = await _run(ts_env, adapters, cancel)
    assert (result.corrected, result.skipped, result.republished) == (1, 1, ["CHAIR"])
    assert [r["workflow_id"] for r in adapters.projection.list(status="cancelled")[0]] == [handle.id]
    assert {d["item_code"]: d["status"] for d in adapters.inventory.drift(handle.id)}["LAMP"] == "skipped"


async def test_the_validated_act_update_refuses_what_does_not_apply_and_takes_a_retry(ts_env, adapters):
    async def act(handle):
        for action in ("resume", "skip"):
            request = AnalystRequest(action=action, actor="ana@example.com", reason="x")
            if action == "resume":
                with pytest.raises(WorkflowUpdateFailedError):
                    await handle.execute_update(InventoryDrift.act, request)
            else:
                view = await handle.execute_update(InventoryDrift.act, request)
                assert view["status"] == "needs_attention"  # taken; the run moves on after the update
        for _ in range(100):
            if (await handle.query(InventoryDrift.status))["history"]:
                break
            await asyncio.sleep(0.1)
        assert (await handle.query(InventoryDrift.status))["history"] == ["skip by ana@example.com: x"]

    result, _ = await _run(ts_env, adapters, act)
    assert (result.corrected, result.skipped) == (1, 1)
