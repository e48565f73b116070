"""The embedded SQLite database: writers (`engine.begin()`) take the write lock up front and queue one behind
the other — SQLite's equivalent of row locks — while reads (`engine.connect()`) never wait for a writer."""

from __future__ import annotations

import threading

from sqlalchemy import text

from adapters.sql import make_engine


def test_reads_do_not_queue_behind_a_writer_and_writers_queue_behind_each_other(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'locks.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
    holding, release = threading.Event(), threading.Event()

    def first_writer() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (2)"))
            holding.set()
            release.wait(10)

    seen: list[int] = []
    second_done = threading.Event()

    def reader() -> None:
        with engine.connect() as conn:
            seen.append(conn.execute(text("SELECT count(*) FROM t")).scalar_one())

    def second_writer() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (3)"))
        second_done.set()

    w1 = threading.Thread(target=first_writer)
    w1.start()
    assert holding.wait(5)
    r = threading.Thread(target=reader)
    r.start()
    r.join(5)
    assert not r.is_alive() and seen == [1]  # read at once, from the last committed state
    w2 = threading.Thread(target=second_writer)
    w2.start()
    assert not second_done.wait(0.5)  # the second writer waits for the first to commit
    release.set()
    w1.join(5)
    assert second_done.wait(10)
    w2.join(5)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 3
    engine.dispose()
