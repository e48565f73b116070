"""StoreDay (id `storeday:{store_id}:{business_date}`): one store's POS trading day.

- Transactions arrive by the `transactions` signal (signal-with-start from the API: POS webhooks and batches).
  Duplicates (offline replay, redelivered webhooks) are dropped by POS transaction id; each new transaction's stock
  movement is posted through one activity (idempotent by POS transaction id and line) and its money added to the
  day's running totals: sales, returns, discounts, tax, tenders per type.
- `close` (a signal, from the API or a Temporal Schedule through StoreDayClose) posts ONE summarized, balanced
  journal to the ERP with external reference `storeday:{store}:{date}`: gross sales, discounts, returns,
  unitemized sales, tax payable, tender clearing per tender type and, when the close carries the counted cash,
  cash over/short.
- After close the day stays open for late transactions (`late_window_hours`): they are batched for
  `adjustment_delay_seconds` and posted as adjustment journals `storeday:{store}:{date}:adj:{n}`.
- A business fault (unknown SKU, the ERP refusing the journal) parks the day: `needs_attention`, NeedsAttention=true,
  and it waits for `retry`, `skip` (stock only: the money still counts) or `cancel` (before the journal is
  posted: the day ends without posting). The API sends them as the validated `act` update.
- It continues as new after `max_transactions_per_run` transactions (or when Temporal suggests it), carrying the
  running totals and the seen transaction ids (see docs/pos.md for why ids and not a table).
- A sale that took units open reservations held (the ledger takes them back from the newest reservations,
  `PosStockResult.shortfalls`) is told to each affected order workflow (signal `stock_shortfall`) and to the SKU's
  InventorySync (signal `shortfall`: publish at once); a workflow that is gone is recorded in the steps, not an
  error.
- A return that puts an item back on the store's shelf where a backordered order line waits for it
  (`PosStockResult.backorder_receipts`, table `backorder_waits`) is told to that order (signal `stock_received`),
  as InventorySync tells a receipt; an order that is gone has its waits removed (patch `store-day-backorder-receipts-v1`).

StoreDayClose (for a Temporal Schedule per store): signals `close` to the store day whose business date is today
(or `days_ago` days before) in the store's time zone.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from typing import cast

from temporalio import workflow
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from activities.inventory import InventoryActivities, OrderKeysInput
    from activities.pos import (
        LocalDateInput,
        PosActivities,
        PosStockInput,
        PostJournalInput,
        store_local_date,
    )
    from canonical.errors import BUSINESS_ERROR_TYPES
    from canonical.finance import FINANCE_ERROR_TYPES
    from canonical.fulfillment import StepState
    from canonical.inventory import BackorderReceipt, StockShortfall, inventory_workflow_id
    from canonical.ops import RunStatusUpdate
    from canonical.pos import (
        CloseRequest,
        PostedJournal,
        PosTransaction,
        RejectedTransaction,
        StoreDayCarry,
        StoreDayCloseInput,
        StoreDayCloseResult,
        StoreDayInput,
        StoreDayStatus,
        StoreDaySummary,
        StoreDayTotals,
        build_store_day_journal,
        merge_totals,
        store_day_workflow_id,
    )
    from workflows import search_attributes as sa
    from workflows.inventory_sync import (
        SHORTFALL_PATCH,
        InventorySync,
        signal_backorder_receipts,
        signal_shortfalls,
    )
    from workflows.runbook import (
        UNDO_OPTIONS,
        CancelRequested,
        Runbook,
        RunbookConfig,
        RunbookState,
        analyst_update,
        step_retry_policy,
    )

STOCK_BATCH = 100  # transactions per stock activity
# Issue 20: a POS return of an item that backordered order lines wait for is told to each order (`stock_received`).
BACKORDER_RECEIPTS_PATCH = "store-day-backorder-receipts-v1"
MAX_LISTED = 200  # rejected / stock-skipped ids kept for the status


@workflow.defn(name="StoreDay")
class StoreDay(Runbook):
    RUNBOOK = RunbookConfig(
        kind="storeday", noun="store day", parking_errors=BUSINESS_ERROR_TYPES | FINANCE_ERROR_TYPES,
        needs_attention=StoreDayStatus.NEEDS_ATTENTION,
        closed=frozenset({StoreDayStatus.FINISHED, StoreDayStatus.CANCELLED}),
        committed_action="The day's journal is posted; fix the cause, then send `retry`.",
        cancel_too_late="the day's journal is posted (reverse it in the ERP instead)",
        cancel_refused="the day's journal is posted; it cannot be cancelled (reverse it in the ERP)",
        resume_refused="a store day has no data to correct; fix the cause and `retry`, or `skip`/`cancel`",
    )

    @workflow.init
    def __init__(self, inp: StoreDayInput) -> None:
        c = inp.carry or StoreDayCarry()
        self._inp = inp
        self._wf_id = workflow.info().workflow_id
        self._location = inp.location or inp.store_id
        self.rb = RunbookState(status=c.status, retry_policy=step_retry_policy(inp.step_max_attempts),
                               activity_queues=dict(inp.activity_task_queues))
        # the day
        self._totals = c.totals
        self._late = c.late
        self._seen: set[str] = set(c.seen_ids)
        self._seen_order: list[str] = list(c.seen_ids)
        self._duplicates = c.duplicates
        self._stock_skipped = list(c.stock_skipped)
        self._rejected = list(c.rejected)
        self._close_request: CloseRequest | None = c.close
        self._journal = c.journal
        self._adjustments = list(c.adjustments)
        self._closed_at = c.closed_at
        self._cash_over_short = c.cash_over_short
        self._late_since = c.late_since
        self._projection_version = c.projection_version
        self._runs = c.runs
        self._queue: list[PosTransaction] = []
        self._received_this_run = 0

    # -- the run -------------------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: StoreDayInput) -> StoreDaySummary:
        workflow.upsert_search_attributes([sa.STORE_ID.value_set(inp.store_id),
                                           sa.NEEDS_ATTENTION.value_set(False)])
        if inp.carry is None:
            self._set_status(StoreDayStatus.OPEN)
        else:
            workflow.set_current_details(self._details())
        try:
            while True:
                await self._wait()
                self._check_cancel()
                await self._drain()
                if self._journal is None and self._close_request is not None:
                    await self._post_close()
                if self._journal is not None and not self._late.is_empty and (
                        self._adjustment_due() or self._window_over()):
                    await self._post_adjustment()
                if self._journal is not None and self._window_over() and not self._queue and self._late.is_empty:
                    self._set_status(StoreDayStatus.FINISHED, "the late window is over")
                    await self._wind_up()
                    return self.status()
                if not self._queue and (self._received_this_run >= inp.max_transactions_per_run
                                        or workflow.info().is_continue_as_new_suggested()):
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    if not self._queue:
                        await self._drain_projection()
                        workflow.continue_as_new(inp.model_copy(update={"carry": self._carry()}))
        except asyncio.CancelledError:
            self._set_status(StoreDayStatus.CANCELLED, "cancelled through Temporal")
            await self._wind_up()
            raise
        except CancelRequested as cancel:
            who = cancel.action
            self._set_status(StoreDayStatus.CANCELLED, who.reason or f"cancelled by {who.actor}")
            await self._wind_up()
            return self.status()

    async def _wait(self) -> None:
        def ready() -> bool:
            return (bool(self._queue) or self.rb.cancel is not None
                    or (self._journal is None and self._close_request is not None))

        if ready():
            return
        timeout = None
        if self._journal is not None:
            wake = self._window_end()
            if not self._late.is_empty and self._late_since is not None:
                wake = min(wake, self._late_since + timedelta(seconds=self._inp.adjustment_delay_seconds))
            timeout = max(wake - workflow.now(), timedelta(0))
            if timeout == timedelta(0):
                return
        try:
            await workflow.wait_condition(ready, timeout=timeout, timeout_summary="Late transactions / late window")
        except TimeoutError:
            pass

    async def _drain(self) -> None:
        while self._queue:
            batch: list[PosTransaction] = []
            ids: set[str] = set()
            while self._queue and len(batch) < STOCK_BATCH:
                txn = self._queue.pop(0)
                self._received_this_run += 1
                if txn.pos_transaction_id in self._seen or txn.pos_transaction_id in ids:
                    self._duplicates += 1
                    continue
                refusal = self._refusal(txn)
                if refusal:
                    self._seen_add(txn.pos_transaction_id)  # a replay of it is refused once, not twice
                    if len(self._rejected) < MAX_LISTED:
                        self._rejected.append(RejectedTransaction(pos_transaction_id=txn.pos_transaction_id,
                                                                  reason=refusal))
                    workflow.logger.warning("store day %s refused %s: %s", self._wf_id, txn.pos_transaction_id,
                                            refusal)
                    continue
                batch.append(txn)
                ids.add(txn.pos_transaction_id)
            if not batch:
                continue
            itemized = [t for t in batch if t.itemized]
            if itemized:
                units = sum(line.quantity for t in itemized for line in t.lines)
                result = await self._step(
                    "apply_stock", PosActivities.apply_pos_stock,
                    PosStockInput(store_id=self._inp.store_id, location=self._location, transactions=itemized),
                    f"Stock: {units} unit(s) of {len(itemized)} POS transaction(s) at {self._location}",
                    skippable=True)
                if result is None:  # skipped by an analyst: the money still counts, the stock was not moved
                    room = MAX_LISTED - len(self._stock_skipped)
                    self._stock_skipped.extend(t.pos_transaction_id for t in itemized[:max(room, 0)])
                elif result.shortfalls:
                    workflow.deprecate_patch(SHORTFALL_PATCH)  # deprecated: every run tells the orders
                    await self._tell_shortfalls(list(result.shortfalls))
                if result is not None and result.backorder_receipts and workflow.patched(BACKORDER_RECEIPTS_PATCH):
                    await self._tell_backorders(list(result.backorder_receipts))
            for txn in batch:
                self._seen_add(txn.pos_transaction_id)
                if self._journal is None:
                    self._totals = self._totals.add(txn)
                else:
                    if self._late.is_empty:
                        self._late_since = workflow.now()
                    self._late = self._late.add(txn)
            workflow.set_current_details(self._details())

    async def _tell_shortfalls(self, shortfalls: list[StockShortfall]) -> None:
        """Each SKU's InventorySync publishes at once; each affected order is told what its reservation lost."""
        units = sum(s.quantity for s in shortfalls)
        for sku in sorted({s.item_code for s in shortfalls}):
            try:
                await workflow.get_external_workflow_handle(inventory_workflow_id(sku)).signal(
                    InventorySync.shortfall, [s for s in shortfalls if s.item_code == sku])
            except FailureError as err:  # not running: the ledger's outbox starts it, and a new run publishes at once
                workflow.logger.info("inventory sync of %s not running (%s)", sku, err.message)
        failed = await signal_shortfalls(shortfalls)
        orders = sorted({s.reservation_key for s in shortfalls})
        detail = f"{units} reserved unit(s) sold in store: told {len(orders)} order(s) {', '.join(orders[:10])}"
        if failed:
            detail += f"; not told: {'; '.join(failed[:10])}"
        self._record("stock_shortfall", StepState.FAILED if failed else StepState.DONE, detail)

    async def _tell_backorders(self, receipts: list[BackorderReceipt]) -> None:
        """Each order with a backordered line waiting for a returned item is told; the waits of one that is gone go."""
        failed, gone = await signal_backorder_receipts(receipts)
        if gone:
            await self._execute(InventoryActivities.forget_backorders, OrderKeysInput(keys=gone),
                                f"Forget the backorders of {len(gone)} order(s) that are gone", UNDO_OPTIONS)
        told = sorted({r.order_key for r in receipts} - set(gone))
        units = sum({r.event_id: r.quantity for r in receipts}.values())
        detail = f"{units} returned unit(s) that backorders wait for: told {len(told)} order(s) {', '.join(told[:10])}"
        if failed:
            detail += f"; not told: {'; '.join(failed[:10])}"
        self._record("backorder_receipt", StepState.FAILED if failed else StepState.DONE, detail)

    def _refusal(self, txn: PosTransaction) -> str | None:
        if txn.store_id != self._inp.store_id or txn.business_date != self._inp.business_date:
            return (f"belongs to store day {txn.workflow_id}, not {self._wf_id}")
        currency = self._totals.currency or self._late.currency
        if currency is not None and txn.currency != currency:
            return f"is in {txn.currency}; the store day is in {currency}"
        return None

    def _seen_add(self, txn_id: str) -> None:
        if txn_id not in self._seen:
            self._seen.add(txn_id)
            self._seen_order.append(txn_id)

    async def _post_close(self) -> None:
        req = self._close_request
        assert req is not None
        self._set_status(StoreDayStatus.CLOSING, f"close requested by {req.actor}")
        journal = build_store_day_journal(
            self._totals, external_ref=self._wf_id, store_id=self._inp.store_id,
            business_date=self._inp.business_date, accounts=self._inp.accounts, legal_entity=self._inp.legal_entity,
            counted_cash=req.counted_cash)
        erp_id = None
        if journal is not None:
            erp_id = await self._step(
                "post_journal", PosActivities.post_pos_journal, PostJournalInput(journal=journal),
                f"Post store-day journal: net sales {self._totals.net_sales} {journal.currency}, "
                f"{self._totals.transactions} transaction(s)")
        else:
            self._record("post_journal", StepState.SKIPPED, "no transactions: nothing to post")
        self._journal = PostedJournal(external_ref=self._wf_id, erp_journal_id=erp_id,
                                      transactions=self._totals.transactions, net_sales=self._totals.net_sales,
                                      posted_at=workflow.now())
        self._closed_at = workflow.now()
        if req.counted_cash is not None:
            self._cash_over_short = req.counted_cash - self._totals.expected_cash
        self._set_status(StoreDayStatus.CLOSED, f"closed by {req.actor}" + (f": {req.reason}" if req.reason else ""))

    async def _post_adjustment(self) -> None:
        n = len(self._adjustments) + 1
        ref = f"{self._wf_id}:adj:{n}"
        journal = build_store_day_journal(
            self._late, external_ref=ref, store_id=self._inp.store_id, business_date=self._inp.business_date,
            accounts=self._inp.accounts, legal_entity=self._inp.legal_entity,
            description=f"POS store day {self._inp.store_id} {self._inp.business_date.isoformat()}: "
                        f"late transactions, adjustment {n}")
        erp_id = None
        if journal is not None:
            erp_id = await self._step(
                "post_adjustment", PosActivities.post_pos_journal, PostJournalInput(journal=journal),
                f"Post adjustment {n}: {self._late.transactions} late transaction(s), net sales "
                f"{self._late.net_sales} {journal.currency}")
        self._adjustments.append(PostedJournal(external_ref=ref, erp_journal_id=erp_id,
                                               transactions=self._late.transactions, net_sales=self._late.net_sales,
                                               posted_at=workflow.now()))
        self._totals = merge_totals(self._totals, self._late)
        self._late = StoreDayTotals()
        self._late_since = None
        workflow.set_current_details(self._details())

    def _window_end(self) -> datetime:
        closed = self._closed_at or workflow.now()
        return closed + timedelta(hours=self._inp.late_window_hours)

    def _window_over(self) -> bool:
        return self._journal is not None and workflow.now() >= self._window_end()

    def _adjustment_due(self) -> bool:
        return self._late_since is not None and \
            workflow.now() >= self._late_since + timedelta(seconds=self._inp.adjustment_delay_seconds)

    def _carry(self) -> StoreDayCarry:
        return StoreDayCarry(
            status=self.rb.status, totals=self._totals, late=self._late, seen_ids=list(self._seen_order),
            duplicates=self._duplicates, stock_skipped=self._stock_skipped, rejected=self._rejected,
            close=self._close_request, journal=self._journal, adjustments=self._adjustments,
            closed_at=self._closed_at, cash_over_short=self._cash_over_short, late_since=self._late_since, projection_version=self._projection_version,
            runs=self._runs + 1)

    # -- runbook hooks, status --------------------------------------------------------------------------
    def _committed(self) -> bool:
        return self._journal is not None

    def _set_status(self, status: StoreDayStatus, reason: str | None = None) -> None:
        self.rb.status = status
        if status != StoreDayStatus.NEEDS_ATTENTION:
            self.rb.reason = reason
        workflow.upsert_search_attributes([sa.NEEDS_ATTENTION.value_set(status == StoreDayStatus.NEEDS_ATTENTION)])
        workflow.set_current_details(self._details())
        self._projection_version += 1
        self._queue_projection(RunStatusUpdate(
            workflow_id=self._wf_id, kind="storeday", channel="pos", external_id=self._inp.store_id,
            reference=self._inp.business_date.isoformat(), status=status.value,
            needs_attention=status == StoreDayStatus.NEEDS_ATTENTION, reason=self.rb.reason,
            suggested_action=self.rb.action_hint, erp_ref=self._journal.erp_journal_id if self._journal else None,
            version=self._projection_version, started_at=workflow.info().start_time, changed_at=workflow.now()))

    def _details(self) -> str:
        t = self._totals
        cur = t.currency or ""
        parts = [f"**Status:** {self.rb.status.value}"]
        if self.rb.reason:
            parts.append(f"**Reason:** {self.rb.reason}")
        parts.append(f"**Transactions:** {t.sales} sale(s), {t.returns} return(s), {self._duplicates} duplicate(s) "
                     f"dropped")
        parts.append(f"**Net sales:** {t.net_sales} {cur} · **Tax:** {t.tax_payable} {cur}")
        if self._journal is not None:
            parts.append(f"**Journal:** {self._journal.erp_journal_id or 'nothing to post'}")
        if self._adjustments or not self._late.is_empty:
            parts.append(f"**Adjustments:** {len(self._adjustments)} posted, {self._late.transactions} late "
                         "transaction(s) pending")
        return "\n\n".join(parts)

    # -- signals, updates, queries ----------------------------------------------------------------------
    @workflow.signal
    def transactions(self, batch: list[PosTransaction]) -> None:
        self._queue.extend(batch)

    @workflow.signal
    def close(self, request: CloseRequest | None = None) -> None:
        """Close the day (post its journal). A second close is ignored."""
        if self._close_request is None:
            self._close_request = request or CloseRequest()

    act = analyst_update(StoreDaySummary)

    @workflow.query
    def status(self) -> StoreDaySummary:
        shown = merge_totals(self._totals, self._late)
        counted = self._close_request.counted_cash if self._close_request and self._journal else None
        over = None if counted is None or self._cash_over_short is None else self._cash_over_short
        return StoreDaySummary(
            workflow_id=self._wf_id, store_id=self._inp.store_id, business_date=self._inp.business_date,
            status=self.rb.status, reason=self.rb.reason, currency=shown.currency, totals=shown,
            net_sales=shown.net_sales, tax_payable=shown.tax_payable, expected_cash=self._totals.expected_cash,
            counted_cash=counted,
            cash_over_short=over,
            duplicates=self._duplicates, pending_late=self._late.transactions, journal=self._journal,
            adjustments=list(self._adjustments), rejected=list(self._rejected),
            stock_skipped=list(self._stock_skipped), steps=list(self.rb.steps[-50:]))


@workflow.defn(name="StoreDayClose")
class StoreDayClose:
    """Started by a Temporal Schedule per store (at its local close time): signals `close` to the store day whose
    business date is today, or `days_ago` days before, in the store's time zone. A day with no store day running
    (no transactions, or already finished) is reported, not an error."""

    @workflow.run
    async def run(self, inp: StoreDayCloseInput) -> StoreDayCloseResult:
        day = cast(date, inp.business_date or await workflow.execute_local_activity(
            store_local_date, LocalDateInput(timezone=inp.timezone, days_ago=inp.days_ago),
            start_to_close_timeout=timedelta(seconds=10), summary=f"Business date in {inp.timezone}"))
        wf_id = store_day_workflow_id(inp.store_id, day)
        handle = workflow.get_external_workflow_handle(wf_id)
        try:
            await handle.signal(StoreDay.close, CloseRequest(
                actor="schedule", reason=f"scheduled close ({inp.timezone})"))
        except FailureError as err:
            return StoreDayCloseResult(workflow_id=wf_id, business_date=day, signalled=False,
                                       detail=f"no running store day to close: {err.message}")
        return StoreDayCloseResult(workflow_id=wf_id, business_date=day, signalled=True)
