"""Backorder waits (issue 20): which backordered order lines wait for which item, so a receipt finds their orders.

Table `backorder_waits` (migration 0016), one row per (order, line, item): the line's item, or each component of
the kit it sold (a kit line waits for every component it is short of, and a receipt of any of them wakes it).

- The sourcing activity (`SourcingActivities.plan_sourcing`) owns the rows of the lines it plans: after each plan
  the rows of the planned lines are exactly the plan's backordered lines (`replace`), so a line placed by a later
  plan stops waiting, and a line backordered again keeps the time it first waited (`since`).
- The order removes its rows when it ends (completed, cancelled, failed: activity `forget_backorders`), and
  InventorySync removes those of an order it cannot signal any more (it is gone).
- InventorySync's apply activity asks `waiting_for(item, location)` after a stock event that raised on-hand there
  has been committed, and signals each order found (`stock_received`).

Why a table and not a visibility search attribute: visibility is eventually consistent (a receipt seconds after
the backorder could find no order), list queries are rate limited and paged, and the lookup must be by item inside
the activity that applies the receipt. The table is read in the same database right after the receipt commits.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Engine, delete, select

from adapters.sql import base as sqlbase
from adapters.sql.inventory import backorder_waits
from canonical.inventory import ApplyResult, BackorderReceipt, BackorderWait, InventoryEvent


def _wait(row) -> BackorderWait:
    return BackorderWait(order_key=row["order_key"], line_id=row["line_id"], item_code=row["item_code"],
                         channel=row["channel"], quantity=row["quantity"], locations=list(row["locations"] or []),
                         since=row["since"])


class BackorderBook:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def replace(self, order_key: str, line_ids: Iterable[str], waits: Iterable[BackorderWait]) -> None:
        """The order's planned lines `line_ids` now wait exactly for `waits` (none: they were placed). One
        transaction; a (line, item) that waited before keeps its `since`."""
        t = backorder_waits
        ids = sorted(set(line_ids))
        waits = [w for w in waits if w.order_key == order_key]
        ids = sorted(set(ids) | {w.line_id for w in waits})
        with self.engine.begin() as conn:
            before = {(r.line_id, r.item_code): r.since for r in conn.execute(
                select(t.c.line_id, t.c.item_code, t.c.since).where(
                    (t.c.order_key == order_key) & t.c.line_id.in_(ids)))} if ids else {}
            if ids:
                conn.execute(delete(t).where((t.c.order_key == order_key) & t.c.line_id.in_(ids)))
            now = sqlbase.utcnow()
            merged: dict[tuple[str, str], BackorderWait] = {}
            for w in waits:  # a kit with the same component twice (nested kits): one row with the units added
                key = (w.line_id, w.item_code)
                merged[key] = (merged[key].model_copy(update={"quantity": merged[key].quantity + w.quantity})
                               if key in merged else w)
            for (line_id, item), w in sorted(merged.items()):
                conn.execute(t.insert().values(order_key=order_key, line_id=line_id, item_code=item,
                                               channel=w.channel, quantity=w.quantity,
                                               locations=sorted(set(w.locations)),
                                               since=before.get((line_id, item)) or w.since or now))

    def forget(self, order_key: str) -> int:
        """The order ended (or is gone): it waits for nothing. Returns the rows removed."""
        t = backorder_waits
        with self.engine.begin() as conn:
            return conn.execute(delete(t).where(t.c.order_key == order_key)).rowcount or 0

    def waiting_for(self, item_code: str, location: str | None = None) -> list[BackorderWait]:
        """The lines waiting for `item_code` that a receipt at `location` may place (those whose locations include
        it, or that named none), oldest wait first."""
        t = backorder_waits
        query = select(t).where(t.c.item_code == item_code).order_by(t.c.since, t.c.order_key, t.c.line_id)
        with self.engine.connect() as conn:
            rows = [_wait(r) for r in conn.execute(query).mappings().all()]
        return [w for w in rows if location is None or not w.locations or location in w.locations]

    def receipts(self, events: Iterable[InventoryEvent], results: Iterable[ApplyResult]) -> list[BackorderReceipt]:
        """For applied events (in order, with their results) that raised on-hand (a receipt, a transfer in, a count
        or adjustment up, a POS return), one receipt per order with a line waiting for the item at that location.
        Call it after the events committed: an order that backordered before wrote its wait first."""
        out = []
        for ev, r in zip(events, results, strict=True):
            if not r.applied or r.on_hand_delta <= 0:
                continue
            orders = dict.fromkeys(w.order_key for w in self.waiting_for(ev.sku, ev.location))
            out += [BackorderReceipt(order_key=key, event_id=ev.source_event_id, item_code=ev.sku,
                                     quantity=r.on_hand_delta, location=ev.location) for key in orders]
        return out

    def of_order(self, order_key: str) -> list[BackorderWait]:
        t = backorder_waits
        query = select(t).where(t.c.order_key == order_key).order_by(t.c.line_id, t.c.item_code)
        with self.engine.connect() as conn:
            return [_wait(r) for r in conn.execute(query).mappings().all()]

    def all(self, limit: int = 500) -> list[BackorderWait]:
        """Every wait, oldest first (`GET /inventory/{sku}/backorders` lists one item's: `waiting_for`)."""
        t = backorder_waits
        query = select(t).order_by(t.c.since, t.c.order_key, t.c.line_id, t.c.item_code).limit(limit)
        with self.engine.connect() as conn:
            return [_wait(r) for r in conn.execute(query).mappings().all()]
