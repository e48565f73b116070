"""Operations activities: the status projection the API lists from (run as a local activity)."""

from __future__ import annotations

from temporalio import activity

from adapters.platform.projection import StatusProjection
from canonical.ops import RunStatusUpdate
from retailflow.observability import ORDER_MILESTONE_SECONDS


class OpsActivities:
    def __init__(self, projection: StatusProjection) -> None:
        self.projection = projection

    @activity.defn(name="record_run_status")
    def record_run_status(self, upd: RunStatusUpdate) -> bool:
        applied = self.projection.record(upd)
        if applied and upd.kind == "order":
            ORDER_MILESTONE_SECONDS.labels(upd.status, upd.channel or "").observe(
                max((upd.changed_at - upd.started_at).total_seconds(), 0.0))
        return applied

    def all(self) -> list:
        return [self.record_run_status]
