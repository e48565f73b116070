"""Issue 16, settlement defects 2, 3, 4, 5, 7 and 8, each reproduced on the rules, the store on the platform
database (SQLite and PostgreSQL) or the `settlements reconcile` command's loop:

2. a promotion is not booked twice: the clearing credit of an order is its sales order's grand total (net of the
   coupon), not the gross item price with the promotion as an expense;
3. a settlement already posted is not reopened by a second run of its steps: no exception re-added, nothing put in
   suspense twice, the status stays `posted`;
4. `settlements reconcile` exits 0 posted, 3 parked for a person, 1 a real failure (or a cancelled run);
5. the most specific account rule wins, for every entry of the default account map;
7. the category report keeps customer money, tax, fees, reserves and adjustments apart and adds up to the deposit;
8. the stored result says `journal_posted_now: true` when the journal was just posted.
"""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
import typer
from sqlalchemy import func, select
from temporalio.client import WorkflowExecutionStatus

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
from adapters.marketplace.shopify_payouts import read_payout
from adapters.settlements.store import SettlementStore
from canonical.finance import (
    ACCOUNT_RULE_ORDER,
    JournalEntry,
    ReconciliationResult,
    SettlementInput,
    SettlementStatus,
    SettlementView,
    fee_category,
    resolve_account,
)
from canonical.money import Money
from canonical.settlement_matching import (
    AmountGroup,
    FinanceConfig,
    SettlementHeader,
    by_category,
    plan_journal,
)
from runtime.finance import finance_config
from runtime.settings import DEFAULT_FINANCE_ACCOUNT_MAP, Settings
from tests.settlement_gen import seed_sales_orders
from tests.unit.test_finance import ENV, ORDER, V1_SAMPLE, shopify_payout_doc

USD = "USD"


def _acts(engine, tmp_path: Path) -> SettlementActivities:
    settings = Settings(data_dir=tmp_path)
    return SettlementActivities(SettlementStore(engine), LocalErp(engine),
                                LocalSettlementReports(tmp_path / "settlements"), finance_config(settings))


def _write_v2(path: Path, settlement_id: str, rows: list[dict], *, currency: str = USD) -> Decimal:
    """A V2 flat file (the layout of tests/settlement_gen.py) with the given transaction rows; returns the deposit."""
    index = {c: i for i, c in enumerate(V2_COLUMNS)}

    def row(**values: str) -> str:
        cells = [""] * len(V2_COLUMNS)
        for k, v in values.items():
            cells[index[k.replace("_", "-")]] = v
        return "\t".join(cells) + "\n"

    total = sum((Decimal(r["amount"]) for r in rows), Decimal(0))
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("\t".join(V2_COLUMNS) + "\n")
        out.write(row(settlement_id=settlement_id, settlement_start_date="2026-01-01 00:00:00 UTC",
                      settlement_end_date="2026-01-15 00:00:00 UTC", deposit_date="2026-01-17 00:00:00 UTC",
                      total_amount=f"{total:.2f}", currency=currency))
        for r in rows:
            out.write(row(settlement_id=settlement_id, marketplace_name="Amazon.com", fulfillment_id="AFN",
                          posted_date="01/05/26", posted_date_time="2026-01-05 10:00:00 UTC", **r))
    return total


def _journal(engine) -> dict[str, Decimal]:
    with engine.connect() as conn:
        stored = conn.execute(select(db.settlement_journals.c.journal)).scalar_one()
    j = JournalEntry.model_validate(stored)
    assert j.total_debit == j.total_credit
    out: dict[str, Decimal] = {}
    for x in j.lines:
        out[x.account] = out.get(x.account, Decimal(0)) + x.signed
    return out


