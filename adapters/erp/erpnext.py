"""ERPNext (Frappe REST) as the ERP (the ErpAdapter port), with the canonical ⇄ ERPNext mapping.

Frappe's REST API (https://docs.frappe.io/framework/user/en/api/rest): ``GET /api/resource/<DocType>`` with
``filters``/``fields``/``limit_start``/``limit_page_length`` (paged until a short page), ``GET``/``POST``/``PUT``
``/api/resource/<DocType>[/<name>]`` (a POST with ``"docstatus": 1`` inserts and submits), whitelisted methods
under ``/api/method/...``. Auth: ``Authorization: token <api_key>:<api_secret>`` (the secret is a SecretStr,
never logged).

Idempotency: every document carries the platform's external reference and is looked up before it is created.
Sales Order: the standard ``po_no`` (Customer's Purchase Order) holds the order's workflow id; ERPNext copies it
to the Delivery Notes and Sales Invoices made from the order. Documents that need their own key carry the custom
field ``retailflow_ref`` (Data): Delivery Note (``<order ref>:<shipment id>``), Sales Invoice (the order ref, or the
credit note's ref for a return), Journal Entry, Stock Entry. Order lines carry ``retailflow_line_id`` and
``retailflow_tax`` (custom fields on Sales Order Item / Delivery Note Item / Sales Invoice Item), so returns are
priced per channel line. `ensure_custom_fields()` creates them (``/api/resource/Custom Field``), idempotently.

Choices, stated honestly:

* SKUs: a channel SKU resolves to the Item whose ``item_code`` equals it, else to the Item listing it as the
  channel customer's ``ref_code`` in its *Customer Items* table (``Item Customer Detail``; customer per channel from
  ``RETAILFLOW_ERPNEXT_CUSTOMERS``, default a customer named after the channel). Disabled items do not resolve.
* Reservation: ERPNext reserves stock when a Sales Order is *submitted* (``Bin.reserved_qty``); it has no
  reservation that precedes the order. `reserve` therefore checks availability (``Bin.actual_qty - reserved_qty``
  in the configured warehouse) and raises OutOfStock when short; the units are held from `create_sales_order`
  (submitted) on. Between the check and the submit another order can take the stock — ERPNext then reports it at
  delivery. `release_reservation` closes the open order (``update_status`` → Closed, which drops its reserved
  quantity), `reduce_reservation` lowers the order's quantities (``update_child_qty_rate``); `amend_sales_order`
  cancels and amends the order (its tax rows cannot change after submit).
* Money: each line is booked at its exact net (after line and order-level discounts, tax excluded); a net that
  does not divide by the quantity is booked as two rows (rates one cent apart) so amounts add up to the cent.
  Tax and shipping are *Actual* rows of the taxes table on the configured accounts.
* Credit notes: a return Sales Invoice (``is_return``, ``return_against`` the order's invoice) with negative
  quantities; a line that credits an amount without units is a one-unit row marked ``<line>#adj`` (ERPNext needs a
  non-zero quantity; such rows never count as returned units here).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any
from urllib.parse import quote as urlquote

import httpx
from pydantic import SecretStr

from adapters.erp.base import BookedLine, BookedOrder
from adapters.erp.holds import ReservationHolds
from adapters.http import VendorHttp, vendor_message
from canonical.errors import BusinessError, CannotCancel, InvalidOrder, OutOfStock, UnknownSku
from canonical.finance import JournalConflict, JournalEntry, journal_fingerprint
from canonical.fulfillment import InvoiceRef, Reservation, ReservedLine, ResolvedLine, SalesOrderRef
from canonical.inventory import StockSnapshotLine
from canonical.money import Money, minor_units
from canonical.order import Order, Shipment, TaxQuote
from canonical.returns import (
    AuthorizedLine,
    AuthorizedReturn,
    CreditNote,
    Disposition,
    DispositionLine,
    ReturnNotAllowed,
    ReturnRequest,
)
from canonical.sales_order import sales_order_values
from canonical.settlement_matching import BookedOrderTotal, CreditNoteFacts, ErpOrderFacts
from canonical.supplier import PayableConflict, SupplierInvoice
from canonical.vendor_errors import VendorRejected
from canonical.vendor_versions import VendorApiVersion

SO_METHODS = "erpnext.selling.doctype.sales_order.sales_order"
REF = "retailflow_ref"
LINE = "retailflow_line_id"
LINE_TAX = "retailflow_tax"
ADJ = "#adj"
PAGE = 100

# The vendor API this adapter speaks (canonical/vendor_versions.py): Frappe's REST API v1 (/api/resource,
# /api/method), served by every supported Frappe major. Its lifecycle is the Frappe/ERPNext major's: Frappe's
# support table (https://frappe.io/support-versions) gives Version 15 "End of 2027 (planned)".
API_VERSIONS = (
    VendorApiVersion("erpnext", "Frappe REST (/api/resource, /api/method)", "Frappe/ERPNext v15",
                     released=None, sunset=date(2027, 12, 31), source="https://frappe.io/support-versions",
                     note="EOL 'End of 2027 (planned)'; v14 is supported until v16 ships; the site's major is "
                          "not configured here"),
)

CUSTOM_FIELDS: list[tuple[str, str, str, str]] = [  # doctype, fieldname, label, fieldtype
    *[(dt, REF, "Retailflow Reference", "Data") for dt in ("Delivery Note", "Sales Invoice", "Journal Entry",
                                                            "Stock Entry")],
    *[(dt, LINE, "Retailflow Line Id", "Data") for dt in ("Sales Order Item", "Delivery Note Item",
                                                         "Sales Invoice Item")],
    *[(dt, LINE_TAX, "Retailflow Line Tax", "Currency") for dt in ("Sales Order Item", "Sales Invoice Item")],
]


def _num(value: Decimal | int) -> int | float:
    """A JSON number as ERPNext's published bodies carry them. A Decimal of at most 15 significant digits
    converts to the float whose shortest repr is those same digits, so nothing is rounded on the wire; more
    digits are refused rather than silently rounded."""
    d = Decimal(value)
    if d == d.to_integral_value():
        return int(d)
    if len(d.normalize().as_tuple().digits) > 15:
        raise ValueError(f"{d} has more digits than a JSON number carries exactly")
    return float(d)


def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value or 0))


def map_frappe_error(response: httpx.Response, _context: Any) -> BusinessError | None:
    """Frappe 4xx → typed faults: stock errors are OutOfStock, missing documents/links VendorRejected with the
    message ERPNext gave (ValidationError is 417 in Frappe)."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    exc_type = str(body.get("exc_type") or "") if isinstance(body, dict) else ""
    info = {"vendor": "erpnext", "status": response.status_code, "exc_type": exc_type}
    message = vendor_message(response)
    if exc_type in ("NegativeStockError", "InsufficientStockError"):
        return OutOfStock(f"ERPNext: {message}", details=info)
    return VendorRejected(f"ERPNext refused the request ({exc_type or response.status_code}): {message}",
                          details=info)


