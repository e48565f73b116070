"""Domain task queues: which workflows each worker process runs where, and where starters send them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from runtime.settings import DOMAINS, Settings
from worker import DOMAIN_WORKFLOWS, WORKFLOWS, queue_plan, workflow_queues


def _names(workflows) -> set[str]:
    return {wf.__name__ for wf in workflows}


def test_every_registered_workflow_belongs_to_exactly_one_domain():
    assert set(DOMAIN_WORKFLOWS) == set(DOMAINS)
    assert len(WORKFLOWS) == len(set(WORKFLOWS)) == sum(len(w) for w in DOMAIN_WORKFLOWS.values())


def test_by_default_one_queue_runs_everything():
    s = Settings(task_queue="rf")
    assert list(queue_plan(s)) == ["rf"] and _names(queue_plan(s)["rf"]) == _names(WORKFLOWS)
    assert set(workflow_queues(s).values()) == {"rf"}


def test_domains_on_their_own_queues_and_worker_groups():
    s = Settings(task_queue="rf", domain_task_queues={"finance": "rf-finance", "inventory": "rf-inv"})
    plan = queue_plan(s)
    assert _names(plan["rf-finance"]) == {"SettlementReconciliation", "SettlementFetch", "ParityCheck"}
    assert _names(plan["rf-inv"]) == {"InventorySync", "InventoryDrift"}
    assert _names(plan["rf"]) == {"OrderFulfillment", "ChannelOrderPoll", "PartnerBreaker", "SupplierInvoiceSweep",
                                  "ReturnToRefund", "StoreDay", "StoreDayClose", "PricePublication"}
    queues = workflow_queues(s)
    assert queues["SettlementFetch"] == "rf-finance" and queues["OrderFulfillment"] == "rf"
    finance_only = Settings(task_queue="rf", domain_task_queues={"finance": "rf-finance"}, worker_domains=["finance"])
    assert list(queue_plan(finance_only)) == ["rf-finance"]


@pytest.mark.parametrize("bad", [{"domain_task_queues": {"shipping": "q"}}, {"worker_domains": ["orders", "nope"]}])
def test_unknown_domains_are_refused(bad):
    with pytest.raises(ValidationError, match="unknown domain"):
        Settings(**bad)
