"""Logs carry no customer e-mail or phone: by key (redaction) and inside free text (exception messages)."""

from __future__ import annotations

import logging

from retailflow.logging import ScrubFilter, _redact, _scrub_values, scrub


def test_scrub_masks_emails_and_phones_but_keeps_ids_dates_and_addresses_of_services():
    text = ("customer bob.norman@mail.example.com, +1 (555) 123-4567 / 555-625-1199 / +16135551212; "
            "order 450789469 id 1234567890123 at 2024-01-02T10:00:00, total 199.00, api 127.0.0.1:8000")
    out = scrub(text)
    assert "bob.norman" not in out and "123-4567" not in out and "625-1199" not in out and "6135551212" not in out
    assert out.count("[email]") == 1 and out.count("[phone]") == 3
    for kept in ("450789469", "1234567890123", "2024-01-02T10:00:00", "199.00", "127.0.0.1:8000"):
        assert kept in out


def test_structlog_processors_redact_keys_and_scrub_values():
    event = {"event": "erp.rejected", "customer_email": "a@b.example", "error": "customer a@b.example refused",
             "exception": "Traceback ...\nValueError: phone +44 20 7946 0958 invalid", "qty": 3}
    event = _scrub_values(None, "info", _redact(None, "info", event))
    assert event["customer_email"] == "[redacted]"
    assert event["error"] == "customer [email] refused"
    assert "7946" not in event["exception"] and event["qty"] == 3


def test_stdlib_records_are_scrubbed_message_args_and_traceback():
    try:
        raise ValueError("address of jane@shop.example rejected")
    except ValueError:
        import sys
        record = logging.LogRecord("temporalio.activity", logging.WARNING, __file__, 1, "Completing %s for %s",
                                   ("activity", "jane@shop.example"), sys.exc_info())
    assert ScrubFilter().filter(record)
    formatted = logging.Formatter("%(message)s").format(record)
    assert "jane@shop.example" not in formatted
    assert "Completing activity for [email]" in formatted and "ValueError: address of [email] rejected" in formatted
