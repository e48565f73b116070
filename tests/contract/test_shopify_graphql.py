"""The Shopify GraphQL Admin client (adapters/marketplace/shopify_graphql.py) against what Shopify published
(tests/fixtures/shopify/graphql, listed in tests/fixtures/SOURCES.md): the examples of the shopify.dev GraphQL
Admin reference (2026-01 and 2026-07 pages), the official JS library's README and test mocks, and one real
throttled answer posted on Shopify's community forum.

Each published answer is served, unchanged, to the real client through an httpx MockTransport. The docs print the
`data` of an answer without its envelope: the tests put it in GraphQL's `{"data": …}` envelope with the
`extensions.cost` that Shopify's own README prints (so the throttle bookkeeping runs on published numbers). Where
a step of a flow has no published answer (the SKU lookup before an inventory write, say), the test stubs the
client's own lookup with the published request's values instead of inventing a Shopify answer; that is said
where it is done.

The documents the client sends are compared with the documents of the published examples (field by field, with
graphql-core): every field the client reads from an answer must be one the published example's answer carries,
and what the client selects beyond the example is pinned here, so a change is seen."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from graphql import FieldNode, OperationDefinitionNode, SelectionSetNode, parse

from adapters.http import VendorHttp
from adapters.marketplace import shopify_graphql as sg
from adapters.marketplace.shopify_graphql import ShopifyGraphQL, ThrottleStatus, feed_action, order_as_webhook
from canonical.errors import ChannelRejected
from canonical.money import Money
from canonical.order_feed import FeedAction, UnmappableOrder
from canonical.returns import Refund, RefundLine
from canonical.vendor_errors import VendorRateLimited
from tests.conftest import fixture_bytes

OP = re.compile(r"(?:query|mutation)\s+(\w+)")


def raw(name: str) -> bytes:
    return fixture_bytes("shopify", "graphql", name)


def published(name: str) -> Any:
    return json.loads(raw(name))


def document(name: str) -> str:
    return raw(name).decode()


# The README's successful answer: its `extensions` are the published cost block the envelopes below carry.
README_ANSWER = "success_extensions_cost_admin_api_client_readme.json"
PUBLISHED_COST = published(README_ANSWER)["extensions"]


def envelope(data: Any) -> bytes:
    """A published `data` block as Shopify sends it: GraphQL's envelope, with the README's cost extensions."""
    return json.dumps({"data": data, "extensions": PUBLISHED_COST}).encode()


class PublishedShopify:
    """Answers each operation (by name) with published bytes; records what the client sent."""

    def __init__(self, answers: dict[str, bytes]) -> None:
        self.answers = answers
        self.sent: list[tuple[str, str, dict]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/admin/api/2026-10/graphql.json"
        body = json.loads(request.content)
        name = OP.search(body["query"]).group(1)
        self.sent.append((name, body["query"], body.get("variables") or {}))
        return httpx.Response(200, content=self.answers[name], headers={
            "Content-Type": "application/json", "X-Shopify-API-Version": "2026-10"})

    def ops(self) -> list[str]:
        return [name for name, _, _ in self.sent]

    def variables(self, name: str) -> dict:
        return next(v for n, _, v in self.sent if n == name)


def client(fake: PublishedShopify, **kwargs: Any) -> ShopifyGraphQL:
    http = VendorHttp("shopify", "https://shop.example", transport=httpx.MockTransport(fake))
    return ShopifyGraphQL(http, shop="shop.example", clock=lambda: 100.0, **kwargs)


# -- documents: what we select against what the published example selects ----------------------------------------
def selected(doc: str) -> set[str]:
    """Every field path a document selects under its operation (aliases and arguments ignored)."""
    op = next(d for d in parse(doc).definitions if isinstance(d, OperationDefinitionNode))
    out: set[str] = set()

    def walk(selection: SelectionSetNode | None, prefix: str) -> None:
        for node in (selection.selections if selection else ()):
            if isinstance(node, FieldNode):
                path = f"{prefix}{node.name.value}"
                out.add(path)
                walk(node.selection_set, path + ".")

    walk(op.selection_set, "")
    return out


def answered(data: Any, prefix: str = "") -> set[str]:
    """Every field path present in a published answer (lists looked into, aliases as printed)."""
    out: set[str] = set()
    items = data if isinstance(data, list) else [data]
    for item in items:
        if isinstance(item, dict):
            for key, value in item.items():
                out.add(f"{prefix}{key}")
                out |= answered(value, f"{prefix}{key}.")
    return out


@pytest.mark.parametrize(("ours", "theirs", "beyond"), [
    # inventorySetQuantities 2026-07 "with idempotency enabled and compare-and-swap enabled"
    (sg.INVENTORY_SET, "inventorySetQuantities_idempotent_cas_query_2026-07.graphql",
     {"inventorySetQuantities.inventoryAdjustmentGroup.id"}),
    # orderCancel 2026-01 "Cancel an order": the published example selects the deprecated userErrors too
    (sg.ORDER_CANCEL, "orderCancel_query_2026-01.graphql", set()),
    # refundCreate 2026-01 "Create a refund with a note and transaction details" selects presentmentMoney
    (sg.REFUND_CREATE, "refundCreate_note_transactions_query_2026-01.graphql",
     {"refundCreate.refund.totalRefundedSet.shopMoney", "refundCreate.refund.totalRefundedSet.shopMoney.amount",
      "refundCreate.refund.totalRefundedSet.shopMoney.currencyCode"}),
    # webhookSubscriptionCreate 2026-07 (METAOBJECTS_CREATE example): we select the format, not the filter
    (sg.WEBHOOK_SUBSCRIPTION_CREATE, "webhookSubscriptionCreate_query_2026-07.graphql",
     {"webhookSubscriptionCreate.webhookSubscription.format"}),
])
def test_our_documents_select_what_the_published_examples_select(ours, theirs, beyond):
    assert selected(ours) - selected(document(theirs)) == beyond


def test_our_inventory_write_uses_the_published_idempotency_directive_and_compare_and_swap_field():
    ours, theirs = parse(sg.INVENTORY_SET), parse(document("inventorySetQuantities_idempotent_cas_query_2026-07.graphql"))

    def directive(doc):
        field = doc.definitions[0].selection_set.selections[0]
        return [(d.name.value, [a.name.value for a in d.arguments]) for d in field.directives]

    assert directive(ours) == directive(theirs) == [("idempotent", ["key"])]


# -- throttle ----------------------------------------------------------------------------------------------------
def test_throttle_status_is_read_from_the_published_extensions_as_decimals():
    seen: list[tuple[str, ThrottleStatus]] = []
    fake = PublishedShopify({"ProductQuery": raw(README_ANSWER)})
    shop = client(fake, on_cost=lambda s, st: seen.append((s, st)))
    data = shop.execute("query ProductQuery($id: ID!) { product(id: $id) { id title handle } }",
                        {"id": "gid://shopify/Product/7608002183224"}, cost=1)
    assert data == {"product": {"id": "gid://shopify/Product/7608002183224", "title": "Aera",
                                "handle": "aera-helmet"}}
    [(shop_name, status)] = seen
    assert shop_name == "shop.example"
    # "maximumAvailable": 1000.0, "currentlyAvailable": 999, "restoreRate": 50.0, exactly
    assert (status.maximum, status.available, status.restore_rate) == (Decimal("1000.0"), Decimal("999"),
                                                                       Decimal("50.0"))
    assert all(isinstance(v, Decimal) for v in (status.maximum, status.available, status.restore_rate))
    # the bucket holds 999 of 1000: a request of 1000 points is not sent, it waits 1/50 s (0.1 s, rounded up)
    with pytest.raises(VendorRateLimited) as err:
        shop.execute("query ProductQuery { shop { name } }", cost=1000)
    assert err.value.retry_after == pytest.approx(0.1)
    assert fake.ops() == ["ProductQuery"]


def test_the_published_throttled_error_is_rate_limited_for_the_restore_time():
    """Shopify's community thread "Throttled" (a real answer): 752 points asked, 666 available, 50 a second."""
    fake = PublishedShopify({"OrderCancelled": raw("throttled_with_extensions_cost_community_capture.json")})
    seen: list[ThrottleStatus] = []
    shop = client(fake, on_cost=lambda s, st: seen.append(st))
    with pytest.raises(VendorRateLimited) as err:
        shop.notify_cancelled("shopify", "148977776", "customer changed their mind")
    assert "Throttled" in str(err.value)
    assert err.value.retry_after == pytest.approx(1.8)  # (752 − 666) / 50 = 1.72 s, rounded up to 0.1 s
    assert [s.available for s in seen] == [Decimal("666")]
    assert fake.ops() == ["OrderCancelled"]  # nothing else was tried


