"""ERPNext adapter contract: against the published Frappe/ERPNext payloads (tests/fixtures/erpnext, copied
unedited) and against the sandbox, including the fault modes that matter for creates (retry without duplicates)."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import structlog
from pydantic import SecretStr

import adapters.erp.erpnext as erpnext_mod
from adapters.erp.erpnext import ErpNext, split_rows
from adapters.http import VendorRateLimited, VendorUnavailable
from canonical.errors import CannotCancel, OutOfStock, UnknownSku
from canonical.finance import JournalConflict, JournalDimensions, JournalEntry, JournalLine
from canonical.money import Money
from canonical.order import Order, Shipment, TaxQuote, TaxQuoteLine
from canonical.returns import CreditNote, CreditNoteLine, Disposition, DispositionLine, ReturnRequest
from canonical.vendor_errors import VendorAuthFailed, VendorRejected
from sandbox.common import ServedApp
from sandbox.erpnext import create_app
from tests.contract.shapes import assert_keys_within, assert_shape

FIX = Path(__file__).parent.parent / "fixtures" / "erpnext"
API_KEY, API_SECRET = "rf-key", "erpnext-secret-do-not-log"
WH = "Stores - RD"
REF = "order:shopify:1001"


def fixture(name: str) -> dict:
    return json.loads((FIX / name).read_text())


def order(quantity_a: int = 3) -> Order:
    return Order.model_validate({
        "channel": "shopify", "external_order_id": "1001", "created_at": datetime.now(UTC).isoformat(),
        "currency": "USD", "taxes_included": False, "customer": {"email": "c@example.com"},
        "shipping_address": {"line1": "1 Main St", "city": "Irvine", "region": "CA", "postal_code": "92615",
                             "country": "US"},
        "lines": [{"line_id": "L1", "channel_sku": "SKU-A", "quantity": quantity_a,
                   "unit_price": {"amount": "33.34", "currency": "USD"}},
                  {"line_id": "L2", "channel_sku": "CH-B", "quantity": 1, "unit_price": {"amount": "10", "currency": "USD"}}],
        "shipping_lines": [{"title": "Ground", "price": {"amount": "5", "currency": "USD"}}]})


def tax_for(o: Order) -> TaxQuote:
    lines = [TaxQuoteLine(line_id=x.line_id, taxable_amount=x.net, rate="0.1", tax=Money.of(x.net.amount / 10, "USD"))
             for x in o.lines]
    ship = Money.of("0.50", "USD")
    total = sum((x.tax for x in lines), Money.zero("USD")) + ship
    return TaxQuote(transaction_code=REF, currency="USD", jurisdiction="US-CA", taxes_included=False, lines=lines,
                    shipping_tax=ship, total_tax=total)


def erp_on(base_url: str, secret: str = API_SECRET, timeout: float = 5.0, transport=None) -> ErpNext:
    return ErpNext(base_url, API_KEY, SecretStr(secret), company="Retailflow Demo", warehouse=WH,
                   tax_account="Sales Tax Payable - RD", shipping_account="Freight - RD",
                   account_map={"1010": "1010 - Bank - RD"}, timeout=timeout, transport=transport)


# -- published payloads ------------------------------------------------------------------------------------
def test_split_rows_add_up_exactly() -> None:
    from decimal import Decimal
    assert split_rows(Decimal("100.02"), 3, "USD") == [(3, Decimal("33.34"))]
    rows = split_rows(Decimal("10.00"), 3, "USD")
    assert rows == [(2, Decimal("3.33")), (1, Decimal("3.34"))] and sum(q * r for q, r in rows) == Decimal("10.00")


def test_sales_order_body_matches_the_published_body() -> None:
    published = fixture("sales_order_POST_api_resource_body_erpnext_docs.json")
    erp = erp_on("http://erp.invalid")
    o = order()
    from canonical.fulfillment import ResolvedLine
    resolved = [ResolvedLine(line_id="L1", channel_sku="SKU-A", item_code="SKU-A", quantity=3),
                ResolvedLine(line_id="L2", channel_sku="CH-B", item_code="ITEM-B", quantity=1)]
    body = {"doctype": "Sales Order", **erp.sales_order_body(REF, o, resolved, tax_for(o))}
    extra = {"company", "transaction_date", "delivery_date", "currency", "po_no", "po_date", "set_warehouse",
             "taxes", "warehouse", "retailflow_line_id", "retailflow_tax", "charge_type", "account_head",
             "description", "tax_amount", "customer_item_code"}
    assert_keys_within(body, published, extra)
    for key in ("doctype", "customer", "items"):
        assert key in body
    for row in body["items"]:
        assert_shape({k: v for k, v in row.items()}, {k: v for k, v in published["items"][0].items()
                                                      if k != "delivery_warehouse"})
        assert row["warehouse"] == WH  # ERPNext's field is `warehouse`, labelled "Delivery Warehouse"


def test_make_delivery_note_body_and_create_response_parse() -> None:
    sent = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.url.path.endswith(".make_delivery_note"):
            return httpx.Response(200, json={"message": {"items": [{"item_code": "Y", "qty": 1, "rate": 1,
                                                                    "retailflow_line_id": "L1"}]}})
        if request.method == "POST":
            return httpx.Response(200, json=fixture("frappe_rest_POST_resource_response_example_ToDo.json"))
        if "/Sales%20Order/" in str(request.url):
            return httpx.Response(200, json={"data": {"name": "SO-2022-00001", "docstatus": 1, "items": []}})
        if "Sales%20Order" in str(request.url):
            return httpx.Response(200, json={"data": [{"name": "SO-2022-00001"}]})
        return httpx.Response(200, json={"data": []})

    erp = erp_on("http://erp.invalid", transport=httpx.MockTransport(answer))
    from canonical.fulfillment import ResolvedLine
    shipment = Shipment(shipment_id="S1", shipped_at=datetime.now(UTC),
                        lines=[{"line_id": "L1", "channel_sku": "Y", "quantity": 1}])
    erp.post_delivery(REF, shipment, [ResolvedLine(line_id="L1", channel_sku="Y", item_code="Y", quantity=1)])
    method_call = next(r for r in sent if r.url.path.endswith(".make_delivery_note"))
    published = fixture("make_delivery_note_POST_body_erpnext_docs.json")
    body = json.loads(method_call.content)
    assert set(body) == set(published) and body["source_name"] == "SO-2022-00001"
    assert method_call.headers["Authorization"] == f"token {API_KEY}:{API_SECRET}"
    created = erp.insert("ToDo", {"description": "New ToDo"}, submit=False)  # the published create response
    assert created["name"] == "af2e2d0e33" and created["docstatus"] == 0


# -- the sandbox ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served():
    with ServedApp(create_app(api_key=API_KEY, api_secret=API_SECRET)) as s:
        yield s


@pytest.fixture
def sandbox(served):
    httpx.post(f"{served.base_url}/_admin/reset").raise_for_status()
    erp = erp_on(served.base_url)
    erp.insert("Item", {"item_code": "SKU-A"}, submit=False)
    erp.insert("Item", {"item_code": "ITEM-B", "customer_items": [{"customer_name": "shopify", "ref_code": "CH-B"}]},
               submit=False)
    erp.insert("Stock Entry", {"stock_entry_type": "Material Receipt", "company": "Retailflow Demo", "items": [
        {"item_code": "SKU-A", "qty": 10, "t_warehouse": WH}, {"item_code": "ITEM-B", "qty": 2, "t_warehouse": WH}]})
    return served


def faults(sandbox, spec: dict) -> None:
    httpx.put(f"{sandbox.base_url}/_admin/faults", json={"faults": spec}).raise_for_status()


def test_sandbox_accepts_the_published_bodies_and_answers_in_frappe_shape(sandbox) -> None:
    headers = {"Authorization": f"token {API_KEY}:{API_SECRET}"}
    base = sandbox.base_url
    httpx.post(f"{base}/api/resource/Item", json={"item_code": "Mobile Display"}, headers=headers).raise_for_status()
    httpx.post(f"{base}/api/resource/Stock Entry", headers=headers, json={
        "stock_entry_type": "Material Receipt", "docstatus": 1,
        "items": [{"item_code": "Mobile Display", "qty": 10, "t_warehouse": "Stores - GTPL"}]}).raise_for_status()
    body = {**fixture("sales_order_POST_api_resource_body_erpnext_docs.json"), "docstatus": 1}
    r = httpx.post(f"{base}/api/resource/Sales Order", json=body, headers=headers)
    assert r.status_code == 200
    published = fixture("frappe_rest_POST_resource_response_example_ToDo.json")
    meta = {k: published["data"][k] for k in ("name", "owner", "creation", "modified", "modified_by", "idx",
                                              "docstatus", "doctype")}
    assert_shape(r.json(), {"data": meta})
    so = r.json()["data"]
    assert so["items"][0]["warehouse"] == "Stores - GTPL" and so["grand_total"] == 20000
    dn_body = {**fixture("make_delivery_note_POST_body_erpnext_docs.json"), "source_name": so["name"]}
    dn = httpx.post(f"{base}/api/method/erpnext.selling.doctype.sales_order.sales_order.make_delivery_note",
                    json=dn_body, headers=headers)
    assert dn.status_code == 200 and dn.json()["message"]["items"][0]["qty"] == 10
    missing = httpx.get(f"{base}/api/resource/Sales Order/SO-2022-00001", headers=headers)
    assert missing.status_code == 404 and missing.json()["exc_type"] == "DoesNotExistError"
    assert httpx.get(f"{base}/api/resource/Item", headers={"Authorization": "token x:y"}).status_code == 401
    bad = httpx.post(f"{base}/api/resource/Sales Order", json={"customer": "X", "items": [{"item_code": "nope",
                                                                                           "qty": 1}]},
                     headers=headers)
    assert bad.status_code == 417 and bad.json()["exc_type"] == "LinkValidationError" and "exception" in bad.json()


def test_order_lifecycle_against_the_sandbox(sandbox) -> None:
    erp = erp_on(sandbox.base_url)
    o = order()
    resolved = erp.resolve_skus(o)
    assert [(r.line_id, r.item_code) for r in resolved] == [("L1", "SKU-A"), ("L2", "ITEM-B")]
    # the reverse, for publishing availability: the channel customer's ref code, else the item code itself
    assert erp.channel_skus_of("shopify", "ITEM-B") == ["CH-B"]
    assert erp.channel_skus_of("shopify", "SKU-A") == ["SKU-A"]
    with pytest.raises(UnknownSku, match="NOPE"):
        erp.resolve_skus(Order.model_validate({**o.model_dump(mode="json"), "lines": [
            {**o.lines[0].model_dump(mode="json"), "channel_sku": "NOPE"}]}))
    with pytest.raises(OutOfStock, match="SKU-A short by 1"):
        erp.reserve(REF, [resolved[0].model_copy(update={"quantity": 11})], allow_backorder=False)
    res = erp.reserve(REF, resolved, allow_backorder=False)
    assert {(x.item_code, x.quantity) for x in res.lines} == {("SKU-A", 3), ("ITEM-B", 1)}
    tax = tax_for(o)
    so = erp.create_sales_order(REF, o, resolved, tax)
    assert erp.create_sales_order(REF, o, resolved, tax) == so  # looked up by po_no, not created twice
    doc = erp.get_doc("Sales Order", so.erp_sales_order_id)
    assert str(doc["grand_total"]) == str(o.computed_total.amount + tax.total_tax.amount)
    assert erp.bins(["SKU-A"])["SKU-A"]["reserved_qty"] == 3
    # cancel one unit of L1 before shipment: the order and its reserved stock shrink
    smaller = order(quantity_a=2)
    resolved2 = erp.resolve_skus(smaller)
    assert erp.amend_sales_order(REF, smaller, resolved2, tax_for(smaller)) is True
    assert erp.amend_sales_order(REF, smaller, resolved2, tax_for(smaller)) is False
    assert erp.reduce_reservation(REF, resolved2) == 0  # the amended order already holds only 2
    assert erp.bins(["SKU-A"])["SKU-A"]["reserved_qty"] == 2
    shipment = Shipment(shipment_id="S1", shipped_at=datetime.now(UTC), tracking_number="1Z999",
                        lines=[{"line_id": "L1", "channel_sku": "SKU-A", "quantity": 2},
                               {"line_id": "L2", "channel_sku": "CH-B", "quantity": 1}])
    erp.post_delivery(REF, shipment, resolved2)
    erp.post_delivery(REF, shipment, resolved2)  # idempotent by shipment
    assert erp.bins(["SKU-A"])["SKU-A"]["actual_qty"] == 8 and erp.bins(["SKU-A"])["SKU-A"]["reserved_qty"] == 0
    invoice = erp.create_invoice(REF)
    assert erp.create_invoice(REF) == invoice
    assert invoice.total == smaller.computed_total + tax_for(smaller).total_tax
    with pytest.raises(CannotCancel):
        erp.cancel_sales_order(REF)
    # a return of one unit of L1
    req = ReturnRequest(channel="shopify", return_id="R1", external_order_id="1001", requested_at=datetime.now(UTC),
                        lines=[{"line_id": "L1", "quantity": 1}])
    auth = erp.authorize_return(req, workflow_id="return:shopify:R1", return_window_days=30)
    line = auth.lines[0]
    assert (line.item_code, line.ordered_quantity, line.line_net) == ("SKU-A", 2, Money.of("66.68", "USD"))
    net, tx = line.share(1)
    note = CreditNote.build("return:shopify:R1", REF, "USD", [CreditNoteLine(line_id="L1", item_code="SKU-A",
                                                                               quantity=1, net=net, tax=tx)])
    booked = erp.create_credit_note(note)
    assert booked.credit_note_id and erp.create_credit_note(note).credit_note_id == booked.credit_note_id
    again = ReturnRequest(channel="shopify", return_id="R2", external_order_id="1001", requested_at=datetime.now(UTC),
                          lines=[{"line_id": "L1", "quantity": 2}])
    with pytest.raises(Exception, match="1 returnable"):
        erp.authorize_return(again, workflow_id="return:shopify:R2", return_window_days=30)
    assert erp.restock("receipt:R1:1", [DispositionLine(line_id="L1", item_code="SKU-A", quantity=1,
                                                        disposition=Disposition.RESTOCK)]) == 1
    assert erp.restock("receipt:R1:1", [DispositionLine(line_id="L1", item_code="SKU-A", quantity=1,
                                                        disposition=Disposition.RESTOCK)]) == 0
    assert erp.bins(["SKU-A"])["SKU-A"]["actual_qty"] == 9
    assert erp.cancel_credit_note("return:shopify:R1") is True and erp.cancel_credit_note("return:shopify:R1") is False
    assert erp.authorize_return(again, workflow_id="return:shopify:R2", return_window_days=30).lines[0].quantity == 2


def test_stock_snapshot_is_every_bin_of_the_warehouse_as_the_ledger_location(sandbox) -> None:
    """What drift reconciliation compares the platform ledger with, so the ledger follows ERPNext's stock."""
    from adapters.inventory.base import StockSnapshotSource

    erp = erp_on(sandbox.base_url)
    assert isinstance(erp, StockSnapshotSource)
    before = {(x.sku, x.location): x.on_hand for x in erp.stock_snapshot()}
    assert before == {("ITEM-B", "MAIN"): 2, ("SKU-A", "MAIN"): 10}
    erp.insert("Stock Entry", {"stock_entry_type": "Material Issue", "company": "Retailflow Demo", "items": [
        {"item_code": "SKU-A", "qty": 3, "s_warehouse": WH}]})
    assert {x.sku: x.on_hand for x in erp.stock_snapshot()} == {"ITEM-B": 2, "SKU-A": 7}


