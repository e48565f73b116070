"""AvaTax adapter contract: against the published SDK fixtures (tests/fixtures/avalara, copied unedited) and
against the sandbox, including every fault mode."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import structlog
from pydantic import SecretStr
from temporalio.converter import DataConverter

from adapters.http import VendorRateLimited, VendorUnavailable
from adapters.tax.avalara import AvalaraTax, quote_from_transaction, transaction_body
from canonical.errors import BUSINESS_ERROR_TYPES, InvalidAddress, TaxRejected
from canonical.money import Money
from canonical.order import Order
from canonical.vendor_errors import VendorAuthFailed
from sandbox.avatax import create_app
from sandbox.common import ServedApp
from tests.contract.shapes import assert_keys_within, assert_shape

FIX = Path(__file__).parent.parent / "fixtures" / "avalara"
ACCOUNT, KEY = "2000134479", "sandbox-license-key-do-not-log"


def fixture(name: str) -> dict:
    return json.loads((FIX / name).read_text())


def order(order_id: str = "1001", amount: str = "100", region: str = "CA", postal: str | None = "92615",
          **extra) -> Order:
    """The published request's case as a canonical order: one Yarn line of 100 USD shipped to Irvine, CA."""
    return Order.model_validate({
        "channel": "shopify", "external_order_id": order_id, "order_number": "2017-04-12-001",
        "created_at": "2017-04-12T10:00:00Z", "currency": "USD", "taxes_included": False,
        "customer": {"external_id": "ABC"},
        "shipping_address": {"line1": "123 Main Street", "city": "Irvine", "region": region,
                             "postal_code": postal, "country": "US"},
        "lines": [{"line_id": "1", "channel_sku": "Y0001", "name": "Yarn", "quantity": 1,
                   "unit_price": {"amount": amount, "currency": "USD"}}], **extra})


# -- published fixtures --------------------------------------------------------------------------------------
def test_request_body_matches_the_published_request() -> None:
    published = fixture("createTransaction_request_avatax_js_sdk_fixture.json")
    body = transaction_body(order(), code="order:shopify:1001", doc_type="SalesInvoice", company_code="DEFAULT",
                            default_tax_code="PS081282", shipping_tax_code="FR020100", ship_from=None,
                            commit=True)
    assert_keys_within(body, published, extra={"code"})
    assert_shape(body, published)
    for key in ("type", "companyCode", "date", "customerCode", "purchaseOrderNo", "addresses", "commit",
                "currencyCode"):
        assert body[key] == published[key], key
    assert body["lines"][0] == {k: published["lines"][0][k] for k in published["lines"][0]}


def test_published_response_parses_into_a_balanced_quote() -> None:
    quote = quote_from_transaction("c1", order(), fixture("createTransaction_response_avatax_js_sdk_fixture.json"))
    assert quote.total_tax == Money.of("7.75", "USD")
    assert quote.lines[0].rate == Decimal("0.0775")
    assert quote.lines[0].taxable_amount == Money.of("100", "USD")
    assert "CALIFORNIA" in quote.jurisdiction and quote.jurisdiction.startswith("US-CA")


class Recorder:
    """A MockTransport answering from fixtures and recording what the adapter sent."""

    def __init__(self, answers: dict[tuple[str, str], tuple[int, dict]]) -> None:
        self.answers, self.requests = answers, []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        for (method, suffix), (status, body) in self.answers.items():
            if request.method == method and request.url.path.endswith(suffix):
                return httpx.Response(status, json=body)
        return httpx.Response(404, json={"error": {"code": "EntityNotFoundError", "message": "Document not found."}})


def adapter_on(recorder: Recorder) -> AvalaraTax:
    return AvalaraTax("https://sandbox-rest.avatax.com", ACCOUNT, SecretStr(KEY),
                      transport=httpx.MockTransport(recorder))


