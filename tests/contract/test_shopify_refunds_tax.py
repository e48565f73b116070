"""Shopify refunds of tax-inclusive and tax-exclusive orders (issue 16, defect 1), against the recorded payloads:
a refund line's `subtotal` is the refunded price as the order charged it, so with `taxes_included` the VAT is
inside it (`total_tax` is that part), without it the tax comes on top. No network, no server."""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest

from adapters.erp.base import BookedLine, BookedOrder
from adapters.marketplace import shopify
from api.intake.returns import map_shopify_refund, taxes_included
from canonical.money import Money
from tests.conftest import fixture_bytes

INCLUDED = "webhook_refunds_create_taxes_included_faithful.json"
EXCLUDED = "webhook_refunds_create_taxes_excluded_faithful.json"
PUBLISHED_EXCLUSIVE = "rest_refund_tax_exclusive_shopify_api_js_2022-10.json"


class ErpKnowsTaxMode(BookedOrder):
    """A booked order from an ERP that reports the order's `taxes_included` (the field proposed for BookedOrder)."""

    taxes_included: bool | None = None


def load(name: str) -> dict:
    return shopify.loads(fixture_bytes("shopify", name))


def booked_for(payload: dict, currency: str, cls: type[BookedOrder] = BookedOrder, **extra) -> BookedOrder:
    lines = [BookedLine(line_id=str(i["line_item_id"]), item_code=f"I-{i['line_item_id']}",
                        quantity=int(i["line_item"]["quantity"]), shipped=int(i["line_item"]["quantity"]))
             for i in payload["refund_line_items"]]
    return cls(external_ref=f"order:shopify:{payload['order_id']}", erp_sales_order_id="SO-1", currency=currency,
               status="invoiced", lines=lines, **extra)


def lookup_of(so: BookedOrder):
    return lambda ref: so if ref == so.external_ref else None


def test_a_vat_inclusive_refund_of_24_90_with_3_98_inside_is_accepted_and_credits_net_plus_tax():
    payload = load(INCLUDED)
    so = booked_for(payload, "EUR")
    request = map_shopify_refund(lookup_of(so), payload, "shopify")  # was 422: "... lines total 28.88"
    [line] = request.lines
    assert (line.amount, line.tax) == (Money.of("20.92", "EUR"), Money.of("3.98", "EUR"))
    assert line.amount + line.tax == Money.of("24.90", "EUR")  # what the transaction paid back, not a cent more
    assert request.adjustment is None


def test_the_erp_or_the_caller_saying_taxes_included_decides_over_the_payload():
    payload = load(INCLUDED)
    for so, known in ((booked_for(payload, "EUR", ErpKnowsTaxMode, taxes_included=True), None),
                      (booked_for(payload, "EUR"), True)):
        [line] = map_shopify_refund(lookup_of(so), payload, "shopify", taxes_included=known).lines
        assert line.amount == Money.of("20.92", "EUR")
    # the same payload read as tax on top does not add up: 24.90 paid for 24.90 + 3.98
    with pytest.raises(shopify.ShopifyMappingError, match=r"lines total 28\.88 \(tax on top\)"):
        map_shopify_refund(lookup_of(booked_for(payload, "EUR")), payload, "shopify", taxes_included=False)


def test_a_tax_exclusive_refund_pays_the_subtotal_plus_its_tax():
    payload = load(EXCLUDED)
    so = booked_for(payload, "USD")
    assert taxes_included(so, payload, payload["refund_line_items"]) is False
    [line] = map_shopify_refund(lookup_of(so), payload, "shopify").lines
    assert (line.amount, line.tax) == (Money.of("24.90", "USD"), Money.of("1.74", "USD"))
    short = copy.deepcopy(payload)
    short["transactions"][0]["amount"] = "24.90"  # the tax left out: less than the lines
    with pytest.raises(shopify.ShopifyMappingError, match=r"transactions total 24\.90 but the refunded lines "
                                                          r"total 26\.64 \(tax on top\)"):
        map_shopify_refund(lookup_of(so), short, "shopify")


def test_shopifys_published_tax_exclusive_refund_sums_subtotal_and_tax():
    payload = load(PUBLISHED_EXCLUSIVE)
    so = booked_for(payload, "USD", ErpKnowsTaxMode, taxes_included=False)
    with pytest.raises(shopify.ShopifyMappingError, match=r"transactions total 209\.00 but the refunded lines "
                                                          r"total 399\.29"):
        map_shopify_refund(lookup_of(so), payload, "shopify")  # as published, its amounts do not add up
    paid = copy.deepcopy(payload)
    paid["transactions"][0]["amount"] = "399.29"  # 195.66 + 3.98 + 195.67 + 3.98
    request = map_shopify_refund(lookup_of(so), paid, "shopify")
    got = {line.line_id: (line.amount, line.tax) for line in request.lines}
    usd = lambda x: Money.of(x, "USD")  # noqa: E731
    assert got == {"703073504": (usd("195.66"), usd("3.98")), "466157049": (usd("195.67"), usd("3.98"))}


def test_the_exact_set_amounts_are_used_not_the_float_fields():
    payload = load(INCLUDED)
    item = payload["refund_line_items"][0]
    assert item["subtotal_set"]["shop_money"] == {"amount": "24.90", "currency_code": "EUR"}
    tampered = copy.deepcopy(payload)
    tampered["refund_line_items"][0]["subtotal"] = 99.99  # the deprecated float field disagrees: the set wins
    [line] = map_shopify_refund(lookup_of(booked_for(payload, "EUR")), tampered, "shopify").lines
    assert line.amount + line.tax == Money.of("24.90", "EUR")


@pytest.mark.parametrize(("rate", "subtotal", "tax", "inclusive"), [
    ("0.19", "24.90", "3.98", True), ("0.19", "24.90", "4.73", False), ("0.2", "9.99", "1.67", True),
    ("0.07", "24.90", "1.74", False), ("0.0", "24.90", "0.00", False),
])
def test_without_a_known_mode_the_refunded_lines_tax_rates_tell(rate, subtotal, tax, inclusive):
    payload = load(INCLUDED)  # shopify.loads: JSON numbers as Decimal
    item = payload["refund_line_items"][0]
    item["line_item"]["tax_lines"][0]["rate"] = Decimal(rate)
    for key, value in (("subtotal", subtotal), ("total_tax", tax)):
        item[f"{key}_set"]["shop_money"]["amount"] = value
        item[f"{key}_set"]["presentment_money"]["amount"] = value
    assert taxes_included(booked_for(payload, "EUR"), payload, payload["refund_line_items"]) is inclusive
