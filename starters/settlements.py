"""Starting the finance workflows by hand (their Temporal Schedules start them otherwise: schedules.toml,
`retailflow schedules apply`): a provider's SettlementFetch now, or one SettlementReconciliation
(`settlement:{provider}:{settlement_id}`; a second start attaches to the running one)."""

from __future__ import annotations

import uuid
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from canonical.finance import (
    FetchSettlementsInput,
    FetchSettlementsResult,
    ReconciliationResult,
    SettlementInput,
)
from runtime.settings import Settings
from workflows.priorities import priority_for

FETCH_WORKFLOW = "SettlementFetch"
RECONCILIATION_WORKFLOW = "SettlementReconciliation"


async def fetch_settlements_now(client: Client, settings: Settings, *, provider: str,
                                channel: str | None) -> FetchSettlementsResult:
    """Run the provider's SettlementFetch once, as its schedule would, and wait for what it started."""
    return await client.execute_workflow(
        FETCH_WORKFLOW, FetchSettlementsInput(provider=provider, channel=channel),
        id=f"settlement-fetch:{provider}:{uuid.uuid4().hex[:8]}", task_queue=settings.queue_for("finance"),
        result_type=FetchSettlementsResult, static_summary=f"Fetch {provider} settlement reports (by hand)",
        priority=priority_for("finance", provider, settings.fairness_weights))


async def start_reconciliation(client: Client, settings: Settings,
                               inp: SettlementInput) -> WorkflowHandle[Any, ReconciliationResult]:
    """Start (or attach to) the reconciliation of one settlement; its handle's result is typed."""
    return await client.start_workflow(
        RECONCILIATION_WORKFLOW, inp, id=inp.workflow_id, task_queue=settings.queue_for("finance"),
        result_type=ReconciliationResult,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"Reconcile {inp.provider} settlement {inp.settlement_id} (by hand)",
        priority=priority_for("finance", inp.provider, settings.fairness_weights))
