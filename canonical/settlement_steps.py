"""The settlement reconciliation's step payloads: what SettlementReconciliation sends each activity and gets back
(only ids, counts and totals; lines never cross the Temporal boundary). Recorded histories carry these shapes:
field names and types stay compatible. `activities.finance` re-exports them."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from canonical.money import Money


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StageInput(_In):
    provider: str
    source: str = Field(description="A report id in the provider's report folder, or an absolute file path")
    expected_settlement_id: str | None = None
    restage: bool = False


class StageResult(_In):
    settlement_key: str
    provider: str
    settlement_id: str
    currency: str
    line_count: int
    lines_total: Money
    deposit_total: Money
    already_staged: bool = False
    already_posted: bool = Field(default=False, description="The settlement's journal is already posted: a re-run "
                                 "reports it and changes nothing")


class SettlementRef(_In):
    settlement_key: str
    channel: str


class MatchResult(_In):
    matched_count: int
    matched_amount: Money
    unmatched_count: int = Field(description="Settlement lines without a matching platform order or refund")
    unmatched_amount: Money
    exception_count: int
    unmatched_platform_count: int


class ClassifyResult(_In):
    by_category: dict[str, Decimal]
    unclassified_count: int


class TotalsResult(_In):
    lines_total: Money
    deposit_total: Money
    difference: Money


class ResolveInput(_In):
    settlement_key: str
    actor: str
    reason: str | None = None


class BuildJournalInput(_In):
    settlement_key: str
    channel: str
    mode: Literal["strict", "suspense"] = "strict"


class JournalSummary(_In):
    external_ref: str
    line_count: int
    total_debit: Money
    suspense_amount: Money
    already_posted: bool
    erp_journal_id: str | None = None


class PostResult(_In):
    erp_journal_id: str
    posted_now: bool


class ReportInput(_In):
    settlement_key: str
    channel: str
    status: str


class FetchInput(_In):
    provider: str