def test_compensation_and_journals_against_the_sandbox(sandbox) -> None:
    erp = erp_on(sandbox.base_url)
    o = order()
    resolved = erp.resolve_skus(o)
    erp.create_sales_order(REF, o, resolved, tax_for(o))
    assert erp.release_reservation(REF) is True and erp.release_reservation(REF) is False  # Closed
    assert erp.bins(["SKU-A"])["SKU-A"]["reserved_qty"] == 0
    assert erp.cancel_sales_order(REF) is True and erp.cancel_sales_order(REF) is False
    assert erp.release_reservation("order:shopify:never") is False
    dims = JournalDimensions(currency="USD", channel="amazon")
    journal = JournalEntry(external_ref="settlement:amazon:1", posting_date=date(2025, 1, 31), currency="USD",
                           lines=[JournalLine(account="1010", debit="90.00", dimensions=dims),
                                  JournalLine(account="1150", credit="90.00", dimensions=dims)])
    jid = erp.post_journal(journal)
    assert erp.post_journal(journal) == jid
    assert erp.get_doc("Journal Entry", jid)["accounts"][0]["account"] == "1010 - Bank - RD"
    changed = journal.model_copy(update={"lines": [JournalLine(account="1010", debit="91.00", dimensions=dims),
                                                   JournalLine(account="1150", credit="91.00", dimensions=dims)]})
    with pytest.raises(JournalConflict):
        erp.post_journal(changed)


