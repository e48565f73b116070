"""Vendors misbehaving, through the real HTTP adapters against the vendor sandboxes (loopback, in this process)
with their fault modes (sandbox/faults.py):

* the ERP (ERPNext sandbox) answering 503 to everything for a window: the order steps are retried by their
  Temporal RetryPolicy after the vendor's Retry-After, complete once the window closes, and ERPNext holds exactly
  one sales order, delivery note and invoice per order;
* a partner (AvaTax) answering 429 with Retry-After for a window: every call is counted — no hot loop, the calls
  in the window stay within what Retry-After allows for the runs waiting on it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from adapters.erp.erpnext import REF
from runtime.settings import Settings
from sandbox.demo import seed_erpnext
from tests.faults.harness import SendLog, new_ids, running_stack, send_orders, served_sandbox, workflow_id
from tests.faults.invariants import check
from tests.reliability import record

pytestmark = pytest.mark.faults


def erpnext_state(sb, wf_ids: set[str]) -> tuple[list[str], list[str], dict]:
    """(doubled, missing, stock) read from the ERPNext sandbox's own records: submitted sales orders by po_no,
    delivery notes and (non-return) sales invoices by the platform's reference."""
    so = Counter(d.get("po_no") for d in sb.docs("Sales Order").values() if d.get("docstatus") == 1)
    dn = Counter(str(d.get(REF, "")).rsplit(":SHP-", 1)[0] for d in sb.docs("Delivery Note").values()
                 if d.get("docstatus") == 1)
    si = Counter(d.get(REF) for d in sb.docs("Sales Invoice").values()
                 if d.get("docstatus") == 1 and not d.get("is_return"))
    doubled, missing = [], []
    for wf in sorted(wf_ids):
        for what, counts in (("sales order", so), ("delivery note", dn), ("sales invoice", si)):
            if counts[wf] > 1:
                doubled.append(f"{wf}: {counts[wf]} {what}s")
            elif counts[wf] == 0:
                missing.append(f"{wf}: no {what}")
    stock = {(b["item_code"], b["warehouse"]): (Decimal(str(b.get("actual_qty", 0))),
                                                Decimal(str(b.get("reserved_qty", 0))))
             for b in sb.docs("Bin").values()}
    return doubled, missing, stock


ERP_ORDERS = 12
ERP_WINDOW = 6.0  # seconds of 503


async def test_erp_503_window(temporal_server, tmp_path):
    t0 = time.monotonic()
    ids = new_ids(ERP_ORDERS)
    with served_sandbox("erpnext", Settings()) as erp:
        seed_erpnext(Settings(erpnext_base_url=erp.base_url))
        sb = erp.app.state.sandbox
        before = erpnext_state(sb, set())[2]
        with running_stack(tmp_path, temporal_server, RETAILFLOW_ERP_ADAPTER="erpnext",
                           RETAILFLOW_ERPNEXT_BASE_URL=erp.base_url) as stack:
            log = SendLog()
            sending = asyncio.create_task(send_orders(stack, ids, log=log, rate=5, deadline_s=60))
            await asyncio.sleep(1.0)  # the first orders are under way
            start = time.monotonic()
            erp.injector.set("*", {"outage_until": datetime.now(UTC) + timedelta(seconds=ERP_WINDOW),
                                   "retry_after_seconds": 1})
            await sending
            client = await stack.client()
            accepted = {workflow_id(e) for e in log.acked}
            outcome = await check(stack.engine, client, accepted, initial_stock=stack.initial_stock,
                                  settle_timeout=150, local_erp=False)
        refused = erp.count(status=503)
        in_window = erp.count(since=start, until=start + ERP_WINDOW)
        doubled, missing, stock = erpnext_state(sb, accepted)
    outcome.doubled += doubled
    outcome.lost += [m for m in missing if m.rsplit(": no ", 1)[0] in outcome.completed]
    shipped_units = len(outcome.completed)  # the sample order ships one unit of each of its three items
    for (item, wh), (actual, reserved) in stock.items():
        if actual < 0 or reserved != 0:
            outcome.problems.append(f"ERPNext bin {item}@{wh}: actual {actual}, reserved {reserved} after the run")
        if item in ("SUN-AVIATOR", "FURN-LOUNGER", "FURN-COFFEE-TABLE") and \
                before[(item, wh)][0] - actual != shipped_units:
            outcome.problems.append(f"ERPNext bin {item}: fell by {before[(item, wh)][0] - actual}, "
                                    f"{shipped_units} shipped")
    figures = {"orders": ERP_ORDERS, "faults": refused, "acked": len(log.acked), "5xx": log.server_errors,
               "500": log.code_500, "erp_calls_in_window": in_window, **outcome.figures(),
               "seconds": round(time.monotonic() - t0, 1)}
    record("faults/test_vendor_faults.py::test_erp_503_window", category="fault",
           injects=f"ERPNext (sandbox, real HTTP adapter) answering 503 with Retry-After: 1 to every request for "
                   f"{ERP_WINDOW:.0f} s while {ERP_ORDERS} orders run ({refused} requests refused)",
           figures=figures,
           invariant="every order completed after the window (Temporal RetryPolicy, no parked run); ERPNext holds "
                     "exactly one submitted sales order, delivery note, sales invoice per order; no stock left "
                     "reserved, on hand fell by what shipped",
           result=outcome.verdict())
    assert refused > 0, "the outage window refused nothing: the fault was not injected"
    assert len(log.acked) == ERP_ORDERS and log.code_500 == 0, log.statuses
    outcome.assert_clean()
    assert len(outcome.completed) == ERP_ORDERS, outcome.figures()


