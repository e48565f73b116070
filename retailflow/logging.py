"""structlog configuration: JSON lines (console renderer on a TTY); secrets and personal data redacted."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

# A key containing any of these words is redacted wherever it appears in an event.
REDACT_KEYS = {"secret", "password", "token", "authorization", "api_key", "hmac", "signature", "email", "phone",
               "card", "shipping_address", "billing_address", "customer"}


def _redact(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        lowered = key.lower()
        if any(part in lowered for part in REDACT_KEYS):
            event[key] = "[redacted]"
    return event


def configure_logging(level: str = "INFO", json_logs: bool | None = None) -> None:
    if json_logs is None:
        json_logs = not sys.stderr.isatty()
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(message)s")
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    renderer = structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
