"""How many releases each fulfillment node already has for a shipping day (`fulfillment_node_loads`): what
`plan_sourcing` holds against a node's `capacity_per_day`, written when a release reaches its node and removed when
it is withdrawn. Idempotent by release reference (an activity retried after a crash counts once)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from sqlalchemy import Engine, delete, func, insert, select, tuple_
from sqlalchemy.exc import IntegrityError

from adapters.sql.node_loads import fulfillment_node_loads as table


class NodeLoadBook:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, node_id: str, ship_day: date, release_ref: str) -> bool:
        """Count the release on the node's shipping day; False when it is counted already."""
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(table).values(release_ref=release_ref, node_id=node_id, ship_day=ship_day))
            return True
        except IntegrityError:
            return False

    def remove(self, release_ref: str) -> bool:
        """The release was withdrawn before it left: its place on the day is free again."""
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(table).where(table.c.release_ref == release_ref)).rowcount)

    def counts(self, days: Mapping[str, date]) -> dict[str, int]:
        """Node id → releases on the given shipping day of each node (nodes with none are left out)."""
        if not days:
            return {}
        wanted = [(node, day) for node, day in sorted(days.items())]
        with self.engine.connect() as conn:
            rows = conn.execute(select(table.c.node_id, func.count()).where(
                tuple_(table.c.node_id, table.c.ship_day).in_(wanted)).group_by(table.c.node_id)).all()
        return {node: int(n) for node, n in rows}