# --- 2. promotions are not counted twice ---------------------------------------------------------------------
def test_promotion_clears_the_net_sales_order_not_the_gross_price(engine, tmp_path):
    """An order of 50.00 with a 5.00 coupon: the sales order (the receivable) is 45.00, so the clearing account
    is credited 45.00. It used to be credited the gross 50.00 with the 5.00 debited to a promotion expense (6130):
    the journal balanced and 5.00 stayed in clearing."""
    oid = "113-0000001-0000001"
    common = dict(transaction_type="Order", order_id=oid, merchant_order_id=oid, shipment_id="S1", sku="SKU-A")
    path = tmp_path / "promo.tsv"
    deposit = _write_v2(path, "88000000002", [
        {**common, "amount_type": "ItemPrice", "amount_description": "Principal", "amount": "50.00",
         "quantity_purchased": "1"},
        {**common, "amount_type": "Promotion", "amount_description": "Principal", "amount": "-5.00"},
        {**common, "amount_type": "ItemFees", "amount_description": "Commission", "amount": "-6.75"},
    ])
    seed_sales_orders(engine, "amazon", [(oid, "SKU-A", Decimal("45.00"))])  # booked net of the coupon
    acts = _acts(engine, tmp_path)
    staged = ENV.run(acts.stage_settlement, StageInput(provider="amazon", source=str(path)))
    ref = SettlementRef(settlement_key=staged.settlement_key, channel="amazon")
    assert ENV.run(acts.match_settlement, ref).exception_count == 0  # 50.00 − 5.00 = the sales order's 45.00
    assert ENV.run(acts.classify_settlement, ref).unclassified_count == 0
    assert ENV.run(acts.check_settlement_totals, ref).difference.is_zero
    ENV.run(acts.build_settlement_journal, BuildJournalInput(settlement_key=ref.settlement_key, channel="amazon"))
    assert _journal(engine) == {"1010": deposit, "1150": Decimal("-45.00"), "6100": Decimal("6.75")}


def test_clearing_gets_the_buyer_amounts_whatever_the_map_says():
    """Per order the clearing credit is what the platform invoiced less what it credited: the matched buyer
    amounts (principal, tax, shipping, promotions) of orders and refunds, even with a map that gives a promotion
    an expense account."""
    cfg = FinanceConfig(account_map={**DEFAULT_FINANCE_ACCOUNT_MAP, "Promotion/*": "6130"}, clearing_account="1150")
    head = SettlementHeader(key="amazon:9", provider="amazon", settlement_id="9", currency=USD,
                            deposit_minor=50_00 - 5_00 + 4_00 - 20_00 + 2_00 - 6_75, posting_time=None)
    groups = [AmountGroup("Order", "ItemPrice", "Principal", 1, 50_00, buyer=True),
              AmountGroup("Order", "ItemPrice", "Tax", 1, 4_00, buyer=True),
              AmountGroup("Order", "Promotion", "Principal", 1, -5_00, buyer=True),
              AmountGroup("Refund", "ItemPrice", "Principal", 1, -20_00, buyer=True),
              AmountGroup("Refund", "Promotion", "Principal", 1, 2_00, buyer=True),
              AmountGroup("Order", "ItemFees", "Commission", 1, -6_75)]
    plan = plan_journal(head, groups, channel="amazon", strict=True, config=cfg)
    by = {x.account: x.signed for x in plan.journal.lines}
    # invoiced 49.00 (50.00 + 4.00 tax − 5.00 coupon), credited 18.00 (20.00 − 2.00 of the coupon given back)
    assert by == {"1010": Decimal("24.25"), "1150": Decimal("-31.00"), "6100": Decimal("6.75")}


# --- 3. a posted settlement stays posted ---------------------------------------------------------------------
def test_a_posted_settlement_is_not_reopened_by_a_second_run(engine, tmp_path):
    """The published excerpt parks on its total difference; the analyst skips it to suspense and it posts. The
    same file again (every step of a new run) re-added the exception, so the report said `needs_attention` and a
    second skip wrote a second suspense row. Now: staged says already posted, no step reopens it."""
    acts = _acts(engine, tmp_path)
    seed_sales_orders(engine, "amazon", [(ORDER, "edifier-p270-gold", Decimal("27.99"))])

    def run_steps(first: bool) -> tuple:
        staged = ENV.run(acts.stage_settlement, StageInput(provider="amazon", source=str(V1_SAMPLE),
                                                           expected_settlement_id="6016502941"))
        ref = SettlementRef(settlement_key=staged.settlement_key, channel="amazon")
        match = ENV.run(acts.match_settlement, ref)
        classified = ENV.run(acts.classify_settlement, ref)
        totals = ENV.run(acts.check_settlement_totals, ref)
        open_items = match.exception_count + classified.unclassified_count + (0 if totals.difference.is_zero else 1)
        if first:
            ENV.run(acts.report_settlement, ReportInput(settlement_key=ref.settlement_key, channel="amazon",
                                                        status="needs_attention"))
            assert ENV.run(acts.resolve_settlement_exceptions, ResolveInput(
                settlement_key=ref.settlement_key, actor="ana@example.com")) == 1
            ENV.run(acts.build_settlement_journal, BuildJournalInput(settlement_key=ref.settlement_key,
                                                                     channel="amazon", mode="suspense"))
            ENV.run(acts.post_settlement_journal, ref)
        else:  # what an analyst's second skip would do
            assert ENV.run(acts.resolve_settlement_exceptions, ResolveInput(
                settlement_key=ref.settlement_key, actor="bob@example.com")) == 0
        result = ENV.run(acts.report_settlement, ReportInput(settlement_key=ref.settlement_key, channel="amazon",
                                                             status="posted"))
        return staged, open_items, result

    staged, open_items, first = run_steps(first=True)
    assert not staged.already_posted and open_items == 1 and first.journal_posted_now
    staged, open_items, again = run_steps(first=False)
    assert staged.already_posted and open_items == 0
    assert again.status == "posted" and not again.journal_posted_now
    assert again.erp_journal_id == first.erp_journal_id and again.exception_count == first.exception_count == 1
    with engine.connect() as conn:
        exc = conn.execute(select(db.settlement_exceptions.c.resolution, db.settlement_exceptions.c.resolved_by)
                           ).all()
        assert exc == [("suspense", "ana@example.com")]  # one suspense row, by the first analyst
        assert conn.execute(select(db.settlements.c.status)).scalar_one() == "posted"
        assert conn.execute(select(func.count()).select_from(db.erp_journals)).scalar_one() == 1
    # restaging a posted settlement is refused, as before
    with pytest.raises(Exception, match="already posted"):
        ENV.run(acts.stage_settlement, StageInput(provider="amazon", source=str(V1_SAMPLE), restage=True))


