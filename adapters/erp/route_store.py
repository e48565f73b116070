"""The ERP router's platform-database state (tables in adapters/sql/erp_routing.py): each business key's pinned
route, the shadow postings that failed, and the parity verdicts.

A route is pinned with an insert that only the first writer wins (the primary key is process + business key; a
concurrent second writer reads the winner's row), so two activities of one order racing each other still agree,
and a later change of the routing file never moves a key that was already posted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from adapters.sql.erp_routing import erp_parity_results as results
from adapters.sql.erp_routing import erp_routes as routes
from adapters.sql.erp_routing import erp_shadow_failures as failures
from canonical.erp_routing import ErpRoute


class ErpRouteStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- routes ---------------------------------------------------------------------------------------------
    def pinned(self, process: str, key: str) -> ErpRoute | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(routes.c.record_erp, routes.c.shadow_erp).where(
                routes.c.process == process, routes.c.business_key == key)).first()
        return None if row is None else ErpRoute(record=row.record_erp, shadow=row.shadow_erp)

    def pin(self, process: str, key: str, route: ErpRoute, *, scope: str) -> ErpRoute:
        """The key's route: the one pinned before, else `route`, pinned now."""
        existing = self.pinned(process, key)
        if existing is not None:
            return existing
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(routes).values(process=process, business_key=key, record_erp=route.record,
                                                   shadow_erp=route.shadow, scope=scope,
                                                   pinned_at=datetime.now(UTC)))
        except IntegrityError:  # a concurrent first post won: its route holds
            won = self.pinned(process, key)
            if won is None:
                raise
            return won
        return route

    def routes(self, process: str | None = None, *, dual_run_only: bool = False, since: datetime | None = None,
               limit: int = 10_000) -> list[dict[str, Any]]:
        query = select(routes).order_by(routes.c.pinned_at, routes.c.business_key).limit(limit)
        if process is not None:
            query = query.where(routes.c.process == process)
        if dual_run_only:
            query = query.where(routes.c.shadow_erp.is_not(None))
        if since is not None:
            query = query.where(routes.c.pinned_at >= since)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    # -- shadow failures ------------------------------------------------------------------------------------
    def record_shadow_failure(self, process: str, key: str, operation: str, shadow_erp: str, error: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(failures).values(process=process, business_key=key, operation=operation,
                                                 shadow_erp=shadow_erp, error=error[:4000],
                                                 failed_at=datetime.now(UTC)))

    def shadow_failures(self, process: str | None = None, key: str | None = None) -> list[dict[str, Any]]:
        query = select(failures).order_by(failures.c.id.desc())
        if process is not None:
            query = query.where(failures.c.process == process)
        if key is not None:
            query = query.where(failures.c.business_key == key)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    # -- parity ---------------------------------------------------------------------------------------------
    def keys_to_check(self, process: str, *, since: datetime, limit: int = 1000) -> list[str]:
        """Dual-run keys of `process` pinned since `since` without a settled verdict (equal or accepted)."""
        query = (select(routes.c.business_key)
                 .select_from(routes.outerjoin(results, and_(results.c.process == routes.c.process,
                                                             results.c.business_key == routes.c.business_key)))
                 .where(routes.c.process == process, routes.c.shadow_erp.is_not(None), routes.c.pinned_at >= since,
                        or_(results.c.status.is_(None), results.c.status == "different"))
                 .order_by(routes.c.pinned_at, routes.c.business_key).limit(limit))
        with self.engine.connect() as conn:
            return [r.business_key for r in conn.execute(query)]

    def record_parity(self, process: str, key: str, *, status: str, differences: list[dict],
                      record_document: dict | None, shadow_document: dict | None, shadow_failures: list[dict],
                      run_id: str | None, note: str | None = None) -> None:
        """The key's latest verdict (one row per key; a later check replaces it)."""
        with self.engine.begin() as conn:
            pinned_at = conn.execute(select(routes.c.pinned_at).where(
                routes.c.process == process, routes.c.business_key == key)).scalar()
            day = (pinned_at or datetime.now(UTC)).astimezone(UTC).date().isoformat()
            conn.execute(delete(results).where(results.c.process == process, results.c.business_key == key))
            conn.execute(insert(results).values(
                process=process, business_key=key, day=day, status=status, differences=differences,
                record_document=record_document, shadow_document=shadow_document, shadow_failures=shadow_failures,
                run_id=run_id, note=note, checked_at=datetime.now(UTC)))

    def accept(self, process: str, keys: list[str], note: str) -> int:
        """An analyst accepted these differences (the parked ParityCheck was skipped): recorded, not re-checked."""
        with self.engine.begin() as conn:
            return conn.execute(update(results).where(
                results.c.process == process, results.c.business_key.in_(keys), results.c.status == "different")
                .values(status="accepted", note=note[:2000], checked_at=datetime.now(UTC))).rowcount or 0

    def parity(self, process: str | None = None, *, day: str | None = None, status: str | None = None,
               limit: int = 1000, offset: int = 0) -> list[dict[str, Any]]:
        query = select(results).order_by(results.c.day, results.c.business_key).limit(limit).offset(offset)
        if process is not None:
            query = query.where(results.c.process == process)
        if day is not None:
            query = query.where(results.c.day == day)
        if status is not None:
            query = query.where(results.c.status == status)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def parity_by_day(self, process: str | None = None) -> list[dict[str, Any]]:
        """Per process and day: how many keys are equal, different, accepted."""
        query = (select(results.c.process, results.c.day, results.c.status, func.count().label("n"))
                 .group_by(results.c.process, results.c.day, results.c.status)
                 .order_by(results.c.process, results.c.day))
        if process is not None:
            query = query.where(results.c.process == process)
        out: dict[tuple[str, str], dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                entry = out.setdefault((row.process, row.day), {"process": row.process, "day": row.day, "equal": 0,
                                                                 "different": 0, "accepted": 0})
                entry[row.status] = int(row.n)
        return list(out.values())

    def unchecked(self, process: str) -> int:
        """Dual-run keys of `process` with no verdict yet."""
        query = (select(func.count()).select_from(routes.outerjoin(results, and_(
            results.c.process == routes.c.process, results.c.business_key == routes.c.business_key)))
            .where(routes.c.process == process, routes.c.shadow_erp.is_not(None), results.c.status.is_(None)))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)
