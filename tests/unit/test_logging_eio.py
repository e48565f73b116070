"""A log line written after the terminal closed (EIO, before `retailflow dev` detaches from it on SIGHUP) is lost,
not fatal: the worker's start-up line once killed the worker mid-start (tests/integration/test_dev_hangup.py)."""

from __future__ import annotations

import sys

import structlog

from retailflow.logging import configure_logging


class _GoneTerminal:
    def write(self, text: str) -> int:
        raise OSError(5, "Input/output error")

    def flush(self) -> None:
        raise OSError(5, "Input/output error")

    def isatty(self) -> bool:
        return False


def test_a_log_line_to_a_closed_terminal_is_dropped_not_raised(monkeypatch):
    configure_logging("INFO", True)
    monkeypatch.setattr(sys, "stderr", _GoneTerminal())
    structlog.get_logger("t").info("worker.started", task_queues=["retailflow-orders"])  # raised OSError before
    import logging
    logging.getLogger("t").warning("stdlib too")
