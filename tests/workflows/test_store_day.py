"""StoreDay and StoreDayClose on the time-skipping server with same-name stand-in activities: offline replay
duplicates post once; the day's journal balances (with cash over/short); a late transaction after close posts as
an adjustment journal; continue-as-new keeps the totals and the seen ids; an unknown SKU parks the day and `skip`
lets the money count; the close helper signals the day of the store's time zone."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.pos import PosStockInput, PosStockResult, PostJournalInput, store_local_date
from canonical.finance import JournalEntry
from canonical.ops import AnalystRequest
from canonical.pos import (
    CloseRequest,
    PosAccounts,
    PosLine,
    PosTransaction,
    StoreDayCloseInput,
    StoreDayInput,
    StoreDayStatus,
    StoreDaySummary,
    Tender,
)
from tests.workflows.standins import StandIns
from workflows.store_day import StoreDay, StoreDayClose

DAY = date(2024, 3, 9)
AT = datetime(2024, 3, 9, 15, 0, tzinfo=UTC)


class FakePos(StandIns):
    def __init__(self, *, unknown_sku: str | None = None) -> None:
        super().__init__()
        self.unknown_sku = unknown_sku
        self.stock_calls: list[list[str]] = []
        self.journals: dict[str, JournalEntry] = {}
        self.post_calls: list[str] = []

    def acts(self) -> list:
        fake = self

        @activity.defn(name="apply_pos_stock")
        def apply_pos_stock(inp: PosStockInput) -> PosStockResult:
            skus = {line.sku for t in inp.transactions for line in t.lines}
            if fake.unknown_sku in skus:
                raise ApplicationError(f"POS SKU(s) not mapped: {fake.unknown_sku}", {"action": "Map it"},
                                       type="UnknownSku", non_retryable=True)
            fake.stock_calls.append([t.pos_transaction_id for t in inp.transactions])
            return PosStockResult(applied=sum(len(t.lines) for t in inp.transactions), replayed=0)

        @activity.defn(name="post_pos_journal")
        def post_pos_journal(inp: PostJournalInput) -> str:
            fake.post_calls.append(inp.journal.external_ref)
            fake.journals.setdefault(inp.journal.external_ref, inp.journal)
            return f"JE-{list(fake.journals).index(inp.journal.external_ref) + 1}"

        record_run_status = fake.record_run_status()

        return [apply_pos_stock, post_pos_journal, record_run_status, store_local_date]  # the real date helper


def _worker(env, fake: FakePos):
    tq = f"pos-{uuid.uuid4()}"
    return tq, Worker(env.client, task_queue=tq, workflows=[StoreDay, StoreDayClose], activities=fake.acts(),
                      activity_executor=concurrent.futures.ThreadPoolExecutor(4))


def sale(tid: str, store: str, *, sku: str = "TSHIRT", qty: int = 2, price: str = "10.00", discount: str = "2.00",
         tax: str = "1.44", tender: str = "cash") -> PosTransaction:
    total = Decimal(price) * qty - Decimal(discount) + Decimal(tax)
    return PosTransaction(pos_transaction_id=tid, store_id=store, business_date=DAY, kind="sale",
                          lines=[PosLine(sku=sku, quantity=qty, unit_price=price, discount=discount, tax=tax)],
                          tenders=[Tender(type=tender, amount=total)], occurred_at=AT, currency="USD")


def refund(tid: str, store: str, *, amount: str = "5.40", tender: str = "card") -> PosTransaction:
    return PosTransaction(pos_transaction_id=tid, store_id=store, business_date=DAY, kind="return",
                          lines=[PosLine(sku="MUG", quantity=1, unit_price="5.00", tax="0.40")],
                          tenders=[Tender(type=tender, amount=amount)], occurred_at=AT, currency="USD")


def _input(store: str, **kw) -> StoreDayInput:
    return StoreDayInput(store_id=store, business_date=DAY, legal_entity="main", **kw)


async def _start(env, tq: str, inp: StoreDayInput, batch: list[PosTransaction]):
    return await env.client.start_workflow(StoreDay.run, inp, id=inp.workflow_id, task_queue=tq,
                                           start_signal="transactions", start_signal_args=[batch])


async def _wait(handle, pred, timeout: float = 20) -> StoreDaySummary:
    deadline = asyncio.get_running_loop().time() + timeout
    view = None
    while asyncio.get_running_loop().time() < deadline:
        view = await handle.query(StoreDay.status)
        if pred(view):
            return view
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition never met; last {view}")


def _by_account(journal: JournalEntry) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for line in journal.lines:
        out[line.account] = out.get(line.account, Decimal(0)) + line.debit - line.credit
    return out


async def test_offline_replay_duplicates_post_once_and_the_journal_balances(ts_env):
    fake = FakePos()
    tq, worker = _worker(ts_env, fake)
    store = f"S-{uuid.uuid4().hex[:6]}"
    inp = _input(store, late_window_hours=0)
    t1, t2, t3 = sale("T1", store), sale("T2", store, tender="card"), refund("R1", store, tender="cash")
    async with worker:
        handle = await _start(ts_env, tq, inp, [t1, t2])
        # the POS comes back online and replays everything it had, plus one new transaction
        await handle.signal(StoreDay.transactions, [t1, t2, t3, t1])
        await _wait(handle, lambda v: v.totals.transactions == 3 and v.duplicates == 3)
        # counted: 19.44 (T1) − 5.40 (R1) = 14.04 expected; 14.00 counted → 0.04 short
        await handle.signal(StoreDay.close, CloseRequest(counted_cash="14.00", actor="manager"))
        result = await handle.result()
    assert result.status == StoreDayStatus.FINISHED
    assert result.duplicates == 3 and result.totals.sales == 2 and result.totals.returns == 1
    assert sorted(i for call in fake.stock_calls for i in call) == ["R1", "T1", "T2"]  # stock moved once each
    assert fake.post_calls == [inp.workflow_id]  # one journal for the day
    journal = fake.journals[inp.workflow_id]
    assert journal.total_debit == journal.total_credit
    acc = PosAccounts()
    by = _by_account(journal)
    assert by[acc.sales] == Decimal("-40.00")  # gross sales credited
    assert by[acc.discounts] == Decimal("4.00")
    assert by[acc.returns] == Decimal("5.00")
    assert by[acc.tax_payable] == Decimal("-2.48")  # 1.44 × 2 − 0.40
    assert by[acc.tender_clearing["card"]] == Decimal("19.44")
    assert by[acc.tender_clearing["cash"]] == Decimal("14.00")  # what was counted
    assert by[acc.cash_over_short] == Decimal("0.04")  # short: a debit
    assert result.net_sales == Decimal("31.00") and result.cash_over_short == Decimal("-0.04")
    assert all(line.dimensions.store == store and line.dimensions.channel == "pos" for line in journal.lines)
    assert [p.status for p in fake.projections][-3:] == ["closing", "closed", "finished"]


async def test_close_then_late_transaction_posts_an_adjustment_once(ts_env):
    fake = FakePos()
    tq, worker = _worker(ts_env, fake)
    store = f"S-{uuid.uuid4().hex[:6]}"
    inp = _input(store, late_window_hours=2, adjustment_delay_seconds=300)
    async with worker:
        handle = await _start(ts_env, tq, inp, [sale("T1", store)])
        await handle.signal(StoreDay.close, CloseRequest())
        await _wait(handle, lambda v: v.status == StoreDayStatus.CLOSED)
        await handle.signal(StoreDay.close, CloseRequest(counted_cash="1.00"))  # a second close changes nothing
        await handle.signal(StoreDay.transactions, [sale("T9", store, tender="card"), sale("T1", store)])
        view = await _wait(handle, lambda v: v.pending_late == 1)
        assert view.journal is not None and view.adjustments == []
        result = await handle.result()  # time skips: the adjustment delay, then the late window
    assert fake.post_calls == [inp.workflow_id, f"{inp.workflow_id}:adj:1"]
    day, adj = fake.journals[inp.workflow_id], fake.journals[f"{inp.workflow_id}:adj:1"]
    assert _by_account(day)[PosAccounts().tender_clearing["cash"]] == Decimal("19.44")
    assert PosAccounts().cash_over_short not in _by_account(day)
    assert _by_account(adj) == {"4000": Decimal("-20.00"), "4020": Decimal("2.00"), "2200": Decimal("-1.44"),
                                "1060": Decimal("19.44")}
    assert result.adjustments[0].erp_journal_id == "JE-2" and result.adjustments[0].transactions == 1
    assert result.totals.transactions == 2 and result.duplicates == 1 and result.counted_cash is None


async def test_continue_as_new_keeps_totals_and_seen_ids(ts_env):
    fake = FakePos()
    tq, worker = _worker(ts_env, fake)
    store = f"S-{uuid.uuid4().hex[:6]}"
    inp = _input(store, late_window_hours=0, max_transactions_per_run=3)
    async with worker:
        handle = await _start(ts_env, tq, inp, [sale("A0", store)])
        for i in range(1, 8):
            await handle.signal(StoreDay.transactions, [sale(f"A{i}", store, tender="card")])
        await _wait(handle, lambda v: v.totals.transactions == 8)
        latest = await ts_env.client.get_workflow_handle(inp.workflow_id).describe()
        assert latest.run_id != handle.first_execution_run_id  # it continued as new
        # replays of ids seen in earlier runs are still dropped
        await handle.signal(StoreDay.transactions, [sale("A0", store), sale("A1", store, tender="card")])
        await _wait(handle, lambda v: v.duplicates == 2)
        await handle.signal(StoreDay.close, CloseRequest())
        result = await handle.result()
    assert result.totals.transactions == 8 and result.totals.gross_sales == Decimal("160.00")
    assert result.duplicates == 2
    journal = fake.journals[inp.workflow_id]
    assert _by_account(journal)["1060"] == Decimal("136.08") and _by_account(journal)["1050"] == Decimal("19.44")
    assert len(fake.post_calls) == 1


async def test_unknown_sku_parks_and_skip_counts_the_money(ts_env):
    fake = FakePos(unknown_sku="NOPE")
    tq, worker = _worker(ts_env, fake)
    store = f"S-{uuid.uuid4().hex[:6]}"
    inp = _input(store, late_window_hours=0, step_max_attempts=1)
    async with worker:
        handle = await _start(ts_env, tq, inp, [sale("T1", store, sku="NOPE")])
        view = await _wait(handle, lambda v: v.status == StoreDayStatus.NEEDS_ATTENTION)
        assert "NOPE" in (view.reason or "")
        with pytest.raises(WorkflowUpdateFailedError):  # nothing to cancel-refuse here, but resume is refused
            await handle.execute_update(StoreDay.act, AnalystRequest(action="resume", actor="a@x", reason="r"))
        await handle.execute_update(StoreDay.act, AnalystRequest(action="skip", actor="a@x", reason="count later"))
        await _wait(handle, lambda v: v.status == StoreDayStatus.OPEN and v.totals.transactions == 1)
        with pytest.raises(WorkflowUpdateFailedError):  # no longer parked
            await handle.execute_update(StoreDay.act, AnalystRequest(action="retry", actor="a@x", reason="r"))
        await handle.signal(StoreDay.close, CloseRequest())
        result = await handle.result()
    assert result.stock_skipped == ["T1"] and fake.stock_calls == []
    assert _by_account(fake.journals[inp.workflow_id])["4000"] == Decimal("-20.00")
    assert "needs_attention" in [p.status for p in fake.projections]


async def test_cancel_before_close_posts_nothing(ts_env):
    fake = FakePos()
    tq, worker = _worker(ts_env, fake)
    store = f"S-{uuid.uuid4().hex[:6]}"
    inp = _input(store)
    async with worker:
        handle = await _start(ts_env, tq, inp, [sale("T1", store)])
        await _wait(handle, lambda v: v.totals.transactions == 1)
        await handle.execute_update(StoreDay.act, AnalystRequest(action="cancel", actor="a@x", reason="test day"))
        result = await handle.result()
    assert result.status == StoreDayStatus.CANCELLED and fake.post_calls == []


async def test_store_day_close_signals_the_local_business_date(ts_env):
    fake = FakePos()
    tq, worker = _worker(ts_env, fake)
    store = f"S-{uuid.uuid4().hex[:6]}"
    tz = "Pacific/Kiritimati"  # UTC+14: its business date is often not the UTC date
    async with worker:
        before = datetime.now(ZoneInfo(tz)).date() - timedelta(days=1)
        inp = StoreDayInput(store_id=store, business_date=before, late_window_hours=0)
        tx = sale("K1", store).model_copy(update={"business_date": before})
        handle = await ts_env.client.start_workflow(StoreDay.run, inp, id=inp.workflow_id, task_queue=tq,
                                                    start_signal="transactions", start_signal_args=[[tx]])
        await _wait(handle, lambda v: v.totals.transactions == 1)
        res = await ts_env.client.execute_workflow(StoreDayClose.run, StoreDayCloseInput(
            store_id=store, timezone=tz, days_ago=1), id=f"close-{uuid.uuid4()}", task_queue=tq)
        after = datetime.now(ZoneInfo(tz)).date() - timedelta(days=1)
        if res.business_date == before:
            assert res.signalled and res.workflow_id == inp.workflow_id
            assert (await handle.result()).status == StoreDayStatus.FINISHED
        else:  # the local midnight passed during the test
            assert res.business_date == after
        missing = await ts_env.client.execute_workflow(StoreDayClose.run, StoreDayCloseInput(
            store_id=f"{store}-none", business_date=DAY), id=f"close-{uuid.uuid4()}", task_queue=tq)
    assert missing.signalled is False and missing.workflow_id == f"storeday:{store}-none:{DAY.isoformat()}"