def test_pagination_reads_every_page(sandbox, monkeypatch) -> None:
    erp = erp_on(sandbox.base_url)
    for i in range(5):
        erp.insert("Item", {"item_code": f"PAGE-{i}"}, submit=False)
    monkeypatch.setattr(erpnext_mod, "PAGE", 2)
    rows = erp.list_docs("Item", [["item_code", "like", "PAGE-%"]], ["item_code"])
    assert [r["item_code"] for r in rows] == [f"PAGE-{i}" for i in range(5)]


def test_auth_failure_parks_and_secret_is_never_logged(sandbox) -> None:
    with pytest.raises(VendorAuthFailed):
        erp_on(sandbox.base_url, secret="wrong").resolve_skus(order())
    erp = erp_on(sandbox.base_url)
    faults(sandbox, {"*": {"error_rate": 1.0}})
    with structlog.testing.capture_logs() as logs, pytest.raises(VendorUnavailable):
        erp.resolve_skus(order())
    assert API_SECRET not in repr(logs) and API_SECRET not in repr(erp.http)
    faults(sandbox, {})
    with pytest.raises(VendorRejected, match="LinkValidationError"):
        erp.insert("Sales Order", {"customer": "x", "items": [{"item_code": "nope", "qty": 1, "rate": 1}]})


