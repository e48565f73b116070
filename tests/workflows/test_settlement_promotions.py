"""Issue 21, done when: an Amazon settlement's promotion line is explained by the published promotion. On the
time-skipping server with the real activities over one SQLite platform database: PricePublication publishes a
promotion to the Amazon channel (a fake vendor channel knowing the item by its own SKU) and reverts it at its end;
then SettlementReconciliation reconciles an Amazon V2 flat file whose order, placed while the promotion was live,
carries a Promotion line — the result names the promotion and its window and the settlement posts; an order placed
after the promotion ended parks the run with the reason."""

from __future__ import annotations

import concurrent.futures
import uuid
from datetime import timedelta
from decimal import Decimal

from temporalio.worker import Worker

from activities.finance import SettlementActivities
from activities.pricing import PricingActivities
from adapters.marketplace.settlement_reports import LocalSettlementReports
from adapters.pricing.base import PriceChannels
from adapters.pricing.book import PriceBook
from adapters.pricing.local import LocalPrices
from adapters.settlements.store import SettlementStore
from canonical.finance import ExceptionKind, SettlementInput, SettlementStatus
from canonical.money import Money
from canonical.pricing import (
    ApprovalDecision,
    PriceChange,
    PriceChangeSet,
    PricePublicationInput,
    PriceStatus,
)
from runtime.finance import finance_config
from runtime.settings import Settings
from tests.unit.test_promotion_matching import ErpWithOrderTime, book_order, v2_settlement
from tests.workflows.standins import StandIns
from tests.workflows.test_price_publication import FakeChannel, engine_in, wait_for
from tests.workflows.test_settlement_reconciliation import _wait_status
from workflows.price_publication import PricePublication
from workflows.settlement_reconciliation import SettlementReconciliation


class AmazonSkus:
    def channel_skus_of(self, channel: str, item_code: str) -> list[str]:
        return {("amazon", "MUG"): ["AMZ-MUG"]}.get((channel, item_code), [item_code])


async def test_an_amazon_settlement_promotion_line_is_explained_by_the_published_promotion(ts_env, tmp_path):
    engine = engine_in(tmp_path)
    amazon = FakeChannel()
    amazon.publish_price("amazon", "AMZ-MUG", Money.of("20.00", "USD"))
    book = PriceBook(engine)
    pricing = PricingActivities(PriceChannels(LocalPrices(engine), {"amazon": amazon}), book,
                                AmazonSkus(), {"amazon": "USD"})  # type: ignore[arg-type]
    finance = SettlementActivities(SettlementStore(engine), ErpWithOrderTime(engine),
                                   LocalSettlementReports(tmp_path / "settlements"),
                                   finance_config(Settings(data_dir=tmp_path)), promotions=book)
    standins = StandIns()
    tq = f"promo-settle-{uuid.uuid4()}"
    worker = Worker(ts_env.client, task_queue=tq, workflows=[PricePublication, SettlementReconciliation],
                    activities=[*pricing.all(), *finance.all(), standins.record_run_status()],
                    activity_executor=concurrent.futures.ThreadPoolExecutor(4))
    now = await ts_env.get_current_time()
    start, end = now + timedelta(days=1), now + timedelta(days=3)
    cs_id = f"cs-{uuid.uuid4().hex[:8]}"
    cs = PriceChangeSet(change_set_id=cs_id, reason="spring", requested_by="key:merch", lines=[PriceChange(
        item_code="MUG", channel="amazon", currency="USD", amount="15.00", compare_at="20.00", effective_from=start,
        effective_to=end, kind="promotion", promotion_id="SPRING")])
    async with worker:
        handle = await ts_env.client.start_workflow(
            PricePublication.run, PricePublicationInput(change_set=cs, step_max_attempts=2,
                                                        second_approval_depth=Decimal("0.50")),
            id=cs.workflow_id, task_queue=tq)
        await wait_for(handle, lambda v: v.status == PriceStatus.AWAITING_APPROVAL)
        await handle.execute_update(PricePublication.approve, ApprovalDecision(actor="key:ann", role="finance"))
        published = await handle.result()
        assert published.status == PriceStatus.COMPLETED
        assert ("AMZ-MUG", Decimal("15.00")) in amazon.writes  # published to Amazon under its own SKU, then reverted

        # an order placed while the promotion was live: 2 units at 15.00 instead of 20.00
        book_order(engine, "114-0000001", "32.40", start + timedelta(hours=1))
        file = tmp_path / "amazon-7101.tsv"
        v2_settlement(file, "7101", [("114-0000001", "AMZ-MUG", 2, "40.00", "2.40", "-10.00")])
        inp = SettlementInput(provider="amazon", settlement_id="7101", source=str(file))
        result = await ts_env.client.execute_workflow(SettlementReconciliation.run, inp, id=inp.workflow_id,
                                                      task_queue=tq)
        assert result.status == "posted" and result.exception_count == 0
        assert result.promotions_explained_count == 1
        line = result.promotions[0]
        assert line.kind == ExceptionKind.PROMOTION_EXPLAINED and line.order_id == "114-0000001"
        assert "promotion SPRING" in line.cause and f"change set {cs_id}" in line.cause
        assert start.isoformat() in line.cause and end.isoformat() in line.cause
        assert line.settlement_amount == Decimal("10.00") == line.platform_amount

        # an order placed after it ended: the same promotion line parks the run, with the reason
        book_order(engine, "114-0000002", "32.40", end + timedelta(minutes=1))
        late = tmp_path / "amazon-7102.tsv"
        v2_settlement(late, "7102", [("114-0000002", "AMZ-MUG", 2, "40.00", "2.40", "-10.00")])
        inp2 = SettlementInput(provider="amazon", settlement_id="7102", source=str(late))
        parked = await ts_env.client.start_workflow(SettlementReconciliation.run, inp2, id=inp2.workflow_id,
                                                    task_queue=tq)
        view = await _wait_status(parked, SettlementStatus.NEEDS_ATTENTION)
        assert view.unmatched_count == 0 and view.exception_count == 1
        assert "order 114-0000002" in (view.reason or "") and "no promotion was published" in (view.reason or "")
        await parked.terminate("test done")
