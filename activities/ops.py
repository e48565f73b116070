"""Operations activities: the status projection the API lists from (run as a local activity)."""

from __future__ import annotations

from collections.abc import Callable

from temporalio import activity

from adapters.platform.projection import StatusProjection
from canonical.ops import RunStatusUpdate

# (status, channel, seconds since the order started): the composition root passes the metric that records it
MilestoneObserver = Callable[[str, str, float], None]


class OpsActivities:
    def __init__(self, projection: StatusProjection, *, on_order_milestone: MilestoneObserver | None = None) -> None:
        self.projection = projection
        self.on_order_milestone = on_order_milestone

    @activity.defn(name="record_run_status")
    def record_run_status(self, upd: RunStatusUpdate) -> bool:
        applied = self.projection.record(upd)
        if applied and upd.kind == "order" and self.on_order_milestone is not None:
            self.on_order_milestone(upd.status, upd.channel or "",
                                    max((upd.changed_at - upd.started_at).total_seconds(), 0.0))
        return applied

    def all(self) -> list:
        return [self.record_run_status]
