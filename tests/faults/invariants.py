"""The invariants every fault test ends with, read from the recorded state: Temporal (each run's status and its
NeedsAttention search attribute), the run-status projection, and the tables of the embedded ERP, WMS, tax engine,
marketplace and the inventory ledger.

* every accepted order reaches a terminal state, or waits visibly (parked: NeedsAttention) — else it is *lost*;
* exactly one ERP sales order / invoice / delivery per shipment / WMS release / committed tax transaction per
  business key, and at most one credit note / refund / journal per key — a second one is *doubled*;
* the stock ledger: nothing negative, nothing left reserved for a finished order, reserved = what open
  reservations hold, and on hand fell by exactly what was delivered.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from sqlalchemy import Engine, text
from temporalio.client import Client, WorkflowExecutionStatus

TERMINAL = {"completed", "cancelled", "failed"}


@dataclass
class Outcome:
    completed: set[str] = field(default_factory=set)
    cancelled: set[str] = field(default_factory=set)
    parked: set[str] = field(default_factory=set)
    lost: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    histories: list[str] = field(default_factory=list)  # of the first lost runs, for the failure report

    def figures(self) -> dict[str, int]:
        return {"completed": len(self.completed), "cancelled": len(self.cancelled), "parked": len(self.parked),
                "lost": len(self.lost), "doubled": len(self.doubled)}

    @property
    def clean(self) -> bool:
        return not (self.lost or self.doubled or self.problems)

    def verdict(self) -> str:
        """The report's result column: `pass`, or what failed (the first of each kind)."""
        return "pass" if self.clean else f"FAIL: {self.lost[:2]} {self.doubled[:2]} {self.problems[:2]}"

    def assert_clean(self) -> None:
        assert not (self.lost or self.doubled or self.problems), (
            f"lost {self.lost[:10]} doubled {self.doubled[:10]} problems {self.problems[:10]}")


