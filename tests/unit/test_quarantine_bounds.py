"""The quarantine is bounded (issue 15): resolved copies and refused signatures go after the retention, refused
signatures beyond a cap go oldest first, and an authentic delivery that was not taken is never deleted."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update

from adapters import sql as db
from adapters.platform.intake_store import IntakeStore

CLI = str(Path(sys.executable).parent / "retailflow")


def _put(store: IntakeStore, status: int, *, resolved: bool = False, days_old: int = 0) -> int:
    qid = store.quarantine(source="shopify", topic="orders/create", delivery_id=None, headers={}, body=b"{}",
                           reason="r", status_code=status)
    with store.engine.begin() as conn:
        conn.execute(update(db.quarantine).where(db.quarantine.c.id == qid).values(
            resolved=resolved, received_at=datetime.now(UTC) - timedelta(days=days_old)))
    return qid


def test_prune_keeps_what_an_analyst_still_needs(engine):
    store = IntakeStore(engine)
    old_resolved = _put(store, 422, resolved=True, days_old=40)
    new_resolved = _put(store, 422, resolved=True, days_old=1)
    old_unsigned = _put(store, 401, days_old=40)
    old_pending = _put(store, 422, days_old=400)  # authentic, not taken: stays however old
    counts = store.prune(older_than=datetime.now(UTC) - timedelta(days=30))
    assert counts == {"resolved": 1, "unsigned": 1}
    left = {r["id"] for r in store.list(resolved=None)}
    assert left == {new_resolved, old_pending} and old_resolved not in left and old_unsigned not in left


def test_refused_signatures_beyond_the_cap_go_oldest_first(engine):
    store = IntakeStore(engine)
    pending = _put(store, 503)
    unsigned = [_put(store, 401) for _ in range(5)]
    assert store.prune(unsigned_max_rows=2) == {"resolved": 0, "unsigned": 3}
    assert {r["id"] for r in store.list(resolved=None)} == {pending, *unsigned[-2:]}
    assert store.prune(unsigned_max_rows=0) == {"resolved": 0, "unsigned": 2}
    assert [r["id"] for r in store.list(resolved=None)] == [pending]


def test_the_command_prunes_with_the_retention(tmp_path):
    url = f"sqlite:///{tmp_path / 'rf.db'}"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "RETAILFLOW_DATABASE_URL": url}
    engine = db.make_engine(url)
    db.create_schema(engine)
    store = IntakeStore(engine)
    _put(store, 422, resolved=True, days_old=10)
    kept = _put(store, 422, resolved=True, days_old=1)
    done = subprocess.run([CLI, "ops", "prune-quarantine", "--days", "5"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "deleted 1 resolved and 0 refused-signature" in done.stdout
    assert [r["id"] for r in store.list(resolved=None)] == [kept]