TAX_ORDERS = 8
TAX_WINDOW = 6.0
RETRY_AFTER = 2


async def test_partner_429_retry_after_no_hot_loop(temporal_server, tmp_path):
    t0 = time.monotonic()
    ids = new_ids(TAX_ORDERS)
    with served_sandbox("avatax", Settings()) as tax:
        with running_stack(tmp_path, temporal_server, RETAILFLOW_TAX_ADAPTER="avalara",
                           RETAILFLOW_AVALARA_BASE_URL=tax.base_url) as stack:
            # every request answered 429, Retry-After: 2, for the window; the orders arrive inside it
            tax.injector.set("*", {"rate_limit_every": 1, "retry_after_seconds": RETRY_AFTER})
            start = time.monotonic()
            log = SendLog()
            await send_orders(stack, ids, log=log, rate=6, deadline_s=60)
            await asyncio.sleep(max(0.0, TAX_WINDOW - (time.monotonic() - start)))
            tax.injector.clear("*")
            end = time.monotonic()
            client = await stack.client()
            accepted = {workflow_id(e) for e in log.acked}
            outcome = await check(stack.engine, client, accepted, initial_stock=stack.initial_stock,
                                  settle_timeout=150, local_tax=False)
        # AvaTax's own record: one committed SalesInvoice per order, under the order's business key
        committed = Counter(d.get("code") for d in tax.app.state.sandbox.store.collection("transactions").values()
                            if d.get("status") == "Committed" and d.get("type") == "SalesInvoice")
    outcome.lost += [f"{wf}: no committed AvaTax transaction" for wf in sorted(outcome.completed)
                     if committed[wf] == 0]
    limited = tax.count(status=429)
    in_window = tax.count(since=start, until=end)
    # each run waiting on the partner may call at most once per Retry-After, plus its first call
    allowed = TAX_ORDERS * (int((end - start) / RETRY_AFTER) + 1)
    hot = in_window > allowed
    figures = {"orders": TAX_ORDERS, "faults": limited, "acked": len(log.acked), "5xx": log.server_errors,
               "500": log.code_500, "partner_calls_in_window": in_window, "calls_allowed": allowed,
               "window_s": round(end - start, 1), **outcome.figures(), "seconds": round(time.monotonic() - t0, 1)}
    clean = not (outcome.lost or outcome.doubled or outcome.problems or hot)
    record("faults/test_vendor_faults.py::test_partner_429_retry_after_no_hot_loop", category="fault",
           injects=f"AvaTax (sandbox, real HTTP adapter) answering 429 with Retry-After: {RETRY_AFTER} to every "
                   f"request for {end - start:.0f} s while {TAX_ORDERS} orders quote tax",
           figures=figures,
           invariant=f"calls in the window ≤ orders × (window / Retry-After + 1) = {allowed} (no hot loop); "
                     "every order completed once the partner answered; one tax commit per order",
           result="pass" if clean else f"FAIL: {in_window} calls in the window (allowed {allowed}) "
                                       f"{outcome.lost[:2]} {outcome.doubled[:2]} {outcome.problems[:2]}")
    assert limited > 0, "no 429 was served: the fault was not injected"
    assert not hot, f"{in_window} calls in {end - start:.1f}s (allowed {allowed}, {in_window / TAX_ORDERS:.1f}/order)"
    assert len(log.acked) == TAX_ORDERS and log.code_500 == 0, log.statuses
    outcome.assert_clean()
    assert len(outcome.completed) == TAX_ORDERS, outcome.figures()
