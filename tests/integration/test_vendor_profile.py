"""`retailflow dev --sandbox --profile vendors` end to end, over HTTP on loopback: every role on a vendor adapter
(Shopify and Amazon channels, ERPNext, AvaTax, ShipStation) talking to the sandboxes the dev stack serves.

Orders: a signed Shopify orders/create (the README's sample, and a new order the Shopify sandbox sends itself) and
an Amazon order found by the order poll (ChannelOrderPoll) → ERPNext sales order → AvaTax SalesInvoice → ShipStation order →
SHIP_NOTIFY → shipments fetched → ERPNext delivery note → fulfillment in Shopify / confirmShipment in Amazon →
ERPNext invoice → AvaTax commit. Returns: a Shopify return (refund on receipt), a Shopify refunds/create made by the
merchant, an Amazon return (refund before receipt) → ERPNext credit note (return Sales Invoice), AvaTax
ReturnInvoice, the channel's refund. Settlement: the Amazon sandbox settles what shipped and was refunded, the
platform downloads the report through the Reports API and reconciles it against ERPNext, posting a Journal Entry.
Every assertion on the outcome reads the vendors' side, through their APIs.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from retailflow.devstack import port_open
from runtime.settings import Settings
from tests.conftest import fixture_bytes
from tests.integration.conftest import free_port
from tests.integration.devproc import DevProcess, dev_process

pytestmark = pytest.mark.integration

SAMPLE_ID = "820982911946154508"
SAMPLE_LINE = "487817672276298554"  # aviator sunglasses, SKU2006-001 → SUN-AVIATOR
CENT = Decimal("0.01")


def database_url(engine) -> str:
    """The test database as a URL the dev process can use (PostgreSQL: its own schema, via libpq options)."""
    if engine.dialect.name != "postgresql":
        return engine.url.render_as_string(hide_password=False)
    with engine.connect() as conn:
        schema = conn.execute(text("SHOW search_path")).scalar_one()
    return engine.url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False)


class Vendors:
    """The sandboxes read through the vendors' own APIs, with the credentials the platform is configured with."""

    def __init__(self, ports: dict[str, int]) -> None:
        s = Settings()
        self.s = s
        self.url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        # no keep-alive: uvicorn closes an idle connection after 5 s, and a request racing that close is lost
        self.http = httpx.Client(timeout=20, limits=httpx.Limits(max_keepalive_connections=0))
        self.erp_auth = {"Authorization": f"token {s.erpnext_api_key}:{s.erpnext_api_secret.get_secret_value()}"}
        self.shop = f"{self.url['shopify']}/admin/api/{s.shopify_admin_api_version}"
        self.shop_auth = {"X-Shopify-Access-Token": s.shopify_admin_access_token.get_secret_value()}
        self._amazon_token: str | None = None

    def erp(self, doctype: str, filters: list, fields: list[str] | None = None) -> list[dict]:
        resp = self.http.get(f"{self.url['erpnext']}/api/resource/{doctype}", headers=self.erp_auth, params={
            "filters": json.dumps(filters), "fields": json.dumps(fields or ["*"]), "limit_page_length": 0})
        resp.raise_for_status()
        return resp.json()["data"]

    def erp_doc(self, doctype: str, name: str) -> dict:
        resp = self.http.get(f"{self.url['erpnext']}/api/resource/{doctype}/{name}", headers=self.erp_auth)
        resp.raise_for_status()
        return resp.json()["data"]

    def stock(self, item_code: str) -> Decimal:
        (b,) = self.erp("Bin", [["item_code", "=", item_code], ["warehouse", "=", self.s.erpnext_warehouse]])
        return Decimal(str(b["actual_qty"]))

    def avatax(self, code: str) -> dict:
        resp = self.http.get(f"{self.url['avatax']}/api/v2/companies/{self.s.avalara_company_code}/transactions/"
                             f"{code}", auth=(self.s.avalara_account_id, self.s.avalara_license_key.get_secret_value()))
        resp.raise_for_status()
        return resp.json()

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        """The shop's GraphQL Admin API (what the README's vendor-side checks read)."""
        resp = self.http.post(f"{self.shop}/graphql.json", headers=self.shop_auth,
                              json={"query": query, "variables": variables or {}})
        resp.raise_for_status()
        body = resp.json()
        assert not body.get("errors"), body
        return body["data"]

    def shopify(self, path: str, **kwargs: Any) -> dict:
        resp = self.http.request(kwargs.pop("method", "GET"), f"{self.shop}/{path}", headers=self.shop_auth, **kwargs)
        resp.raise_for_status()
        return resp.json()

    def shipstation(self, path: str, **params: Any) -> dict:
        resp = self.http.get(f"{self.url['shipstation']}{path}", params=params, auth=(
            self.s.shipstation_api_key.get_secret_value(), self.s.shipstation_api_secret.get_secret_value()))
        resp.raise_for_status()
        return resp.json()

    def amazon(self, path: str) -> dict:
        if self._amazon_token is None:
            self._amazon_token = self.http.post(f"{self.url['amazon']}/auth/o2/token", data={
                "grant_type": "refresh_token", "client_id": self.s.amazon_lwa_client_id,
                "client_secret": self.s.amazon_lwa_client_secret.get_secret_value(),
                "refresh_token": self.s.amazon_refresh_token.get_secret_value()}).json()["access_token"]
        resp = self.http.get(f"{self.url['amazon']}{path}", headers={"x-amz-access-token": self._amazon_token})
        resp.raise_for_status()
        return resp.json()

    def admin(self, name: str, path: str) -> dict:
        return self.http.get(f"{self.url[name]}{path}").json()