def test_void_and_adjust_bodies_match_the_published_requests() -> None:
    saved = {**fixture("createTransaction_response_avatax_js_sdk_fixture.json"), "status": "Saved"}
    rec = Recorder({("GET", "/transactions/c1"): (200, saved),
                    ("POST", "/transactions/create"): (201, fixture(  # the SalesOrder estimate at 90
                        "createTransaction_void_response_avatax_js_sdk_fixture.json")),
                    ("POST", "/transactions/c1/adjust"): (201, fixture(
                        "createTransaction_void_response_avatax_js_sdk_fixture.json")),
                    ("POST", "/transactions/c1/void"): (200, fixture(
                        "createTransaction_void_response_avatax_js_sdk_fixture.json"))})
    tax = adapter_on(rec)
    requoted = tax.requote("c1", order(amount="90"))
    assert requoted.total_tax == Money.of("6.98", "USD")  # the published adjusted document's tax
    adjust = json.loads(rec.requests[-1].content)
    published_adjust = fixture("createTransaction_adjust_request_avatax_js_sdk_fixture.json")
    assert_keys_within(adjust, published_adjust, extra={"code"})
    assert_shape(adjust, {k: v for k, v in published_adjust.items() if k != "newTransaction"})
    assert adjust["adjustmentReason"] == published_adjust["adjustmentReason"]
    assert_shape(adjust["newTransaction"], {k: v for k, v in published_adjust["newTransaction"].items()
                                            if k != "commit"})
    assert tax.void("c1") is True
    void = json.loads(rec.requests[-1].content)
    published_void = fixture("createTransaction_void_request_avatax_js_sdk_fixture.json")
    assert set(void) == set(published_void) and void["code"].lower() == published_void["code"].lower()
    auth = rec.requests[-1].headers["Authorization"]
    assert auth.startswith("Basic ") and KEY not in auth  # base64, as AvaTax expects


def test_published_errors_become_typed_business_faults() -> None:
    tax = adapter_on(Recorder({("GET", "/transactions/c1"): (401, fixture(
        "error_401_AuthenticationIncomplete_devguide.json"))}))
    with pytest.raises(VendorAuthFailed, match="Authentication Incomplete"):
        tax.quote("c1", order())
    tax = adapter_on(Recorder({("POST", "/transactions/create"): (400, fixture(
        "error_ModelStateInvalid_rest_v2_patch_notes.json"))}))
    with pytest.raises(TaxRejected, match="ModelStateInvalid.*not a valid 'id'"):
        tax.quote("c1", order())
    assert {"TaxRejected", "VendorAuthFailed", "VendorRejected"} <= BUSINESS_ERROR_TYPES


# -- the sandbox -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served():
    with ServedApp(create_app(account_id=ACCOUNT, license_key=KEY)) as s:
        yield s


@pytest.fixture
def sandbox(served):
    httpx.post(f"{served.base_url}/_admin/reset").raise_for_status()
    return served


def faults(sandbox, spec: dict) -> None:
    httpx.put(f"{sandbox.base_url}/_admin/faults", json={"faults": spec}).raise_for_status()


def tax_on(sandbox, timeout: float = 5.0) -> AvalaraTax:
    return AvalaraTax(sandbox.base_url, ACCOUNT, SecretStr(KEY), company_code="DEFAULT", timeout=timeout)


def test_sandbox_answers_the_published_request_with_the_published_shape_and_tax(sandbox) -> None:
    url = f"{sandbox.base_url}/api/v2/transactions/create"
    body = fixture("createTransaction_request_avatax_js_sdk_fixture.json")
    assert httpx.post(url, json=body).json() == fixture("error_401_AuthenticationIncomplete_devguide.json")
    r = httpx.post(url, json=body, auth=(ACCOUNT, KEY))
    assert r.status_code == 201
    published = fixture("createTransaction_response_avatax_js_sdk_fixture.json")
    got = r.json()
    assert_shape(got, published)
    for key in ("status", "type", "totalTax", "totalAmount", "totalTaxable", "customerVendorCode", "region"):
        assert got[key] == published[key], key
    assert [(d["jurisName"], d["rate"], d["tax"]) for d in got["lines"][0]["details"]] == [
        (d["jurisName"], d["rate"], d["tax"]) for d in published["lines"][0]["details"]]
    # the published void request on the published document → the published void response's shape
    code = got["code"]
    voided = httpx.post(f"{sandbox.base_url}/api/v2/companies/DEFAULT/transactions/{code}/void", auth=(ACCOUNT, KEY),
                        json=fixture("createTransaction_void_request_avatax_js_sdk_fixture.json"))
    assert voided.status_code == 200
    assert_shape(voided.json(), fixture("createTransaction_void_response_avatax_js_sdk_fixture.json"))
    assert voided.json()["status"] == "Cancelled"


