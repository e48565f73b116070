"""InventoryDrift: reconcile the ledger with the ERP's (or WMS's) stock, on a Temporal Schedule or on demand.

take a snapshot (or use a stored one, e.g. a CSV loaded by `retailflow inventory snapshot`) → compare it with the
ledger's on-hand → record every difference → post a correcting adjustment for each difference within the
threshold → differences beyond it park for an analyst (`NeedsAttention=true`): `approve` posts them too,
`retry` compares them again (after someone fixed the ERP or the ledger), `skip` leaves them recorded as skipped,
`cancel` ends the run there → tell InventorySync about every corrected SKU (signal-with-start), so channels see it.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.inventory import (
        CompareInput,
        DriftCorrectInput,
        DriftRecordInput,
        InventoryActivities,
        SkusInput,
        SnapshotInput,
    )
    from activities.ops import OpsActivities
    from canonical.fulfillment import AnalystAction
    from canonical.inventory import DriftInput, DriftLine, DriftResult
    from canonical.ops import RunStatusUpdate
    from workflows import search_attributes as sa

RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                    maximum_interval=timedelta(seconds=60), maximum_attempts=20)
TIMEOUT = timedelta(minutes=5)


@workflow.defn(name="InventoryDrift")
class InventoryDrift:
    @workflow.init
    def __init__(self, inp: DriftInput) -> None:
        self._status = "running"
        self._parked: list[DriftLine] = []
        self._action: tuple[str, AnalystAction] | None = None
        self._history: list[str] = []
        self._version = 0

    # -- analyst signals --------------------------------------------------------------------------------
    @workflow.signal
    def retry(self, who: AnalystAction) -> None:
        self._action = ("retry", who)

    @workflow.signal
    def approve(self, who: AnalystAction) -> None:
        self._action = ("approve", who)

    @workflow.signal
    def skip(self, who: AnalystAction) -> None:
        self._action = ("skip", who)

    @workflow.signal
    def cancel(self, who: AnalystAction) -> None:
        self._action = ("cancel", who)

    @workflow.query
    def status(self) -> dict:
        return {"status": self._status, "parked": [p.model_dump() for p in self._parked], "history": self._history}

    async def _project(self, status: str, reason: str | None = None, action: str | None = None) -> None:
        """Best effort: the platform's status projection, so `GET /ops/needs-attention` lists a parked run."""
        self._version += 1
        info = workflow.info()
        try:
            await workflow.execute_local_activity_method(
                OpsActivities.record_run_status,
                RunStatusUpdate(workflow_id=info.workflow_id, kind="inventory_drift", status=status,
                                needs_attention=status == "needs_attention", reason=reason, suggested_action=action,
                                version=self._version, started_at=info.start_time, changed_at=workflow.now()),
                start_to_close_timeout=timedelta(seconds=10), retry_policy=RetryPolicy(maximum_attempts=3),
                summary=f"Status: {status}")
        except ActivityError as err:
            workflow.logger.warning("status projection not written (%s): %s", status, err.cause)

    async def _act(self, activity, arg, summary: str):
        return await workflow.execute_activity_method(activity, arg, start_to_close_timeout=TIMEOUT,
                                                      retry_policy=RETRY, summary=summary)

    # -- the run --------------------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: DriftInput) -> DriftResult:
        run_id = workflow.info().workflow_id
        workflow.upsert_search_attributes([sa.NEEDS_ATTENTION.value_set(False)])
        snapshot_id = await self._act(InventoryActivities.take_stock_snapshot,
                                      SnapshotInput(snapshot_id=inp.snapshot_id, source=inp.source),
                                      f"Take a stock snapshot from {inp.snapshot_id or inp.source}")
        diffs: list[DriftLine] = await self._act(InventoryActivities.compare_inventory,
                                                 CompareInput(snapshot_id=snapshot_id),
                                                 f"Compare the ledger with snapshot {snapshot_id}")
        if diffs:
            await self._act(InventoryActivities.record_inventory_drift,
                            DriftRecordInput(run_id=run_id, lines=diffs, status="found"),
                            f"Record {len(diffs)} difference(s)")
        small = [d for d in diffs if abs(d.difference) <= inp.threshold]
        big = [d for d in diffs if abs(d.difference) > inp.threshold]
        corrected: list[DriftLine] = []
        skipped = 0
        if small:
            await self._correct(run_id, small)
            corrected += small
        while big:
            kind = await self._park(run_id, big, inp.threshold)
            if kind == "approve":
                await self._correct(run_id, big)
                corrected += big
                big = []
            elif kind == "retry":
                again = await self._act(InventoryActivities.compare_inventory, CompareInput(snapshot_id=snapshot_id),
                                        f"Compare {len(big)} parked difference(s) again")
                keys = {(d.sku, d.location) for d in big}
                again = [d for d in again if (d.sku, d.location) in keys]
                now_small = [d for d in again if abs(d.difference) <= inp.threshold]
                if now_small:
                    await self._correct(run_id, now_small)
                    corrected += now_small
                big = [d for d in again if abs(d.difference) > inp.threshold]
            else:  # skip or cancel: leave them as they are, recorded
                await self._act(InventoryActivities.record_inventory_drift,
                                DriftRecordInput(run_id=run_id, lines=big, status="skipped"),
                                f"Leave {len(big)} difference(s) uncorrected ({kind})")
                skipped += len(big)
                big = []
                if kind == "cancel":
                    self._status = "cancelled"
                    break
        self._parked = []
        workflow.upsert_search_attributes([sa.NEEDS_ATTENTION.value_set(False)])
        skus = sorted({d.sku for d in corrected})
        if skus:
            await self._act(InventoryActivities.request_inventory_sync, SkusInput(skus=skus),
                            f"Republish availability of {len(skus)} SKU(s)")
        if self._status != "cancelled":
            self._status = "completed"
        await self._project(self._status)
        return DriftResult(run_id=run_id, snapshot_id=snapshot_id, differences=len(diffs),
                           corrected=len(corrected), skipped=skipped, republished=skus)

    async def _correct(self, run_id: str, lines: list[DriftLine]) -> None:
        await self._act(InventoryActivities.correct_inventory_drift, DriftCorrectInput(run_id=run_id, lines=lines),
                        f"Post {len(lines)} correcting adjustment(s)")

    async def _park(self, run_id: str, big: list[DriftLine], threshold: int) -> str:
        await self._act(InventoryActivities.record_inventory_drift,
                        DriftRecordInput(run_id=run_id, lines=big, status="parked"),
                        f"Park {len(big)} difference(s) beyond {threshold} unit(s) for an analyst")
        workflow.upsert_search_attributes([sa.NEEDS_ATTENTION.value_set(True),
                                           sa.SKUS.value_set(sorted({d.sku for d in big}))])
        listed = ", ".join(f"{d.sku}@{d.location} {d.difference:+d}" for d in big[:10])
        await self._project("needs_attention", f"{len(big)} stock difference(s) beyond {threshold} unit(s): {listed}",
                            "Check the counts, then signal `approve` (post the corrections), `retry` (compare again "
                            "after a fix), `skip` or `cancel`.")
        self._parked = list(big)
        self._status = "needs_attention"
        self._action = None
        await workflow.wait_condition(lambda: self._action is not None)
        kind, who = self._action
        self._action = None
        self._history.append(f"{kind} by {who.actor}: {who.reason or kind}")
        workflow.logger.info("inventory drift %s: %s by %s", run_id, kind, who.actor)
        self._status = "running"
        workflow.upsert_search_attributes([sa.NEEDS_ATTENTION.value_set(False)])
        await self._project("running")
        return kind