def test_a_throttled_error_without_cost_extensions_still_is_a_rate_limit():
    """The official library's mock of a throttled webhook registration: `THROTTLED`, no `extensions.cost`."""
    fake = PublishedShopify({"WebhookSubscriptions": raw("throttled_error_shopify_app_react_router_mock.json")})
    with pytest.raises(VendorRateLimited) as err:
        client(fake).ensure_webhooks("https://retailflow.example/intake/shopify")
    assert err.value.retry_after == pytest.approx(1.0)


def test_a_graphql_error_answer_is_refused_with_shopifys_message_and_its_cost_still_counts():
    """The official library's test answer: `data: null`, an error, and extensions.cost (998 of 1000 left)."""
    fake = PublishedShopify({"getProducts": raw("error_with_extensions_cost_shopify_api_js_test.json")})
    seen: list[ThrottleStatus] = []
    shop = client(fake, on_cost=lambda s, st: seen.append(st))
    with pytest.raises(ChannelRejected, match="you must provide one of first or last") as err:
        shop.execute("query getProducts { products { edges { node { id } } } }")
    assert err.value.details["errors"][0]["path"] == ["products"]
    assert [(s.available, s.maximum, s.restore_rate) for s in seen] == [(Decimal("998"), Decimal("1000"),
                                                                         Decimal("50"))]


