"""Reservation holds for an ERP that reserves only when its sales order is submitted (ERPNext).

ERPNext reserves stock through a submitted Sales Order (`Bin.reserved_qty`). The order workflow reserves first and
books the sales order two steps later (after the tax quote), so two orders reserving the last units at once would
both see them free and both be booked — an oversell the peak simulation showed (`retailflow simulate peak`,
docs/operations.md). A hold closes that gap: `reserve` takes the items' locks in the platform database
(`pg_advisory_xact_lock` per item, in item order, on PostgreSQL; SQLite's write lock), reads the ERP's free stock
*under* them, subtracts what other orders hold and have not yet booked, and records what this order takes, in one
transaction. The hold is dropped once the sales order is submitted (ERPNext holds the units from then on) or the
reservation is released. Between the submit and the drop the units count twice: the error is on the safe side.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Engine, delete, func, insert, select, text

from adapters.sql import is_postgres
from adapters.sql.erp_holds import erp_reservation_holds as holds


class ReservationHolds:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _lock(self, conn: Connection, items: list[str]) -> None:
        if is_postgres(self.engine):  # SQLite: engine.begin() already holds the database's write lock
            for item in sorted(items):
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"erp-hold:{item}"})

    def reserve(self, key: str, warehouse: str, wanted: dict[str, int],
                free_in_erp: Callable[[list[str]], dict[str, int]]) -> dict[str, int]:
        """Units of each item `key` may take: the ERP's free stock (read under the lock by `free_in_erp`) less the
        other orders' holds; recorded as `key`'s holds (a retry replaces them). Returns item → units taken."""
        items = sorted(wanted)
        with self.engine.begin() as conn:
            self._lock(conn, items)
            held = dict(conn.execute(
                select(holds.c.item_code, func.sum(holds.c.quantity))
                .where(holds.c.item_code.in_(items), holds.c.reservation_key != key)
                .group_by(holds.c.item_code)).all())
            free = free_in_erp(items)
            taken = {i: max(min(wanted[i], free.get(i, 0) - int(held.get(i) or 0)), 0) for i in items}
            conn.execute(delete(holds).where(holds.c.reservation_key == key))
            rows = [{"reservation_key": key, "item_code": i, "warehouse": warehouse, "quantity": q}
                    for i, q in taken.items() if q > 0]
            if rows:
                conn.execute(insert(holds), rows)
        return taken

    def drop(self, key: str) -> int:
        """The order's holds are gone (its sales order reserves now, or it gave the stock back)."""
        with self.engine.begin() as conn:
            return conn.execute(delete(holds).where(holds.c.reservation_key == key)).rowcount or 0

    def held(self, key: str | None = None) -> dict[str, int]:
        query = select(holds.c.item_code, func.sum(holds.c.quantity)).group_by(holds.c.item_code)
        if key is not None:
            query = query.where(holds.c.reservation_key == key)
        with self.engine.connect() as conn:
            return {i: int(q) for i, q in conn.execute(query).all()}
