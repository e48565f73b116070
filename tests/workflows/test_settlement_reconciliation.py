"""SettlementReconciliation and SettlementFetch on the time-skipping server with same-name stand-in activities:
a clean settlement posts once; exceptions park it (NeedsAttention); `skip` posts the open items to suspense; `retry`
re-matches after the data was fixed; a re-run posts nothing new; the `act` update refuses what does not apply;
`cancel` posts nothing; a bad file parks the stage step; the fetch workflow starts each settlement once."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest
from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.finance import (
    BuildJournalInput,
    ClassifyResult,
    FetchInput,
    JournalSummary,
    MatchResult,
    PostResult,
    ReportInput,
    ResolveInput,
    SettlementRef,
    StageInput,
    StageResult,
    TotalsResult,
)
from adapters.marketplace.settlement_reports import ReportRef
from canonical.finance import (
    FetchSettlementsInput,
    ReconciliationResult,
    SettlementInput,
    SettlementStatus,
    SettlementView,
)
from canonical.money import Money
from canonical.ops import AnalystRequest
from tests.workflows.standins import StandIns
from workflows import search_attributes as sa
from workflows.settlement_reconciliation import SettlementFetch, SettlementReconciliation

USD = "USD"


def usd(x: str) -> Money:
    return Money.of(x, USD)


class FakeFinance(StandIns):
    """`broken` settlement keys have one unmatched order and a 5.00 difference until `fixed`."""

    posted: dict[str, str] = {}  # journal external ref → ERP id, shared by runs (like the ERP)

    def __init__(self, *, broken: bool = False, bad_file: bool = False) -> None:
        super().__init__()
        self.broken = broken
        self.bad_file = bad_file
        self.reports = [ReportRef(provider="amazon", report_id="a.tsv", settlement_id="A1", currency=USD, total="10"),
                        ReportRef(provider="amazon", report_id="b.tsv", settlement_id="B2", currency=USD, total="20"),
                        ReportRef(provider="amazon", report_id="junk.tsv", error="no settlement-id column")]

    def acts(self) -> list:
        fake = self

        @activity.defn(name="list_settlement_reports")
        def list_settlement_reports(inp: FetchInput) -> list[ReportRef]:
            fake.calls.append(("list", inp))
            return fake.reports

        @activity.defn(name="stage_settlement")
        def stage_settlement(inp: StageInput) -> StageResult:
            fake.calls.append(("stage", inp))
            if fake.bad_file:
                raise ApplicationError("row 7: 'x' is not a decimal amount", {"action": "Replace the file"},
                                       type="SettlementFileInvalid", non_retryable=True)
            return StageResult(settlement_key=f"{inp.provider}:{inp.expected_settlement_id}", provider=inp.provider,
                               settlement_id=inp.expected_settlement_id, currency=USD, line_count=4,
                               lines_total=usd("95.00"), deposit_total=usd("100.00" if fake.broken else "95.00"))

        @activity.defn(name="match_settlement")
        def match_settlement(inp: SettlementRef) -> MatchResult:
            fake.calls.append(("match", inp))
            n = 1 if fake.broken else 0
            return MatchResult(matched_count=4 - n, matched_amount=usd("95.00"), unmatched_count=n,
                               unmatched_amount=usd("12.00" if n else "0"), exception_count=n,
                               unmatched_platform_count=0)

        @activity.defn(name="classify_settlement")
        def classify_settlement(inp: SettlementRef) -> ClassifyResult:
            fake.calls.append(("classify", inp))
            return ClassifyResult(by_category={"principal": Decimal("100")}, unclassified_count=0)

        @activity.defn(name="check_settlement_totals")
        def check_settlement_totals(inp: SettlementRef) -> TotalsResult:
            fake.calls.append(("totals", inp))
            diff = "5.00" if fake.broken else "0"
            return TotalsResult(lines_total=usd("95.00"), deposit_total=usd("95.00"), difference=usd(diff))

        @activity.defn(name="report_settlement")
        def report_settlement(inp: ReportInput) -> ReconciliationResult:
            fake.calls.append(("report", inp))
            return ReconciliationResult(
                provider="amazon", settlement_id=inp.settlement_key.split(":")[1], status=inp.status, currency=USD,
                deposit_total=usd("100"), lines_total=usd("95"), line_count=4, matched_count=3,
                matched_amount=usd("83"), unmatched_settlement_count=1 if fake.broken else 0,
                unmatched_settlement_amount=usd("12"), exception_count=2 if fake.broken else 0)

        @activity.defn(name="resolve_settlement_exceptions")
        def resolve_settlement_exceptions(inp: ResolveInput) -> int:
            fake.calls.append(("resolve", inp))
            return 2

        @activity.defn(name="build_settlement_journal")
        def build_settlement_journal(inp: BuildJournalInput) -> JournalSummary:
            fake.calls.append(("journal", inp))
            ref = f"settlement:{inp.settlement_key}"
            return JournalSummary(external_ref=ref, line_count=4, total_debit=usd("100"),
                                  suspense_amount=usd("17" if inp.mode == "suspense" else "0"),
                                  already_posted=ref in FakeFinance.posted)

        @activity.defn(name="post_settlement_journal")
        def post_settlement_journal(inp: SettlementRef) -> PostResult:
            fake.calls.append(("post", inp))
            ref = f"settlement:{inp.settlement_key}"
            now = ref not in FakeFinance.posted
            FakeFinance.posted.setdefault(ref, f"JE-{len(FakeFinance.posted) + 1}")
            return PostResult(erp_journal_id=FakeFinance.posted[ref], posted_now=now)

        record_run_status = fake.record_run_status()

        return [list_settlement_reports, stage_settlement, match_settlement, classify_settlement,
                check_settlement_totals, report_settlement, resolve_settlement_exceptions, build_settlement_journal,
                post_settlement_journal, record_run_status]



async def _worker(env, fake: FakeFinance):
    tq = f"settle-{uuid.uuid4()}"
    import concurrent.futures

    return tq, Worker(env.client, task_queue=tq, workflows=[SettlementReconciliation, SettlementFetch],
                      activities=fake.acts(), activity_executor=concurrent.futures.ThreadPoolExecutor(4))


def _input(sid: str | None = None) -> SettlementInput:
    return SettlementInput(provider="amazon", settlement_id=sid or uuid.uuid4().hex[:10], source="s.tsv")


async def _wait_status(handle, status: SettlementStatus, timeout: float = 20) -> SettlementView:
    deadline = asyncio.get_running_loop().time() + timeout
    view = None
    while asyncio.get_running_loop().time() < deadline:
        view = await handle.query(SettlementReconciliation.status)
        if view.status == status:
            return view
        await asyncio.sleep(0.1)
    raise AssertionError(f"never reached {status}; last {view}")


async def test_clean_settlement_posts_once_and_rerun_posts_nothing_new(ts_env):
    fake = FakeFinance()
    tq, worker = await _worker(ts_env, fake)
    inp = _input()
    async with worker:
        result = await ts_env.client.execute_workflow(SettlementReconciliation.run, inp, id=inp.workflow_id,
                                                      task_queue=tq)
        assert result.status == "posted" and result.journal_posted_now is True
        assert fake.names() == ["stage", "match", "classify", "totals", "journal", "post", "report"]
        journal = next(arg for name, arg in fake.calls if name == "journal")
        assert journal.mode == "strict" and journal.channel == "amazon"
        assert [p.status for p in fake.projections] == ["received", "posted"]
        assert fake.projections[0].kind == "settlement" and fake.projections[0].external_id == inp.settlement_id
        # the same settlement again (a re-delivered report, an analyst's re-run): nothing new is posted
        again = await ts_env.client.execute_workflow(SettlementReconciliation.run, inp, id=inp.workflow_id,
                                                     task_queue=tq)
        assert again.status == "posted" and again.journal_posted_now is False
        assert FakeFinance.posted[f"settlement:amazon:{inp.settlement_id}"]


async def test_exceptions_park_then_skip_posts_to_suspense(ts_env):
    fake = FakeFinance(broken=True)
    tq, worker = await _worker(ts_env, fake)
    inp = _input()
    async with worker:
        handle = await ts_env.client.start_workflow(SettlementReconciliation.run, inp, id=inp.workflow_id,
                                                    task_queue=tq)
        view = await _wait_status(handle, SettlementStatus.NEEDS_ATTENTION)
        assert "1 unmatched line(s)" in view.reason and "differ from the deposit by 5.00 USD" in view.reason
        assert "skip" in view.reason
        desc = await handle.describe()
        assert desc.typed_search_attributes.get(sa.NEEDS_ATTENTION) is True
        assert desc.typed_search_attributes.get(sa.SETTLEMENT_ID) == inp.settlement_id
        assert "journal" not in fake.names() and "post" not in fake.names()
        assert fake.projections[-1].needs_attention and fake.projections[-1].status == "needs_attention"
        # `resume` does not apply to a settlement: refused, leaves no trace
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(SettlementReconciliation.act, AnalystRequest(
                action="resume", actor="ana@example.com", reason="x"))
        await handle.execute_update(SettlementReconciliation.act, AnalystRequest(
            action="skip", actor="ana@example.com", reason="Amazon will correct it next period"))
        result = await handle.result()
        assert result.status == "posted"
        resolve = next(arg for name, arg in fake.calls if name == "resolve")
        assert resolve.actor == "ana@example.com"
        journal = next(arg for name, arg in fake.calls if name == "journal")
        assert journal.mode == "suspense"
        assert fake.names().count("match") == 1
        desc = await handle.describe()
        assert desc.typed_search_attributes.get(sa.NEEDS_ATTENTION) is False
        # once posted, nothing more applies
        with pytest.raises(Exception):  # noqa: B017 - the run is closed: the update cannot be delivered
            await handle.execute_update(SettlementReconciliation.act, AnalystRequest(
                action="retry", actor="ana@example.com", reason="again"))


async def test_retry_rematches_after_the_data_is_fixed(ts_env):
    fake = FakeFinance(broken=True)
    tq, worker = await _worker(ts_env, fake)
    inp = _input()
    async with worker:
        handle = await ts_env.client.start_workflow(SettlementReconciliation.run, inp, id=inp.workflow_id,
                                                    task_queue=tq)
        await _wait_status(handle, SettlementStatus.NEEDS_ATTENTION)
        # retry without fixing anything parks again
        await handle.execute_update(SettlementReconciliation.act, AnalystRequest(
            action="retry", actor="ana@example.com", reason="try again"))
        await asyncio.sleep(0.5)
        await _wait_status(handle, SettlementStatus.NEEDS_ATTENTION)
        assert fake.names().count("match") == 2
        fake.broken = False  # the missing order was booked and the deposit explained
        await handle.execute_update(SettlementReconciliation.act, AnalystRequest(
            action="retry", actor="ana@example.com", reason="booked the missing order"))
        result = await handle.result()
        assert result.status == "posted"
        assert fake.names().count("match") == 3 and "resolve" not in fake.names()
        assert next(arg for name, arg in fake.calls if name == "journal").mode == "strict"


async def test_cancel_while_parked_posts_nothing(ts_env):
    fake = FakeFinance(broken=True)
    tq, worker = await _worker(ts_env, fake)
    inp = _input()
    async with worker:
        handle = await ts_env.client.start_workflow(SettlementReconciliation.run, inp, id=inp.workflow_id,
                                                    task_queue=tq)
        await _wait_status(handle, SettlementStatus.NEEDS_ATTENTION)
        await handle.execute_update(SettlementReconciliation.act, AnalystRequest(
            action="cancel", actor="ana@example.com", reason="wrong marketplace"))
        result = await handle.result()
        assert result.status == "cancelled"
        assert "journal" not in fake.names() and "post" not in fake.names()
        assert fake.projections[-1].status == "cancelled"


async def test_bad_file_parks_the_stage_step_and_skip_is_refused(ts_env):
    fake = FakeFinance(bad_file=True)
    tq, worker = await _worker(ts_env, fake)
    inp = _input()
    async with worker:
        handle = await ts_env.client.start_workflow(SettlementReconciliation.run, inp, id=inp.workflow_id,
                                                    task_queue=tq)
        view = await _wait_status(handle, SettlementStatus.NEEDS_ATTENTION)
        assert "stage: row 7" in view.reason and "Replace the file" in view.reason
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(SettlementReconciliation.act, AnalystRequest(
                action="skip", actor="ana@example.com", reason="skip it"))
        fake.bad_file = False  # the analyst dropped a good file
        await handle.execute_update(SettlementReconciliation.act, AnalystRequest(
            action="retry", actor="ana@example.com", reason="replaced the file"))
        result = await handle.result()
        assert result.status == "posted" and fake.names().count("stage") == 2


async def test_fetch_starts_each_settlement_once(ts_env):
    fake = FakeFinance()
    tq, worker = await _worker(ts_env, fake)
    provider = f"amazon-{uuid.uuid4().hex[:6]}"
    fake.reports = [r.model_copy(update={"provider": provider}) for r in fake.reports]
    async with worker:
        first = await ts_env.client.execute_workflow(SettlementFetch.run, FetchSettlementsInput(provider=provider),
                                                     id=f"fetch-{uuid.uuid4()}", task_queue=tq)
        assert first.started == [f"settlement:{provider}:A1", f"settlement:{provider}:B2"]
        assert first.unreadable == ["junk.tsv: no settlement-id column"]
        for wf_id in first.started:
            result = await ts_env.client.get_workflow_handle(wf_id, result_type=ReconciliationResult).result()
            assert result.status == "posted"
        # the two settlements run concurrently, so their stage calls arrive in either order
        staged = {arg.source: arg.expected_settlement_id for name, arg in fake.calls if name == "stage"}
        assert staged == {"a.tsv": "A1", "b.tsv": "B2"}
        journal = next(arg for name, arg in fake.calls if name == "journal")
        assert journal.channel == "amazon"  # amazon-xxxx settles the amazon channel's orders
        second = await ts_env.client.execute_workflow(SettlementFetch.run, FetchSettlementsInput(provider=provider),
                                                      id=f"fetch-{uuid.uuid4()}", task_queue=tq)
        assert second.started == [] and len(second.already_running_or_done) == 2
        assert fake.names().count("post") == 2