# -- webhooks ----------------------------------------------------------------------------------------------------
def test_webhook_registration_user_error_is_refused_with_shopifys_field_and_message():
    fake = PublishedShopify({
        "WebhookSubscriptions": raw("webhookSubscriptions_empty_shopify_app_react_router_mock.json"),
        "WebhookSubscriptionCreate": raw("webhookSubscriptionCreate_user_error_shopify_app_react_router_mock.json")})
    with pytest.raises(ChannelRejected) as err:
        client(fake).ensure_webhooks("https://retailflow.example/intake/shopify", topics=("ORDERS_CREATE",))
    assert str(err.value) == ("Shopify webhookSubscriptionCreate ORDERS_CREATE: "
                              "webhookSubscriptionCreate.webhookSubscription: Webhook topic is invalid")
    assert err.value.details["user_errors"] == [{"field": ["webhookSubscriptionCreate", "webhookSubscription"],
                                                 "message": "Webhook topic is invalid"}]


def test_webhook_registration_against_the_published_answers_and_request():
    fake = PublishedShopify({
        "WebhookSubscriptions": raw("webhookSubscriptions_empty_shopify_app_react_router_mock.json"),
        "WebhookSubscriptionCreate": envelope(published("webhookSubscriptionCreate_response_2026-07.json"))})
    outcome = client(fake).ensure_webhooks("https://example.org/endpoint")
    assert outcome == dict.fromkeys(sg.WEBHOOK_TOPICS, "created")
    sent = fake.variables("WebhookSubscriptionCreate")
    example = published("webhookSubscriptionCreate_variables_2026-07.json")
    assert sent["webhookSubscription"]["uri"] == example["webhookSubscription"]["uri"]  # 2026: `uri`, not callbackUrl
    assert set(sent) == set(example)
    assert set(sent["webhookSubscription"]) - set(example["webhookSubscription"]) == {"format"}


