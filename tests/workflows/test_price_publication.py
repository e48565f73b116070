"""PricePublication on the time-skipping server with the real PricingActivities over a SQLite price book, the
embedded POS price list and a fake vendor channel (its own SKUs through the ERP's cross-reference): a promotion
waits for its approvals (a second, different approver above the discount depth) and its effective time, publishes
to two channels, is read back and recorded, and reverts at its end date; a rejected change publishes nothing; a
channel's refusal parks the run until an analyst retries; an overlap accepted meanwhile makes the set invalid."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.worker import Worker

from activities.pricing import PricingActivities
from adapters.pricing.base import PriceChannels
from adapters.pricing.book import PriceBook
from adapters.pricing.local import LocalPrices
from adapters.sql import create_schema, make_engine
from canonical.errors import ChannelRejected
from canonical.money import Money
from canonical.ops import AnalystRequest
from canonical.pricing import (
    ApprovalDecision,
    ChannelPrice,
    PriceChange,
    PriceChangeSet,
    PricePublicationInput,
    PricePublicationView,
    PriceStatus,
)
from tests.workflows.standins import StandIns
from workflows.price_publication import PricePublication

CURRENCIES = {"webshop": "USD", "store-1": "USD"}


class FakeChannel:
    """A vendor channel: knows items by its own SKUs, keeps what it was told, may refuse a SKU."""

    lists_by_channel_sku = True

    def __init__(self) -> None:
        self.prices: dict[str, ChannelPrice] = {}
        self.refuse: set[str] = set()
        self.writes: list[tuple[str, Decimal]] = []

    def publish_price(self, channel: str, sku: str, price: Money, compare_at: Money | None = None) -> None:
        if sku in self.refuse:
            raise ChannelRejected(f"{channel} refuses price updates for {sku}: listing is locked")
        self.writes.append((sku, price.amount))
        self.prices[sku] = ChannelPrice(channel=channel, channel_sku=sku, amount=price.amount,
                                        currency=price.currency,
                                        compare_at=compare_at.amount if compare_at is not None else None)

    def read_price(self, channel: str, sku: str) -> ChannelPrice | None:
        return self.prices.get(sku)


class FakeErp:
    def channel_skus_of(self, channel: str, item_code: str) -> list[str]:
        return {("webshop", "MUG"): ["WEB-MUG-BLUE", "WEB-MUG-RED"]}.get((channel, item_code), [item_code])


def engine_in(tmp_path):
    """A fresh price book database in the test's tmp_path."""
    eng = make_engine(f"sqlite:///{tmp_path / 'prices.db'}")
    create_schema(eng)
    return eng


class Setup:
    def __init__(self, env, engine) -> None:
        self.env = env
        self.engine = engine
        self.web = FakeChannel()
        self.pos = LocalPrices(engine)
        self.book = PriceBook(engine)
        self.standins = StandIns()
        prices = PriceChannels(self.pos, {"webshop": self.web})
        acts = PricingActivities(prices, self.book, FakeErp(), CURRENCIES)  # type: ignore[arg-type]
        self.tq = f"prices-{uuid.uuid4()}"
        self.worker = Worker(env.client, task_queue=self.tq, workflows=[PricePublication],
                             activities=[*acts.all(), self.standins.record_run_status()],
                             activity_executor=concurrent.futures.ThreadPoolExecutor(4))

    async def start(self, cs: PriceChangeSet, **kw) -> WorkflowHandle:
        return await self.env.client.start_workflow(
            PricePublication.run, PricePublicationInput(change_set=cs, step_max_attempts=2, **kw),
            id=cs.workflow_id, task_queue=self.tq)


def promo(now: datetime, cs_id: str, *, start: timedelta = timedelta(days=1), days: int = 2,
          amount: str = "15.00", requested_by: str = "key:merch") -> PriceChangeSet:
    begin = now + start
    lines = [PriceChange(item_code="MUG", channel=ch, currency="USD", amount=amount, compare_at="20.00",
                         effective_from=begin, effective_to=begin + timedelta(days=days), kind="promotion",
                         promotion_id="SPRING") for ch in ("webshop", "store-1")]
    return PriceChangeSet(change_set_id=cs_id, lines=lines, reason="spring promotion", requested_by=requested_by)