def wait_for(what: str, fetch, done, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fetch()
        if done(last):
            return last
        time.sleep(0.25)
    raise AssertionError(f"{what}: never done; last: {json.dumps(last, default=str)[:2000]}")


def api_json(dev: DevProcess, path: str) -> dict | None:
    resp = httpx.get(f"{dev.api}{path}", headers=dev.headers, timeout=10)
    return resp.json() if resp.status_code == 200 else None


def order_done(dev: DevProcess, channel: str, oid: str) -> dict:
    view = wait_for(f"order {channel}:{oid}", lambda: api_json(dev, f"/orders/{channel}/{oid}"),
                    lambda v: v is not None and v["status"] in ("completed", "needs_attention", "failed")
                    and (v["status"] != "completed" or v["run_status"] == "COMPLETED"))
    assert view["status"] == "completed", view.get("reason")
    return view


def return_status(dev: DevProcess, channel: str, return_id: str, wanted: set[str]) -> dict:
    view = wait_for(f"return {channel}:{return_id}", lambda: api_json(dev, f"/returns/{channel}/{return_id}"),
                    lambda v: v is not None and v["status"] in wanted | {"needs_attention", "failed"})
    assert view["status"] in wanted, view.get("reason")
    return view


def taxed_shopify_order() -> tuple[bytes, str, dict]:
    """The sample order as a new order (fresh ids) whose lines carry Kentucky's 6 % in Shopify's tax lines."""
    body = fixture_bytes("shopify", "webhook_orders_create_sample_v2024.json")
    for old in sorted(set(re.findall(rb'"id"\s*:\s*(\d{6,})', body)), key=len, reverse=True):
        body = re.sub(rb"\b" + old + rb"\b", str(secrets.randbelow(9 * 10**17) + 10**17).encode(), body)
    order = json.loads(body)
    taxes = Decimal(0)
    for li in order["line_items"]:
        tax = (Decimal(li["price"]) * li["quantity"] * Decimal("0.06")).quantize(CENT, ROUND_HALF_UP)
        li["tax_lines"] = [{"title": "KY State Tax", "rate": 0.06, "price": str(tax)}]
        taxes += tax
    total = Decimal(order["total_price"]) + taxes
    order["total_tax"], order["total_price"] = str(taxes), str(total)
    for field, value in (("total_tax_set", taxes), ("total_price_set", total)):
        order[field] = {k: {"amount": str(value), "currency_code": "USD"} for k in ("shop_money", "presentment_money")}
    order["created_at"] = datetime.now(UTC).isoformat()
    return json.dumps(order).encode(), str(order["id"]), order


# the default channel policies, with one-second publication windows
FAST_CHANNELS = {"shopify": {"locations": ["MAIN"], "low_stock_threshold": 5, "publish_window_seconds": 1},
                 "amazon": {"locations": ["MAIN"], "share": "0.5", "safety_stock": 2, "low_stock_threshold": 3,
                            "publish_window_seconds": 1}}


def test_vendor_profile_orders_returns_and_settlement(tmp_path, engine):
    sandbox_ports = {name: free_port() for name in ("avatax", "erpnext", "shopify", "amazon", "shipstation")}
    with dev_process(tmp_path, "--sandbox", "--profile", "vendors", database_url=database_url(engine),
                     RETAILFLOW_SANDBOX_PORTS=json.dumps(sandbox_ports), RETAILFLOW_SANDBOX_SHIP_AFTER_SECONDS="0.5",
                     RETAILFLOW_AMAZON_POLL_INTERVAL_SECONDS="1",
                     RETAILFLOW_INVENTORY_CHANNELS=json.dumps(FAST_CHANNELS)) as dev:
        v = Vendors(sandbox_ports)
        try:
            _run_flows(dev, v, engine)
        finally:
            v.http.close()
    assert dev.proc.returncode == 0, dev.output[-3000:]
    assert "dev.sandbox_seeded" in dev.output and "dev.stopped" in dev.output
    for port in [*dev.ports, *sandbox_ports.values()]:
        assert not port_open("127.0.0.1", port), f"port {port} still open after Ctrl-C"
    assert "Traceback" not in dev.output, dev.output[-5000:]


def _run_flows(dev: DevProcess, v: Vendors, engine) -> None:
    # -- three orders at once: the README's sample (the shop knows it: the dev stack seeded it), a new Shopify
    # order the shop sends itself, and an Amazon order the poll finds
    sent = dev.send("tests/fixtures/shopify/webhook_orders_create_sample_v2024.json")
    assert sent.returncode == 0 and '"duplicate": false' in sent.stdout, sent.stdout + sent.stderr
    body_b, oid_b, order_b = taxed_shopify_order()
    seeded = httpx.post(f"{v.url['shopify']}/_admin/orders", params={"notify": "true"}, content=body_b,
                        headers={"Content-Type": "application/json"}, timeout=20)
    assert seeded.status_code == 201, seeded.text
    hooks = v.admin("shopify", "/_admin/webhooks")["webhooks"]
    assert [(h["topic"], h["status"]) for h in hooks] == [("orders/create", 202)], hooks  # signed, taken
    amazon_id = f"113-{secrets.randbelow(9_000_000) + 1_000_000}-{secrets.randbelow(9_000_000) + 1_000_000}"
    placed = dev.sandbox("amazon-order", "--order-id", amazon_id, "--line", "AMZ-CASE-LEATHER:2:24.99",
                     "--line", "AMZ-AVIATOR-BLK:1:89.99")
    assert placed.returncode == 0, placed.stdout + placed.stderr

    views = {("shopify", SAMPLE_ID): order_done(dev, "shopify", SAMPLE_ID),
             ("shopify", oid_b): order_done(dev, "shopify", oid_b),
             ("amazon", amazon_id): order_done(dev, "amazon", amazon_id)}
    for (channel, oid), view in views.items():
        ref = f"order:{channel}:{oid}"
        # ERPNext: one submitted sales order, delivered and billed, a delivery note with the tracking, an invoice
        (so,) = v.erp("Sales Order", [["po_no", "=", ref], ["docstatus", "=", 1]])
        assert so["name"] == view["erp_sales_order_id"] and so["status"] == "Completed"
        assert so["per_delivered"] == 100 and so["per_billed"] == 100
        (shipment,) = view["shipments"]
        (dn,) = v.erp("Delivery Note", [["po_no", "=", ref]])
        assert dn["docstatus"] == 1 and dn["lr_no"] == shipment["tracking_number"]
        (inv,) = v.erp("Sales Invoice", [["retailflow_ref", "=", ref], ["is_return", "=", 0]])
        assert inv["name"] == view["invoice_id"] and inv["docstatus"] == 1
        assert Decimal(str(inv["grand_total"])) == Decimal(str(so["grand_total"]))
        # AvaTax: the order's SalesInvoice, committed, with the tax booked on the sales order
        tx = v.avatax(ref)
        assert (tx["type"], tx["status"]) == ("SalesInvoice", "Committed")
        tax_row = [t for t in v.erp_doc("Sales Order", so["name"])["taxes"]
                   if t["account_head"] == v.s.erpnext_tax_account]
        assert Decimal(str(tx["totalTax"])) == sum((Decimal(str(t["tax_amount"])) for t in tax_row), Decimal(0))
        assert Decimal(str(tx["totalTax"])) > 0
        # ShipStation: the order (orderKey = the workflow id) shipped; its shipment is the one the platform got
        (ss,) = v.shipstation("/orders", orderNumber=ref)["orders"]
        assert ss["orderKey"] == ref and ss["orderStatus"] == "shipped"
        (ss_ship,) = v.shipstation("/shipments", orderNumber=ref, includeShipmentItems="true")["shipments"]
        assert f"shipstation:{ss_ship['shipmentId']}" == shipment["shipment_id"]
        assert ss_ship["trackingNumber"] == shipment["tracking_number"]
        # the channel was told, with the tracking
        if channel == "shopify":
            (ful,) = v.shopify(f"orders/{oid}/fulfillments.json")["fulfillments"]
            assert ful["status"] == "success" and ful["tracking_number"] == shipment["tracking_number"]
            assert ful["tracking_company"] == ss_ship["carrierCode"]
            assert sorted(str(li["id"]) for li in ful["line_items"]) == sorted(view["ordered_quantities"])
            seen = v.graphql("""query($id: ID!) { order(id: $id) { displayFulfillmentStatus
                fulfillments(first: 10) { status trackingInfo(first: 5) { company number } } } }""",
                             {"id": f"gid://shopify/Order/{oid}"})["order"]  # as the README reads it
            assert seen["displayFulfillmentStatus"] == "FULFILLED"
            assert seen["fulfillments"][0]["trackingInfo"][0]["number"] == shipment["tracking_number"]
        else:
            order = v.amazon(f"/orders/v0/orders/{oid}")["payload"]
            assert order["OrderStatus"] == "Shipped"
            new_api = v.amazon(f"/orders/2026-01-01/orders/{oid}?includedData=FULFILLMENT")["order"]
            assert new_api["fulfillment"]["fulfillmentStatus"] == "SHIPPED"  # the Orders API 2026-01-01 view
            items = v.amazon(f"/orders/v0/orders/{oid}/orderItems")["payload"]["OrderItems"]
            assert all(i["QuantityShipped"] == i["QuantityOrdered"] for i in items)
    sent_hooks = v.admin("shipstation", "/_admin/webhooks")["webhooks"]
    assert len(sent_hooks) == 3 and all(h["status"] == 202 for h in sent_hooks)  # SHIP_NOTIFY, one per order

    # -- a Shopify return, refunded on receipt: ERPNext credit note, AvaTax ReturnInvoice, Shopify refund, restock
    stock_before = v.stock("SUN-AVIATOR")
    ret = httpx.post(headers=dev.headers, url=f"{dev.api}/returns", json={
        "channel": "shopify", "return_id": "VR1", "external_order_id": SAMPLE_ID,
        "requested_at": datetime.now(UTC).isoformat(), "lines": [{"line_id": SAMPLE_LINE, "quantity": 1}]},
        timeout=20)
    assert ret.status_code == 202, ret.text
    return_status(dev, "shopify", "VR1", {"awaiting_receipt"})
    got = httpx.post(headers=dev.headers, url=f"{dev.api}/returns/shopify/VR1/receipts", json={
        "receipt_id": "VRCPT-1", "return_id": "VR1", "received_at": datetime.now(UTC).isoformat(),
        "lines": [{"line_id": SAMPLE_LINE, "quantity": 1, "condition": "resellable"}]}, timeout=20)
    assert got.status_code == 202, got.text
    view = return_status(dev, "shopify", "VR1", {"completed"})
    sample_ref = f"order:shopify:{SAMPLE_ID}"
    (note,) = v.erp("Sales Invoice", [["retailflow_ref", "=", "return:shopify:VR1"]])
    assert note["name"] == view["credit_note_id"] and note["is_return"] == 1 and note["docstatus"] == 1
    assert note["return_against"] == views[("shopify", SAMPLE_ID)]["invoice_id"]
    refund_total = Decimal(view["refund_total"]["amount"])
    assert -Decimal(str(note["grand_total"])) == refund_total
    note_doc = v.erp_doc("Sales Invoice", note["name"])
    (item,) = note_doc["items"]
    assert (item["item_code"], item["qty"]) == ("SUN-AVIATOR", -1)
    note_tax = -sum((Decimal(str(t["tax_amount"])) for t in note_doc["taxes"]), Decimal(0))
    assert note_tax > 0
    tax_refund = v.avatax("return:shopify:VR1")
    assert (tax_refund["type"], tax_refund["status"]) == ("ReturnInvoice", "Committed")
    assert tax_refund["referenceCode"] == sample_ref and Decimal(str(tax_refund["totalTax"])) == -note_tax
    (refund,) = v.shopify(f"orders/{SAMPLE_ID}/refunds.json")["refunds"]
    assert refund["note"] == "retailflow refund return:shopify:VR1"
    assert [(r["line_item_id"], r["quantity"]) for r in refund["refund_line_items"]] == [(int(SAMPLE_LINE), 1)]
    assert sum(Decimal(t["amount"]) for t in refund["transactions"]) == refund_total
    assert v.stock("SUN-AVIATOR") == stock_before + 1  # restocked once, by a Material Receipt
    (restock,) = v.erp("Stock Entry", [["retailflow_ref", "like", "return:shopify:VR1%"]])
    assert restock["docstatus"] == 1
    # Shopify notified that refund (refunds/create, as for every refund): the platform knows it is its own
    echo = wait_for("refunds/create echo", lambda: [h for h in v.admin("shopify", "/_admin/webhooks")["webhooks"]
                                                    if h["topic"] == "refunds/create"], lambda hooks: len(hooks) == 1)
    assert echo[0]["status"] == 200
    assert api_json(dev, f"/returns/shopify/refund-{refund['id']}") is None

    # -- the merchant refunds a line in Shopify: refunds/create → credit note and tax refund, no second payout
    line = order_b["line_items"][2]
    parent = v.shopify(f"orders/{oid_b}/transactions.json")["transactions"][0]
    amount = Decimal(line["price"]) + Decimal(line["tax_lines"][0]["price"])
    merchant = v.shopify(f"orders/{oid_b}/refunds.json", method="POST", json={"refund": {
        "note": "Scratched on arrival", "refund_line_items": [
            {"line_item_id": line["id"], "quantity": 1, "restock_type": "no_restock"}],
        "transactions": [{"parent_id": parent["id"], "amount": str(amount), "kind": "refund",
                          "gateway": parent["gateway"]}]}})["refund"]
    rid = f"refund-{merchant['id']}"
    # the merchant refunded the line's list price and tax, more than the customer paid for it after the order's
    # discount: the credit note stops at what was paid and finance is asked to book the rest
    parked = return_status(dev, "shopify", rid, {"needs_attention"})
    assert "more than is left to credit" in parked["reason"] and "Book the difference by hand" in parked["reason"]
    acked = httpx.post(headers=dev.headers, url=f"{dev.api}/returns/shopify/{rid}/actions/skip",
                       json={"actor": "finance@example.com", "reason": "booked as a goodwill expense"}, timeout=20)
    assert acked.status_code == 202, acked.text
    view = return_status(dev, "shopify", rid, {"completed"})
    assert [s["name"] for s in view["steps"]] == ["authorize", "create_credit_note", "refund", "refund_tax",
                                                  "over_refund", "analyst_skip"]
    credited = Decimal(view["refund_total"]["amount"])
    assert f"refunded {amount - credited} USD more" in parked["reason"]
    (note_b,) = v.erp("Sales Invoice", [["retailflow_ref", "=", f"return:shopify:{rid}"]])
    assert note_b["is_return"] == 1 and note_b["docstatus"] == 1
    assert -Decimal(str(note_b["grand_total"])) == Decimal(view["refund_total"]["amount"]) <= amount
    note_b_tax = -sum((Decimal(str(t["tax_amount"])) for t in v.erp_doc("Sales Invoice", note_b["name"])["taxes"]),
                      Decimal(0))
    tax_b = v.avatax(f"return:shopify:{rid}")
    assert tax_b["status"] == "Committed" and Decimal(str(tax_b["totalTax"])) == -note_b_tax < 0
    assert len(v.shopify(f"orders/{oid_b}/refunds.json")["refunds"]) == 1  # the merchant's only: nothing paid twice

    # -- an Amazon return, refunded before the goods arrive (the POST_PAYMENT_ADJUSTMENT_DATA feed)
    amazon_items = v.amazon(f"/orders/v0/orders/{amazon_id}/orderItems")["payload"]["OrderItems"]
    case = next(i for i in amazon_items if i["SellerSKU"] == "AMZ-CASE-LEATHER")
    ret = httpx.post(headers=dev.headers, url=f"{dev.api}/returns", json={
        "channel": "amazon", "return_id": "AR1", "external_order_id": amazon_id,
        "requested_at": datetime.now(UTC).isoformat(), "lines": [{"line_id": case["OrderItemId"], "quantity": 1}]},
        timeout=20)
    assert ret.status_code == 202, ret.text
    view = wait_for("return amazon:AR1 refunded", lambda: api_json(dev, "/returns/amazon/AR1"),
                    lambda r: r is not None and (r["status"] in ("needs_attention", "failed") or any(
                        s["name"] == "await_receipt" for s in r["steps"])))
    assert view["status"] == "refunded", view.get("reason")
    assert [(s["name"], s["state"]) for s in view["steps"]][-3:] == [
        ("refund", "done"), ("refund_tax", "done"), ("await_receipt", "waiting")]
    (note_a,) = v.erp("Sales Invoice", [["retailflow_ref", "=", "return:amazon:AR1"]])
    assert note_a["name"] == view["credit_note_id"] and note_a["is_return"] == 1
    assert v.avatax("return:amazon:AR1")["status"] == "Committed"
    (adjustment,) = v.admin("amazon", "/_admin/feeds")["adjustments"]
    assert adjustment["AmazonOrderID"] == amazon_id and adjustment["AmazonOrderItemCode"] == case["OrderItemId"]
    assert sum(Decimal(a) for a in adjustment["components"].values()) == Decimal(view["refund_total"]["amount"])

    # -- settlement: Amazon settles the shipped order and the refund; the platform downloads the report (Reports
    # API), matches it against ERPNext and posts one journal there
    settled = dev.sandbox("amazon-settlement")
    assert settled.returncode == 0 and amazon_id in settled.stdout, settled.stdout + settled.stderr
    settlement_id = re.search(r"settlement (\d+)", settled.stdout).group(1)
    fetched = dev.cli("settlements", "fetch", "--provider", "amazon")
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert json.loads(fetched.stdout)["started"] == [f"settlement:amazon:{settlement_id}"]
    st = wait_for("settlement", lambda: api_json(dev, f"/settlements/amazon/{settlement_id}"),
                  lambda s: s is not None and s["status"] in ("posted", "needs_attention", "failed"))
    assert st["status"] == "posted", st
    result = st["result"]
    assert result["matched_count"] == result["line_count"] > 0 and result["exception_count"] == 0
    assert result["unmatched_platform_count"] == 0
    (je,) = v.erp("Journal Entry", [["retailflow_ref", "=", f"settlement:amazon:{settlement_id}"]])
    assert je["name"] == result["erp_journal_id"] and je["docstatus"] == 1
    assert Decimal(str(je["total_debit"])) == Decimal(str(je["total_credit"])) > 0
    with engine.connect() as conn:  # the report the platform staged is the one Amazon's sandbox produced
        assert conn.execute(text("SELECT count(*) FROM settlement_lines WHERE settlement_key = :k"),
                            {"k": f"amazon:{settlement_id}"}).scalar_one() == result["line_count"]

    # -- availability: a receipt of the ERP item reaches each real channel under that channel's own SKU
    moved = httpx.post(headers=dev.headers, url=f"{dev.api}/inventory/events", json={"events": [{
        "source": "wms", "source_event_id": f"vp-receipt-{secrets.token_hex(4)}", "kind": "receipt",
        "sku": "SUN-AVIATOR", "location": "MAIN", "quantity": 7, "occurred_at": datetime.now(UTC).isoformat()}]},
        timeout=20)
    assert moved.status_code in (200, 202), moved.text
    ats = {a["channel"]: a["ats"] for a in wait_for(
        "the receipt in the ledger", lambda: api_json(dev, "/inventory/SUN-AVIATOR"),
        lambda view: view is not None and any(lv["on_hand"] >= 7 for lv in view["levels"]))["availability"]}
    (variant,) = httpx.post(f"{v.url['shopify']}/_admin/products", json=["SKU2006-001"], timeout=20).json()["variants"]
    (level,) = wait_for("Shopify inventory level of SKU2006-001", lambda: [
        lv for lv in v.admin("shopify", "/_admin/inventory_levels")["inventory_levels"]
        if lv["inventory_item_id"] == variant["inventory_item_id"]], lambda levels: len(levels) == 1 and
        levels[0]["available"] == ats["shopify"])
    (node,) = v.graphql("""{ productVariants(first: 5, query: "sku:SKU2006-001") { nodes { sku inventoryItem {
        inventoryLevel(locationId: "gid://shopify/Location/655441491") { quantities(names: ["available"]) {
        quantity } } } } } }""")["productVariants"]["nodes"]  # the README's GraphQL read of the same level
    assert node["inventoryItem"]["inventoryLevel"]["quantities"][0]["quantity"] == ats["shopify"]
    listed = wait_for("Amazon listings feed for AMZ-AVIATOR-BLK", lambda: v.admin("amazon", "/_admin/feeds")["inventory"],
                      lambda inv: inv.get("AMZ-AVIATOR-BLK") == ats["amazon"])
    assert "SUN-AVIATOR" not in listed  # never the ERP item code: the channel has no such listing
    assert not [f for f in v.admin("amazon", "/_admin/feeds")["feeds"] if f["processingStatus"] != "DONE"]