# -- fault modes -------------------------------------------------------------------------------------------
def test_latency_and_429(sandbox) -> None:
    erp = erp_on(sandbox.base_url)
    faults(sandbox, {"GET /api/resource/{doctype}": {"latency_ms": 250}})
    started = time.monotonic()
    erp.resolve_skus(order())
    assert time.monotonic() - started >= 0.25
    faults(sandbox, {"GET /api/resource/{doctype}": {"rate_limit_every": 1, "retry_after_seconds": 4}})
    with pytest.raises(VendorRateLimited) as err:
        erp.resolve_skus(order())
    assert err.value.next_retry_delay == timedelta(seconds=4) and err.value.non_retryable is False


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_on_create_is_retried_into_exactly_one_sales_order(sandbox, status) -> None:
    erp = erp_on(sandbox.base_url)
    o = order()
    resolved = erp.resolve_skus(o)
    faults(sandbox, {"POST /api/resource/{doctype}": {"error_rate": 1.0, "error_statuses": [status]}})
    with pytest.raises(VendorUnavailable) as err:
        erp.create_sales_order(REF, o, resolved, tax_for(o))
    assert err.value.status == status and err.value.non_retryable is False
    faults(sandbox, {"*": {"error_rate": 0.4}})
    for _attempt in range(30):  # the activity's RetryPolicy
        try:
            so = erp.create_sales_order(REF, o, resolved, tax_for(o))
            break
        except VendorUnavailable:
            continue
    faults(sandbox, {})
    assert [r["name"] for r in erp.list_docs("Sales Order", [["po_no", "=", REF]])] == [so.erp_sales_order_id]