async def wait_for(handle: WorkflowHandle, pred, timeout: float = 20) -> PricePublicationView:
    deadline = asyncio.get_running_loop().time() + timeout
    view = None
    while asyncio.get_running_loop().time() < deadline:
        view = await handle.query(PricePublication.status)
        if pred(view):
            return view
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition never met; last {view}")


def seed_regular_prices(s: Setup) -> None:
    for sku in ("WEB-MUG-RED", "WEB-MUG-BLUE"):
        s.web.publish_price("webshop", sku, Money.of("20.00", "USD"))
    s.pos.publish_price("store-1", "MUG", Money.of("19.00", "USD"))
    s.web.writes.clear()


async def test_a_promotion_waits_for_two_approvals_and_its_time_publishes_to_two_channels_and_reverts(
        ts_env, tmp_path):
    book_engine = engine_in(tmp_path)
    s = Setup(ts_env, book_engine)
    seed_regular_prices(s)
    now = await ts_env.get_current_time()
    cs = promo(now, f"cs-{uuid.uuid4().hex[:8]}")  # 25 % off: above the 20 % depth, two approvers
    async with s.worker:
        handle = await s.start(cs, second_approval_depth=Decimal("0.20"))
        view = await wait_for(handle, lambda v: v.status == PriceStatus.AWAITING_APPROVAL)
        assert view.approvals_needed == 2 and view.discount_depth == Decimal("0.25")
        # refused, leaving no trace: the requester, a role that may not approve
        for bad in (ApprovalDecision(actor="key:merch", role="finance"), ApprovalDecision(actor="key:v", role="viewer")):
            with pytest.raises(WorkflowUpdateFailedError):
                await handle.execute_update(PricePublication.approve, bad)
        view = await handle.execute_update(PricePublication.approve,
                                           ApprovalDecision(actor="key:ann", role="finance", reason="margin ok"))
        assert view.status == PriceStatus.AWAITING_APPROVAL  # one of two
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(PricePublication.approve, ApprovalDecision(actor="key:ann", role="finance"))
        assert "someone else" in str(refused.value.cause)
        await handle.execute_update(PricePublication.approve, ApprovalDecision(actor="key:bob", role="admin"))
        view = await wait_for(handle, lambda v: v.status == PriceStatus.SCHEDULED)
        assert s.web.writes == [] and s.pos.read_price("store-1", "MUG").amount == Decimal("19.00")  # not yet
        result = await handle.result()  # the time-skipping server runs the timers: start, then end
    assert result.status == PriceStatus.COMPLETED
    published = [p for p in result.published if p.action == "publish"]
    reverted = [p for p in result.published if p.action == "revert"]
    assert {(p.channel, tuple(p.channel_skus)) for p in published} == {
        ("webshop", ("WEB-MUG-BLUE", "WEB-MUG-RED")), ("store-1", ("MUG",))}
    start, end = cs.lines[0].effective_from, cs.lines[0].effective_to
    assert all(p.at >= start for p in published) and all(p.at >= end for p in reverted)
    assert all(p.at < end for p in published)
    # each channel got the promotion under each of its SKUs, then its own previous price back
    assert s.web.writes == [("WEB-MUG-BLUE", Decimal("15.00")), ("WEB-MUG-RED", Decimal("15.00")),
                            ("WEB-MUG-BLUE", Decimal("20.00")), ("WEB-MUG-RED", Decimal("20.00"))]
    assert s.pos.read_price("store-1", "MUG").amount == Decimal("19.00")
    shown = {(r["channel"], r["channel_sku"]): r for r in s.book.shown("MUG")}
    assert shown[("store-1", "MUG")]["action"] == "revert" and shown[("store-1", "MUG")]["amount"] == Decimal("19.00")
    assert shown[("webshop", "WEB-MUG-RED")]["approved_by"] == "key:ann, key:bob"
    assert {r["status"] for r in s.book.changes("MUG")} == {"ended"}
    names = [st.name for st in result.steps]
    assert names.index("approve") < names.index("publish_0") < names.index("verify_publish_0") \
        < names.index("revert_0")
    assert [a.actor for a in result.approvals] == ["key:ann", "key:bob"]


