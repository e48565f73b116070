"""The million-line settlement tier: a generated 1,000,000-line Amazon report staged, matched, classified, checked,
skipped to suspense, built and posted on the platform database (SQLite, or PostgreSQL with
RETAILFLOW_TEST_DATABASE_URL). Slow (see docs/finance.md for the measured time): `-m "not slow"` leaves it out."""

from __future__ import annotations

import pytest

from activities.finance import BuildJournalInput, ResolveInput, SettlementRef, StageInput
from tests.settlement_gen import generate_settlement, seed_sales_orders
from tests.unit.test_finance import ENV, _acts

pytestmark = pytest.mark.slow


@pytest.mark.timeout(600)  # the time limit; speed and peak RSS are measured as ratios in bench/, not here
def test_generated_million_line_settlement_reconciles_within_the_time_limit(engine, tmp_path):
    path = tmp_path / "settlements" / "amazon" / "big.tsv"
    path.parent.mkdir(parents=True)
    gen = generate_settlement(path, 1_000_000)
    seed_sales_orders(engine, "amazon", gen.orders[:-5])  # five orders the platform never booked
    acts = _acts(engine, tmp_path)
    staged = ENV.run(acts.stage_settlement, StageInput(provider="amazon", source="big.tsv"))
    ref = SettlementRef(settlement_key=staged.settlement_key, channel="amazon")
    match = ENV.run(acts.match_settlement, ref)
    ENV.run(acts.classify_settlement, ref)
    totals = ENV.run(acts.check_settlement_totals, ref)
    ENV.run(acts.resolve_settlement_exceptions, ResolveInput(settlement_key=ref.settlement_key, actor="t"))
    summary = ENV.run(acts.build_settlement_journal, BuildJournalInput(
        settlement_key=ref.settlement_key, channel="amazon", mode="suspense"))
    posted = ENV.run(acts.post_settlement_journal, ref)
    assert staged.line_count == 1_000_000 and staged.lines_total.amount == gen.total
    assert totals.difference.is_zero
    assert (match.matched_count, match.unmatched_count, match.exception_count) == (999_980, 20, 5)
    unbooked = sum(total for _, _, total in gen.orders[-5:])
    unbooked_fees = match.unmatched_amount.amount - unbooked
    assert unbooked_fees < 0  # the five orders' fees go to suspense along with their principal and tax
    assert summary.suspense_amount == match.unmatched_amount and posted.posted_now
