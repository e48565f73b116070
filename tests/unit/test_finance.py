"""Settlement parsers (Amazon's published flat file, EU decimal commas, Shopify's documented payout shape), journals
that must balance, and the reconciliation activities on the platform database (SQLite and PostgreSQL): the
published report's matched/unmatched split, suspense on skip, posting once. The generated 1,000,000-line report is
in tests/slow/test_settlement_million.py."""

from __future__ import annotations

import io
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from temporalio.exceptions import ApplicationError
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
from adapters.marketplace.amazon_settlement import read_settlement
from adapters.marketplace.settlement_reports import LocalSettlementReports
from adapters.marketplace.shopify_payouts import read_payout
from adapters.settlements.store import SettlementStore
from canonical.finance import (
    JournalConflict,
    JournalDimensions,
    JournalEntry,
    JournalLine,
    SettlementFileInvalid,
    TransactionKind,
    fee_category,
    resolve_account,
)
from runtime.finance import finance_config
from runtime.settings import Settings
from tests.conftest import FIXTURES
from tests.settlement_gen import generate_settlement, seed_sales_orders

V1_SAMPLE = FIXTURES / "amazon" / "settlement_flat_file_V1_GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE_sample.tsv"
V2_COLUMNS_OFFICIAL = FIXTURES / "amazon" / "settlement_V2_GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE_V2_columns_official.txt"
ORDER = "112-8095165-5463447"
ENV = ActivityEnvironment()


# --- parsers ------------------------------------------------------------------------------------------------
def test_published_amazon_report_parses_totals_and_lines():
    with open(V1_SAMPLE, "rb") as f:
        reader = read_settlement(f)
        s = reader.settlement
        lines = list(reader)
    assert reader.version == "V1"
    assert (s.settlement_id, s.total, s.currency) == ("6016502941", Decimal("16630.13"), "USD")
    assert s.period_start.isoformat() == "2015-12-02T03:27:08+00:00"
    assert s.deposit_date.isoformat() == "2015-12-18T03:27:08+00:00"
    assert [(x.amount_type, x.amount_description, x.amount) for x in lines] == [
        ("ItemPrice", "Principal", Decimal("27.99")), ("ItemFees", "FBAPerOrderFulfillmentFee", Decimal("-1.00"))]
    assert all(x.order_id == ORDER and x.kind == TransactionKind.ORDER and x.sku == "edifier-p270-gold"
               for x in lines)
    assert [x.buyer_amount for x in lines] == [True, False]


def test_v2_layout_matches_the_official_column_list_and_reads_eu_decimal_commas(tmp_path):
    from adapters.marketplace.amazon_settlement import V2_COLUMNS

    assert tuple(V2_COLUMNS_OFFICIAL.read_text().split()) == V2_COLUMNS
    gen = generate_settlement(tmp_path / "eu.tsv", 8, decimal_comma=True, currency="EUR")
    assert "," in (tmp_path / "eu.tsv").read_text().splitlines()[2]
    with open(tmp_path / "eu.tsv", "rb") as f:
        reader = read_settlement(f)
        lines = list(reader)
    assert reader.version == "V2" and reader.settlement.total == gen.total and reader.settlement.currency == "EUR"
    assert len(lines) == 8 and sum(x.amount for x in lines) == gen.total
    assert lines[0].posted_at.isoformat() == "2026-01-05T10:00:00+00:00"


@pytest.mark.parametrize("body, message", [
    (b"", "empty"),
    (b"foo\tbar\n1\t2\n", "no settlement-id"),
    (b"settlement-id\tamount-type\tamount\n", "V2 lacks"),
])
def test_unreadable_amazon_files_are_refused_clearly(body, message):
    with pytest.raises(SettlementFileInvalid, match=message):
        read_settlement(io.BytesIO(body))


def test_bad_amount_names_the_row(tmp_path):
    generate_settlement(tmp_path / "s.tsv", 8)
    text = (tmp_path / "s.tsv").read_text().splitlines()
    cells = text[4].split("\t")
    cells[14] = "12.3.4"
    text[4] = "\t".join(cells)
    with pytest.raises(SettlementFileInvalid, match="row 5"):
        list(read_settlement(io.StringIO("\n".join(text) + "\n")))