# --- 8. the stored result says the journal was posted now --------------------------------------------------
def test_stored_result_says_journal_posted_now(engine, tmp_path):
    acts = _acts(engine, tmp_path)
    seed_sales_orders(engine, "amazon", [(ORDER, "edifier-p270-gold", Decimal("27.99"))])
    staged = ENV.run(acts.stage_settlement, StageInput(provider="amazon", source=str(V1_SAMPLE)))
    ref = SettlementRef(settlement_key=staged.settlement_key, channel="amazon")
    ENV.run(acts.check_settlement_totals, ref)
    ENV.run(acts.resolve_settlement_exceptions, ResolveInput(settlement_key=ref.settlement_key, actor="ana"))
    ENV.run(acts.build_settlement_journal, BuildJournalInput(settlement_key=ref.settlement_key, channel="amazon",
                                                             mode="suspense"))
    assert ENV.run(acts.post_settlement_journal, ref).posted_now
    returned = ENV.run(acts.report_settlement, ReportInput(settlement_key=ref.settlement_key, channel="amazon",
                                                           status="posted"))
    with engine.connect() as conn:
        stored = conn.execute(select(db.settlements.c.result)).scalar_one()
    assert returned.journal_posted_now is True and stored["journal_posted_now"] is True
    again = ENV.run(acts.report_settlement, ReportInput(settlement_key=ref.settlement_key, channel="amazon",
                                                        status="posted"))
    with engine.connect() as conn:
        stored = conn.execute(select(db.settlements.c.result)).scalar_one()
    assert again.journal_posted_now is False and stored["journal_posted_now"] is False  # a re-run posts nothing


# --- 5. the most specific account rule wins ----------------------------------------------------------------
# For every entry of the default map, a line as the provider writes it that the entry is the most specific for.
DEFAULT_MAP_LINES: dict[str, tuple[str, str, str]] = {
    "ItemPrice/*": ("Order", "ItemPrice", "Principal"),
    "Refund/ItemPrice/*": ("Refund", "ItemPrice", "Principal"),
    "charge/amount": ("charge", "charge", "amount"),
    "refund/amount": ("refund", "refund", "amount"),
    "ItemFees/Commission": ("Order", "ItemFees", "Commission"),
    "ItemFees/RefundCommission": ("Refund", "ItemFees", "RefundCommission"),
    "ItemFees/VariableClosingFee": ("Order", "ItemFees", "VariableClosingFee"),
    "*/fee": ("charge", "charge", "fee"),
    "ItemFees/FBAPerUnitFulfillmentFee": ("Order", "ItemFees", "FBAPerUnitFulfillmentFee"),
    "ItemFees/FBAPerOrderFulfillmentFee": ("Order", "ItemFees", "FBAPerOrderFulfillmentFee"),
    "ItemFees/FBAWeightBasedFee": ("Order", "ItemFees", "FBAWeightBasedFee"),
    "ItemFees/ShippingChargeback": ("Order", "ItemFees", "ShippingChargeback"),
    "ItemFees/*": ("Order", "ItemFees", "GiftwrapChargeback"),
    "Promotion/*": ("Order", "Promotion", "Shipping"),
    "ItemWithheldTax/*": ("Order", "ItemWithheldTax", "MarketplaceFacilitatorTax-Principal"),
    "other-transaction/Current Reserve Amount": ("other-transaction", "other-transaction", "Current Reserve Amount"),
    "other-transaction/Previous Reserve Amount Balance": ("other-transaction", "other-transaction",
                                                          "Previous Reserve Amount Balance"),
    "reserved_funds/amount": ("reserved_funds", "reserved_funds", "amount"),
    "other-transaction/*": ("other-transaction", "other-transaction", "Storage Fee"),
    "adjustment/amount": ("adjustment", "adjustment", "amount"),
    "dispute/amount": ("dispute", "dispute", "amount"),
    "*/Subscription Fee": ("other-transaction", "other-transaction", "Subscription Fee"),
}