# -- inventory ---------------------------------------------------------------------------------------------------
def test_inventory_compare_and_swap_write_matches_the_published_request_and_accepts_its_answer(monkeypatch):
    """The 2026-07 example sets 42 available where Shopify counted 1. The client's own reads (the SKU's inventory
    item, the current count) are stubbed with the published request's values: no answer of Shopify is invented."""
    example = published("inventorySetQuantities_idempotent_cas_variables_2026-07.json")
    quantity = example["input"]["quantities"][0]
    fake = PublishedShopify({"InventorySet": envelope(published(
        "inventorySetQuantities_idempotent_cas_response_2026-07.json"))})
    shop = client(fake, location_id=quantity["locationId"])
    monkeypatch.setattr(shop, "inventory_item_id", lambda sku: quantity["inventoryItemId"])
    monkeypatch.setattr(shop, "available", lambda sku: quantity["changeFromQuantity"])
    shop.publish_availability("shopify", "SKU-1", quantity["quantity"], key="avail-1")  # answer: no userErrors

    sent = fake.variables("InventorySet")
    assert sent["input"]["quantities"] == example["input"]["quantities"]
    assert {k: sent["input"][k] for k in ("name", "reason")} == {k: example["input"][k] for k in ("name", "reason")}
    assert set(sent["input"]) == set(example["input"])
    assert isinstance(sent["key"], str) and sent["key"]  # the @idempotent key (the example's `idempotencyKey`)
    assert fake.ops() == ["InventorySet"]


def test_the_published_inventory_answer_carries_no_quantity_after_change():
    """As published, `quantityAfterChange` is null in both changes even though it is selected: nothing may rely
    on it (the client does not; it logs the target it set)."""
    answer = published("inventorySetQuantities_idempotent_cas_response_2026-07.json")["inventorySetQuantities"]
    assert [c["quantityAfterChange"] for c in answer["inventoryAdjustmentGroup"]["changes"]] == [None, None]
    assert [c["delta"] for c in answer["inventoryAdjustmentGroup"]["changes"]] == [41, 41]  # 42 − 1


# -- prices ------------------------------------------------------------------------------------------------------
def test_price_update_sends_the_published_ids_and_accepts_the_published_answer(monkeypatch):
    answer = published("productVariantsBulkUpdate_metafields_response_2026-01.json")
    product = answer["productVariantsBulkUpdate"]["product"]["id"]
    variant = answer["productVariantsBulkUpdate"]["productVariants"][0]["id"]
    fake = PublishedShopify({"PriceUpdate": envelope(answer)})
    shop = client(fake)
    # the SKU lookup (no published answer) stubbed with the published ids
    monkeypatch.setattr(shop, "variant", lambda sku: {"id": variant, "product": {"id": product}})
    shop.publish_price("shopify", "SKU-1", Money.of("24.90", "USD"))
    assert fake.variables("PriceUpdate") == {"productId": product,
                                             "variants": [{"id": variant, "price": "24.90", "compareAtPrice": None}]}


# -- cancel ------------------------------------------------------------------------------------------------------
def test_cancel_of_the_published_order_sends_the_published_arguments_and_accepts_the_job():
    """Order 148977776 is both the order of the docs' `order` aliases example (not cancelled: no cancelledAt) and
    the order the docs' orderCancel example cancels; the alias `order1` is served as `order`."""
    order = published("order_aliases_response_2026-01.json")["order1"]
    example = published("orderCancel_variables_2026-01.json")
    fake = PublishedShopify({"OrderCancelled": envelope({"order": order}),
                             "OrderCancel": envelope(published("orderCancel_response_2026-01.json"))})
    client(fake).notify_cancelled("shopify", "148977776", example["staffNote"])
    assert fake.ops() == ["OrderCancelled", "OrderCancel"]
    sent = fake.variables("OrderCancel")
    assert sent["orderId"] == example["orderId"]
    assert sent["staffNote"] == example["staffNote"]
    assert sent["reason"] == "OTHER" and set(sent) <= set(example)


