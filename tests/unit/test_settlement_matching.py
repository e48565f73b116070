"""The settlement reconciliation's pure rules (canonical/settlement_matching.py), the journal fingerprint and the
sales order values both ERPs book: no database, no ERP, no Temporal."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from canonical.errors import InvalidOrder
from canonical.finance import ExceptionKind, ReconciliationOpen, journal_fingerprint
from canonical.fulfillment import ResolvedLine
from canonical.money import Money
from canonical.order import Discount, Order, OrderLine, TaxQuote, TaxQuoteLine
from canonical.sales_order import sales_order_values
from canonical.settlement_matching import (
    AmountGroup,
    BookedOrderTotal,
    CreditNoteFacts,
    ErpOrderFacts,
    FinanceConfig,
    SettledGroup,
    SettlementHeader,
    by_category,
    deposit_account,
    from_minor,
    lines_without_order,
    match_order,
    match_refund,
    order_ref,
    plan_journal,
    rounded_minor,
    to_minor,
    total_difference,
    unclassified,
    unmatched_platform,
)
from runtime.settings import Settings

USD = "USD"
ACCOUNTS = Settings().finance_account_map


def so(total: str = "27.99", *, status: str = "invoiced", currency: str | None = USD,
       skus: tuple[str, ...] = ("SKU-1",)) -> ErpOrderFacts:
    return ErpOrderFacts(id="SO-1", grand_total=Decimal(total), status=status, currency=currency,
                         channel_skus=list(skus))


def test_minor_units_round_trip_and_erp_amounts_are_rounded():
    assert to_minor(Decimal("27.99"), USD) == 2799 and to_minor(Decimal("5"), "JPY") == 5
    assert str(from_minor(-2799, USD)) == "-27.99 USD" and str(from_minor(None, USD)) == "0.00 USD"
    assert rounded_minor(27.994999, USD) == 2799 and rounded_minor("10.005", USD) == 1000  # half-even
    assert order_ref("amazon", "112-1") == "order:amazon:112-1"


def test_a_settled_order_matches_its_sales_order():
    g = SettledGroup("112-1", 3, 2799)
    assert match_order(g, so(), {"SKU-1"}, USD) is None
    assert match_order(g, so(skus=()), {"SKU-9"}, USD) is None  # an order naming no SKUs is not SKU-checked


@pytest.mark.parametrize("found, skus, kind, platform, cause", [
    (None, set(), ExceptionKind.UNMATCHED_SETTLEMENT, None, "no platform sales order"),
    (so(status="cancelled"), set(), ExceptionKind.UNMATCHED_SETTLEMENT, 0, "is cancelled"),
    (so(currency="EUR"), set(), ExceptionKind.AMOUNT_MISMATCH, 2799, "sales order in EUR, settled in USD"),
    (so("25.00"), set(), ExceptionKind.AMOUNT_MISMATCH, 2500, "settled 27.99 USD, sales order SO-1 totals 25.00"),
    (so(), {"SKU-1", "SKU-2"}, ExceptionKind.SKU_MISMATCH, 2799, "SKU SKU-2 settled but not on sales order SO-1"),
])
def test_order_exceptions_name_the_cause(found, skus, kind, platform, cause):
    d = match_order(SettledGroup("112-1", 3, 2799), found, skus, USD)
    assert d is not None and d.kind == kind.value and cause in d.cause
    assert (d.txn_kind, d.order_id, d.line_count, d.settlement_minor, d.platform_minor) == (
        "order", "112-1", 3, 2799, platform)
    assert d.difference_minor == 2799 - (platform or 0)


def test_refunds_match_by_adjustment_id_all_notes_or_one_note():
    notes = [CreditNoteFacts(external_ref="return:amazon:1:ADJ-1", total=Decimal("5.00")),
             CreditNoteFacts(external_ref="return:amazon:1:ADJ-2", total=Decimal("7.00"))]
    assert match_refund(SettledGroup("1", 1, -500, "ADJ-1", "ADJ-1"), notes, USD) is None  # by adjustment id
    assert match_refund(SettledGroup("1", 2, -1200, "ADJ-1", "ADJ-2"), notes, USD) is None  # all of them
    assert match_refund(SettledGroup("1", 1, -700), notes, USD) is None  # one of them
    wrong = match_refund(SettledGroup("1", 1, -700, "ADJ-1", "ADJ-1"), notes, USD)  # ADJ-1 credits 5.00
    assert wrong is not None and wrong.kind == ExceptionKind.AMOUNT_MISMATCH.value
    assert (wrong.settlement_minor, wrong.platform_minor, wrong.difference_minor, wrong.adjustment_id) == (
        -700, -500, -200, "ADJ-1")
    missing = match_refund(SettledGroup("1", 1, -700, "ADJ-9", "ADJ-9"), [], USD)
    assert missing is not None and missing.kind == ExceptionKind.UNMATCHED_SETTLEMENT.value
    assert "(adjustment ADJ-9): no platform credit note" in missing.cause and missing.platform_minor is None


def test_lines_without_order_and_unbooked_platform_orders():
    d = lines_without_order("refund", 4, -1000)
    assert (d.kind, d.order_id, d.line_count, d.settlement_minor) == ("unmatched_settlement", None, 4, -1000)
    p = unmatched_platform(BookedOrderTotal(order_id="112-7", grand_total=Decimal("10.50")), USD)
    assert (p.kind, p.order_id, p.line_count, p.platform_minor, p.difference_minor) == (
        "unmatched_platform", "112-7", 0, 1050, -1050)


def test_classification_and_totals():
    groups = [AmountGroup("Order", "ItemPrice", "Principal", 2, 5000),
              AmountGroup("Order", "ItemFees", "Commission", 2, -750),
              AmountGroup("Order", "ItemPrice", "Principal", 1, 1000)]
    assert by_category(groups, USD) == {"principal": Decimal("60.00"), "commission": Decimal("-7.50")}
    assert unclassified(groups[0], ACCOUNTS) is None
    d = unclassified(AmountGroup("Order", "Mystery", "Thing", 3, 123), {})
    assert d is not None and d.kind == "unclassified" and "add `Mystery/Thing`" in d.cause
    assert (d.amount_type, d.amount_description, d.settlement_minor, d.difference_minor) == ("Mystery", "Thing",
                                                                                           123, 123)
    assert total_difference(1000, 1000, 5, USD) is None
    t = total_difference(16630_13, 26_99, 2, USD)
    assert t is not None and t.difference_minor == 16603_14 and t.platform_minor == 16630_13
    assert "16603.14 USD unexplained" in t.cause


HEAD = SettlementHeader(key="amazon:1", provider="amazon", settlement_id="1", currency=USD, deposit_minor=26_99,
                        posting_time=datetime(2026, 1, 18, 3, tzinfo=UTC))
CONFIG = FinanceConfig(account_map=ACCOUNTS)


def test_a_clean_settlement_posts_one_balanced_journal():
    groups = [AmountGroup("Order", "ItemPrice", "Principal", 1, 27_99),
              AmountGroup("Order", "ItemFees", "FBAPerOrderFulfillmentFee", 1, -1_00)]
    plan = plan_journal(HEAD, groups, channel="amazon", strict=True, config=CONFIG)
    j = plan.journal
    assert plan.suspense_minor == 0 and j.external_ref == "settlement:amazon:1"
    assert j.posting_date == date(2026, 1, 18) and j.description == "amazon settlement 1"
    assert {x.account: x.signed for x in j.lines} == {"1010": Decimal("26.99"), "1150": Decimal("-27.99"),
                                                      "6110": Decimal("1.00")}
    assert all(x.dimensions.legal_entity == "main" and x.dimensions.channel == "amazon" for x in j.lines)


def test_strict_refuses_what_suspense_parks():
    groups = [AmountGroup("Order", "ItemPrice", "Principal", 1, 30_00, unmatched=True),
              AmountGroup("Order", "Mystery", "Thing", 1, -1_00)]
    with pytest.raises(ReconciliationOpen) as refused:
        plan_journal(HEAD, groups, channel="amazon", strict=True, config=CONFIG)
    problems = refused.value.details["problems"]
    assert problems[0].endswith("unmatched") and problems[1].endswith("no GL account")
    assert "differ by" in problems[2]
    plan = plan_journal(HEAD, groups, channel="amazon", strict=False, config=CONFIG)
    # 30.00 − 1.00 to suspense as lines, and the 2.01 that nothing explains (deposit 26.99 vs lines 29.00)
    assert plan.suspense_minor == 29_00 - 2_01
    assert plan.journal.total_debit == plan.journal.total_credit
    assert {x.account: x.signed for x in plan.journal.lines} == {"1010": Decimal("26.99"), "1999": Decimal("-26.99")}


def test_posting_date_falls_back_to_today_and_deposit_account_from_the_map():
    head = HEAD._replace(posting_time=None)
    plan = plan_journal(head, [AmountGroup("Order", "ItemPrice", "Principal", 1, 26_99)], channel="amazon",
                        strict=True, config=CONFIG, today=date(2026, 2, 1))
    assert plan.journal.posting_date == date(2026, 2, 1)
    assert deposit_account({}) == "1010" and deposit_account({"Deposit": "1020"}) == "1020"


def test_journal_fingerprint_ignores_order_and_number_spelling():
    a = [{"account": "1010", "debit": "5.00", "credit": "0", "dimensions": {"channel": "amazon"}},
         {"account": "1150", "debit": 0, "credit": Decimal("5")}]
    b = [{"account": "1150", "debit": "0.00", "credit": "5.0"},
         {"account": "1010", "debit": Decimal("5"), "credit": 0, "dimensions": {"channel": "amazon"}}]
    assert journal_fingerprint(a) == journal_fingerprint(b)
    assert journal_fingerprint(a) != journal_fingerprint([{**a[0], "debit": "6.00"}, a[1]])


def test_sales_order_values_allocate_order_discounts_and_take_out_included_tax():
    def eur(x: str) -> Money:
        return Money.of(x, "EUR")

    order = Order(channel="shopify", external_order_id="1", created_at=datetime(2026, 1, 1, tzinfo=UTC),
                  currency="EUR", taxes_included=True, order_discounts=[Discount(amount=eur("10.00"))],
                  lines=[OrderLine(line_id="1", channel_sku="A", quantity=1, unit_price=eur("60.00")),
                         OrderLine(line_id="2", channel_sku="B", quantity=2, unit_price=eur("20.00"))])
    tax = TaxQuote(transaction_code="t", currency="EUR", jurisdiction="NL", taxes_included=True,
                   lines=[TaxQuoteLine(line_id="1", taxable_amount=eur("54.00"), rate=Decimal("0.21"),
                                       tax=eur("9.37")),
                          TaxQuoteLine(line_id="2", taxable_amount=eur("36.00"), rate=Decimal("0.21"),
                                       tax=eur("6.25"))],
                   shipping_tax=eur("0"), total_tax=eur("15.62"))
    lines = [ResolvedLine(line_id="1", channel_sku="A", item_code="I-A", quantity=1),
             ResolvedLine(line_id="2", channel_sku="B", item_code="I-B", quantity=2)]
    so_lines, net, grand = sales_order_values(order, lines, tax)
    assert [(x["item_code"], x["channel_sku"], x["discount"], x["net"], x["tax"]) for x in so_lines] == [
        ("I-A", "A", "6.00", "44.63", "9.37"), ("I-B", "B", "4.00", "29.75", "6.25")]
    assert str(grand) == "90.00 EUR" and str(net) == "74.38 EUR"
    with pytest.raises(InvalidOrder, match="no resolved ERP item"):
        sales_order_values(order, lines[:1], tax)