def split_rows(net: Decimal, quantity: int, currency: str) -> list[tuple[int, Decimal]]:
    """(qty, rate) rows whose qty × rate add up to `net` exactly: one row when the net divides by the quantity,
    else two rows one minor unit apart."""
    unit = Decimal(1).scaleb(-minor_units(currency))
    rate = (net / quantity / unit).to_integral_value(rounding=ROUND_FLOOR) * unit
    extra = int((net - rate * quantity) / unit)
    rows = [(quantity - extra, rate)] if quantity - extra else []
    if extra:
        rows.append((extra, rate + unit))
    return rows


def _creation(value: Any) -> datetime | None:
    """ERPNext's `creation` ("2026-12-04 19:00:00.123456", the site's time, UTC here as in
    `orders_booked_between`): when the sales order was booked, seconds after the order was placed."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
    except ValueError:
        return None


class ErpNext:
    """ErpAdapter on ERPNext's REST API."""

    vendor = "erpnext"

    def __init__(self, base_url: str, api_key: str, api_secret: SecretStr, *, company: str, warehouse: str,
                 customers: dict[str, str] | None = None, tax_account: str, shipping_account: str,
                 account_map: dict[str, str] | None = None, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None, location: str = "MAIN",
                 holds: ReservationHolds | None = None) -> None:
        self.company = company
        # ERPNext reserves only when the sales order is submitted: holds keep two orders from taking the same
        # last units in between (adapters/erp/holds.py); the platform's adapter always has them (runtime/registry)
        self.holds = holds
        self.warehouse = warehouse
        self.location = location  # the platform ledger's location for `warehouse`
        self.customers = dict(customers or {})
        self.tax_account = tax_account
        self.shipping_account = shipping_account
        self.account_map = dict(account_map or {})
        self.http = VendorHttp(
            self.vendor, base_url,
            headers={"Authorization": f"token {api_key}:{api_secret.get_secret_value()}",
                     "Accept": "application/json"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)), error_mapper=map_frappe_error,
            transport=transport)

    @classmethod
    def from_settings(cls, settings: Any, *, holds: ReservationHolds | None = None) -> ErpNext:
        return cls(settings.erpnext_base_url, settings.erpnext_api_key, settings.erpnext_api_secret, holds=holds,
                   company=settings.erpnext_company, warehouse=settings.erpnext_warehouse,
                   customers=settings.erpnext_customers, tax_account=settings.erpnext_tax_account,
                   shipping_account=settings.erpnext_shipping_account, account_map=settings.erpnext_account_map,
                   timeout=settings.erpnext_timeout_seconds, location=settings.default_location)

    def close(self) -> None:
        self.http.close()

    # -- Frappe REST ------------------------------------------------------------------------------------------
    @staticmethod
    def _path(doctype: str, name: str | None = None) -> str:
        path = f"/api/resource/{urlquote(doctype, safe='')}"
        return f"{path}/{urlquote(name, safe='')}" if name is not None else path

    def _load(self, response: httpx.Response | None) -> Any:
        if response is None:
            return None
        return json.loads(response.content, parse_float=Decimal)

    def list_docs(self, doctype: str, filters: list[list[Any]], fields: list[str] | None = None, *,
                  order_by: str = "creation asc", limit: int | None = None, parent: str | None = None
                  ) -> list[dict]:
        """Every matching record, paged with limit_start/limit_page_length until a short page."""
        out: list[dict] = []
        start = 0
        while True:
            page = PAGE if limit is None else min(PAGE, limit - len(out))
            params = {"filters": json.dumps(filters), "fields": json.dumps(fields or ["name"]),
                      "limit_start": start, "limit_page_length": page, "order_by": order_by}
            if parent:
                params["parent"] = parent
            data = self._load(self.http.request("GET", self._path(doctype), params=params))["data"]
            out.extend(data)
            if len(data) < page or (limit is not None and len(out) >= limit):
                return out
            start += len(data)

    def get_doc(self, doctype: str, name: str) -> dict | None:
        body = self._load(self.http.request("GET", self._path(doctype, name), not_found=True))
        return None if body is None else body["data"]

    def find(self, doctype: str, filters: list[list[Any]], *, submitted_only: bool = False) -> dict | None:
        """The first live (not cancelled) document matching `filters`, in full."""
        status = [["docstatus", "=", 1]] if submitted_only else [["docstatus", "!=", 2]]
        rows = self.list_docs(doctype, filters + status, ["name"], limit=1)
        return self.get_doc(doctype, rows[0]["name"]) if rows else None

    def insert(self, doctype: str, doc: dict, *, submit: bool = True) -> dict:
        body = {**doc, "doctype": doctype, "docstatus": 1 if submit else 0}
        return self._load(self.http.request("POST", self._path(doctype), json=body))["data"]

    def call(self, method: str, args: dict) -> Any:
        return self._load(self.http.request("POST", f"/api/method/{method}", json=args)).get("message")

    def cancel(self, doctype: str, name: str) -> None:
        self.call("frappe.client.cancel", {"doctype": doctype, "name": name})

    def ensure_custom_fields(self) -> int:
        """Create the retailflow custom fields that are missing; returns how many were created."""
        created = 0
        for doctype, fieldname, label, fieldtype in CUSTOM_FIELDS:
            if self.list_docs("Custom Field", [["dt", "=", doctype], ["fieldname", "=", fieldname]], limit=1):
                continue
            self.insert("Custom Field", {"dt": doctype, "fieldname": fieldname, "label": label,
                                         "fieldtype": fieldtype, "insert_after": "po_no" if fieldname == REF
                                         else "item_code", "read_only": 1, "no_copy": 0}, submit=False)
            created += 1
        return created

    def customer_for(self, channel: str) -> str:
        return self.customers.get(channel, channel)

    # -- catalog and stock ------------------------------------------------------------------------------------
    def resolve_skus(self, order: Order) -> list[ResolvedLine]:
        skus = sorted({line.channel_sku for line in order.lines})
        items = self.list_docs("Item", [["item_code", "in", skus], ["disabled", "=", 0]], ["item_code"])
        mapping = {r["item_code"]: r["item_code"] for r in items}
        rest = [s for s in skus if s not in mapping]
        if rest:
            rows = self.list_docs("Item Customer Detail", [["customer_name", "=", self.customer_for(order.channel)],
                                                           ["ref_code", "in", rest]],
                                  ["parent", "ref_code"], parent="Item")
            enabled = {r["item_code"] for r in self.list_docs(
                "Item", [["item_code", "in", sorted({r["parent"] for r in rows})], ["disabled", "=", 0]],
                ["item_code"])} if rows else set()
            mapping.update({r["ref_code"]: r["parent"] for r in rows if r["parent"] in enabled})
        unknown = [s for s in skus if s not in mapping]
        if unknown:
            raise UnknownSku(f"channel {order.channel!r} SKU(s) not found as ERPNext items: {', '.join(unknown)}",
                             details={"channel": order.channel, "skus": unknown})
        return [ResolvedLine(line_id=line.line_id, channel_sku=line.channel_sku,
                             item_code=mapping[line.channel_sku], quantity=line.quantity) for line in order.lines]

    def channel_skus_of(self, channel: str, item_code: str) -> list[str]:
        """The channel customer's `Item Customer Detail` ref codes of the item, else the item code (which
        `resolve_skus` accepts as a channel SKU)."""
        rows = self.list_docs("Item Customer Detail", [["customer_name", "=", self.customer_for(channel)],
                                                       ["parent", "=", item_code]], ["parent", "ref_code"], parent="Item")
        return sorted({r["ref_code"] for r in rows if r.get("ref_code")}) or [item_code]

    def stock_snapshot(self) -> list[StockSnapshotLine]:
        """On-hand per item in the warehouse (`Bin.actual_qty`), as the ledger's location: what drift
        reconciliation compares the platform ledger with (docs/inventory.md), so the ledger follows ERPNext."""
        rows = self.list_docs("Bin", [["warehouse", "=", self.warehouse]], ["item_code", "actual_qty"],
                              order_by="item_code asc")
        return [StockSnapshotLine(sku=r["item_code"], location=self.location,
                                  on_hand=int(Decimal(str(r.get("actual_qty") or 0))))
                for r in rows if r.get("item_code")]

    def bins(self, item_codes: list[str]) -> dict[str, dict]:
        rows = self.list_docs("Bin", [["item_code", "in", sorted(set(item_codes))],
                                      ["warehouse", "=", self.warehouse]],
                              ["item_code", "warehouse", "actual_qty", "reserved_qty", "projected_qty"])
        return {r["item_code"]: r for r in rows}

    def _sales_order(self, external_ref: str) -> dict | None:
        return self.find("Sales Order", [["po_no", "=", external_ref]])

    def reserve_more(self, key: str, item_code: str, quantity: int, *, token: str,
                     avoid_location: str | None = None) -> int:
        """ERPNext holds an order's stock through its submitted sales order in one warehouse: re-sourcing checks
        that the warehouse's bin has `quantity` free (actual − reserved) for the order to keep; else OutOfStock."""
        if quantity <= 0:
            return 0
        b = self.bins([item_code]).get(item_code, {})
        free = max(int(_dec(b.get("actual_qty")) - _dec(b.get("reserved_qty"))), 0)
        if free < quantity:
            raise OutOfStock(f"{quantity} × {item_code} cannot be re-sourced: {free} free in {self.warehouse}",
                             details={"shortages": {item_code: quantity - free}})
        return quantity

    def reserve(self, key: str, lines: list[ResolvedLine], *, allow_backorder: bool,
                location: str | None = None) -> Reservation:
        """ERPNext reserves through the sales order, in this adapter's one warehouse (RETAILFLOW_ERPNEXT_WAREHOUSE):
        a node `location` elsewhere is not a warehouse this adapter books into, so the lines say where the units
        are held and the sourcing activity logs the difference."""
        so = self._sales_order(key)
        if so is not None and so.get("docstatus") == 1:  # the submitted order holds the stock already
            held: dict[str, int] = {}
            for row in so.get("items") or []:
                held[row["item_code"]] = held.get(row["item_code"], 0) + int(_dec(row["qty"]))
            return Reservation(key=key, lines=[ReservedLine(item_code=i, location=self.warehouse, quantity=q)
                                               for i, q in sorted(held.items())])
        wanted: dict[str, int] = {}
        for line in lines:
            wanted[line.item_code] = wanted.get(line.item_code, 0) + line.quantity

        def free_in_erp(items: list[str]) -> dict[str, int]:
            bins = self.bins(items)
            return {i: max(int(_dec(bins.get(i, {}).get("actual_qty")) - _dec(bins.get(i, {}).get("reserved_qty"))),
                           0) for i in items}

        if self.holds is not None:
            taken = self.holds.reserve(key, self.warehouse, wanted, free_in_erp)
        else:
            free = free_in_erp(sorted(wanted))
            taken = {i: min(free[i], wanted[i]) for i in wanted}
        out, shortages = [], {}
        for item_code in sorted(wanted):
            take = taken[item_code]
            if take < wanted[item_code]:
                shortages[item_code] = wanted[item_code] - take
            out.append(ReservedLine(item_code=item_code, location=self.warehouse, quantity=take,
                                    backordered=wanted[item_code] - take))
        if shortages and not allow_backorder:
            if self.holds is not None:
                self.holds.drop(key)  # refused whole: it holds nothing while it waits for an analyst
            short = ", ".join(f"{k} short by {v}" for k, v in shortages.items())
            raise OutOfStock(f"not enough stock in {self.warehouse}: {short}", details={"shortages": shortages})
        return Reservation(key=key, lines=out)

    def release_reservation(self, key: str) -> bool:
        if self.holds is not None:
            self.holds.drop(key)
        so = self._sales_order(key)
        if so is None or so.get("docstatus") != 1 or so.get("status") in ("Closed", "Completed", "Cancelled"):
            return False
        self.call(f"{SO_METHODS}.update_status", {"status": "Closed", "name": so["name"]})
        return True

    def reduce_reservation(self, key: str, lines: list[ResolvedLine]) -> int:
        so = self._sales_order(key)
        if so is None or so.get("docstatus") != 1:
            return 0
        wanted: dict[str, int] = {}
        for line in lines:
            wanted[line.line_id] = wanted.get(line.line_id, 0) + line.quantity
        trans, released = [], 0
        for row in so.get("items") or []:
            line_id = row.get(LINE) or ""
            qty = int(_dec(row["qty"]))
            keep = min(qty, wanted.get(line_id, 0))
            wanted[line_id] = wanted.get(line_id, 0) - keep
            keep = max(keep, int(_dec(row.get("delivered_qty"))))
            released += qty - keep
            trans.append({"docname": row["name"], "item_code": row["item_code"], "qty": keep,
                          "rate": _num(_dec(row["rate"]))})
        if released:
            self._update_items(so["name"], trans)
        return released

    def _update_items(self, so_name: str, trans_items: list[dict]) -> None:
        self.call("erpnext.controllers.accounts_controller.update_child_qty_rate", {
            "parent_doctype": "Sales Order", "trans_items": json.dumps(trans_items),
            "parent_doctype_name": so_name, "child_docname": "items"})

    # -- sales orders -----------------------------------------------------------------------------------------
    def sales_order_body(self, external_ref: str, order: Order, lines: list[ResolvedLine], tax: TaxQuote) -> dict:
        """Sales Order doc for an order as booked (the POST /api/resource/Sales Order body)."""
        so_lines, net, _grand = sales_order_values(order, lines, tax)
        delivery = (order.created_at.date() + timedelta(days=2)).isoformat()
        items = []
        for sl in so_lines:
            line_tax = Decimal(sl["tax"])
            for qty, rate in split_rows(Decimal(sl["net"]), int(sl["quantity"]), order.currency):
                items.append({"item_code": sl["item_code"], "customer_item_code": sl["channel_sku"], "qty": qty,
                              "rate": _num(rate), "delivery_date": delivery, "warehouse": self.warehouse,
                              LINE: sl["line_id"], LINE_TAX: _num(line_tax)})
                line_tax = Decimal(0)  # the line's tax rides on its first row
        lines_net = sum((Decimal(sl["net"]) for sl in so_lines), Decimal(0))
        taxes = []
        if tax.total_tax.amount:
            taxes.append({"charge_type": "Actual", "account_head": self.tax_account,
                          "description": f"Sales tax ({tax.jurisdiction})"[:140],
                          "tax_amount": _num(tax.total_tax.amount)})
        shipping = net.amount - lines_net
        if shipping:
            taxes.append({"charge_type": "Actual", "account_head": self.shipping_account, "description": "Shipping",
                          "tax_amount": _num(shipping)})
        return {
            "customer": self.customer_for(order.channel), "company": self.company,
            "transaction_date": order.created_at.date().isoformat(), "delivery_date": delivery,
            "currency": order.currency, "po_no": external_ref,
            "po_date": order.created_at.date().isoformat(), "set_warehouse": self.warehouse,
            "items": items, "taxes": taxes,
        }

    def create_sales_order(self, external_ref: str, order: Order, lines: list[ResolvedLine], tax: TaxQuote
                           ) -> SalesOrderRef:
        so = self._sales_order(external_ref)
        if so is None:
            so = self.insert("Sales Order", self.sales_order_body(external_ref, order, lines, tax))
        elif so.get("docstatus") == 0:  # a draft left by an earlier attempt: submit it
            so = self._load(self.http.request("PUT", self._path("Sales Order", so["name"]),
                                              json={"docstatus": 1}))["data"]
        if self.holds is not None:  # submitted: ERPNext's reserved_qty holds the units from now on
            self.holds.drop(external_ref)
        return SalesOrderRef(erp_sales_order_id=so["name"], external_ref=external_ref)

    def amend_sales_order(self, external_ref: str, order: Order, lines: list[ResolvedLine], tax: TaxQuote) -> bool:
        """A submitted Sales Order's taxes cannot change in ERPNext, so the order is *cancelled and amended*
        (ERPNext's way to change a submitted document): the amended copy (``amended_from``) has the new lines and
        tax, and reserves what they need. Only before delivery or billing (else CannotCancel); idempotent."""
        body = self.sales_order_body(external_ref, order, lines, tax)
        so = self._sales_order(external_ref)
        if so is None:
            cancelled = self.list_docs("Sales Order", [["po_no", "=", external_ref], ["docstatus", "=", 2]],
                                       ["name"], order_by="creation desc", limit=1)
            if not cancelled:
                return False
            # an earlier attempt cancelled the order to amend it and failed before the amended copy was made
            self.insert("Sales Order", {**body, "amended_from": cancelled[0]["name"]})
            return True
        if so.get("status") in ("Closed", "Completed") or _dec(so.get("per_billed")) > 0 \
                or _dec(so.get("per_delivered")) > 0:
            raise CannotCancel(f"sales order {so['name']} is {so.get('status') or 'billed'}; its lines cannot change")

        def fingerprint(doc: dict) -> tuple:
            return (sorted((str(r.get(LINE)), r["item_code"], _dec(r["qty"]), _dec(r["rate"]))
                           for r in doc.get("items") or []),
                    sorted((t["account_head"], _dec(t["tax_amount"])) for t in doc.get("taxes") or []))

        if fingerprint(so) == fingerprint(body):
            return False
        if so.get("docstatus") == 1:
            self.cancel("Sales Order", so["name"])
        else:
            self.http.request("DELETE", self._path("Sales Order", so["name"]))
        self.insert("Sales Order", {**body, "amended_from": so["name"]})
        return True

    def cancel_sales_order(self, external_ref: str) -> bool:
        if self.holds is not None:
            self.holds.drop(external_ref)
        so = self._sales_order(external_ref)
        if so is None:
            return False
        if _dec(so.get("per_billed")) > 0 or _dec(so.get("per_delivered")) > 0:
            raise CannotCancel(f"sales order {so['name']} is already delivered or invoiced")
        if so.get("docstatus") == 0:
            self.http.request("DELETE", self._path("Sales Order", so["name"]))
        else:
            self.cancel("Sales Order", so["name"])
        return True

    # -- delivery and invoice ---------------------------------------------------------------------------------
    def post_delivery(self, external_ref: str, shipment: Shipment, lines: list[ResolvedLine]) -> None:
        ref = f"{external_ref}:{shipment.shipment_id}"
        if self.find("Delivery Note", [[REF, "=", ref]]) is not None:
            return
        so = self._sales_order(external_ref)
        if so is None or so.get("docstatus") != 1:
            raise InvalidOrder(f"no submitted ERPNext sales order {external_ref} to deliver")
        by_line = {r.line_id: r for r in lines}
        by_sku = {r.channel_sku: r for r in lines}
        shipped: dict[str, int] = {}  # line id → units
        for sl in shipment.lines:
            resolved = by_line.get(sl.line_id or "") or by_sku.get(sl.channel_sku)
            if resolved is None:
                raise InvalidOrder(f"shipment {shipment.shipment_id} ships {sl.channel_sku}, which is not on the order")
            shipped[resolved.line_id] = shipped.get(resolved.line_id, 0) + sl.quantity
        draft = self.call(f"{SO_METHODS}.make_delivery_note", {"source_name": so["name"]})
        items = []
        for row in draft.get("items") or []:
            want = shipped.get(row.get(LINE) or "", 0)
            take = min(want, int(_dec(row["qty"])))
            if take > 0:
                items.append({**row, "qty": take})
                shipped[row[LINE]] = want - take
        left = {k: v for k, v in shipped.items() if v > 0}
        if left:
            raise InvalidOrder(f"shipment {shipment.shipment_id} ships more than is left to deliver on "
                               f"{so['name']}: {left}")
        doc = {**draft, "items": items, REF: ref, "po_no": external_ref,
               "posting_date": shipment.shipped_at.date().isoformat(), "set_posting_time": 1,
               "lr_no": (shipment.tracking_number or "")[:30]}
        self.insert("Delivery Note", {k: v for k, v in doc.items() if k not in ("name", "docstatus", "doctype")})

    def _invoice(self, external_ref: str) -> dict | None:
        return self.find("Sales Invoice", [[REF, "=", external_ref], ["is_return", "=", 0]])

    def create_invoice(self, external_ref: str) -> InvoiceRef:
        inv = self._invoice(external_ref)
        if inv is None:
            so = self._sales_order(external_ref)
            if so is None or so.get("docstatus") != 1:
                raise InvalidOrder(f"no submitted ERPNext sales order {external_ref} to invoice")
            try:
                draft = self.call(f"{SO_METHODS}.make_sales_invoice", {"source_name": so["name"]})
                doc = {k: v for k, v in draft.items() if k not in ("name", "docstatus", "doctype")}
                inv = self.insert("Sales Invoice", {**doc, REF: external_ref, "po_no": external_ref})
            except VendorRejected:
                # a concurrent attempt (an activity retried while the first still ran) invoiced it between the
                # look-up and the insert: ERPNext refuses a second invoice ("already fully billed"); that one is ours
                inv = self._invoice(external_ref)
                if inv is None:
                    raise
        return InvoiceRef(invoice_id=inv["name"], external_ref=external_ref,
                          total=Money.of(_dec(inv.get("grand_total")), inv.get("currency") or "USD"))

    # -- returns ----------------------------------------------------------------------------------------------
    def _credit_notes(self, order_ref: str) -> list[dict]:
        rows = self.list_docs("Sales Invoice", [["po_no", "=", order_ref], ["is_return", "=", 1],
                                                ["docstatus", "=", 1]], ["name", REF])
        return [doc for r in rows if (doc := self.get_doc("Sales Invoice", r["name"])) is not None]

    @staticmethod
    def _credited(notes: list[dict], exclude_ref: str | None = None) -> dict[str, tuple[int, Decimal, Decimal]]:
        out: dict[str, tuple[int, Decimal, Decimal]] = {}
        for note in notes:
            if exclude_ref is not None and note.get(REF) == exclude_ref:
                continue
            for row in note.get("items") or []:
                raw = row.get(LINE) or ""
                line_id, adj = (raw[: -len(ADJ)], True) if raw.endswith(ADJ) else (raw, False)
                units, net, tax = out.get(line_id, (0, Decimal(0), Decimal(0)))
                qty = -int(_dec(row["qty"]))
                out[line_id] = (units + (0 if adj else qty), net - _dec(row.get("amount")),
                                tax - _dec(row.get(LINE_TAX)))
        return out

    def booked_order(self, external_ref: str) -> BookedOrder | None:
        so = self._sales_order(external_ref)
        if so is None:
            return None
        lines: dict[str, dict] = {}  # a line booked as two rows (rates one cent apart) is one line
        for row in so.get("items") or []:
            agg = lines.setdefault(row.get(LINE) or row["item_code"], {"item_code": row["item_code"], "qty": 0,
                                                                        "shipped": 0})
            agg["qty"] += int(_dec(row["qty"]))
            agg["shipped"] += int(_dec(row.get("delivered_qty")))
        return BookedOrder(external_ref=external_ref, erp_sales_order_id=so["name"],
                           currency=so.get("currency") or "USD",
                           status="draft" if so.get("docstatus") == 0 else str(so.get("status") or "").lower(),
                           lines=[BookedLine(line_id=lid, item_code=v["item_code"], quantity=v["qty"],
                                             shipped=v["shipped"]) for lid, v in lines.items()])

    def authorize_return(self, request: ReturnRequest, *, workflow_id: str, return_window_days: int
                         ) -> AuthorizedReturn:
        order_ref = request.order_workflow_id
        so = self._sales_order(order_ref)
        if so is None or so.get("docstatus") != 1:
            raise ReturnNotAllowed(f"no ERPNext sales order {order_ref} to return against")
        # the window counts from when the platform booked the order (the document's `creation`), as the embedded
        # ERP counts it from its sales order's creation — not from the channel's order date
        ordered_on = date.fromisoformat(str(so.get("creation") or so["transaction_date"])[:10])
        if request.requested_at.date() > ordered_on + timedelta(days=return_window_days):
            raise ReturnNotAllowed(f"the return window of {return_window_days} day(s) for {order_ref} has closed")
        cur = so.get("currency") or "USD"
        lines: dict[str, dict] = {}
        for row in so.get("items") or []:
            agg = lines.setdefault(row.get(LINE) or "", {"item_code": row["item_code"], "qty": 0, "delivered": 0,
                                                         "net": Decimal(0), "tax": Decimal(0)})
            agg["qty"] += int(_dec(row["qty"]))
            agg["delivered"] += int(_dec(row.get("delivered_qty")))
            agg["net"] += _dec(row.get("amount"))
            agg["tax"] += _dec(row.get(LINE_TAX))
        amounts = self._credited(self._credit_notes(order_ref), exclude_ref=workflow_id)
        problems, out = [], []
        for rl in request.lines:
            line = lines.get(rl.line_id)
            if line is None:
                problems.append(f"line {rl.line_id} is not on the order")
                continue
            units, c_net, c_tax = amounts.get(rl.line_id, (0, Decimal(0), Decimal(0)))
            returnable = line["delivered"] - units
            if rl.quantity > returnable:
                problems.append(f"line {rl.line_id}: {rl.quantity} asked, {returnable} returnable "
                                f"({line['delivered']} shipped, {units} already credited)")
                continue
            out.append(AuthorizedLine(
                line_id=rl.line_id, item_code=line["item_code"], quantity=rl.quantity, ordered_quantity=line["qty"],
                line_net=Money.of(line["net"], cur), line_tax=Money.of(line["tax"], cur),
                credited_net=Money.of(c_net, cur), credited_tax=Money.of(c_tax, cur), credited_quantity=units))
        if problems:
            raise ReturnNotAllowed("; ".join(problems), details={"problems": problems})
        return AuthorizedReturn(order_external_ref=order_ref, erp_sales_order_id=so["name"], currency=cur,
                                lines=out)

    def _note_from_doc(self, doc: dict, note: CreditNote) -> CreditNote:
        return note.model_copy(update={"credit_note_id": doc["name"]})

    def create_credit_note(self, note: CreditNote) -> CreditNote:
        note = CreditNote.model_validate(note.model_dump())  # re-check the balance
        existing = self.find("Sales Invoice", [[REF, "=", note.external_ref], ["is_return", "=", 1]])
        if existing is not None:
            return self._note_from_doc(existing, note)
        invoice = self._invoice(note.order_external_ref)
        so = self._sales_order(note.order_external_ref)
        if so is None:
            raise ReturnNotAllowed(f"no ERPNext sales order {note.order_external_ref} to credit")
        if (so.get("currency") or note.currency) != note.currency:
            raise ReturnNotAllowed(f"credit note in {note.currency}, sales order in {so.get('currency')}")
        items_by_line = {row.get(LINE): row["item_code"] for row in so.get("items") or []}
        items = []
        for line in note.lines:
            item_code = line.item_code or items_by_line.get(line.line_id)
            if item_code is None:
                raise ReturnNotAllowed(f"line {line.line_id} is not on sales order {so['name']}")
            line_tax = line.tax.amount
            if line.quantity == 0:  # an amount without units (price adjustment, goodwill)
                rows = [(1, line.net.amount)]
                line_id = f"{line.line_id}{ADJ}"
            else:
                rows = split_rows(line.net.amount, line.quantity, note.currency)
                line_id = line.line_id
            for qty, rate in rows:
                items.append({"item_code": item_code, "qty": -qty, "rate": _num(rate), LINE: line_id,
                              LINE_TAX: _num(-line_tax), "warehouse": self.warehouse})
                line_tax = Decimal(0)
        taxes = []
        if note.tax_total.amount:
            taxes.append({"charge_type": "Actual", "account_head": self.tax_account, "description": "Sales tax refunded",
                          "tax_amount": _num(-note.tax_total.amount)})
        doc = {"customer": so["customer"], "company": self.company, "currency": note.currency, "is_return": 1,
               "update_stock": 0, "po_no": note.order_external_ref, REF: note.external_ref,
               "items": items, "taxes": taxes}
        if invoice is not None:
            doc["return_against"] = invoice["name"]
        created = self.insert("Sales Invoice", doc)
        return self._note_from_doc(created, note)

    def cancel_credit_note(self, external_ref: str) -> bool:
        doc = self.find("Sales Invoice", [[REF, "=", external_ref], ["is_return", "=", 1]])
        if doc is None:
            return False
        self.cancel("Sales Invoice", doc["name"])
        return True

    def restock(self, receipt_key: str, lines: list[DispositionLine]) -> int:
        units: dict[str, int] = {}
        for line in lines:
            if line.disposition == Disposition.RESTOCK:
                units[line.item_code] = units.get(line.item_code, 0) + line.quantity
        if not units or self.find("Stock Entry", [[REF, "=", receipt_key]]) is not None:
            return 0
        self.insert("Stock Entry", {
            "stock_entry_type": "Material Receipt", "purpose": "Material Receipt", "company": self.company,
            REF: receipt_key, "remarks": f"Returned goods, receipt {receipt_key}",
            "items": [{"item_code": i, "qty": q, "t_warehouse": self.warehouse} for i, q in sorted(units.items())]})
        return sum(units.values())

    # -- settlement matching: the settlement store asks these (adapters/erp/base.py) over the API -------------
    def settlement_orders(self, external_refs: list[str]) -> dict[str, ErpOrderFacts]:
        """For each external reference with a Sales Order: its id, grand total, currency, whether it is cancelled
        and the channel SKUs on it (``customer_item_code``, the channel SKU the order was booked with). The live
        order wins over a cancelled one (an amended order cancels its predecessor). One GET per order for its
        items."""
        rows = self.list_docs("Sales Order", [["po_no", "in", sorted(set(external_refs))]],
                              ["name", "po_no", "docstatus", "grand_total", "currency", "status", "creation"])
        best: dict[str, dict] = {}
        for r in rows:
            have = best.get(r["po_no"])
            if have is None or (have["docstatus"] == 2 and r["docstatus"] != 2):
                best[r["po_no"]] = r
        out = {}
        for ref, r in best.items():
            cancelled = r["docstatus"] == 2
            doc = None if cancelled else self.get_doc("Sales Order", r["name"])
            skus = sorted({str(i.get("customer_item_code") or i["item_code"]) for i in (doc or {}).get("items") or []})
            out[ref] = ErpOrderFacts(id=r["name"], grand_total=_dec(r.get("grand_total")), currency=r.get("currency"),
                                     status="cancelled" if cancelled else str(r.get("status") or "").lower(),
                                     channel_skus=skus, created_at=_creation(r.get("creation")))
        return out

    def settlement_credit_notes(self, order_refs: list[str]) -> dict[str, list[CreditNoteFacts]]:
        """Submitted credit notes (return Sales Invoices) per order reference: (their reference, total credited)."""
        rows = self.list_docs("Sales Invoice", [["po_no", "in", sorted(set(order_refs))], ["is_return", "=", 1],
                                                ["docstatus", "=", 1]], ["name", "po_no", REF, "grand_total"])
        out: dict[str, list[CreditNoteFacts]] = {}
        for r in rows:
            out.setdefault(r["po_no"], []).append(CreditNoteFacts(external_ref=str(r.get(REF) or r["name"]),
                                                                  total=-_dec(r.get("grand_total"))))
        return out

    def orders_booked_between(self, channel: str, start: datetime, end: datetime, currency: str
                              ) -> list[BookedOrderTotal]:
        """(external order id, grand total) of the channel's submitted Sales Orders booked (``creation``) in
        [start, end), in `currency`."""
        prefix = f"order:{channel}:"
        rows = self.list_docs("Sales Order", [
            ["customer", "=", self.customer_for(channel)], ["docstatus", "=", 1], ["currency", "=", currency],
            ["creation", ">=", f"{start:%Y-%m-%d %H:%M:%S}"], ["creation", "<", f"{end:%Y-%m-%d %H:%M:%S}"]],
            ["po_no", "grand_total"])
        return [BookedOrderTotal(order_id=r["po_no"][len(prefix):], grand_total=_dec(r.get("grand_total"))) for r in rows
                if str(r.get("po_no") or "").startswith(prefix)]

    # -- finance ----------------------------------------------------------------------------------------------
    def journal_body(self, journal: JournalEntry) -> dict:
        return {
            "voucher_type": "Journal Entry", "company": self.company,
            "posting_date": journal.posting_date.isoformat(), REF: journal.external_ref,
            "user_remark": (journal.description or journal.external_ref)[:500],
            "accounts": [{
                "account": self.account_map.get(line.account, line.account),
                "debit_in_account_currency": _num(line.debit), "credit_in_account_currency": _num(line.credit),
                "user_remark": line.memo or "",
            } for line in journal.lines],
        }

    def post_supplier_invoice(self, invoice: SupplierInvoice) -> str:
        """SupplierPayables: a submitted Purchase Invoice, idempotent by supplier and `bill_no` (the supplier's
        invoice number, which ERPNext itself keeps unique per supplier); the same number with other lines or total
        is a PayableConflict."""
        mine = sorted((ln.item_code or "", _dec(ln.quantity), ln.unit_price) for ln in invoice.lines)
        existing = self.find("Purchase Invoice", [["supplier", "=", invoice.supplier_id],
                                                  ["bill_no", "=", invoice.invoice_number]])
        if existing is not None:
            theirs = sorted((str(r["item_code"]), _dec(r["qty"]), _dec(r["rate"])) for r in existing.get("items") or [])
            if theirs != mine or _dec(existing.get("grand_total")) != invoice.total.amount:
                raise PayableConflict(
                    f"supplier invoice {invoice.invoice_number} of {invoice.supplier_id} is already posted as "
                    f"{existing['name']} with other amounts", details={"payable_id": existing["name"]})
            return str(existing["name"])
        bill_date = invoice.invoice_date
        body = {"supplier": invoice.supplier_id, "bill_no": invoice.invoice_number, "company": self.company,
                "currency": invoice.currency,
                "items": [{"item_code": ln.item_code, "qty": ln.quantity, "rate": _num(ln.unit_price)}
                          for ln in invoice.lines]}
        if bill_date and len(bill_date) == 8 and bill_date.isdigit():
            body["bill_date"] = f"{bill_date[:4]}-{bill_date[4:6]}-{bill_date[6:]}"
        if invoice.po_number:
            body["remarks"] = f"Drop-ship PO {invoice.po_number}"
        doc = self.insert("Purchase Invoice", body)
        if _dec(doc.get("grand_total")) != invoice.total.amount:
            raise PayableConflict(f"ERPNext totals supplier invoice {invoice.invoice_number} at "
                                  f"{doc.get('grand_total')}, the supplier states {invoice.total.amount}",
                                  details={"payable_id": doc["name"]})
        return str(doc["name"])

    def post_journal(self, journal: JournalEntry) -> str:
        journal = JournalEntry.model_validate(journal.model_dump())  # re-check the balance
        existing = self.find("Journal Entry", [[REF, "=", journal.external_ref]])
        if existing is not None:
            theirs = [{"account": r["account"], "debit": _dec(r.get("debit_in_account_currency")),
                       "credit": _dec(r.get("credit_in_account_currency"))} for r in existing.get("accounts") or []]
            mine = [{"account": self.account_map.get(x.account, x.account), "debit": x.debit, "credit": x.credit}
                    for x in journal.lines]
            if journal_fingerprint(theirs) != journal_fingerprint(mine):
                raise JournalConflict(
                    f"journal {journal.external_ref} is already posted as {existing['name']} with other amounts",
                    details={"erp_journal_id": existing["name"]})
            return existing["name"]
        return self.insert("Journal Entry", self.journal_body(journal))["name"]
