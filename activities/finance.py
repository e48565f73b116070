"""Settlement reconciliation activities: one settlement-store call each (adapters/settlements/store.py does the
SQL, canonical/settlement_matching.py holds the rules). Lines never cross the Temporal boundary: `stage_settlement`
streams a report into the platform database in batches, every later step works on the staged rows keyed by the
settlement key (`{provider}:{settlement_id}`); only ids, counts and totals go back to the workflow.

Each activity is safe to run twice (see the store). The composition root (runtime/finance.py) chooses the report
source and the finance settings (`FinanceConfig`) and builds these.
"""

from __future__ import annotations

from temporalio import activity

from activities.orders import business_errors
from adapters.erp.base import ErpAdapter
from adapters.marketplace.settlement_reports import ReportRef, SettlementReportSource
from adapters.settlements.store import PromotionSource, SettlementStore, exception_model
from canonical.finance import ReconciliationResult
from canonical.settlement_matching import MATCH_KINDS, PARKING_KINDS, FinanceConfig
from canonical.settlement_steps import (
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

__all__ = [
    "MATCH_KINDS", "PARKING_KINDS", "BuildJournalInput", "ClassifyResult", "FetchInput", "FinanceConfig",
    "JournalSummary", "MatchResult", "PostResult", "ReportInput", "ResolveInput", "SettlementActivities",
    "SettlementRef", "StageInput", "StageResult", "TotalsResult", "exception_model",
]


def _heartbeat(lines: int, read: int, size: int) -> None:
    if activity.in_activity():
        activity.heartbeat({"lines": lines, "bytes": read, "size": size})


class SettlementActivities:
    """Receives the settlement store, the ERP port (matching lookups, journal posting), the report source, the
    finance settings and, optionally, the price book (`promotions`: settled promotion lines explained by the
    published promotions, docs/finance.md)."""

    def __init__(self, store: SettlementStore, erp: ErpAdapter, reports: SettlementReportSource,
                 config: FinanceConfig, promotions: PromotionSource | None = None) -> None:
        self.store = store
        self.promotions = promotions
        self.erp = erp
        self.reports = reports
        self.config = config

    @activity.defn(name="list_settlement_reports")
    @business_errors
    def list_settlement_reports(self, inp: FetchInput) -> list[ReportRef]:
        return self.reports.list_reports(inp.provider)

    @activity.defn(name="stage_settlement")
    @business_errors
    def stage_settlement(self, inp: StageInput) -> StageResult:
        """Streams the report into the database in batches, heartbeating `lines`/`bytes`/`size`."""
        return self.store.stage(self.reports, inp, progress=_heartbeat)

    @activity.defn(name="match_settlement")
    @business_errors
    def match_settlement(self, inp: SettlementRef) -> MatchResult:
        return self.store.match(inp.settlement_key, inp.channel, self.erp, self.promotions)

    @activity.defn(name="classify_settlement")
    @business_errors
    def classify_settlement(self, inp: SettlementRef) -> ClassifyResult:
        return self.store.classify(inp.settlement_key, self.config.account_map)

    @activity.defn(name="check_settlement_totals")
    @business_errors
    def check_settlement_totals(self, inp: SettlementRef) -> TotalsResult:
        return self.store.check_totals(inp.settlement_key)

    @activity.defn(name="resolve_settlement_exceptions")
    @business_errors
    def resolve_settlement_exceptions(self, inp: ResolveInput) -> int:
        return self.store.resolve(inp.settlement_key, inp.actor)

    @activity.defn(name="build_settlement_journal")
    @business_errors
    def build_settlement_journal(self, inp: BuildJournalInput) -> JournalSummary:
        return self.store.build_journal(inp, self.config)

    @activity.defn(name="post_settlement_journal")
    @business_errors
    def post_settlement_journal(self, inp: SettlementRef) -> PostResult:
        return self.store.post_journal(inp.settlement_key, self.erp)

    @activity.defn(name="report_settlement")
    @business_errors
    def report_settlement(self, inp: ReportInput) -> ReconciliationResult:
        workflow_id = activity.info().workflow_id if activity.in_activity() else None
        return self.store.report(inp.settlement_key, inp.status, workflow_id=workflow_id)

    def all(self) -> list:
        return [self.list_settlement_reports, self.stage_settlement, self.match_settlement, self.classify_settlement,
                self.check_settlement_totals, self.resolve_settlement_exceptions, self.build_settlement_journal,
                self.post_settlement_journal, self.report_settlement]