def test_sandbox_adjust_reprices_like_the_published_adjustment(sandbox) -> None:
    body = {**fixture("createTransaction_request_avatax_js_sdk_fixture.json"), "commit": False, "code": "adj-1"}
    httpx.post(f"{sandbox.base_url}/api/v2/transactions/create", json=body, auth=(ACCOUNT, KEY)).raise_for_status()
    r = httpx.post(f"{sandbox.base_url}/api/v2/companies/DEFAULT/transactions/adj-1/adjust", auth=(ACCOUNT, KEY),
                   json=fixture("createTransaction_adjust_request_avatax_js_sdk_fixture.json"))
    published = fixture("createTransaction_void_response_avatax_js_sdk_fixture.json")  # the adjusted document
    assert r.status_code == 200
    assert_shape(r.json(), published)
    for key in ("totalTax", "totalAmount", "adjustmentReason", "adjustmentDescription", "version"):
        assert r.json()[key] == published[key], key


def test_adapter_lifecycle_against_the_sandbox(sandbox) -> None:
    tax = tax_on(sandbox)
    code = "order:shopify:1001"
    two_lines = Order.model_validate({
        **order().model_dump(mode="json"),
        "lines": [{"line_id": "1", "channel_sku": "Y0001", "quantity": 2, "unit_price": {"amount": "30", "currency": "USD"}},
                  {"line_id": "2", "channel_sku": "Y0002", "quantity": 1, "unit_price": {"amount": "40", "currency": "USD"},
                   "taxable": False}],
        "shipping_lines": [{"title": "Ground", "price": {"amount": "10", "currency": "USD"}}]})
    q = tax.quote(code, two_lines)
    assert q.total_tax == Money.of("5.43", "USD")  # 60 × 7.75 % = 4.65 + shipping 10 × 7.75 % = 0.78; NT line 0
    assert [x.tax for x in q.lines] == [Money.of("4.65", "USD"), Money.of("0", "USD")]
    assert tax.quote(code, two_lines) == q  # idempotent: looked up, not created again
    assert tax.get_transaction(code)["status"] == "Saved"
    smaller = Order.model_validate({**two_lines.model_dump(mode="json"), "lines": [
        {**two_lines.lines[0].model_dump(mode="json"), "quantity": 1}, two_lines.lines[1].model_dump(mode="json")]})
    rq = tax.requote(code, smaller)
    assert rq.total_tax == Money.of("3.11", "USD") and tax.get_transaction(code)["version"] == 2
    assert tax.requote(code, smaller) == rq and tax.get_transaction(code)["version"] == 2  # no second adjust
    tax.commit(code)
    tax.commit(code)  # twice is a no-op
    assert tax.get_transaction(code)["status"] == "Committed"
    with pytest.raises(TaxRejected, match="committed"):
        tax.requote(code, two_lines)
    tax.refund_tax("return:shopify:r1", code, Money.of("1.55", "USD"))
    tax.refund_tax("return:shopify:r1", code, Money.of("1.55", "USD"))
    refund = tax.get_transaction("return:shopify:r1")
    assert (refund["type"], refund["status"], refund["totalTax"]) == ("ReturnInvoice", "Committed", Decimal("-1.55"))
    assert tax.void_tax_refund("return:shopify:r1") is True and tax.void_tax_refund("return:shopify:r1") is False
    assert tax.void(code) is True and tax.void(code) is False and tax.void("never-quoted") is False
    with pytest.raises(TaxRejected, match="voided"):
        tax.commit(code)
    with pytest.raises(TaxRejected, match="no tax transaction"):
        tax.refund_tax("r2", "never-quoted", Money.of("1", "USD"))
    with pytest.raises(InvalidAddress):
        tax.quote("order:shopify:bad", order(postal=None, region=None))
    estimate = tax.estimate("est-1", order())
    assert estimate.total_tax == Money.of("7.75", "USD") and tax.get_transaction("est-1") is None  # not recorded


