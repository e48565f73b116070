"""Issue 16, defect 3, on the time-skipping server with the stand-in activities of
test_settlement_reconciliation.py: a settlement whose journal is already posted, started again (the same file a
second time, by hand or by a schedule), stays `posted` and reports "already posted" — it used to re-match,
re-add its exceptions, go back to `needs_attention` and, skipped again, write a second suspense row. A settlement
not yet posted still runs every step (and reports `received` once it is staged)."""

from __future__ import annotations

import concurrent.futures
import os
import uuid
from pathlib import Path

from temporalio import activity
from temporalio.worker import Worker

from activities.finance import StageInput, StageResult
from canonical.finance import SettlementStatus
from canonical.ops import AnalystRequest
from tests.workflows.test_settlement_reconciliation import FakeFinance, _input, _wait_status, usd
from workflows.settlement_reconciliation import ALREADY_POSTED, SettlementFetch, SettlementReconciliation


class PostedOnceFinance(FakeFinance):
    """Like the ERP and the settlement store: once a settlement's journal is posted, staging it again says so."""

    def __init__(self, *, broken: bool = False) -> None:
        super().__init__(broken=broken)

    def acts(self) -> list:
        fake = self

        @activity.defn(name="stage_settlement")
        def stage_settlement(inp: StageInput) -> StageResult:
            fake.calls.append(("stage", inp))
            key = f"{inp.provider}:{inp.expected_settlement_id}"
            return StageResult(settlement_key=key, provider=inp.provider, settlement_id=inp.expected_settlement_id,
                               currency="USD", line_count=4, lines_total=usd("95.00"),
                               deposit_total=usd("100.00" if fake.broken else "95.00"),
                               already_staged=f"settlement:{key}" in FakeFinance.posted,
                               already_posted=f"settlement:{key}" in FakeFinance.posted)

        return [stage_settlement if getattr(a, "__temporal_activity_definition").name == "stage_settlement" else a
                for a in super().acts()]


async def test_a_posted_settlement_started_again_stays_posted(ts_env):
    fake = PostedOnceFinance(broken=True)
    tq = f"settle-{uuid.uuid4()}"
    worker = Worker(ts_env.client, task_queue=tq, workflows=[SettlementReconciliation, SettlementFetch],
                    activities=fake.acts(), activity_executor=concurrent.futures.ThreadPoolExecutor(4))
    inp = _input()
    async with worker:
        handle = await ts_env.client.start_workflow(SettlementReconciliation.run, inp, id=inp.workflow_id,
                                                    task_queue=tq)
        await _wait_status(handle, SettlementStatus.NEEDS_ATTENTION)
        await handle.execute_update(SettlementReconciliation.act, AnalystRequest(
            action="skip", actor="ana@example.com", reason="excerpt"))
        first = await handle.result()
        assert first.status == "posted" and first.journal_posted_now
        assert fake.names().count("resolve") == 1
        fake.calls.clear()
        fake.projections.clear()

        # the same file again: a new run of the same workflow id
        again = await ts_env.client.execute_workflow(SettlementReconciliation.run, inp, id=inp.workflow_id,
                                                     task_queue=tq)
        assert again.status == "posted" and again.journal_posted_now is False
        assert fake.names() == ["stage", "report"], "nothing is re-matched, parked, resolved or posted again"
        report = next(arg for name, arg in fake.calls if name == "report")
        assert report.status == "posted"
        assert [p.status for p in fake.projections] == ["posted"], "it never leaves `posted`"
        rerun = ts_env.client.get_workflow_handle(inp.workflow_id)
        view = await rerun.query(SettlementReconciliation.status)
        assert view.status == SettlementStatus.POSTED and view.reason == ALREADY_POSTED
        if os.environ.get("RETAILFLOW_RECORD_REPLAY"):  # re-record tests/replay's pin of this path (then seal it)
            history = await rerun.fetch_history()
            (Path(__file__).parents[1] / "replay" / "histories" / "settlement_posted_started_again.json"
             ).write_text(history.to_json() + "\n")


async def test_a_settlement_not_yet_posted_runs_every_step(ts_env):
    fake = PostedOnceFinance()
    tq = f"settle-{uuid.uuid4()}"
    worker = Worker(ts_env.client, task_queue=tq, workflows=[SettlementReconciliation],
                    activities=fake.acts(), activity_executor=concurrent.futures.ThreadPoolExecutor(4))
    inp = _input()
    async with worker:
        result = await ts_env.client.execute_workflow(SettlementReconciliation.run, inp, id=inp.workflow_id,
                                                      task_queue=tq)
    assert result.status == "posted" and result.journal_posted_now is True
    assert fake.names() == ["stage", "match", "classify", "totals", "journal", "post", "report"]
    assert [p.status for p in fake.projections] == ["received", "posted"]