def test_every_default_map_entry_is_the_one_its_line_resolves_to():
    m = Settings().finance_account_map
    assert set(DEFAULT_MAP_LINES) == set(m) - {"deposit"}, "a new default entry needs its line here"
    for key, line in DEFAULT_MAP_LINES.items():
        assert resolve_account(m, *line) == m[key], key
        # the entry itself wins (not another entry that happens to name the same account)
        assert resolve_account({**m, key: "SENTINEL"}, *line) == "SENTINEL", key
    # the defect: `other-transaction/*` used to shadow `*/Subscription Fee` (6140, not 6190)
    assert resolve_account(m, "other-transaction", "other-transaction", "Subscription Fee") == "6190"


def test_rule_order_is_most_specific_first():
    line = ("Refund", "ItemFees", "Commission")
    rules = {"Refund/ItemFees/Commission": "A", "ItemFees/Commission": "B", "*/Commission": "C",
             "Refund/ItemFees/*": "D", "ItemFees/*": "E", "Refund/*": "F", "*": "G"}
    assert len(rules) == len(ACCOUNT_RULE_ORDER)
    m = dict(rules)
    for expected in "ABCDEFG":
        assert resolve_account(m, *line) == expected
        del m[next(k for k, v in m.items() if v == expected)]
    assert resolve_account(m, *line) is None
    assert resolve_account({"itemfees/COMMISSION": "6100"}, "Order", "ItemFees", "Commission") == "6100"


# --- 7. categories ------------------------------------------------------------------------------------------
def test_shopify_categories_keep_customer_money_and_processing_fees_apart():
    """Charges, refunds and processing fees of a Shopify Payments payout all landed in `other_fee`."""
    reader = read_payout(io.BytesIO(json.dumps(shopify_payout_doc()).encode()))
    lines = list(reader)
    groups = [AmountGroup(x.transaction_type, x.amount_type, x.amount_description, 1,
                          int(x.amount.scaleb(2))) for x in lines]
    cats = by_category(groups, USD)
    assert cats == {"principal": Decimal("348.17"), "processing_fee": Decimal("-10.74")}
    assert sum(cats.values()) == reader.settlement.total
    assert fee_category("dispute", "dispute", "amount") == "adjustment"
    assert fee_category("adjustment", "adjustment", "amount") == "adjustment"
    assert fee_category("reserved_funds", "reserved_funds", "amount") == "reserve"
    assert fee_category("refund", "refund", "fee") == "processing_fee"


def test_amazon_shipping_tax_is_tax_and_categories_add_up():
    """`ItemPrice/ShippingTax` was counted as shipping."""
    lines = [("Order", "ItemPrice", "Principal", 50_00, "principal"),
             ("Order", "ItemPrice", "Tax", 4_00, "tax"),
             ("Order", "ItemPrice", "Shipping", 5_99, "shipping_credit"),
             ("Order", "ItemPrice", "ShippingTax", 48, "tax"),
             ("Order", "ItemWithheldTax", "MarketplaceFacilitatorTax-Shipping", -48, "tax"),
             ("Order", "Promotion", "Shipping", -5_99, "promotion"),
             ("Order", "ItemFees", "Commission", -7_50, "commission"),
             ("Order", "ItemFees", "FBAPerUnitFulfillmentFee", -3_22, "fulfilment_fee"),
             ("Order", "ItemFees", "ShippingChargeback", -1_00, "shipping_credit"),
             ("Refund", "ItemPrice", "Principal", -10_00, "principal"),
             ("Refund", "ItemPrice", "ShippingTax", -48, "tax"),
             ("other-transaction", "other-transaction", "Current Reserve Amount", -20_00, "reserve"),
             ("other-transaction", "other-transaction", "Subscription Fee", -39_99, "other_fee"),
             ("FBA Inventory Reimbursement", "FBA Inventory Reimbursement", "WAREHOUSE_DAMAGE", 12_00, "adjustment")]
    for t, a, d, _, category in lines:
        assert fee_category(t, a, d) == category, (t, a, d)
    cats = by_category([AmountGroup(t, a, d, 1, n) for t, a, d, n, _ in lines], USD)
    assert sum(cats.values()) == Decimal(sum(n for *_, n, _ in lines)) / 100
    assert cats["tax"] == Decimal("3.52") and cats["shipping_credit"] == Decimal("4.99")