async def test_a_rejected_change_publishes_nothing(ts_env, tmp_path):
    book_engine = engine_in(tmp_path)
    s = Setup(ts_env, book_engine)
    seed_regular_prices(s)
    now = await ts_env.get_current_time()
    cs = promo(now, f"cs-{uuid.uuid4().hex[:8]}", amount="18.00")
    async with s.worker:
        handle = await s.start(cs)
        await wait_for(handle, lambda v: v.status == PriceStatus.AWAITING_APPROVAL)
        await handle.execute_update(PricePublication.reject,
                                    ApprovalDecision(actor="key:ann", role="finance", reason="clashes with sale"))
        result = await handle.result()
    assert result.status == PriceStatus.REJECTED and "key:ann" in (result.reason or "")
    assert result.published == [] and s.web.writes == []
    assert s.pos.read_price("store-1", "MUG").amount == Decimal("19.00")
    assert {r["status"] for r in s.book.changes("MUG")} == {"rejected"}
    assert s.book.shown("MUG") == []


async def test_a_channel_refusal_parks_until_an_analyst_retries(ts_env, tmp_path):
    book_engine = engine_in(tmp_path)
    s = Setup(ts_env, book_engine)
    seed_regular_prices(s)
    s.web.refuse.add("WEB-MUG-RED")
    now = await ts_env.get_current_time()
    cs = promo(now, f"cs-{uuid.uuid4().hex[:8]}", start=timedelta(0), amount="18.00")
    async with s.worker:
        handle = await s.start(cs)
        await wait_for(handle, lambda v: v.status == PriceStatus.AWAITING_APPROVAL)
        await handle.execute_update(PricePublication.approve, ApprovalDecision(actor="key:ann", role="finance"))
        view = await wait_for(handle, lambda v: v.status == PriceStatus.NEEDS_ATTENTION)
        assert "listing is locked" in (view.reason or "") and "publish_0" in (view.reason or "")
        assert any(p.needs_attention for p in s.standins.projections)
        s.web.refuse.clear()  # the analyst unlocked the listing
        await handle.execute_update(PricePublication.act, AnalystRequest(action="retry", actor="key:al",
                                                                         reason="listing unlocked"))
        view = await wait_for(handle, lambda v: v.status == PriceStatus.LIVE)
        assert s.web.prices["WEB-MUG-RED"].amount == Decimal("18.00")
        assert s.pos.read_price("store-1", "MUG").amount == Decimal("18.00")
        assert any(st.name == "analyst_retry" and "key:al" in (st.detail or "") for st in view.steps)
        await handle.terminate("test over")


async def test_an_overlap_accepted_meanwhile_makes_the_set_invalid(ts_env, tmp_path):
    book_engine = engine_in(tmp_path)
    s = Setup(ts_env, book_engine)
    seed_regular_prices(s)
    now = await ts_env.get_current_time()
    first = promo(now, f"cs-{uuid.uuid4().hex[:8]}", amount="18.00")
    second = promo(now, f"cs-{uuid.uuid4().hex[:8]}", start=timedelta(days=2), amount="17.00")
    async with s.worker:
        h1 = await s.start(first)
        await wait_for(h1, lambda v: v.status == PriceStatus.AWAITING_APPROVAL)
        result = await (await s.start(second)).result()
        assert result.status == PriceStatus.INVALID and first.change_set_id in (result.reason or "")
        await h1.terminate("test over")
    assert second.change_set_id not in {r["change_set_id"] for r in s.book.changes("MUG")}


