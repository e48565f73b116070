"""InventoryDrift: reconcile the ledger with the ERP's (or WMS's) stock, on a Temporal Schedule or on demand.

take a snapshot (or use a stored one, e.g. a CSV loaded by `retailflow inventory snapshot`) → compare it with the
ledger's on-hand → record every difference → post a correcting adjustment for each difference within the
threshold → differences beyond it park for an analyst (`NeedsAttention=true`): `approve` posts them too,
`retry` compares them again (after someone fixed the ERP or the ledger), `skip` leaves them recorded as skipped,
`cancel` ends the run there → tell InventorySync about every corrected SKU (signal-with-start), so channels see it.

Parking, the analyst's signals and the validated `act` update (retry/skip/cancel) are the Runbook's
(workflows/runbook.py); `approve` is this workflow's own signal. Its steps are retried by Temporal and do not park.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.inventory import (
        CompareInput,
        DriftCorrectInput,
        DriftRecordInput,
        InventoryActivities,
        SkusInput,
        SnapshotInput,
    )
    from canonical.fulfillment import AnalystAction
    from canonical.inventory import DriftInput, DriftLine, DriftResult
    from canonical.ops import RunStatusUpdate
    from workflows import search_attributes as sa
    from workflows.runbook import Runbook, RunbookConfig, RunbookState, StepOptions, analyst_update

RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                    maximum_interval=timedelta(seconds=60), maximum_attempts=20)
TIMEOUT = timedelta(minutes=5)
STEP = StepOptions(start_to_close=TIMEOUT, retry_policy=RETRY)
RUNNING, NEEDS_ATTENTION, COMPLETED, CANCELLED = "running", "needs_attention", "completed", "cancelled"
PARKED_ACTION = ("Check the counts, then signal `approve` (post the corrections), `retry` (compare again after a fix), "
                 "`skip` or `cancel`.")


@workflow.defn(name="InventoryDrift")
class InventoryDrift(Runbook):
    # Differences beyond the threshold park; `cancel` is one of the analyst's decisions there (nothing to undo).
    RUNBOOK = RunbookConfig(
        kind="inventory drift", noun="inventory drift run", parking_errors=frozenset(),
        needs_attention=NEEDS_ATTENTION, closed=frozenset({COMPLETED, CANCELLED}),
        resume_refused="an inventory drift run has no data to correct; `approve`, `retry`, `skip` or `cancel`",
        step_timeout=TIMEOUT, await_projection=True,
    )

    @workflow.init
    def __init__(self, inp: DriftInput) -> None:
        self.rb = RunbookState(status=RUNNING, retry_policy=RETRY)
        self._parked: list[DriftLine] = []
        self._parked_reason: str | None = None
        self._history: list[str] = []
        self._version = 0

    # -- analyst signals (retry, skip and cancel are the Runbook's) -------------------------------------------
    @workflow.signal
    def approve(self, who: AnalystAction) -> None:
        self.rb.pending = ("approve", who)

    act = analyst_update(dict)

    @workflow.query
    def status(self) -> dict:
        return {"status": self.rb.status, "parked": [p.model_dump() for p in self._parked], "history": self._history}

    def _cancel_refusal(self) -> str | None:
        if self.rb.status != NEEDS_ATTENTION:
            return f"the inventory drift run is {self.rb.status}, not needs_attention; nothing to cancel"
        return None

    def _on_analyst_action(self, kind: str, who: AnalystAction) -> str:
        self._history.append(f"{kind} by {who.actor}: {who.reason or kind}")
        workflow.logger.info("inventory drift %s: %s by %s", workflow.info().workflow_id, kind, who.actor)
        return kind

    def _set_status(self, status: str, reason: str | None = None) -> None:
        self.rb.status = status
        if status == NEEDS_ATTENTION:
            workflow.upsert_search_attributes([sa.NEEDS_ATTENTION.value_set(True),
                                               sa.SKUS.value_set(sorted({d.sku for d in self._parked}))])
            self._project(status, self._parked_reason, self.rb.action_hint)
        else:
            workflow.upsert_search_attributes([sa.NEEDS_ATTENTION.value_set(False)])
            self._project(status)

    def _project(self, status: str, reason: str | None = None, action: str | None = None) -> None:
        """Best effort: the platform's status projection, so `GET /ops/needs-attention` lists a parked run."""
        self._version += 1
        info = workflow.info()
        self._queue_projection(RunStatusUpdate(
            workflow_id=info.workflow_id, kind="inventory_drift", status=status,
            needs_attention=status == NEEDS_ATTENTION, reason=reason, suggested_action=action,
            version=self._version, started_at=info.start_time, changed_at=workflow.now()))

    async def _run_step(self, activity, arg, summary: str):
        """A drift step: retried by Temporal (20 attempts), it does not park."""
        return await self._execute(activity, arg, summary, STEP)

    # -- the run --------------------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: DriftInput) -> DriftResult:
        run_id = workflow.info().workflow_id
        workflow.upsert_search_attributes([sa.NEEDS_ATTENTION.value_set(False)])
        snapshot_id = await self._run_step(InventoryActivities.take_stock_snapshot,
                                           SnapshotInput(snapshot_id=inp.snapshot_id, source=inp.source),
                                           f"Take a stock snapshot from {inp.snapshot_id or inp.source}")
        diffs: list[DriftLine] = await self._run_step(InventoryActivities.compare_inventory,
                                                      CompareInput(snapshot_id=snapshot_id),
                                                      f"Compare the ledger with snapshot {snapshot_id}")
        if diffs:
            await self._run_step(InventoryActivities.record_inventory_drift,
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
            kind = await self._park_big(run_id, big, inp.threshold)
            if kind == "approve":
                await self._correct(run_id, big)
                corrected += big
                big = []
            elif kind == "retry":
                again = await self._run_step(InventoryActivities.compare_inventory,
                                             CompareInput(snapshot_id=snapshot_id),
                                             f"Compare {len(big)} parked difference(s) again")
                keys = {(d.sku, d.location) for d in big}
                again = [d for d in again if (d.sku, d.location) in keys]
                now_small = [d for d in again if abs(d.difference) <= inp.threshold]
                if now_small:
                    await self._correct(run_id, now_small)
                    corrected += now_small
                big = [d for d in again if abs(d.difference) > inp.threshold]
            else:  # skip or cancel: leave them as they are, recorded
                await self._run_step(InventoryActivities.record_inventory_drift,
                                     DriftRecordInput(run_id=run_id, lines=big, status="skipped"),
                                     f"Leave {len(big)} difference(s) uncorrected ({kind})")
                skipped += len(big)
                big = []
                if kind == "cancel":
                    self.rb.status = CANCELLED
                    break
        self._parked = []
        workflow.upsert_search_attributes([sa.NEEDS_ATTENTION.value_set(False)])
        skus = sorted({d.sku for d in corrected})
        if skus:
            await self._run_step(InventoryActivities.request_inventory_sync, SkusInput(skus=skus),
                                 f"Republish availability of {len(skus)} SKU(s)")
        if self.rb.status != CANCELLED:
            self.rb.status = COMPLETED
        self._project(self.rb.status)
        await self._wind_up()
        return DriftResult(run_id=run_id, snapshot_id=snapshot_id, differences=len(diffs),
                           corrected=len(corrected), skipped=skipped, republished=skus)

    async def _correct(self, run_id: str, lines: list[DriftLine]) -> None:
        await self._run_step(InventoryActivities.correct_inventory_drift,
                             DriftCorrectInput(run_id=run_id, lines=lines), f"Post {len(lines)} correcting adjustment(s)")

    async def _park_big(self, run_id: str, big: list[DriftLine], threshold: int) -> str:
        await self._run_step(InventoryActivities.record_inventory_drift,
                             DriftRecordInput(run_id=run_id, lines=big, status="parked"),
                             f"Park {len(big)} difference(s) beyond {threshold} unit(s) for an analyst")
        self._parked = list(big)
        listed = ", ".join(f"{d.sku}@{d.location} {d.difference:+d}" for d in big[:10])
        self._parked_reason = f"{len(big)} stock difference(s) beyond {threshold} unit(s): {listed}"
        return await self._park(self._parked_reason, PARKED_ACTION, skippable=True, cancel_decides=True)
