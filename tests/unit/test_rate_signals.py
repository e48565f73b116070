"""Vendors' rate-limit headers (adapters/http.py) and what the workers report of them (runtime/breakers.py)."""

from __future__ import annotations

import httpx

from adapters.http import RateSignal, VendorHttp, rate_signal
from runtime.breakers import CURRENT_QUEUE, BreakerReports


def test_amazon_and_shopify_rate_headers_are_read_and_garbage_is_not():
    assert rate_signal("amazon", {"x-amzn-RateLimit-Limit": "0.0167"}) == RateSignal("amazon", 0.0167, None)
    assert rate_signal("shopify", {"X-Shopify-Shop-Api-Call-Limit": "32/40"}) == RateSignal("shopify", None, 0.8)
    for bad in ({"x-amzn-RateLimit-Limit": "fast"}, {"x-amzn-RateLimit-Limit": "0"},
                {"X-Shopify-Shop-Api-Call-Limit": "x/40"}, {"X-Shopify-Shop-Api-Call-Limit": "3/0"}, {}):
        assert rate_signal("v", bad) is None


def test_a_watched_queue_reports_the_lowest_rate_and_a_nearly_full_bucket():
    reports = BreakerReports()
    reports.watch({"erp"})
    reports.record_rate("erp", RateSignal("amazon", 5.0))
    reports.record_rate("erp", RateSignal("amazon", 2.0))
    reports.record_rate("erp", RateSignal("shopify", used=0.9))
    reports.record_rate("other", RateSignal("amazon", 0.1))  # not a partner queue: ignored
    reports.record_rate(None, RateSignal("amazon", 0.1))
    (report,) = reports.drain().values()
    assert report.vendor_rate == 2.0 and report.near_limit and report.failures == report.successes == 0
    assert reports.drain() == {}


def test_every_vendor_answer_reaches_the_reporter_of_the_activitys_queue(monkeypatch):
    from runtime import breakers

    reports = BreakerReports()
    reports.watch({"amazon-q"})
    monkeypatch.setattr(breakers, "REPORTS", reports)
    http = VendorHttp("amazon", "https://sp.example", transport=httpx.MockTransport(
        lambda r: httpx.Response(200, json={}, headers={"x-amzn-RateLimit-Limit": "1.5"})))
    token = CURRENT_QUEUE.set("amazon-q")
    try:
        http.json("GET", "/orders")
    finally:
        CURRENT_QUEUE.reset(token)
    assert reports.drain()["amazon-q"].vendor_rate == 1.5
