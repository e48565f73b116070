"""The run status projection: one row per workflow, written by the workflow (through a local activity) on
every status change, read by the API for listing and by /metrics. Writes carry a version so a late or
repeated write never overwrites a newer status."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError

from adapters import sql as db
from canonical.ops import RunStatusUpdate


class StatusProjection:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, upd: RunStatusUpdate) -> bool:
        """Apply the update if it is newer than what is stored; True if it was applied."""
        values = {
            "kind": upd.kind, "channel": upd.channel, "external_id": upd.external_id, "reference": upd.reference,
            "status": upd.status, "needs_attention": upd.needs_attention, "reason": upd.reason,
            "suggested_action": upd.suggested_action, "erp_ref": upd.erp_ref, "late": upd.late,
            "version": upd.version, "started_at": upd.started_at, "updated_at": upd.changed_at,
        }
        with self.engine.begin() as conn:
            result = conn.execute(
                update(db.run_status)
                .where((db.run_status.c.workflow_id == upd.workflow_id) & (db.run_status.c.version < upd.version))
                .values(**values)
            )
            if result.rowcount:
                return True
            exists = conn.execute(
                select(db.run_status.c.version).where(db.run_status.c.workflow_id == upd.workflow_id)
            ).first()
        if exists is not None:
            if exists.version < upd.version:  # an older write inserted the row after our update looked: again
                return self.record(upd)
            return False
        try:
            with self.engine.begin() as conn:
                conn.execute(db.run_status.insert().values(workflow_id=upd.workflow_id, **values))
            return True
        except IntegrityError:  # a concurrent first write; retry as an update
            return self.record(upd)

    def list(self, *, kind: str | None = None, status: str | None = None, channel: str | None = None,
             needs_attention: bool | None = None, limit: int = 50, offset: int = 0,
             updated_before: datetime | None = None) -> tuple[list[dict], int]:
        conds = []
        if kind:
            conds.append(db.run_status.c.kind == kind)
        if status:
            conds.append(db.run_status.c.status == status)
        if channel:
            conds.append(db.run_status.c.channel == channel)
        if needs_attention is not None:
            conds.append(db.run_status.c.needs_attention == needs_attention)
        if updated_before is not None:
            conds.append(db.run_status.c.updated_at < updated_before)
        query = select(db.run_status).where(*conds).order_by(db.run_status.c.updated_at.desc(),
                                                               db.run_status.c.workflow_id)
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(db.run_status).where(*conds)).scalar_one()
            rows = conn.execute(query.limit(limit).offset(offset)).mappings().all()
        return [dict(r) for r in rows], total

    def parked_counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(db.run_status.c.kind, func.count()).where(db.run_status.c.needs_attention.is_(True))
                .group_by(db.run_status.c.kind)
            ).all()
        return {kind: n for kind, n in rows}