# -- refunds -----------------------------------------------------------------------------------------------------
def refund(total: str, *, order: str = "1073460046", line: str = "1071823266", quantity: int = 1) -> Refund:
    zero = Money.zero("USD")
    return Refund(refund_key="RMA-1", channel="shopify", external_order_id=order, currency="USD",
                  lines=[RefundLine(line_id=line, quantity=quantity, amount=Money.of(total, "USD"), tax=zero)],
                  shipping=zero, tax=zero, fees_kept=zero)


def test_a_suggested_refund_that_offers_nothing_back_to_the_payment_is_refused_before_refund_create():
    """The docs' suggestedRefund with `refundMethodAllocation: STORE_CREDIT`: the one suggested transaction is
    0.0 (the 20.0 goes to store credit). The platform's refund of 20.00 is refused; refundCreate is not sent."""
    fake = PublishedShopify({"RefundState": envelope(published(
        "order_suggestedRefund_store_credit_response_2026-01.json"))})
    with pytest.raises(ChannelRejected, match="more than Shopify can refund"):
        client(fake).refund(refund("20.00"))
    assert fake.ops() == ["RefundState"]
    assert fake.variables("RefundState")["refundLineItems"] == [
        {"lineItemId": "gid://shopify/LineItem/1071823266", "quantity": 1, "restockType": "NO_RESTOCK"}]


def test_our_refund_input_uses_the_published_refund_input_fields():
    example = published("refundCreate_note_transactions_variables_2026-01.json")["input"]
    shipping = published("refundCreate_shipping_variables_2026-01.json")["input"]
    body = sg.refund_input(refund("0", order="734509473", line="25746870", quantity=2),
                           "gid://shopify/Order/734509473", None)
    # `notify` is RefundInput's own field (schema), the docs' examples leave it out
    assert set(body) - set(example) - set(shipping) == {"notify"}
    assert set(body["refundLineItems"][0]) - set(example["refundLineItems"][0]) == {"restockType"}
    assert body["refundLineItems"][0]["lineItemId"] == example["refundLineItems"][0]["lineItemId"]
    # the transaction the client builds has exactly the published transaction's fields and values; the suggestion
    # it is built from is made of that published transaction's own values (no published suggestion has shopMoney)
    suggested = {"suggestedTransactions": [{"gateway": "foo", "kind": "SUGGESTED_REFUND",
                                            "parentTransaction": {"id": example["transactions"][0]["parentId"]},
                                            "amountSet": {"shopMoney": {"amount": "10.0", "currencyCode": "USD"}}}]}
    body = sg.refund_input(refund("10.0", order="734509473", line="25746870", quantity=2),
                           "gid://shopify/Order/734509473", suggested)
    [ours], [theirs] = body["transactions"], example["transactions"]
    assert set(ours) == set(theirs)
    assert {k: v for k, v in ours.items() if k != "amount"} == {k: v for k, v in theirs.items() if k != "amount"}
    assert Decimal(ours["amount"]) == Decimal(theirs["amount"])  # "10.00" sent for the example's "10.0"


def test_the_published_refund_create_answer_passes():
    fake = PublishedShopify({"RefundCreate": envelope(published("refundCreate_note_transactions_response_2026-01.json"))})
    data = client(fake).execute(sg.REFUND_CREATE, {"input": published(
        "refundCreate_note_transactions_variables_2026-01.json")["input"]})
    sg._user_errors(data["refundCreate"], "refundCreate")  # no userErrors: nothing raised
    assert data["refundCreate"]["refund"]["note"] == "Want to exchange for a different item"


