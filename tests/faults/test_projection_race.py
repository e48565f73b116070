"""The run-status projection under concurrent writers: a workflow queues several status writes in one task (local
activities that run at the same time), so the newest must win however they interleave in the database. Found by
the webhook fault test on PostgreSQL: a cancelled-on-arrival order's newest write ('cancelled') saw no row, an
older write ('received') inserted it meanwhile, and the newest returned as if it were stale — the API listed a
finished order as 'received' for ever (about 1 run in 20 with four writers)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from adapters.platform.projection import StatusProjection
from canonical.ops import RunStatusUpdate
from tests.reliability import record

pytestmark = pytest.mark.faults

RUNS = 150
WRITERS = 4


def test_newest_status_wins_among_concurrent_writers(engine):
    projection = StatusProjection(engine)
    stale: list[str] = []
    errors: list[str] = []
    for i in range(RUNS):
        wf = f"order:race:{i}"
        now = datetime.now(UTC)
        updates = [RunStatusUpdate(workflow_id=wf, kind="order", status=f"s{v}", needs_attention=False, version=v,
                                   started_at=now, changed_at=now) for v in range(1, WRITERS + 1)]
        barrier = threading.Barrier(WRITERS)

        def write(upd: RunStatusUpdate, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                projection.record(upd)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors.append(f"{type(exc).__name__}: {exc}"[:200])

        threads = [threading.Thread(target=write, args=(u,)) for u in updates]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with engine.connect() as conn:
            row = conn.execute(text("SELECT version FROM run_status WHERE workflow_id = :w"), {"w": wf}).first()
        if row is None or row.version != WRITERS:
            stale.append(f"{wf}: version {row.version if row else None}")
    record(f"faults/test_projection_race.py::test_newest_status_wins_among_concurrent_writers[{engine.dialect.name}]",
           category="fault",
           injects=f"{WRITERS} concurrent status writes per run (versions 1-{WRITERS}, released together) × {RUNS} "
                   f"runs on {engine.dialect.name}",
           figures={"orders": RUNS, "faults": RUNS * WRITERS, "lost": len(stale), "errors": len(errors)},
           invariant="the newest version is what the projection (the API's listing) holds",
           result="pass" if not (stale or errors) else f"FAIL: {len(stale)} stale, {len(errors)} errors")
    assert not errors, errors[:3]
    assert not stale, f"{len(stale)} of {RUNS} runs kept an older status: {stale[:3]}"
