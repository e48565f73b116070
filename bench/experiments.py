"""What-if experiments: measure a proposed platform change without editing platform code.

`python -m bench --experiment NAME` sets `RETAILFLOW_BENCH_EXPERIMENTS` for every process the bench starts; the
bench worker and API apply them at start-up (`apply`). A report written with an experiment says so at the top;
`make bench` runs none. Names:

- `sqlite-normal`: `PRAGMA synchronous=NORMAL` on every SQLite connection of the platform database (WAL stays
  crash-safe; only a power cut can lose the last commits) — the change proposed for `retailflow/db.py`.
- `no-bytecode`: run the bench's Python processes with `PYTHONDONTWRITEBYTECODE=1` and no bytecode cache, as the
  repository's Dockerfile does (`bench.procs.python_env`).
"""

from __future__ import annotations

import os

NAMES = ("sqlite-normal", "no-bytecode")
ENV = "RETAILFLOW_BENCH_EXPERIMENTS"


def active() -> list[str]:
    return [x for x in os.environ.get(ENV, "").split(",") if x]


def apply() -> list[str]:
    names = active()
    if "sqlite-normal" in names:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        @event.listens_for(Engine, "connect")
        def _normal(dbapi_conn, _record) -> None:
            if type(dbapi_conn).__module__.startswith("sqlite3"):
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()
    return names