def test_suggested_refund_amounts_are_in_the_shop_currency_and_the_presentment_one_differs():
    """The docs' suggestedRefund of order 469306983: 8.26 USD in the shop's money, 7.0 EUR as the buyer paid.
    The client reads both (REFUND_STATE): the platform's amount is in the shop's money, the transactions are sent
    in the buyer's (`RefundInput.currency`, at the transaction's own rate)."""
    subtotal = published("order_suggestedRefund_subtotal_response_2026-01.json")["order"]["suggestedRefund"][
        "subtotalSet"]
    assert Decimal(subtotal["shopMoney"]["amount"]) == Decimal("8.26")
    assert subtotal["presentmentMoney"]["currencyCode"] != subtotal["shopMoney"]["currencyCode"]
    assert "order.suggestedRefund.suggestedTransactions.amountSet.shopMoney.amount" in selected(sg.REFUND_STATE)
    assert "order.suggestedRefund.suggestedTransactions.amountSet.presentmentMoney.amount" in selected(sg.REFUND_STATE)


# -- orders ------------------------------------------------------------------------------------------------------
def nodes(connection: dict) -> dict:
    """A published `edges { node }` page as the `nodes` page our query asks for (GraphQL's `nodes` is the edges'
    nodes, in order); `pageInfo` kept."""
    out: dict[str, Any] = {"nodes": [e["node"] for e in connection["edges"]]}
    if "pageInfo" in connection:
        out["pageInfo"] = connection["pageInfo"]
    return out


def test_the_feed_reads_the_published_orders_page():
    """The docs' "orders updated after December 1, 2019" (ids and updatedAt only: no status, so the feed waits)."""
    page = nodes(published("orders_updated_after_response_2026-01.json")["orders"])
    fake = PublishedShopify({"OrdersPage": envelope({"orders": page})})
    result = client(fake).feed_page(datetime(2019, 12, 1, tzinfo=UTC))
    assert [o.external_order_id for o in result.orders] == [
        "158040885", "199007853", "212949620", "294238686", "316002265", "459506686", "634584900", "744797037",
        "1001810659", "1021030140"]
    assert {o.last_update_date for o in result.orders} == {datetime(2024, 1, 1, 12, 34, 43, tzinfo=UTC)}
    assert {o.action for o in result.orders} == {FeedAction.WAIT}
    assert result.next_token is None  # no pageInfo selected in the example: treated as the last page
    assert fake.variables("OrdersPage")["query"] == "updated_at:>='2019-12-01T00:00:00+00:00'"


def test_the_feed_follows_the_published_end_cursor():
    info = published("orders_first10_pagination_response_2026-01.json")["orders"]["pageInfo"]
    page = {"nodes": [], "pageInfo": info}
    result = client(PublishedShopify({"OrdersPage": envelope({"orders": page})})).feed_page(None)
    assert info["hasNextPage"] is True
    assert result.next_token == info["endCursor"]


def test_published_paid_unfulfilled_orders_are_started():
    for edge in published("orders_first5_details_response_2026-01.json")["orders"]["edges"]:
        node = edge["node"]
        assert (node["displayFinancialStatus"], node["displayFulfillmentStatus"]) == ("PAID", "UNFULFILLED")
        assert feed_action(node) is FeedAction.START


def test_the_published_order_total_reaches_the_webhook_shape_exactly():
    order = published("order_aliases_response_2026-01.json")["order1"]
    shaped = order_as_webhook(order)
    assert shaped["id"] == "148977776"
    assert shaped["total_price_set"] == {"shop_money": {"amount": "11.5", "currency_code": "USD"}}
    assert Decimal(shaped["total_price"]) == Decimal("11.50")
    assert (shaped["customer"]["first_name"], shaped["customer"]["last_name"]) == ("Bob", "Bobsen")


def test_a_published_order_without_currency_and_lines_is_unmappable_not_an_empty_order():
    """No published GraphQL order carries the fields an order needs (currencyCode, priced line items): the
    docs' `order` example (order1) is refused with the reason, not turned into an order of nothing."""
    order = published("order_aliases_response_2026-01.json")["order1"]
    fake = PublishedShopify({"Order": envelope({"order": order})})
    with pytest.raises(UnmappableOrder, match="currency"):
        client(fake).fetch_order("148977776")
    assert fake.variables("Order")["id"] == "gid://shopify/Order/148977776"