# --- 4. exit codes of `retailflow settlements reconcile` ---------------------------------------------------
class _Handle:
    """A workflow handle as temporalio 1.35 has it: `result()` takes no `result_type` (the handle is typed)."""

    def __init__(self, *, view: SettlementView, result: ReconciliationResult | Exception) -> None:
        self._view, self._result = view, result

    async def describe(self):
        status = WorkflowExecutionStatus.RUNNING if self._view.status == SettlementStatus.NEEDS_ATTENTION else (
            WorkflowExecutionStatus.FAILED if isinstance(self._result, Exception)
            else WorkflowExecutionStatus.COMPLETED)
        return SimpleNamespace(status=status, raw_description=SimpleNamespace(pending_activities=[]))

    async def query(self, name, *, result_type=None):
        return self._view

    async def result(self, *, follow_runs: bool = True, rpc_metadata=None, rpc_timeout=None):
        if isinstance(self._result, Exception):
            raise self._result
        return self._result


def _result(status: str) -> ReconciliationResult:
    usd = Money.of("10.00", USD)
    return ReconciliationResult(provider="amazon", settlement_id="1", status=status, currency=USD,
                                deposit_total=usd, lines_total=usd, line_count=2, matched_count=2, matched_amount=usd,
                                unmatched_settlement_count=0, unmatched_settlement_amount=Money.of("0", USD),
                                erp_journal_id="JE-1" if status == "posted" else None, journal_posted_now=True)


def _view(status: SettlementStatus) -> SettlementView:
    return SettlementView(workflow_id="settlement:amazon:1", provider="amazon", settlement_id="1", status=status,
                          reason="1 unmatched line(s)" if status == SettlementStatus.NEEDS_ATTENTION else None,
                          line_count=2)


@pytest.mark.parametrize("view, result, code", [
    (SettlementStatus.POSTED, _result("posted"), 0),
    (SettlementStatus.NEEDS_ATTENTION, _result("posted"), 3),
    (SettlementStatus.FAILED, RuntimeError("workflow failed"), 1),
    (SettlementStatus.CANCELLED, _result("cancelled"), 1),
])
async def test_reconcile_command_exit_codes(monkeypatch, capsys, view, result, code):
    import retailflow.finance_cli as cli
    import starters.settlements as starters

    handle = _Handle(view=_view(view), result=result)

    async def fake_client(settings):
        return SimpleNamespace()

    async def fake_start(client, settings, inp):
        return handle

    monkeypatch.setattr(cli, "_client", fake_client)
    monkeypatch.setattr(starters, "start_reconciliation", fake_start)
    inp = SettlementInput(provider="amazon", settlement_id="1", source="/tmp/x.tsv")
    try:
        await cli._run_reconcile(SimpleNamespace(), inp, 100, True)
        got = 0
    except typer.Exit as exc:
        got = exc.exit_code
    out = capsys.readouterr().out
    assert got == code, out
    if code == 0:
        assert "posted" in out and "failed" not in out


async def test_reconcile_command_gives_up_on_a_run_it_cannot_read(monkeypatch, capsys):
    """A run whose status query keeps failing (this command lacks the worker's codec keys, or its task fails)
    ends the command with exit 1 and a reason, instead of a progress bar that never ends."""
    import retailflow.finance_cli as cli
    import starters.settlements as starters

    class Unreadable(_Handle):
        async def query(self, name, *, result_type=None):
            raise RuntimeError("Unable to query workflow due to Workflow Task in failed state")

    handle = Unreadable(view=_view(SettlementStatus.NEEDS_ATTENTION), result=_result("posted"))

    async def fake_client(settings):
        return SimpleNamespace()

    async def fake_start(client, settings, inp):
        return handle

    monkeypatch.setattr(cli, "_client", fake_client)
    monkeypatch.setattr(starters, "start_reconciliation", fake_start)
    monkeypatch.setattr(cli, "QUERY_ATTEMPTS", 3)
    inp = SettlementInput(provider="amazon", settlement_id="1", source="/tmp/x.tsv")
    with pytest.raises(typer.Exit) as exc:
        await cli._run_reconcile(SimpleNamespace(), inp, 100, True)
    assert exc.value.exit_code == 1
    assert "codec keys" in capsys.readouterr().out