def run_statuses(engine: Engine, wf_ids: set[str]) -> dict[str, tuple[str, bool]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT workflow_id, status, needs_attention FROM run_status WHERE kind = 'order'"))
        return {r.workflow_id: (r.status, bool(r.needs_attention)) for r in rows if r.workflow_id in wf_ids}


def wait_settled(engine: Engine, wf_ids: set[str], timeout: float, *, stall: float = 75) -> float:
    """Poll the projection until every run is terminal or parked; give up after `timeout`, or sooner when nothing
    has moved for `stall` seconds (longer than a step's 60 s start-to-close timeout: a run that waits on a step
    a killed worker held moves again within it). The seconds it took."""
    t0 = last_change = time.monotonic()
    shown, last = -1, None
    while time.monotonic() - t0 < timeout and time.monotonic() - last_change < stall:
        seen = run_statuses(engine, wf_ids)
        counts = Counter(s for s, _p in seen.values())
        if counts != last:
            last, last_change = counts, time.monotonic()
        if int(time.monotonic() - t0) // 5 != shown:  # progress, shown when a test fails
            shown = int(time.monotonic() - t0) // 5
            print(f"  {time.monotonic() - t0:.0f}s: {dict(counts)}")
        if len(seen) == len(wf_ids) and all(s in TERMINAL or parked for s, parked in seen.values()):
            break
        time.sleep(0.5)
    return time.monotonic() - t0


async def temporal_states(client: Client, wf_ids: set[str]) -> dict[str, tuple[str, bool]]:
    """Each run's status as Temporal has it, and whether it is parked (NeedsAttention)."""
    gate = asyncio.Semaphore(16)

    async def one(wf_id: str) -> tuple[str, tuple[str, bool]]:
        async with gate:
            try:
                d = await client.get_workflow_handle(wf_id).describe()
            except Exception as exc:  # noqa: BLE001 - not found is the finding
                return wf_id, (f"missing: {type(exc).__name__}", False)
            raw = d.raw_description.workflow_execution_info.search_attributes.indexed_fields
            parked = "NeedsAttention" in raw and raw["NeedsAttention"].data.strip() == b"true"
            return wf_id, (WorkflowExecutionStatus(d.status).name if d.status else "?", parked)

    return dict(await asyncio.gather(*(one(w) for w in sorted(wf_ids))))


def _grouped(engine: Engine, sql: str) -> dict[str, int]:
    with engine.connect() as conn:
        return {str(k): int(n) for k, n in conn.execute(text(sql)).all()}


async def check(engine: Engine, client: Client, accepted: set[str], *, cancelled: set[str] = frozenset(),
                initial_stock: dict[tuple[str, str], int], shipments_per_order: int = 1,
                settle_timeout: float = 60, local_erp: bool = True, local_tax: bool = True) -> Outcome:
    """The invariants over the orders in `accepted` (workflow ids); `cancelled` must end cancelled and never
    reach the warehouse, the ERP's invoices or the tax engine's commits; every other accepted order completes
    (or is parked, visibly) with exactly one of each document. With `local_erp=False` (the ERP is a vendor's: the
    test checks its documents and stock there) the embedded ERP's tables and ledger are not read; likewise the
    embedded tax engine's with `local_tax=False`."""
    waited = await asyncio.to_thread(wait_settled, engine, accepted, settle_timeout)
    print(f"settled (or gave up) after {waited:.1f}s")
    out = Outcome()
    projected = run_statuses(engine, accepted)
    temporal = await temporal_states(client, accepted)
    for wf_id in sorted(accepted):
        t_status, parked = temporal[wf_id]
        p_status = projected.get(wf_id, ("(none)", False))[0]
        if t_status == "COMPLETED" and p_status in TERMINAL:
            (out.cancelled if p_status == "cancelled" else out.completed).add(wf_id)
        elif t_status == "RUNNING" and parked:
            out.parked.add(wf_id)
        else:
            out.lost.append(f"{wf_id}: temporal {t_status}, projection {p_status}")
    for line in out.lost[:3]:  # what Temporal recorded for them, printed for the failure report
        wf_id = line.split(": ", 1)[0]
        try:
            history = await client.get_workflow_handle(wf_id).fetch_history()
            out.histories.append(f"history of {wf_id}: " + ", ".join(
                f"{e.event_id}:{e.WhichOneof('attributes').removesuffix('_event_attributes')}" for e in history.events))
            print(out.histories[-1])
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            print(f"history of {wf_id}: {type(exc).__name__}: {exc}")
    for wf_id in sorted(cancelled):
        if wf_id not in out.cancelled:
            out.problems.append(f"{wf_id}: cancelled first but ended {temporal.get(wf_id)} / {projected.get(wf_id)}")
    for wf_id in sorted(out.cancelled - set(cancelled)):
        out.problems.append(f"{wf_id}: cancelled though nobody cancelled it")

    # -- one document per business key ------------------------------------------------------------------------
    def key_of(channel: str, external: str) -> str:
        return f"order:{channel}:{external}"

    with engine.connect() as conn:
        so_rows = conn.execute(text("SELECT id, external_ref, channel, external_order_id, status "
                                    "FROM erp_sales_orders")).all()
    so_by_key: dict[str, list] = defaultdict(list)
    for r in so_rows:
        so_by_key[key_of(r.channel, r.external_order_id)].append(r)
    invoices = _grouped(engine, "SELECT so.channel || ':' || so.external_order_id, count(*) FROM erp_invoices i "
                                "JOIN erp_sales_orders so ON so.id = i.sales_order_id "
                                "GROUP BY so.channel, so.external_order_id")
    invoices = {f"order:{k}": n for k, n in invoices.items()}
    deliveries = _grouped(engine, "SELECT external_ref, count(*) FROM erp_deliveries GROUP BY external_ref")
    releases = _grouped(engine, "SELECT external_ref, count(*) FROM wms_requests GROUP BY external_ref")
    shipped = _grouped(engine, "SELECT external_ref, count(*) FROM wms_requests WHERE status IN "
                               "('shipped', 'shipping', 'short_picked') GROUP BY external_ref")
    committed = _grouped(engine, "SELECT code, count(*) FROM tax_transactions WHERE status = 'committed' "
                                 "GROUP BY code")
    for name, sql in (("credit note", "SELECT external_ref, count(*) FROM erp_credit_notes GROUP BY external_ref"),
                      ("refund", "SELECT refund_key || '/' || line_id, count(*) FROM channel_refunds "
                                 "GROUP BY refund_key, line_id"),
                      ("journal", "SELECT external_ref, count(*) FROM erp_journals GROUP BY external_ref")):
        for key, n in _grouped(engine, sql).items():
            if n > 1:
                out.doubled.append(f"{key}: {n} {name}s")
    for key, rows in so_by_key.items():
        if len(rows) > 1:
            out.doubled.append(f"{key}: {len(rows)} sales orders")
    for key, n in invoices.items():
        if n > 1:
            out.doubled.append(f"{key}: {n} invoices")
    for key, n in deliveries.items():
        if n > shipments_per_order:
            out.doubled.append(f"{key}: {n} deliveries")
    for key, n in releases.items():
        if n > 1:
            out.doubled.append(f"{key}: {n} warehouse releases")
    # the tax code is the business key; with a vendor's tax engine the test reads its commits there
    tax_by_order = Counter({wf: committed.get(wf, 0) if local_tax else 1 for wf in accepted})
    confirmed = _grouped(engine, "SELECT 'order:' || channel || ':' || external_order_id, count(*) "
                                 "FROM channel_updates WHERE kind = 'shipment' GROUP BY channel, external_order_id")
    for key, n in confirmed.items():
        if n > shipments_per_order:
            out.doubled.append(f"{key}: {n} shipment confirmations to the channel")
    for wf_id in sorted(out.completed):
        erp_docs = (("sales order", len(so_by_key.get(wf_id, []))), ("invoice", invoices.get(wf_id, 0)),
                    ("delivery", deliveries.get(wf_id, 0))) if local_erp else ()
        missing = [what for what, have in (*erp_docs, ("warehouse release", releases.get(wf_id, 0)),
                                           ("tax commit", tax_by_order[wf_id]),
                                           ("channel confirmation", confirmed.get(wf_id, 0))) if have == 0]
        if missing:
            out.lost.append(f"{wf_id}: completed without {', '.join(missing)}")
        if tax_by_order[wf_id] > 1:
            out.doubled.append(f"{wf_id}: {tax_by_order[wf_id]} committed tax transactions")
    for wf_id in sorted(cancelled):
        reached = [what for what, have in (("invoice", invoices.get(wf_id, 0)),
                                           ("delivery", deliveries.get(wf_id, 0)),
                                           ("shipped warehouse release", shipped.get(wf_id, 0)),
                                           ("tax commit", tax_by_order[wf_id]),
                                           ("channel confirmation", confirmed.get(wf_id, 0))) if have]
        if reached:
            out.problems.append(f"{wf_id}: cancelled before its create, yet has {', '.join(reached)}")

    if not local_erp:
        return out
    # -- the stock ledger -----------------------------------------------------------------------------------------
    with engine.connect() as conn:
        levels = conn.execute(text("SELECT item_code, location, on_hand, reserved, allocated FROM inventory_levels"
                                   )).all()
        open_res = conn.execute(text("SELECT reservation_key, item_code, location, quantity - consumed AS held "
                                     "FROM erp_reservations WHERE status = 'open'")).all()
        delivered_rows = conn.execute(text("SELECT lines FROM erp_deliveries")).all()
    held: Counter = Counter()
    for r in open_res:
        held[(r.item_code, r.location)] += r.held
        if r.reservation_key in out.completed | out.cancelled and r.held > 0:
            out.problems.append(f"{r.reservation_key}: {r.held} × {r.item_code} still reserved after it finished")
    delivered: Counter = Counter()
    for (lines,) in delivered_rows:
        for line in lines if isinstance(lines, list) else json.loads(lines):
            delivered[line["item_code"]] += int(line["quantity"])
    for r in levels:
        if r.on_hand < 0 or r.reserved < 0 or r.allocated < 0:
            out.problems.append(f"stock {r.item_code}@{r.location} negative: {r.on_hand}/{r.reserved}/{r.allocated}")
        if r.reserved != held[(r.item_code, r.location)]:
            out.problems.append(f"stock {r.item_code}@{r.location}: reserved {r.reserved} but open reservations "
                                f"hold {held[(r.item_code, r.location)]}")
    on_hand_by_item: Counter = Counter()
    start_by_item: Counter = Counter()
    for r in levels:
        on_hand_by_item[r.item_code] += r.on_hand
    for (item, _loc), qty in initial_stock.items():
        start_by_item[item] += qty
    for item in start_by_item:
        if start_by_item[item] - on_hand_by_item[item] != delivered[item]:
            out.problems.append(f"stock {item}: on hand fell by {start_by_item[item] - on_hand_by_item[item]} "
                                f"but {delivered[item]} were delivered")
    return out
