"""Shared helpers of the vendor sandboxes: an in-memory state store and deterministic id generation.

The sandboxes are test doubles of vendor APIs: state lives in memory, is emptied by ``POST /_admin/reset``
(wire `StateStore.reset` into `install_faults(..., reset_hooks=[store.reset])`), and ids are sequential so a run
is reproducible.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI

__all__ = ["IdGenerator", "ServedApp", "StateStore", "iso_z", "make_app", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso_z(dt: datetime | None = None, *, millis: bool = False) -> str:
    """ISO-8601 in UTC with a trailing ``Z`` (the form most vendor APIs use)."""
    dt = (dt or utcnow()).astimezone(UTC)
    text = dt.isoformat(timespec="milliseconds" if millis else "seconds")
    return text.replace("+00:00", "Z")


class IdGenerator:
    """Sequential ids per prefix. `next_int` starts at `start` (pass a value above 2**53 to mimic Shopify-size
    ids, which must never be parsed as floats)."""

    def __init__(self, start: int = 1) -> None:
        self._start = start
        self._lock = threading.Lock()
        self._counters: dict[str, Iterator[int]] = {}

    def next_int(self, kind: str = "") -> int:
        with self._lock:
            counter = self._counters.setdefault(kind, itertools.count(self._start))
            return next(counter)

    def next_id(self, prefix: str, *, width: int = 5) -> str:
        """``"{prefix}{n:0width}"`` e.g. ``next_id("SO-")`` → ``"SO-00001"``."""
        return f"{prefix}{self.next_int(prefix):0{width}d}"

    def reset(self) -> None:
        with self._lock:
            self._counters.clear()


class StateStore:
    """Named collections of records (dicts keyed by id) behind one re-entrant lock.

    ``with store.lock:`` makes a read-check-write atomic (look up by external reference, then insert)."""

    def __init__(self, *, id_start: int = 1) -> None:
        self.lock = threading.RLock()
        self._collections: dict[str, dict[str, dict[str, Any]]] = {}
        self.ids = IdGenerator(id_start)

    def collection(self, name: str) -> dict[str, dict[str, Any]]:
        with self.lock:
            return self._collections.setdefault(name, {})

    def get(self, name: str, key: str) -> dict[str, Any] | None:
        with self.lock:
            return self._collections.get(name, {}).get(key)

    def put(self, name: str, key: str, record: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.collection(name)[key] = record
            return record

    def find(self, name: str, **equals: Any) -> list[dict[str, Any]]:
        """Records whose top-level fields equal `equals`, in insertion order."""
        with self.lock:
            return [r for r in self._collections.get(name, {}).values()
                    if all(r.get(k) == v for k, v in equals.items())]

    def reset(self) -> None:
        with self.lock:
            self._collections.clear()
            self.ids.reset()


def make_app(title: str, description: str = "") -> FastAPI:
    """A sandbox FastAPI app (OpenAPI at /docs like the product API)."""
    return FastAPI(title=f"{title} (retailflow sandbox)", description=description, version="sandbox")


class ServedApp:
    """A sandbox app served by uvicorn on a background thread (tests, `retailflow-sandbox`). Port 0 picks a free
    port; `base_url` says which."""

    def __init__(self, app: FastAPI, *, host: str = "127.0.0.1", port: int = 0) -> None:
        import socket

        import uvicorn

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = host, self._sock.getsockname()[1]
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServedApp:
        import time

        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True,
                                        name=f"sandbox-{self.port}")
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"sandbox on {self.base_url} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> ServedApp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