def test_timeout_on_create_then_retry_finds_the_order(sandbox) -> None:
    erp = erp_on(sandbox.base_url, timeout=0.3)
    o = order()
    resolved = erp.resolve_skus(o)
    faults(sandbox, {"POST /api/resource/{doctype}": {"timeout_rate": 1.0, "timeout_seconds": 1.0}})
    with pytest.raises(VendorUnavailable) as err:
        erp.create_sales_order(REF, o, resolved, tax_for(o))
    assert err.value.type == "VendorTimeout"
    time.sleep(1.2)
    faults(sandbox, {})
    so = erp.create_sales_order(REF, o, resolved, tax_for(o))
    assert [r["name"] for r in erp.list_docs("Sales Order", [["po_no", "=", REF]])] == [so.erp_sales_order_id]


def test_outage_window(sandbox) -> None:
    erp = erp_on(sandbox.base_url)
    faults(sandbox, {"*": {"outage_until": (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
                           "retry_after_seconds": 20}})
    with pytest.raises(VendorUnavailable) as err:
        erp.resolve_skus(order())
    assert err.value.status == 503 and err.value.next_retry_delay == timedelta(seconds=20)
    faults(sandbox, {"*": {"outage_until": (datetime.now(UTC) - timedelta(seconds=1)).isoformat()}})
    assert len(erp.resolve_skus(order())) == 2


def test_settlement_lookups_against_the_sandbox(sandbox) -> None:
    """What the settlement store asks ERPNext (the ERP port's settlement methods), as typed facts."""
    from canonical.settlement_matching import BookedOrderTotal, ErpOrderFacts

    erp = erp_on(sandbox.base_url)
    o = order()
    erp.create_sales_order(REF, o, erp.resolve_skus(o), tax_for(o))
    found = erp.settlement_orders([REF, "order:shopify:never"])
    assert list(found) == [REF]
    so = found[REF]
    assert isinstance(so, ErpOrderFacts) and so.currency == "USD" and so.status != "cancelled"
    assert so.channel_skus == ["CH-B", "SKU-A"]
    assert so.created_at is not None and abs(so.created_at - datetime.now(UTC)) < timedelta(minutes=5)  # booked
    assert so.grand_total == o.lines_net.amount + o.shipping_net.amount + tax_for(o).total_tax.amount
    assert erp.settlement_credit_notes([REF]) == {}
    now = datetime.now(UTC)
    booked = erp.orders_booked_between("shopify", now - timedelta(days=1), now + timedelta(days=1), "USD")
    assert booked == [BookedOrderTotal(order_id="1001", grand_total=so.grand_total)]
    assert erp.orders_booked_between("shopify", now - timedelta(days=1), now + timedelta(days=1), "EUR") == []
    assert erp.cancel_sales_order(REF) is True
    assert erp.settlement_orders([REF])[REF].status == "cancelled"