def test_wrong_credentials_park_and_the_key_is_never_logged(sandbox) -> None:
    bad = AvalaraTax(sandbox.base_url, ACCOUNT, SecretStr("wrong-key"))
    with pytest.raises(VendorAuthFailed):
        bad.quote("c", order())
    tax = tax_on(sandbox)
    faults(sandbox, {"*": {"error_rate": 1.0}})
    with structlog.testing.capture_logs() as logs, pytest.raises(VendorUnavailable):
        tax.quote("c", order())
    assert KEY not in repr(logs) and KEY not in repr(tax.http) and KEY not in repr(tax.__dict__)


# -- fault modes -------------------------------------------------------------------------------------------
def test_latency_is_absorbed(sandbox) -> None:
    faults(sandbox, {"POST /api/v2/transactions/create": {"latency_ms": 300}})
    started = time.monotonic()
    assert tax_on(sandbox).quote("lat", order()).total_tax == Money.of("7.75", "USD")
    assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retryable_and_the_retry_creates_one_document(sandbox, status) -> None:
    faults(sandbox, {"POST /api/v2/transactions/create": {"error_rate": 1.0, "error_statuses": [status]}})
    tax = tax_on(sandbox)
    with pytest.raises(VendorUnavailable) as err:
        tax.quote("e1", order())
    assert err.value.non_retryable is False and err.value.status == status and err.value.type == "VendorUnavailable"
    faults(sandbox, {"POST /api/v2/transactions/create": {"error_rate": 0.5}})  # seeded: some attempts fail
    failures = 0
    for _attempt in range(20):  # what Temporal's RetryPolicy does to the activity
        try:
            quote = tax.quote("e1", order())
            break
        except VendorUnavailable:
            failures += 1
    assert quote.total_tax == Money.of("7.75", "USD") and failures < 20
    assert tax.get_transaction("e1")["version"] == 1  # created once


def test_429_becomes_next_retry_delay(sandbox) -> None:
    faults(sandbox, {"*": {"rate_limit_every": 1, "retry_after_seconds": 7}})
    with pytest.raises(VendorRateLimited) as err:
        tax_on(sandbox).quote("r1", order())
    exc = err.value
    assert (exc.type, exc.non_retryable, exc.next_retry_delay) == ("RateLimited", False, timedelta(seconds=7))
    failure = DataConverter.default.failure_converter.to_failure  # what the worker sends to the server
    from temporalio.api.failure.v1 import Failure

    from activities.errors import transient_error  # the activity boundary: adapters know nothing of Temporal

    proto = Failure()
    failure(transient_error(exc), DataConverter.default.payload_converter, proto)
    info = proto.application_failure_info
    assert info.type == "RateLimited" and not info.non_retryable and info.next_retry_delay.seconds == 7


def test_timeout_is_retryable_and_the_retry_finds_what_the_stalled_call_created(sandbox) -> None:
    faults(sandbox, {"POST /api/v2/transactions/create": {"timeout_rate": 1.0, "timeout_seconds": 1.0}})
    tax = tax_on(sandbox, timeout=0.3)
    with pytest.raises(VendorUnavailable) as err:
        tax.quote("t1", order())
    assert err.value.type == "VendorTimeout" and err.value.non_retryable is False
    time.sleep(1.2)  # the vendor finishes the stalled request after the client gave up
    faults(sandbox, {})
    assert tax.get_transaction("t1") is not None
    assert tax.quote("t1", order()).total_tax == Money.of("7.75", "USD")
    assert tax.get_transaction("t1")["version"] == 1  # the retry did not create a second document


def test_outage_window_then_recovery(sandbox) -> None:
    until = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()
    faults(sandbox, {"*": {"outage_until": until, "retry_after_seconds": 30}})
    with pytest.raises(VendorUnavailable) as err:
        tax_on(sandbox).quote("o1", order())
    assert err.value.status == 503 and err.value.next_retry_delay == timedelta(seconds=30)
    httpx.post(f"{sandbox.base_url}/_admin/reset").raise_for_status()  # the outage ends
    assert tax_on(sandbox).quote("o1", order()).total_tax == Money.of("7.75", "USD")
