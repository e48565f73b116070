"""Issue 21: a settled promotion line explained by the promotion published for its item and channel and live when
the order was placed — the pure rules (canonical/promotion_matching.py: the window's edges, no promotion, an amount
off by more than a cent) and the settlement store on the platform database (an Amazon V2 flat file whose promotion
lines are explained, unexplained or off; the journal the same as without the price book; `skip` accepts them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from temporalio.testing import ActivityEnvironment

from activities.finance import (
    BuildJournalInput,
    ReportInput,
    ResolveInput,
    SettlementActivities,
    SettlementRef,
    StageInput,
)
from adapters import sql as db
from adapters.erp.local import LocalErp
from adapters.marketplace.amazon_settlement import V2_COLUMNS
from adapters.marketplace.settlement_reports import LocalSettlementReports
from adapters.pricing.book import PriceBook
from adapters.settlements.store import SettlementStore
from canonical.finance import ExceptionKind, JournalEntry
from canonical.pricing import PriceChange, PriceChangeSet, PublishedLine
from canonical.promotion_matching import (
    PublishedPromotion,
    SettledPromotion,
    is_item_promotion,
    live_promotion,
    match_promotion,
)
from canonical.settlement_matching import ErpOrderFacts
from runtime.finance import finance_config
from runtime.settings import Settings

START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 3, 8, tzinfo=UTC)
ENV = ActivityEnvironment()


def promo(**kw) -> PublishedPromotion:
    values = dict(change_set_id="cs-spring", line=0, promotion_id="SPRING", item_code="MUG", channel="amazon",
                  currency="USD", amount=Decimal("15.00"), compare_at=Decimal("20.00"), effective_from=START,
                  effective_to=END, status="ended")
    values.update(kw)
    return PublishedPromotion(**values)  # type: ignore[arg-type]


def settled(minor: int = -1000, quantity: int = 2) -> SettledPromotion:
    return SettledPromotion(order_id="111-1", sku="AMZ-MUG", line_count=1, promotion_minor=minor, quantity=quantity)


def match(placed_at, candidates, s: SettledPromotion | None = None):
    return match_promotion(s or settled(), item_code="MUG", channel="amazon", placed_at=placed_at,
                           candidates=candidates, currency="USD")


# --- the pure rules -----------------------------------------------------------------------------------------------
def test_the_window_is_half_open_start_included_end_excluded():
    p = promo()
    assert live_promotion([p], "MUG", "amazon", START) == p
    assert live_promotion([p], "MUG", "amazon", END - timedelta(microseconds=1)) == p
    assert live_promotion([p], "MUG", "amazon", END) is None
    assert live_promotion([p], "MUG", "amazon", START - timedelta(microseconds=1)) is None
    # another channel, another item, a promotion never published
    assert live_promotion([p], "MUG", "shopify", START) is None
    assert live_promotion([p], "CUP", "amazon", START) is None
    assert live_promotion([promo(status="approved")], "MUG", "amazon", START) is None
    assert live_promotion([promo(status="live")], "MUG", "amazon", START) is not None


def test_a_promotion_live_when_the_order_was_placed_explains_the_line():
    found = match(START, [promo()])
    assert found.agrees and found.promotion is not None
    d = found.draft
    assert d.kind == ExceptionKind.PROMOTION_EXPLAINED.value
    assert (d.settlement_minor, d.platform_minor, d.difference_minor) == (1000, 1000, 0)
    assert "SPRING" in d.cause and "cs-spring" in d.cause and "2 × 5.00 USD" in d.cause
    assert START.isoformat() in d.cause and END.isoformat() in d.cause


def test_an_order_placed_at_the_end_or_before_the_start_is_unexplained():
    for placed in (END, START - timedelta(seconds=1)):
        found = match(placed, [promo()])
        assert not found.agrees and found.promotion is None
        assert found.draft.kind == ExceptionKind.PROMOTION_UNEXPLAINED.value
        assert "no promotion was published" in found.draft.cause and placed.isoformat() in found.draft.cause


def test_no_published_promotion_at_all_is_unexplained():
    found = match(START, [])
    assert found.draft.kind == ExceptionKind.PROMOTION_UNEXPLAINED.value
    assert found.draft.platform_minor is None and found.draft.settlement_minor == 1000


def test_the_amount_must_agree_within_a_cent():
    assert match(START, [promo()], settled(-1001)).agrees  # one cent off: rounding
    assert match(START, [promo()], settled(-999)).agrees
    off = match(START, [promo()], settled(-1002))
    assert not off.agrees and off.promotion is not None
    assert off.draft.kind == ExceptionKind.PROMOTION_UNEXPLAINED.value
    assert off.draft.difference_minor == 2 and "differs from the published discount" in off.draft.cause
    # the quantity counts: one unit at 5.00 does not explain 10.00
    assert not match(START, [promo()], settled(-1000, quantity=1)).agrees


def test_no_order_time_or_no_regular_price_is_unexplained_with_the_reason():
    unchecked = match(None, [promo()]).draft
    assert unchecked.kind == ExceptionKind.PROMOTION_UNCHECKED.value and "no order time" in unchecked.cause
    assert "no regular price" in match(START, [promo(compare_at=None)]).draft.cause


def test_only_item_promotions_are_matched():
    assert is_item_promotion("Promotion", "Principal")
    assert not is_item_promotion("Promotion", "Shipping")
    assert not is_item_promotion("ItemPrice", "Principal")


# --- the store on the platform database -------------------------------------------------------------------------
ErpWithOrderTime = LocalErp  # the embedded ERP answers the settlement match with when each order was booked


class ErpWithoutOrderTime(LocalErp):
    """An ERP that does not say when its sales orders were booked."""

    def settlement_orders(self, external_refs):
        return {ref: ErpOrderFacts.model_construct(**{**o.__dict__, "created_at": None})
                for ref, o in super().settlement_orders(external_refs).items()}


def v2_settlement(path: Path, settlement_id: str, orders: list[tuple[str, str, int, str, str, str]]) -> Decimal:
    """An Amazon V2 flat file (the published 23 columns): per order (id, sku, quantity, principal, tax,
    promotion) its ItemPrice Principal and Tax, a Promotion Principal (when not empty) and an ItemFees Commission
    of 10 %. Returns the deposit."""
    index = {c: i for i, c in enumerate(V2_COLUMNS)}

    def row(**values: str) -> str:
        cells = [""] * len(V2_COLUMNS)
        for k, v in values.items():
            cells[index[k.replace("_", "-")]] = v
        return "\t".join(cells) + "\n"

    body, total = [], Decimal(0)
    for oid, sku, qty, principal, tax, promotion in orders:
        common = dict(settlement_id=settlement_id, transaction_type="Order", order_id=oid, merchant_order_id=oid,
                      shipment_id="S" + oid[-4:], marketplace_name="Amazon.com", fulfillment_id="AFN",
                      posted_date="03/05/26", posted_date_time="2026-03-05 10:00:00 UTC", sku=sku)
        commission = -(Decimal(principal) / 10).quantize(Decimal("0.01"))
        body.append(row(**common, amount_type="ItemPrice", amount_description="Principal", amount=principal,
                        quantity_purchased=str(qty)))
        body.append(row(**common, amount_type="ItemPrice", amount_description="Tax", amount=tax))
        if promotion:
            body.append(row(**common, amount_type="Promotion", amount_description="Principal", amount=promotion))
        body.append(row(**common, amount_type="ItemFees", amount_description="Commission", amount=str(commission)))
        total += Decimal(principal) + Decimal(tax) + Decimal(promotion or 0) + commission
    head = row(settlement_id=settlement_id, settlement_start_date="2026-03-01 00:00:00 UTC",
               settlement_end_date="2026-03-15 00:00:00 UTC", deposit_date="2026-03-17 00:00:00 UTC",
               total_amount=f"{total:.2f}", currency="USD")
    path.write_text("\t".join(V2_COLUMNS) + "\n" + head + "".join(body), encoding="utf-8")
    return total


def publish_spring(book: PriceBook, status: str = "ended") -> None:
    """What PricePublication records of a promotion published to Amazon under the channel SKU AMZ-MUG."""
    line = PriceChange(item_code="MUG", channel="amazon", currency="USD", amount="15.00", compare_at="20.00",
                       effective_from=START, effective_to=END, kind="promotion", promotion_id="SPRING")
    book.record_change_set(PriceChangeSet(change_set_id="cs-spring", lines=[line], reason="spring",
                                          requested_by="key:merch"), status=status)
    book.record_shown(PublishedLine(line=0, item_code="MUG", channel="amazon", channel_skus=["AMZ-MUG"],
                                    amount=Decimal("15.00"), currency="USD", compare_at=Decimal("20.00"), at=START),
                      change_set_id="cs-spring", reason="spring", approved_by="key:ann", verified_at=START)


def book_order(engine, oid: str, total: str, placed: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(db.sales_orders.insert().values(
            id=f"SO-{oid}", external_ref=f"order:amazon:{oid}", channel="amazon", external_order_id=oid,
            currency="USD", net_total=Decimal(total), tax_total=Decimal(0), grand_total=Decimal(total),
            status="invoiced", created_at=placed,
            lines=[{"line_id": "1", "channel_sku": "AMZ-MUG", "item_code": "MUG", "quantity": 2, "net": total,
                    "tax": "0"}]))


def reconcile_to_journal(engine, tmp_path: Path, file: Path, *, with_book: bool):
    acts = SettlementActivities(SettlementStore(engine), ErpWithOrderTime(engine),
                                LocalSettlementReports(tmp_path / "settlements"),
                                finance_config(Settings(data_dir=tmp_path)),
                                promotions=PriceBook(engine) if with_book else None)
    staged = ENV.run(acts.stage_settlement, StageInput(provider="amazon", source=str(file)))
    ref = SettlementRef(settlement_key=staged.settlement_key, channel="amazon")
    return acts, ref, ENV.run(acts.match_settlement, ref)


def test_the_store_explains_marks_and_accepts_promotion_lines_and_the_journal_is_unchanged(engine, tmp_path):
    publish_spring(PriceBook(engine))
    inside, before = START + timedelta(hours=5), START - timedelta(days=1)
    # A: explained (2 × 5.00); B: placed before the promotion; C: settled 2 × 4.00
    book_order(engine, "111-000A", "22.40", inside)
    book_order(engine, "111-000B", "22.40", before)
    book_order(engine, "111-000C", "24.40", inside)
    file = tmp_path / "s.tsv"
    v2_settlement(file, "7001", [("111-000A", "AMZ-MUG", 2, "30.00", "2.40", "-10.00"),
                                 ("111-000B", "AMZ-MUG", 2, "30.00", "2.40", "-10.00"),
                                 ("111-000C", "AMZ-MUG", 2, "30.00", "2.40", "-8.00")])
    acts, ref, matched = reconcile_to_journal(engine, tmp_path, file, with_book=True)
    assert matched.unmatched_count == 0 and matched.exception_count == 2  # B and C park; A is explained
    result = ENV.run(acts.report_settlement, ReportInput(settlement_key=ref.settlement_key, channel="amazon",
                                                         status="needs_attention"))
    assert result.promotions_explained_count == 1
    explained = result.promotions[0]
    assert explained.order_id == "111-000A" and "SPRING" in explained.cause and "cs-spring" in explained.cause
    assert explained.settlement_amount == Decimal("10.00") and explained.platform_amount == Decimal("10.00")
    open_ = {e.order_id: e for e in result.exceptions}
    assert open_["111-000B"].kind == ExceptionKind.PROMOTION_UNEXPLAINED and \
        "no promotion was published" in open_["111-000B"].cause
    assert open_["111-000C"].kind == ExceptionKind.PROMOTION_UNEXPLAINED and \
        open_["111-000C"].difference == Decimal("-2.00")
    assert result.exception_count == 2 and result.unmatched_settlement_count == 0
    # matching again replaces the rows, it does not add to them
    assert ENV.run(acts.match_settlement, ref).exception_count == 2
    # the analyst's skip accepts them: nothing goes to suspense, the journal is the one without the price book
    assert ENV.run(acts.resolve_settlement_exceptions, ResolveInput(settlement_key=ref.settlement_key,
                                                                    actor="ana@example.com")) == 2
    with engine.connect() as conn:
        resolutions = set(conn.execute(select(db.settlement_exceptions.c.resolution).where(
            db.settlement_exceptions.c.kind == ExceptionKind.PROMOTION_UNEXPLAINED.value)).scalars())
    assert resolutions == {"accepted"}
    summary = ENV.run(acts.build_settlement_journal, BuildJournalInput(settlement_key=ref.settlement_key,
                                                                       channel="amazon", mode="suspense"))
    assert str(summary.suspense_amount) == "0.00 USD"
    with engine.connect() as conn:
        with_book = JournalEntry.model_validate(conn.execute(select(db.settlement_journals.c.journal)).scalar_one())
    by_account = {x.account: x.signed for x in with_book.lines}
    assert by_account["1150"] == Decimal("-69.20")  # 22.40 + 22.40 + 24.40 cleared against the sales orders

    # the same settlement without the price book builds the same journal
    other = tmp_path / "other"
    other.mkdir()
    from adapters.sql import create_schema, make_engine

    plain = make_engine(f"sqlite:///{other / 'plain.db'}")
    create_schema(plain)
    for oid, total, placed in (("111-000A", "22.40", inside), ("111-000B", "22.40", before),
                               ("111-000C", "24.40", inside)):
        book_order(plain, oid, total, placed)
    acts2, ref2, matched2 = reconcile_to_journal(plain, other, file, with_book=False)
    assert matched2.exception_count == 0
    ENV.run(acts2.build_settlement_journal, BuildJournalInput(settlement_key=ref2.settlement_key, channel="amazon"))
    with plain.connect() as conn:
        without = JournalEntry.model_validate(conn.execute(select(db.settlement_journals.c.journal)).scalar_one())
    assert sorted((x.account, x.signed) for x in without.lines) == sorted((x.account, x.signed)
                                                                          for x in with_book.lines)
    plain.dispose()


def test_an_erp_without_the_order_time_parks_nothing_and_notes_the_line_unchecked(engine, tmp_path):
    publish_spring(PriceBook(engine))
    book_order(engine, "111-000D", "22.40", START + timedelta(hours=5))
    file = tmp_path / "d.tsv"
    v2_settlement(file, "7002", [("111-000D", "AMZ-MUG", 2, "30.00", "2.40", "-10.00")])
    acts = SettlementActivities(SettlementStore(engine), ErpWithoutOrderTime(engine),  # no order times
                                LocalSettlementReports(tmp_path / "settlements"),
                                finance_config(Settings(data_dir=tmp_path)), promotions=PriceBook(engine))
    staged = ENV.run(acts.stage_settlement, StageInput(provider="amazon", source=str(file)))
    ref = SettlementRef(settlement_key=staged.settlement_key, channel="amazon")
    assert ENV.run(acts.match_settlement, ref).exception_count == 0
    result = ENV.run(acts.report_settlement, ReportInput(settlement_key=ref.settlement_key, channel="amazon",
                                                         status="matched"))
    assert [(e.kind, e.order_id) for e in result.exceptions] == [(ExceptionKind.PROMOTION_UNCHECKED, "111-000D")]
    assert result.promotions_explained_count == 0