def shopify_payout_doc(payout_id: int = 623721858123456789) -> dict:
    """Shaped as Shopify's REST docs describe payouts and balance transactions (no published sample is stored)."""
    order = 820982911946154508
    return {"payout": {"id": payout_id, "status": "paid", "date": "2026-01-17", "currency": "USD", "amount": "337.43",
                       "summary": {"charges_gross_amount": "359.97", "charges_fee_amount": "10.74"}},
            "transactions": [
                {"id": 1001, "type": "charge", "test": False, "payout_id": payout_id, "payout_status": "paid",
                 "currency": "USD", "amount": "359.97", "fee": "10.74", "net": "349.23", "source_id": 5001,
                 "source_type": "charge", "source_order_id": order, "source_order_transaction_id": 7001,
                 "processed_at": "2026-01-15T10:00:00-05:00"},
                {"id": 1002, "type": "refund", "test": False, "payout_id": payout_id, "payout_status": "paid",
                 "currency": "USD", "amount": "-11.80", "fee": "0.00", "net": "-11.80", "source_id": 5002,
                 "source_type": "refund", "source_order_id": order, "source_order_transaction_id": 7002,
                 "processed_at": "2026-01-16T10:00:00Z"},
                {"id": 1003, "type": "payout", "test": False, "payout_id": payout_id, "payout_status": "paid",
                 "currency": "USD", "amount": "-337.43", "fee": "0.00", "net": "-337.43", "source_id": payout_id,
                 "source_type": "payout", "source_order_id": None, "source_order_transaction_id": None,
                 "processed_at": "2026-01-17T00:00:00Z"}]}


def test_shopify_payout_streams_balance_transactions(monkeypatch):
    import adapters.marketplace.shopify_payouts as sp

    monkeypatch.setattr(sp, "_CHUNK", 17)  # force many refills: objects straddle chunk boundaries
    reader = read_payout(io.BytesIO(json.dumps(shopify_payout_doc()).encode()))
    s = reader.settlement
    assert (s.settlement_id, s.total, s.currency) == ("623721858123456789", Decimal("337.43"), "USD")
    lines = list(reader)
    assert [(x.transaction_type, x.amount_description, x.amount) for x in lines] == [
        ("charge", "amount", Decimal("359.97")), ("charge", "fee", Decimal("-10.74")),
        ("refund", "amount", Decimal("-11.80"))]
    assert lines[0].order_id == "820982911946154508" and lines[0].kind == TransactionKind.ORDER
    assert lines[2].kind == TransactionKind.REFUND and lines[2].adjustment_id == "5002"
    assert sum(x.amount for x in lines) == s.total
    assert lines[0].posted_at.isoformat() == "2026-01-15T15:00:00+00:00"


def test_shopify_payout_inconsistent_net_and_order_of_keys_are_refused():
    doc = shopify_payout_doc()
    doc["transactions"][0]["net"] = "300.00"
    with pytest.raises(SettlementFileInvalid, match="net 300.00"):
        list(read_payout(io.BytesIO(json.dumps(doc).encode())))
    swapped = {"transactions": doc["transactions"], "payout": doc["payout"]}
    with pytest.raises(SettlementFileInvalid, match="before"):
        read_payout(io.BytesIO(json.dumps(swapped).encode()))


# --- journals -----------------------------------------------------------------------------------------------
def test_journal_must_balance_and_lines_are_one_sided():
    d = JournalDimensions(channel="amazon", currency="USD")
    with pytest.raises(ValueError, match="does not balance"):
        JournalEntry(external_ref="x", posting_date=date(2026, 1, 1), currency="USD", lines=[
            JournalLine(account="1010", debit=Decimal("10.00"), dimensions=d),
            JournalLine(account="1150", credit=Decimal("9.99"), dimensions=d)])
    with pytest.raises(ValueError, match="either a debit or a credit"):
        JournalLine(account="1010", debit=Decimal("1"), credit=Decimal("1"), dimensions=d)
    with pytest.raises(ValueError, match="more decimals"):
        JournalLine(account="1010", debit=Decimal("1.001"), dimensions=d)


def test_account_map_resolution_and_categories():
    m = Settings().finance_account_map
    assert resolve_account(m, "Order", "ItemFees", "Commission") == "6100"
    assert resolve_account(m, "Order", "ItemFees", "SomethingNew") == "6190"
    assert resolve_account(m, "Refund", "ItemPrice", "Principal") == "1150"
    assert resolve_account(m, "charge", "charge", "fee") == "6105"
    assert resolve_account({}, "Order", "ItemFees", "Commission") is None
    assert fee_category("Order", "ItemFees", "FBAPerUnitFulfillmentFee") == "fulfilment_fee"
    assert fee_category("other-transaction", "other-transaction", "Current Reserve Amount") == "reserve"
    assert fee_category("Order", "Promotion", "Shipping") == "promotion"


# --- activities on the platform database --------------------------------------------------------------------
def _acts(engine, tmp_path: Path) -> SettlementActivities:
    """The activities as the composition root builds them, on the embedded ERP and the report folder."""
    settings = Settings(data_dir=tmp_path)
    return SettlementActivities(SettlementStore(engine), LocalErp(engine),
                                LocalSettlementReports(tmp_path / "settlements"), finance_config(settings))


def _book_fixture_order(engine, total: str = "27.99") -> None:
    seed_sales_orders(engine, "amazon", [(ORDER, "edifier-p270-gold", Decimal(total))])