def test_the_fields_our_order_mapping_needs_are_all_selected():
    """What order_as_webhook reads, against ORDER's selection (the published pages show each of these on
    `Order`/`LineItem`; none of their examples selects them all at once)."""
    paths = selected(sg.ORDER)
    for field in ("order.currencyCode", "order.taxesIncluded", "order.totalPriceSet.shopMoney.amount",
                  "order.lineItems.nodes.originalUnitPriceSet.shopMoney.amount", "order.lineItems.nodes.sku",
                  "order.lineItems.nodes.taxLines.priceSet.shopMoney.amount",
                  "order.lineItems.nodes.discountAllocations.allocatedAmountSet.shopMoney.amount",
                  "order.shippingLines.nodes.originalPriceSet.shopMoney.amount"):
        assert field in paths, field
    # every field the docs' order example answers (order1) that we also map is one we select
    answered_paths = {"order." + p for p in answered(published("order_aliases_response_2026-01.json")["order1"])}
    assert answered_paths <= paths


# -- every document against Shopify's published Admin schema ---------------------------------------------------------
# Shopify's own introspection of the GraphQL Admin API 2025-01 (Shopify/dev-mcp, data/admin_schema_2025-01.json.gz,
# SOURCES.md): the newest schema Shopify has published as a file. Each document the clients send validates against
# it once the three documented 2026 changes are taken back out (the only differences allowed):
#   * `inventorySetQuantities … @idempotent(key:)` (2026-04: idempotency keys on inventory mutations);
#   * `orderCancel(refundMethod: …)` (2026-01: replaces the required `refund: Boolean!`);
#   * `WebhookSubscription.uri` / `WebhookSubscriptionInput.uri` (2025-04: replaces `callbackUrl`).
def _published_schema():
    import gzip

    import graphql

    raw = json.loads(gzip.decompress(fixture_bytes("shopify", "graphql/admin_schema_2025-01.json.gz")))
    schema = graphql.build_client_schema(raw.get("data", raw))
    schema._validation_errors = []  # Shopify's schema breaks one of graphql-core's deprecation rules; not ours
    return schema


def _as_2025_01(doc: str) -> tuple[str, set[str]]:
    """The document with the 2026 changes taken back out, and which ones it had."""
    import re

    used, out = set(), doc
    if "@idempotent(" in out:
        used.add("idempotent")
        out = re.sub(r"\s*@idempotent\(key: \$\w+\)", "", out).replace(", $key: String!", "")
    if "refundMethod:" in out:
        used.add("refundMethod")
        out = out.replace("refundMethod: {originalPaymentMethodsRefund: false}", "refund: false")
    if re.search(r"\buri\b", out):
        used.add("uri")
        out = re.sub(r"\buri\b", "callbackUrl", out)
    return out, used


def test_every_document_validates_against_shopifys_published_admin_schema():
    import graphql

    from adapters.marketplace import shopify_payouts_graphql as payouts

    schema = _published_schema()
    documents = {name: value for module in (sg, payouts) for name, value in vars(module).items()
                 if isinstance(value, str) and re.match(r"\s*(query|mutation) \w+", value)}
    assert {"FULFILLMENT_STATE", "FULFILLMENT_ORDER_LINES", "FULFILLMENT_CREATE", "ORDER_CANCEL", "REFUND_STATE",
            "REFUND_CREATE", "INVENTORY_SET", "PRICE_UPDATE", "ORDER", "ORDERS_PAGE", "WEBHOOK_SUBSCRIPTION_CREATE",
            "PAYOUTS", "BALANCE_TRANSACTIONS"} <= set(documents)
    changes: dict[str, set[str]] = {}
    for name, doc in documents.items():
        older, used = _as_2025_01(doc)
        errors = graphql.validate(schema, graphql.parse(older))
        assert not errors, (name, [e.message for e in errors])
        if used:
            changes[name] = used
    assert changes == {"INVENTORY_SET": {"idempotent"}, "ORDER_CANCEL": {"refundMethod"},
                       "WEBHOOK_SUBSCRIPTIONS": {"uri"}, "WEBHOOK_SUBSCRIPTION_CREATE": {"uri"}}
