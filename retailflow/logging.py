"""structlog configuration: JSON lines (console renderer on a TTY); secrets and personal data redacted."""

from __future__ import annotations

import logging
import re
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


# Values are scrubbed too: an exception text or a vendor's error message may quote a customer's e-mail or phone
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# international (+...) or North-American punctuated forms; a bare run of digits is an id, not a phone
PHONE = re.compile(r"(?<![\w.])(?:\+\d[\d ().-]{6,}\d|\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4})(?![\w.])")


def scrub(text: str) -> str:
    """Mask e-mail addresses and phone-like numbers in free text (exception messages, vendor error bodies)."""
    return PHONE.sub("[phone]", EMAIL.sub("[email]", text))


def _scrub_values(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = scrub(value)
    return event


class ScrubFilter(logging.Filter):
    """The same scrubbing for stdlib records (temporalio, uvicorn): their message and exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class _CurrentStderr:
    """sys.stderr as it is when a line is written, not when logging was configured: a CLI command run under a test
    runner (or a process that swaps its stderr) must not leave the loggers bound to a stream that is closed."""

    def write(self, text: str) -> int:
        try:
            return sys.stderr.write(text)
        except OSError:  # the terminal is gone (EIO after a hangup, before `retailflow dev` detaches from it): a
            return 0  # log line is lost, the process goes on to its orderly shutdown instead of dying of it

    def flush(self) -> None:
        try:
            sys.stderr.flush()
        except OSError:
            pass


def configure_logging(level: str = "INFO", json_logs: bool | None = None) -> None:
    if json_logs is None:
        json_logs = not sys.stderr.isatty()
    logging.basicConfig(level=level.upper(), stream=_CurrentStderr(), format="%(message)s")
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        _scrub_values,
    ]
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, ScrubFilter) for f in handler.filters):
            handler.addFilter(ScrubFilter())
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    renderer = structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
