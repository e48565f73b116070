"""The bad inputs that answered 5xx before issue 15, each on every route it reaches, as fixed examples (the
property tests find their kind; these make sure each exact one stays fixed): `currency: {}`, a lone surrogate
(`\\ud800` in JSON), out-of-range dates, JSON nested 100,000 deep, non-UTF-8 bodies, NaN and 5,000-digit
numbers, ids and topics wider than the platform database's columns, a non-ASCII signature header."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from adapters.marketplace import shopify
from tests.fuzz import report
from tests.fuzz.strategies import NESTED_100K, NESTED_100K_OBJECT, to_json
from tests.fuzz.test_intake_http import (
    NOTIFY,
    RECEIPT,
    SHOPIFY_ORDER,
    SQUARE,
    WMS_SHIPMENT,
    Intake,
    _fresh_square,
)

LONE_SURROGATE = b'"\\ud800"'
OUT_OF_RANGE = "0001-01-01T00:00:00+01:00"  # valid ISO 8601, but no UTC time exists for it


def _set(doc, path, value):
    out = json.loads(json.dumps(doc))
    node = out
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return out


def _surrogate(doc, path) -> bytes:
    return to_json(_set(doc, path, "__s__")).replace(b'"__s__"', LONE_SURROGATE)


def _variants(doc, *, currency, string, date, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    body = to_json(doc)
    variants = {
        "currency {}": to_json(_set(doc, currency, {})),
        "lone surrogate": _surrogate(doc, string),
        "out-of-range date": to_json(_set(doc, date, OUT_OF_RANGE)),
        "year 10000 date": to_json(_set(doc, date, "10000-01-01T00:00:00Z")),
        "nested 100,000 deep (arrays)": NESTED_100K,
        "nested 100,000 deep (objects)": NESTED_100K_OBJECT,
        "not UTF-8": body.replace(b'"', b'"\xe9', 1),
        "UTF-16": body.decode().encode("utf-16"),
        "NaN": to_json(_set(doc, string, "__n__")).replace(b'"__n__"', b"NaN"),
        "5,000-digit number": to_json(_set(doc, string, "__n__")).replace(b'"__n__"', b"9" * 5000),
    }
    return {name: body for name, body in variants.items() if name not in skip}


@pytest.fixture
def intake(engine):
    it = Intake(engine)
    yield it
    it.close()


def test_each_known_5xx_input_is_now_a_4xx_with_a_quarantined_copy(intake):
    square_payment = _fresh_square(json.loads(json.dumps(SQUARE[1])))
    cases = {
        "shopify orders/create": (lambda b: intake.shopify("orders/create", b), _variants(
            SHOPIFY_ORDER, currency=("currency",), string=("line_items", 0, "name"), date=("created_at",))),
        "shopify orders/cancelled": (lambda b: intake.shopify("orders/cancelled", b), _variants(
            SHOPIFY_ORDER, currency=("id",), string=("id",), date=("id",),
            skip=("out-of-range date", "year 10000 date"))),  # a cancel reads the order id only
        "square payment.updated": (intake.square, _variants(
            square_payment, currency=("data", "object", "payment", "total_money", "currency"),
            string=("event_id",), date=("data", "object", "payment", "created_at"))),
        "wms shipment.shipped": (intake.wms, _variants(
            WMS_SHIPMENT, currency=("shipment", "carrier"), string=("event_id",), date=("shipment", "shipped_at"))),
        "wms return.received": (intake.wms, _variants(
            RECEIPT, currency=("receipt", "receipt_id"), string=("external_ref",), date=("receipt", "received_at"))),
        "shipstation SHIP_NOTIFY": (lambda b: intake.post("/webhooks/shipstation", b, {}), _variants(
            NOTIFY, currency=("resource_type",), string=("resource_url",), date=("resource_type",),
            skip=("out-of-range date", "year 10000 date"))),  # it carries no date
    }
    seen: Counter[str] = Counter()
    for route, (send, variants) in cases.items():
        for name, body in variants.items():
            response = send(body)  # Intake.post: never 5xx; a 4xx has a detail and a copy of exactly these bytes
            assert 400 <= response.status_code < 500, (route, name, response.status_code, response.text[:300])
            seen[response.status_code] += 1
    c = intake.counts
    report(f"fuzz/http/known-5xx-webhooks[{intake.engine.dialect.name}]", injects="currency {}, lone surrogate, out-of-range dates, 100,000-deep "
           "nesting, non-UTF-8, NaN, 5,000-digit numbers on every webhook route", inputs=c["inputs"],
           **{"4xx": c["4xx"], "5xx": c["5xx"]}, quarantined=c["quarantined"],
           invariant="each answered 4xx naming the problem, the raw body quarantined")
    assert c["quarantined"] == c["inputs"]


def test_headers_the_database_or_the_clock_cannot_hold_are_4xx(intake):
    body = to_json(SHOPIFY_ORDER)
    base = intake.shopify("orders/create", body)
    assert base.status_code == 202, base.text
    sig = shopify.compute_hmac(body, "fuzz-shopify-secret")
    for extra, expected in ((({"X-Shopify-Topic": "orders/" + "x" * 200}), 400),
                            (({"X-Shopify-Webhook-Id": "w" * 300}), 400),
                            (({"X-Shopify-Triggered-At": OUT_OF_RANGE}), 400),
                            (({"X-Shopify-Triggered-At": "9999-12-31T23:59:59-23:59"}), 400)):
        headers = {"X-Shopify-Topic": "orders/create", "X-Shopify-Webhook-Id": "wh-hdr",
                   "X-Shopify-Hmac-Sha256": sig, **extra}
        response = intake.post("/webhooks/shopify", body, headers)
        assert response.status_code == expected, (extra, response.text)
    for topic in ("orders/cancelled", "orders/create", "refunds/create"):  # ids wider than the id columns
        wide = intake.shopify(topic, to_json({**SHOPIFY_ORDER, "id": "9" * 300, "order_id": "9" * 300}))
        assert wide.status_code == 422 and "longer than" in wide.json()["detail"], wide.text
    response = intake.post("/webhooks/wms/local", to_json(WMS_SHIPMENT),
                           {"X-Retailflow-Wms-Signature": "é☃".encode()}, unsigned=True)
    assert response.status_code == 401
    c = intake.counts
    report(f"fuzz/http/known-5xx-headers[{intake.engine.dialect.name}]", injects="topic and webhook id wider than their columns, out-of-range "
           "X-Shopify-Triggered-At, a non-ASCII signature header", inputs=c["inputs"],
           **{"4xx": c["4xx"], "5xx": c["5xx"]}, quarantined=c["quarantined"], invariant="each a 4xx, quarantined")


def test_json_routes_answer_the_known_5xx_inputs_with_4xx_naming_the_field(intake):
    batch = {"transactions": [{"pos_transaction_id": "pos-1", "store_id": "S1", "business_date": "2026-01-05",
                               "kind": "sale", "occurred_at": "2026-01-05T10:00:00Z", "currency": "USD",
                               "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price": "5.00"}],
                               "tenders": [{"type": "cash", "amount": "5.00"}]}]}
    inventory = {"events": [{"kind": "receipt", "source": "wms", "source_event_id": "e-1", "sku": "SKU-1",
                             "location": "WH1", "quantity": 5, "occurred_at": "2026-01-05T10:00:00Z"}]}
    ret = {"channel": "shopify", "return_id": "r-1", "external_order_id": "1", "requested_at": "2026-01-05T10:00:00Z",
           "lines": [{"line_id": "1", "quantity": 1, "reason": "damaged"}]}
    cases = {
        "/pos/batches": _variants(batch, currency=("transactions", 0, "currency"),
                                  string=("transactions", 0, "store_id"), date=("transactions", 0, "occurred_at"),
                                  skip=("UTF-16",)),
        "/inventory/events": _variants(inventory, currency=("events", 0, "sku"), string=("events", 0, "sku"),
                                       date=("events", 0, "occurred_at"), skip=("UTF-16",)),
        "/returns": _variants(ret, currency=("lines", 0, "line_id"), string=("return_id",), date=("requested_at",),
                              skip=("UTF-16",)),  # Python's JSON parser reads UTF-16: not an error there
    }
    for path, variants in cases.items():
        for name, body in variants.items():
            response = intake.post(path, body, {"Content-Type": "application/json", **intake.admin}, webhook=False)
            assert 400 <= response.status_code < 500, (path, name, response.status_code, response.text[:300])
            assert "detail" in response.json()
    ok = intake.post("/pos/batches", to_json(batch), {"Content-Type": "application/json", **intake.admin},
                     webhook=False)
    assert ok.status_code == 202, ok.text
    c = intake.counts
    report(f"fuzz/http/known-5xx-json-routes[{intake.engine.dialect.name}]", injects="currency {}, lone surrogate, out-of-range dates, 100,000-deep "
           "nesting, non-UTF-8, NaN, 5,000-digit numbers on /pos/batches, /inventory/events, /returns",
           inputs=c["inputs"], **{"2xx": c["2xx"], "4xx": c["4xx"], "5xx": c["5xx"]},
           invariant="each answered 4xx naming the field")

