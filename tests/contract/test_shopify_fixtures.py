"""Shopify's published webhook payloads and headers (tests/fixtures/shopify;
tests/fixtures/SOURCES.md says where each came from) through our verification and mapping."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from decimal import Decimal

import pytest

from adapters.marketplace import shopify
from canonical.money import Money
from tests.conftest import fixture_bytes

SECRET = "hush"
ORDER = fixture_bytes("shopify", "webhook_orders_create_sample_v2024.json")
FULFILLMENT = fixture_bytes("shopify", "webhook_fulfillments_create_sample.json")
REFUND = fixture_bytes("shopify", "webhook_refunds_create_sample.json")


def _headers_fixture() -> dict[str, str]:
    text = fixture_bytes("shopify", "webhook_headers_example.http").decode()
    headers = {}
    for line in text.splitlines()[1:]:
        if not line.strip():
            break
        name, _, value = line.partition(":")
        headers[name.strip()] = value.strip()
    return headers


# -- signature ----------------------------------------------------------------------------------------------
def test_hmac_is_base64_of_hmac_sha256_over_the_raw_body():
    expected = base64.b64encode(hmac.new(SECRET.encode(), ORDER, hashlib.sha256).digest()).decode()
    assert shopify.compute_hmac(ORDER, SECRET) == expected
    assert shopify.verify_webhook(ORDER, expected, [SECRET])


@pytest.mark.parametrize("signature", [
    None, "", "not base64!!", base64.b64encode(b"x" * 32).decode(),
    shopify.compute_hmac(ORDER, "other-secret"),
])
def test_wrong_missing_or_malformed_signatures_fail(signature):
    assert not shopify.verify_webhook(ORDER, signature, [SECRET])


def test_a_changed_body_fails_even_by_one_byte():
    signature = shopify.compute_hmac(ORDER, SECRET)
    assert not shopify.verify_webhook(ORDER.replace(b"89.99", b"89.98"), signature, [SECRET])
    assert not shopify.verify_webhook(ORDER + b" ", signature, [SECRET])


def test_previous_secret_is_accepted_during_rotation():
    signature = shopify.compute_hmac(ORDER, "old")
    assert shopify.verify_webhook(ORDER, signature, ["new", "old"])
    assert not shopify.verify_webhook(ORDER, signature, ["new"])


def test_headers_of_both_formats_are_read_case_insensitively():
    headers = _headers_fixture()
    assert shopify.header(headers, "topic") == "products/update"
    assert shopify.header(headers, "webhook-id") == "545ebdd4-b7be-4d3d-b14e-54aa78e0e0f9"
    assert shopify.header(headers, "hmac-sha256") == "xT6yH5jZfQm6Q3lC8nA0r7sV2bP9dK1eL4wG0hM5nYI="
    events_format = {"shopify-topic": "orders/create", "Shopify-Webhook-Id": "abc"}
    assert shopify.header(events_format, "topic") == "orders/create"
    assert shopify.header(events_format, "webhook-id") == "abc"


# -- orders/create ------------------------------------------------------------------------------------------
def test_orders_create_fixture_maps_to_a_consistent_canonical_order():
    order = shopify.map_order(shopify.loads(ORDER))
    assert order.channel == "shopify"
    assert order.external_order_id == "820982911946154508"  # > 2^53: kept exact, never a float
    assert order.workflow_id == "order:shopify:820982911946154508"
    assert order.order_number == "#9999" and order.currency == "USD" and not order.taxes_included and order.test
    assert order.created_at.isoformat() == "2022-01-01T00:00:00+00:00"  # -05:00 normalised to UTC
    assert [(line.line_id, line.channel_sku, line.quantity, line.unit_price.amount) for line in order.lines] == [
        ("487817672276298554", "SKU2006-001", 1, Decimal("89.99")),
        ("976318377106520349", "SKU2006-020", 1, Decimal("159.99")),
        ("315789986012684393", "SKU2006-035", 1, Decimal("119.99")),
    ]
    assert order.shipping_address.country == "US" and order.shipping_address.region == "KY"
    assert order.shipping_address.postal_code == "40003"
    assert [s.price for s in order.shipping_lines] == [Money.of("10.00", "USD")]
    # total_discounts 20.00 is not allocated to lines in this sample: kept as an order-level discount
    assert order.order_discount_total == Money.of("20.00", "USD")
    assert order.total == order.computed_total == Money.of("359.97", "USD")
    assert order.customer.email == "jon@example.com" and order.customer.external_id == "115310627314723954"


def test_every_sku_of_the_fixtures_is_in_the_demo_catalog():
    from retailflow.catalog import DEMO_CATALOG, parse_catalog

    rows, errors = parse_catalog(DEMO_CATALOG.read_text())
    assert errors == []
    mapped = {(r.channel, r.channel_sku) for r in rows}
    order = shopify.map_order(shopify.loads(ORDER))
    _, shipment = shopify.map_fulfillment(shopify.loads(FULFILLMENT))
    skus = {line.channel_sku for line in order.lines} | {line.channel_sku for line in shipment.lines}
    assert {("shopify", sku) for sku in skus} <= mapped


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.pop("currency"), "no currency"),
    (lambda d: d.update(line_items=[]), "no line_items"),
    (lambda d: d.update(created_at=None), "no created_at"),
    (lambda d: d["line_items"][0].update(quantity=0), "greater than 0"),
    (lambda d: d["total_price_set"]["shop_money"].update(amount="1.00"), "does not equal"),
    (lambda d: d["shipping_address"].update(country_code=None), "country_code"),
    (lambda d: d.update(id=None), "order id is missing"),
    (lambda d: d["line_items"][0]["price_set"]["shop_money"].update(amount="abc"), "not a decimal amount"),
    (lambda d: d.update(currency="ZZZ"), "unknown currency"),
])
def test_payloads_that_do_not_map_say_why(mutate, message):
    data = json.loads(ORDER)
    mutate(data)
    with pytest.raises(shopify.ShopifyMappingError, match=message):
        shopify.map_order(shopify.loads(json.dumps(data).encode()))


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b"\xff\xfe"])
def test_bodies_that_are_not_a_json_object_are_refused(body):
    with pytest.raises(shopify.ShopifyMappingError):
        shopify.loads(body)


def test_a_variant_without_sku_is_kept_for_the_sku_step_not_lost():
    data = json.loads(ORDER)
    data["line_items"][0]["sku"] = ""
    data["line_items"][0]["variant_id"] = 457924702
    order = shopify.map_order(data)
    assert order.lines[0].channel_sku == "variant:457924702"


def test_prices_that_include_tax_keep_the_vat_style_total():
    data = json.loads(ORDER)
    data["taxes_included"] = True
    data["line_items"][0]["tax_lines"] = [{"title": "VAT", "rate": 0.2, "price": "15.00",
                                          "price_set": {"shop_money": {"amount": "15.00", "currency_code": "USD"}}}]
    order = shopify.map_order(shopify.loads(json.dumps(data).encode()))
    assert order.taxes_included and order.lines[0].tax_total == Money.of("15.00", "USD")
    assert order.total == order.computed_total  # included tax is not added on top


# -- fulfillments/create ------------------------------------------------------------------------------------
def test_fulfillments_create_fixture_maps_to_a_shipment():
    order_id, shipment = shopify.map_fulfillment(shopify.loads(FULFILLMENT))
    assert order_id == "820982911946154508"
    assert shipment.shipment_id == "shopify-fulfillment:123456"
    assert shipment.carrier == "UPS" and shipment.tracking_number == "1z827wk74630"
    assert shipment.shipped_at.isoformat() == "2022-01-01T00:00:00+00:00"
    assert ("487817672276298554", "SKU2006-001", 1) in [(s.line_id, s.channel_sku, s.quantity) for s in shipment.lines]


def test_refunds_create_fixture_parses_with_exact_amounts():
    refund = shopify.loads(REFUND)
    assert refund["order_id"] == 820982911946154508  # an exact int, never a float
    line = refund["refund_line_items"][0]
    assert line["subtotal"] == Decimal("89.99") and isinstance(line["subtotal"], Decimal)
