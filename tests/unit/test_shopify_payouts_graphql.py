"""Shopify Payments payouts over the GraphQL Admin API (adapters/marketplace/shopify_payouts_graphql.py): the
payouts and balance transactions pages (filters, cursors) turned into the report file the REST fetcher writes,
which the payout reader reads into lines that add up to the payout."""

from __future__ import annotations

import io
import json
from datetime import date
from decimal import Decimal

import pytest

from adapters.marketplace import shopify_payouts
from adapters.marketplace.shopify_payouts_api import ShopifyPayoutMappingError
from adapters.marketplace.shopify_payouts_graphql import (
    ShopifyPayoutsGraphQL,
    payout_as_rest,
    rest_type,
    transaction_as_rest,
)
from tests.unit.test_shopify_graphql import FakeShopify, client


def money(amount: str, currency: str = "USD") -> dict:
    return {"amount": amount, "currencyCode": currency}


def payout(pid: int, status: str, issued: str, net: str) -> dict:
    return {"id": f"gid://shopify/ShopifyPaymentsPayout/{pid}", "legacyResourceId": str(pid), "status": status,
            "issuedAt": issued, "net": money(net),
            "summary": {"chargesGross": money("110.00"), "chargesFee": money("3.49"),
                        "refundsFeeGross": money("-10.00"), "refundsFee": money("0.00")}}


def txn(tid: int, ttype: str, amount: str, fee: str, net: str, *, order: int | None = None,
        pid: int = 700) -> dict:
    return {"id": f"gid://shopify/ShopifyPaymentsBalanceTransaction/{tid}", "type": ttype, "test": False,
            "amount": money(amount), "fee": money(fee), "net": money(net), "sourceId": str(tid * 10),
            "sourceType": "CHARGE" if ttype == "CHARGE" else "REFUND" if ttype == "REFUND" else "ADJUSTMENT",
            "sourceOrderTransactionId": None, "transactionDate": "2026-11-30T10:00:00Z",
            "associatedOrder": {"id": f"gid://shopify/Order/{order}"} if order else None,
            "associatedPayout": {"id": f"gid://shopify/ShopifyPaymentsPayout/{pid}", "status": "PAID"},
            "adjustmentReason": None}


PAYOUT_PAGES = {
    None: ([payout(700, "PAID", "2026-12-01T00:00:00Z", "96.51"), payout(701, "SCHEDULED", "2026-12-02T00:00:00Z",
                                                                         "20.00")], "c1"),
    "c1": ([payout(699, "PAID", "2026-11-28T00:00:00Z", "10.00")], None),
}
TXN_PAGES = {
    (700, None): ([txn(1, "CHARGE", "110.00", "3.49", "106.51", order=5001)], "t1"),
    (700, "t1"): ([txn(2, "REFUND", "-10.00", "0.00", "-10.00", order=5001),
                   txn(3, "TRANSFER", "-96.51", "0.00", "-96.51")], None),
    (699, None): ([txn(4, "SHOP_CASH_CREDIT", "10.00", "0.00", "10.00", pid=699)], None),
}


def answers():
    def page(nodes, cursor):
        return {"nodes": nodes, "pageInfo": {"hasNextPage": cursor is not None, "endCursor": cursor}}

    def payouts(v):
        assert v["query"] == "issued_at:>=2026-11-01"
        return {"data": {"shopifyPaymentsAccount": {"payouts": page(*PAYOUT_PAGES[v["after"]])}}}

    def transactions(v):
        pid = int(v["query"].removeprefix("payments_transfer_id:"))
        return {"data": {"shopifyPaymentsAccount": {"balanceTransactions": page(*TXN_PAGES[(pid, v["after"])])}}}

    return {"PayoutsPage": payouts, "BalanceTransactionsPage": transactions}


def test_paid_payouts_are_written_once_as_the_report_file_the_reader_reads(tmp_path):
    fake = FakeShopify(answers())
    fetcher = ShopifyPayoutsGraphQL(client(fake))
    written = fetcher.download_payouts(tmp_path, date(2026, 11, 1))
    assert sorted(p.name for p in written) == ["699.json", "700.json"]  # 701 is only scheduled
    reader = shopify_payouts.read_payout(io.BytesIO((tmp_path / "700.json").read_bytes()))
    s = reader.settlement
    assert (s.settlement_id, s.total, s.currency, s.deposit_date.date()) == ("700", Decimal("96.51"), "USD",
                                                                            date(2026, 12, 1))
    lines = list(reader)
    assert [(ln.amount_type, ln.amount_description, ln.amount, ln.order_id) for ln in lines] == [
        ("charge", "amount", Decimal("110.00"), "5001"), ("charge", "fee", Decimal("-3.49"), "5001"),
        ("refund", "amount", Decimal("-10.00"), "5001")]  # the transfer is the deposit, not a line
    assert sum(ln.amount for ln in lines) == s.total
    doc = json.loads((tmp_path / "700.json").read_text())
    assert doc["payout"]["summary"]["charges_fee_amount"] == "3.49"
    calls = fake.ops()
    assert calls.count("PayoutsPage") == 2 and calls.count("BalanceTransactionsPage") == 3
    again = FakeShopify(answers())
    assert ShopifyPayoutsGraphQL(client(again)).download_payouts(tmp_path, date(2026, 11, 1)) == []
    assert "BalanceTransactionsPage" not in again.ops()  # a payout in the folder is not fetched again


def test_graphql_types_map_onto_the_rest_names_the_account_map_knows():
    assert [rest_type(t) for t in ("TRANSFER", "TRANSFER_FAILURE", "TRANSFER_CANCEL", "CHARGE", "REFUND",
                                   "DISPUTE_WITHDRAWAL", "CHARGEBACK_FEE", "RESERVED_FUNDS_WITHDRAWAL",
                                   "SHOP_CASH_CREDIT", "BILLING_DEBIT", "ANOMALY_CREDIT_REVERSAL",
                                   "APPLICATION_FEE_REFUND", "SHIPPING_LABEL")] == [
        "payout", "payout_failure", "payout_cancellation", "charge", "refund", "dispute", "dispute",
        "reserved_funds", "credit", "debit", "adjustment", "application_fee_refund", "shipping_label"]


def test_ids_are_exact_and_bad_nodes_are_refused():
    big = 5_000_000_000_000_000_123  # above 2^53
    row = transaction_as_rest(txn(big, "CHARGE", "1.00", "0.00", "1.00", order=big, pid=big))
    assert row["id"] == big and row["source_order_id"] == big and row["payout_id"] == big
    with pytest.raises(ShopifyPayoutMappingError):
        payout_as_rest({"id": "gid://shopify/ShopifyPaymentsPayout/1", "status": "PAID", "issuedAt": "2026-12-01"})
    with pytest.raises(ShopifyPayoutMappingError):
        transaction_as_rest({**txn(1, "CHARGE", "1", "0", "1"), "id": "not-an-id"})


def test_a_shop_without_shopify_payments_is_said_so():
    fake = FakeShopify({"PayoutsPage": {"data": {"shopifyPaymentsAccount": None}}})
    with pytest.raises(ShopifyPayoutMappingError, match="no Shopify Payments account"):
        list(ShopifyPayoutsGraphQL(client(fake)).payouts(None))