def test_published_report_reconciles_with_expected_split(engine, tmp_path):
    acts = _acts(engine, tmp_path)
    _book_fixture_order(engine)
    staged = ENV.run(acts.stage_settlement, StageInput(provider="amazon", source=str(V1_SAMPLE),
                                                       expected_settlement_id="6016502941"))
    assert (staged.line_count, str(staged.lines_total), str(staged.deposit_total)) == (2, "26.99 USD",
                                                                                       "16630.13 USD")
    ref = SettlementRef(settlement_key=staged.settlement_key, channel="amazon")
    match = ENV.run(acts.match_settlement, ref)
    assert (match.matched_count, str(match.matched_amount), match.unmatched_count) == (2, "26.99 USD", 0)
    assert ENV.run(acts.classify_settlement, ref).unclassified_count == 0
    totals = ENV.run(acts.check_settlement_totals, ref)
    assert str(totals.difference) == "16603.14 USD"  # the published sample is a 4-row excerpt of the report
    # strict posting is refused while the difference is open
    with pytest.raises(ApplicationError) as refused:
        ENV.run(acts.build_settlement_journal, BuildJournalInput(settlement_key=ref.settlement_key, channel="amazon"))
    assert refused.value.type == "ReconciliationOpen"
    # the analyst skips: the difference goes to suspense and the journal balances
    assert ENV.run(acts.resolve_settlement_exceptions, ResolveInput(settlement_key=ref.settlement_key,
                                                                    actor="ana@example.com")) == 1
    summary = ENV.run(acts.build_settlement_journal, BuildJournalInput(
        settlement_key=ref.settlement_key, channel="amazon", mode="suspense"))
    assert str(summary.suspense_amount) == "16603.14 USD" and str(summary.total_debit) == "16631.13 USD"
    with engine.connect() as conn:
        stored = conn.execute(select(db.settlement_journals.c.journal)).scalar_one()
    journal = JournalEntry.model_validate(stored)
    assert journal.total_debit == journal.total_credit
    by_account = {x.account: x.signed for x in journal.lines}
    assert by_account == {"1010": Decimal("16630.13"), "1150": Decimal("-27.99"), "6110": Decimal("1.00"),
                          "1999": Decimal("-16603.14")}
    first = ENV.run(acts.post_settlement_journal, ref)
    again = ENV.run(acts.post_settlement_journal, ref)
    assert first.posted_now and not again.posted_now and first.erp_journal_id == again.erp_journal_id
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(db.erp_journals)).scalar_one() == 1
    result = ENV.run(acts.report_settlement, ReportInput(
        settlement_key=ref.settlement_key, channel="amazon", status="posted"))
    assert result.matched_count == 2 and result.unmatched_settlement_count == 0
    assert result.exceptions[0].kind == "total_difference" and result.exceptions[0].resolution == "suspense"
    assert result.erp_journal_id == first.erp_journal_id and str(result.suspense_amount) == "16603.14 USD"
    # staging the same report again is a no-op
    assert ENV.run(acts.stage_settlement, StageInput(provider="amazon", source=str(V1_SAMPLE))).already_staged


def test_unbooked_or_mispriced_orders_are_exceptions(engine, tmp_path):
    acts = _acts(engine, tmp_path)
    staged = ENV.run(acts.stage_settlement, StageInput(provider="amazon", source=str(V1_SAMPLE)))
    ref = SettlementRef(settlement_key=staged.settlement_key, channel="amazon")
    match = ENV.run(acts.match_settlement, ref)
    assert (match.matched_count, match.unmatched_count, match.exception_count) == (0, 2, 1)
    _book_fixture_order(engine, "25.00")  # booked, but for another amount
    match = ENV.run(acts.match_settlement, ref)  # retry re-matches: the old exception is replaced
    assert (match.matched_count, match.unmatched_count, match.exception_count) == (0, 2, 1)
    with engine.connect() as conn:
        row = conn.execute(select(db.settlement_exceptions).where(
            db.settlement_exceptions.c.kind == "amount_mismatch")).mappings().one()
    assert row["order_id"] == ORDER and row["difference_minor"] == 299 and "settled 27.99 USD" in row["cause"]


def test_erp_refuses_a_second_journal_with_other_amounts(engine):
    erp = LocalErp(engine)
    d = JournalDimensions(channel="amazon", currency="USD")
    j = JournalEntry(external_ref="settlement:amazon:1", posting_date=date(2026, 1, 1), currency="USD", lines=[
        JournalLine(account="1010", debit=Decimal("5.00"), dimensions=d),
        JournalLine(account="1150", credit=Decimal("5.00"), dimensions=d)])
    first = erp.post_journal(j)
    assert erp.post_journal(j) == first
    other = j.model_copy(update={"lines": [
        JournalLine(account="1010", debit=Decimal("6.00"), dimensions=d),
        JournalLine(account="1150", credit=Decimal("6.00"), dimensions=d)]})
    with pytest.raises(JournalConflict):
        erp.post_journal(other)
