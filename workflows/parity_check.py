"""ParityCheck: compare, per business key, what the system of record and the shadow ERP booked during a dual-run
(issue 21, part 2; docs/erp-migration.md), on a Temporal Schedule (schedules.toml) or on demand.

list the dual-run keys of the process posted in the lookback window that are not yet equal (or accepted) →
compare each (document present, status, totals, lines, tax, dimensions) and record the verdict with both documents
→ differences park for an analyst (`NeedsAttention=true`; the `status` query shows both documents side by side,
`GET /erp/parity?process=...` too): `retry` compares them again (after someone fixed the shadow ERP or the mapping),
`skip` accepts them (recorded as accepted, with who and why), `cancel` ends the run leaving them different.

Parking, the analyst's signals and the validated `act` update are the Runbook's (workflows/runbook.py).
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.parity import (
        ParityAcceptInput,
        ParityActivities,
        ParityBatchInput,
        ParityKeysInput,
        ParityOutcome,
    )
    from canonical.fulfillment import AnalystAction
    from canonical.ops import RunStatusUpdate
    from workflows import search_attributes as sa
    from workflows.runbook import Runbook, RunbookConfig, RunbookState, StepOptions, analyst_update

RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                    maximum_interval=timedelta(seconds=60), maximum_attempts=20)
TIMEOUT = timedelta(minutes=5)
STEP = StepOptions(start_to_close=TIMEOUT, retry_policy=RETRY)
RUNNING, NEEDS_ATTENTION, COMPLETED, CANCELLED = "running", "needs_attention", "completed", "cancelled"
PARKED_ACTION = ("Compare the two documents (the run's `status` query, or GET /erp/parity?process=...&status="
                 "different); fix the shadow ERP or its mapping and send `retry`, `skip` to accept the differences, "
                 "or `cancel`.")


class ParityCheckInput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    process: str = "orders"
    lookback_days: int = Field(default=7, ge=1)
    batch_size: int = Field(default=50, ge=1, le=500)
    max_keys: int = Field(default=5000, ge=1)


class ParityCheckResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    process: str
    checked: int
    equal: int
    different: int  # still different when the run ended (cancelled while parked)
    accepted: int
    pending: int


@workflow.defn(name="ParityCheck")
class ParityCheck(Runbook):
    RUNBOOK = RunbookConfig(
        kind="parity check", noun="parity check", parking_errors=frozenset(), needs_attention=NEEDS_ATTENTION,
        closed=frozenset({COMPLETED, CANCELLED}),
        resume_refused="a parity check has no data to correct; `retry`, `skip` or `cancel`",
        step_timeout=TIMEOUT, await_projection=True,
    )

    @workflow.init
    def __init__(self, inp: ParityCheckInput) -> None:
        self.rb = RunbookState(status=RUNNING, retry_policy=RETRY)
        self._process = inp.process
        self._parked: list[ParityOutcome] = []
        self._parked_reason: str | None = None
        self._history: list[str] = []
        self._version = 0

    act = analyst_update(dict)

    @workflow.query
    def status(self) -> dict:
        return {"status": self.rb.status, "process": self._process, "reason": self._parked_reason,
                "history": self._history,
                "parked": [{"business_key": o.business_key, "record_erp": o.record_erp, "shadow_erp": o.shadow_erp,
                            "differences": [d.model_dump(mode="json") for d in o.differences],
                            "shadow_failures": o.shadow_failures,
                            "side_by_side": side_by_side(o),
                            "record": o.record.model_dump(mode="json") if o.record else None,
                            "shadow": o.shadow.model_dump(mode="json") if o.shadow else None}
                           for o in self._parked]}

    def _cancel_refusal(self) -> str | None:
        if self.rb.status != NEEDS_ATTENTION:
            return f"the parity check is {self.rb.status}, not needs_attention; nothing to cancel"
        return None

    def _on_analyst_action(self, kind: str, who: AnalystAction) -> str:
        self._history.append(f"{kind} by {who.actor}: {who.reason or kind}")
        return kind

    def _set_status(self, status: str, reason: str | None = None) -> None:
        self.rb.status = status
        workflow.upsert_search_attributes([sa.NEEDS_ATTENTION.value_set(status == NEEDS_ATTENTION)])
        if status == NEEDS_ATTENTION:
            self._project(status, self._parked_reason, self.rb.action_hint)
        else:
            self._project(status)

    def _project(self, status: str, reason: str | None = None, action: str | None = None) -> None:
        """Best effort: the platform's status projection, so `GET /ops/needs-attention` lists a parked run."""
        self._version += 1
        info = workflow.info()
        self._queue_projection(RunStatusUpdate(
            workflow_id=info.workflow_id, kind="parity_check", status=status,
            needs_attention=status == NEEDS_ATTENTION, reason=reason, suggested_action=action,
            version=self._version, started_at=info.start_time, changed_at=workflow.now()))

    async def _compare(self, keys: list[str], batch: int) -> list[ParityOutcome]:
        out: list[ParityOutcome] = []
        for start in range(0, len(keys), batch):
            chunk = keys[start:start + batch]
            out += await self._execute(
                ParityActivities.check_parity,
                ParityBatchInput(process=self._process, keys=chunk, run_id=workflow.info().workflow_id),
                f"Compare {len(chunk)} {self._process} key(s) on both ERPs", STEP)
        return out

    @workflow.run
    async def run(self, inp: ParityCheckInput) -> ParityCheckResult:
        workflow.upsert_search_attributes([sa.NEEDS_ATTENTION.value_set(False)])
        keys: list[str] = await self._execute(
            ParityActivities.parity_keys,
            ParityKeysInput(process=inp.process, as_of=workflow.now(), lookback_days=inp.lookback_days,
                            limit=inp.max_keys),
            f"List the dual-run {inp.process} keys of the last {inp.lookback_days} day(s)", STEP)
        outcomes = await self._compare(keys, inp.batch_size)
        equal = sum(1 for o in outcomes if o.status == "equal")
        pending = sum(1 for o in outcomes if o.status == "pending")
        different = [o for o in outcomes if o.status == "different"]
        accepted = left = 0
        while different:
            kind = await self._park_differences(different)
            if kind == "retry":
                again = await self._compare([o.business_key for o in different], inp.batch_size)
                equal += sum(1 for o in again if o.status == "equal")
                different = [o for o in again if o.status == "different"]
                continue
            if kind == "skip":
                who = self._history[-1] if self._history else "skip"
                accepted += await self._execute(
                    ParityActivities.accept_parity_differences,
                    ParityAcceptInput(process=inp.process, keys=[o.business_key for o in different], note=who),
                    f"Accept {len(different)} difference(s)", STEP)
            else:  # cancel: the differences stay recorded as different
                self.rb.status = CANCELLED
                left = len(different)
            different = []
        self._parked = []
        workflow.upsert_search_attributes([sa.NEEDS_ATTENTION.value_set(False)])
        if self.rb.status != CANCELLED:
            self.rb.status = COMPLETED
        self._project(self.rb.status)
        await self._wind_up()
        return ParityCheckResult(process=inp.process, checked=len(outcomes), equal=equal, different=left,
                                 accepted=accepted, pending=pending)

    async def _park_differences(self, different: list[ParityOutcome]) -> str:
        self._parked = list(different)
        listed = "; ".join(f"{o.business_key}: " + ", ".join(d.field for d in o.differences[:4])
                           for o in different[:5])
        more = f" (+{len(different) - 5} more)" if len(different) > 5 else ""
        self._parked_reason = (f"{len(different)} {self._process} document(s) differ between the system of record "
                               f"and the shadow ERP: {listed}{more}")
        return await self._park(self._parked_reason, PARKED_ACTION, skippable=True, cancel_decides=True)


def side_by_side(outcome: ParityOutcome) -> list[dict]:
    """Each differing field with the record's value and the shadow's, then the documents' totals for context."""
    rows = [{"field": d.field, "record": d.record, "shadow": d.shadow, "differs": True} for d in outcome.differences]
    shown = {d.field for d in outcome.differences}
    for name in ("document_id", "status", "currency", "net_total", "tax_total", "grand_total"):
        if name in shown:
            continue
        a = getattr(outcome.record, name, None) if outcome.record else None
        b = getattr(outcome.shadow, name, None) if outcome.shadow else None
        rows.append({"field": name, "record": None if a is None else str(a), "shadow": None if b is None else str(b),
                     "differs": False})
    return rows
