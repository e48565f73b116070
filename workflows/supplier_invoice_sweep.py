"""SupplierInvoiceSweep (started by a Temporal Schedule, `schedules.toml` id `supplier-invoice-sweep`): reads the
drop-ship suppliers' inboxes and takes every invoice (X12 810, EDIFACT INVOIC) for a purchase order we sent, so an
invoice that arrives after its order's workflow stopped polling the supplier is still matched and posted once
(docs/fulfillment.md, "Supplier invoices"). The work is one activity, `sweep_supplier_invoices`
(activities/sourcing.py), the same matching as an order's `poll_node`; a run that fails is retried by the next
scheduled one (posting is idempotent by supplier and invoice number)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.sourcing import InvoiceSweepInput, InvoiceSweepResult, SplitFulfillmentActivities


@workflow.defn(name="SupplierInvoiceSweep")
class SupplierInvoiceSweep:
    """Run by a Schedule: match and post the invoices waiting in the suppliers' `inbound/`."""

    @workflow.run
    async def run(self, inp: InvoiceSweepInput) -> InvoiceSweepResult:
        return await workflow.execute_activity_method(
            SplitFulfillmentActivities.sweep_supplier_invoices, inp,
            start_to_close_timeout=timedelta(minutes=5), schedule_to_close_timeout=timedelta(minutes=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=60), maximum_attempts=10),
            summary=f"Match and post the invoices in {'supplier:' + inp.adapter if inp.adapter else 'every supplier'}"
                    "'s inbox")
