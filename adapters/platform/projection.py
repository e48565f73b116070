"""The run status projection: one row per workflow, written by the workflow (through a local activity) on
every status change, read by the API for listing and by /metrics. Writes carry a version so a late or
repeated write never overwrites a newer status."""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError

from adapters import sql as db
from canonical.ops import RunStatusUpdate

# a parked run's reason starts with the step that parked it ("resolve_skus: unknown SKU ..."): that step is the
# reason label of the parked-runs metrics (bounded: step names are the code's); any other reason is "other"
_STEP_PREFIX = re.compile(r"^([a-z][a-z0-9_]{0,63}):")


def reason_label(reason: str | None) -> str:
    match = _STEP_PREFIX.match(reason or "")
    return match.group(1) if match else "other"


@dataclass(frozen=True)
class ParkedGroup:
    kind: str
    reason: str  # reason_label of the runs' reasons
    count: int
    oldest: datetime  # when the longest-waiting run of the group was parked (its last projection)


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

    def parked_summary(self) -> builtins.list[ParkedGroup]:  # (`list` is a method of this class)
        """Parked runs by kind and reason label, with the oldest's parking time (for /metrics)."""
        groups: dict[tuple[str, str], tuple[int, datetime]] = {}
        t = db.run_status
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.kind, t.c.reason, t.c.updated_at).where(t.c.needs_attention.is_(True)))
            for kind, reason, updated_at in rows:
                key = (kind, reason_label(reason))
                count, oldest = groups.get(key, (0, updated_at))
                groups[key] = (count + 1, min(oldest, updated_at))
        return [ParkedGroup(kind, reason, count, oldest) for (kind, reason), (count, oldest) in sorted(groups.items())]
