"""Logs never carry secrets or personal data; correlation ids and log context are bound."""

from __future__ import annotations

import json

import pytest
import structlog

from retailflow.logging import configure_logging


@pytest.fixture(autouse=True)
def _restore_logging():
    """These tests point structlog at pytest's captured stderr, which is closed after each test: put the default
    configuration back, or a later test's log call raises "I/O operation on closed file" (inside an activity,
    that turns a channel's 429 into an ordinary failure)."""
    yield
    structlog.reset_defaults()


def test_json_logs_redact_secrets_and_personal_data(capsys):
    configure_logging("INFO", json_logs=True)
    structlog.reset_defaults()  # cache_logger_on_first_use: start from a clean configuration
    configure_logging("INFO", json_logs=True)
    log = structlog.get_logger("test")
    log.info("webhook.received", shopify_webhook_secret="s3cr3t-value", authorization="token abc:def",
             customer_email="jon@example.com", shipping_address={"line1": "123 Shipping Street"},
             x_shopify_hmac_sha256="xT6yH5jZfQm6", phone="555-555-SHIP", workflow_id="order:shopify:1",
             channel="shopify")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    event = json.loads(line)
    assert event["workflow_id"] == "order:shopify:1" and event["channel"] == "shopify"
    for key in ("shopify_webhook_secret", "authorization", "customer_email", "shipping_address",
                "x_shopify_hmac_sha256", "phone"):
        assert event[key] == "[redacted]", key
    for secret in ("s3cr3t-value", "abc:def", "jon@example.com", "123 Shipping Street", "xT6yH5jZfQm6", "555-555"):
        assert secret not in line


def test_bound_context_appears_in_every_event(capsys):
    structlog.reset_defaults()
    configure_logging("INFO", json_logs=True)
    with structlog.contextvars.bound_contextvars(correlation_id="corr-1", workflow_id="order:shopify:2"):
        structlog.get_logger("t").info("step.done", activity="reserve_stock")
    event = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert event["correlation_id"] == "corr-1" and event["workflow_id"] == "order:shopify:2"
    assert event["activity"] == "reserve_stock"