async def test_through_the_api_the_requester_is_the_principal_and_approvals_need_the_finance_role(
        ts_env, tmp_path):
    """POST /prices/changes starts the run as the key's principal; an analyst cannot approve (403), the requester
    cannot approve their own change (409, no trace), a finance key can; GET /prices/{sku} then says why."""
    import httpx

    from api.app import create_app
    from runtime.settings import Settings
    from tests.auth import headers, make_key

    book_engine = engine_in(tmp_path)
    s = Setup(ts_env, book_engine)
    seed_regular_prices(s)
    settings = Settings(_env_file=None, task_queue=s.tq, pricing_channel_currencies=CURRENCIES)
    app = create_app(settings, engine=book_engine, client=ts_env.client)
    merch = headers(make_key(book_engine, "finance", name="merch"))
    ann = headers(make_key(book_engine, "finance", name="ann"))
    analyst = headers(make_key(book_engine, "analyst", name="al"))
    now = await ts_env.get_current_time()
    body = {"change_set_id": f"api-{uuid.uuid4().hex[:8]}", "reason": "spring", "lines": [
        {"item_code": "MUG", "channel": "store-1", "currency": "USD", "amount": "18.00", "compare_at": "19.00",
         "kind": "promotion", "effective_from": (now + timedelta(seconds=3)).isoformat(),
         "effective_to": (now + timedelta(seconds=5)).isoformat()}]}
    async with s.worker, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        resp = await http.post("/prices/changes", json=body, headers=merch)
        assert resp.status_code == 202, resp.text
        assert resp.json()["requested_by"] == "key:merch"
        again = await http.post("/prices/changes", json=body, headers=merch)
        assert again.status_code == 409  # its own pending window (or the id taken): never a second run
        handle = ts_env.client.get_workflow_handle(resp.json()["workflow_id"], result_type=PricePublicationView)
        await wait_for(handle, lambda v: v.status == PriceStatus.AWAITING_APPROVAL)
        cs_id = body["change_set_id"]
        assert (await http.post(f"/prices/changes/{cs_id}/approve", json={}, headers=analyst)).status_code == 403
        own = await http.post(f"/prices/changes/{cs_id}/approve", json={}, headers=merch)
        assert own.status_code == 409 and "cannot approve" in own.json()["detail"]
        ok = await http.post(f"/prices/changes/{cs_id}/approve", json={"reason": "fine"}, headers=ann)
        assert ok.status_code == 200 and ok.json()["approvals"][0]["actor"] == "key:ann"
        # a handle the API started is no time-skipping one: its few seconds pass in real time
        result = await wait_for(handle, lambda v: v.status in (PriceStatus.COMPLETED, PriceStatus.NEEDS_ATTENTION),
                                timeout=30)
        assert result.status == PriceStatus.COMPLETED
        shown = (await http.get("/prices/MUG", headers=analyst)).json()
    store = [c for c in shown["channels"] if c["channel"] == "store-1"][0]
    assert store["amount"] == "19.00" and store["action"] == "revert" and store["approved_by"] == "key:ann"
    assert [c["status"] for c in shown["changes"]] == ["ended"]


async def test_a_temporal_cancel_before_publication_frees_the_window(ts_env, tmp_path):
    book_engine = engine_in(tmp_path)
    s = Setup(ts_env, book_engine)
    seed_regular_prices(s)
    now = await ts_env.get_current_time()
    cs = promo(now, f"cs-{uuid.uuid4().hex[:8]}", amount="18.00")
    async with s.worker:
        handle = await s.start(cs)
        await wait_for(handle, lambda v: v.status == PriceStatus.AWAITING_APPROVAL)
        assert {r["status"] for r in s.book.changes("MUG")} == {"pending"}
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):  # the run ends cancelled
            await handle.result()
        view = await handle.query(PricePublication.status)
    assert view.status == PriceStatus.CANCELLED and s.web.writes == []
    assert {r["status"] for r in s.book.changes("MUG")} == {"cancelled"}
    assert s.book.windows(["MUG"], ["webshop", "store-1"]).windows == []
