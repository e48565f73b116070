"""ERPNext / Frappe REST sandbox: the subset adapters/erp/erpnext.py calls, in Frappe's shapes (``{"data": ...}``
for resources, ``{"message": ...}`` for methods, ``exc_type``/``exception``/``_server_messages`` for errors, 417
for a ValidationError), with ``Authorization: token key:secret`` and fault injection (sandbox/faults.py).

Resources (``/api/resource/<DocType>``: list with filters/fields/limit_start/limit_page_length/order_by, get,
insert — ``"docstatus": 1`` inserts and submits —, update, delete): Item (with its Customer Items, listed as
``Item Customer Detail`` with ``parent=Item``), Bin, Sales Order, Delivery Note, Sales Invoice (and returns),
Journal Entry, Stock Entry, Custom Field. Methods: ``frappe.client.cancel``, Sales Order ``make_delivery_note``,
``make_sales_invoice``, ``update_status``, and ``update_child_qty_rate``.

Stock follows ERPNext: a submitted Sales Order raises ``Bin.reserved_qty``; a submitted Delivery Note lowers
``actual_qty`` and ``reserved_qty`` (NegativeStockError when short); closing or cancelling an order gives back what it
still reserves; a Material Receipt Stock Entry raises ``actual_qty``. Seed items and stock through the API
itself (``POST /api/resource/Item``, then a Material Receipt Stock Entry).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import unquote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from sandbox.common import StateStore, make_app
from sandbox.faults import FaultInjector, install_faults

_SERIES = {"Sales Order": "SAL-ORD-.YYYY.-", "Delivery Note": "MAT-DN-.YYYY.-", "Sales Invoice": "ACC-SINV-.YYYY.-",
           "Journal Entry": "ACC-JV-.YYYY.-", "Stock Entry": "MAT-STE-.YYYY.-", "Bin": "BIN-",
           "Custom Field": "CF-", "Customer": "CUST-", "Purchase Invoice": "ACC-PINV-.YYYY.-"}
_RETURN_SERIES = "ACC-SINV-RET-.YYYY.-"
_DOCTYPES = set(_SERIES) | {"Item"}
_SUBMITTABLE = {"Sales Order", "Delivery Note", "Sales Invoice", "Journal Entry", "Stock Entry", "Purchase Invoice"}
_CHILD_TABLES = {"Sales Order": "items", "Delivery Note": "items", "Sales Invoice": "items", "Stock Entry": "items",
                 "Purchase Invoice": "items",
                 "Journal Entry": "accounts", "Item": "customer_items"}
_SO = "erpnext.selling.doctype.sales_order.sales_order"


class FrappeError(Exception):
    def __init__(self, status: int, exc_type: str, message: str) -> None:
        super().__init__(message)
        self.status, self.exc_type, self.message = status, exc_type, message


def _validation(message: str, exc_type: str = "ValidationError") -> FrappeError:
    return FrappeError(417, exc_type, message)


def frappe_error_body(exc_type: str, message: str) -> dict:
    return {"exc_type": exc_type, "exception": f"frappe.exceptions.{exc_type}: {message}",
            "exc": json.dumps([f"Traceback (most recent call last):\nfrappe.exceptions.{exc_type}: {message}\n"]),
            "_server_messages": json.dumps([json.dumps({"message": message, "title": "Message",
                                                        "indicator": "red"})])}


def _d(value: Any) -> Decimal:
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value if value not in (None, "") else 0))
    except InvalidOperation:
        raise _validation(f"{value!r} is not a number") from None
    if not d.is_finite():
        raise _validation(f"{value!r} is not a number")
    return d


def _out(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    if isinstance(obj, dict):
        return {k: _out(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [_out(v) for v in obj]
    return obj


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _match(doc: dict, flt: list) -> bool:
    if len(flt) == 4:
        flt = flt[1:]
    if len(flt) != 3:
        raise _validation(f"invalid filter {flt!r}")
    field, op, value = flt
    have = doc.get(field)
    op = str(op).lower()
    if isinstance(have, Decimal) and not isinstance(value, list | tuple) and op in ("=", "!=", ">", "<", ">=", "<="):
        value = _d(value)
    if op == "=":
        return have == value or (have is None and value in ("", 0))
    if op == "!=":
        return have != value
    if op == "in":
        return have in (value if isinstance(value, list | tuple) else str(value).split(","))
    if op == "not in":
        return have not in (value if isinstance(value, list | tuple) else str(value).split(","))
    if op in ("like", "not like"):
        hit = have is not None and fnmatchcase(str(have).lower(), str(value).lower().replace("%", "*"))
        return hit if op == "like" else not hit
    if op == "is":
        return (have not in (None, "")) == (str(value).lower() == "set")
    if op in (">", "<", ">=", "<="):
        if have is None:
            return False
        return {">": have > value, "<": have < value, ">=": have >= value, "<=": have <= value}[op]
    raise _validation(f"unsupported filter operator {op!r}")


class ErpNextSandbox:
    def __init__(self, *, api_key: str | None = None, api_secret: str | None = None) -> None:
        self.api_key, self.api_secret = api_key, api_secret
        self.store = StateStore()

    # -- auth ---------------------------------------------------------------------------------------------------
    def check_auth(self, request: Request) -> JSONResponse | None:
        header = request.headers.get("Authorization", "")
        ok = header.startswith("token ") and ":" in header
        if ok and self.api_key is not None:
            key, _, secret = header[6:].partition(":")
            ok = key == self.api_key and secret == self.api_secret
        if ok:
            return None
        return JSONResponse(status_code=401, content=frappe_error_body(
            "AuthenticationError", "Invalid API key or secret" if header else "Not permitted"))

    # -- storage ------------------------------------------------------------------------------------------------
    def docs(self, doctype: str) -> dict[str, dict]:
        return self.store.collection(doctype)

    def get(self, doctype: str, name: str) -> dict:
        doc = self.docs(doctype).get(name)
        if doc is None:
            raise FrappeError(404, "DoesNotExistError", f"{doctype} {name} not found")
        return doc

    def new_name(self, doctype: str, doc: dict) -> str:
        if doctype == "Item":
            return str(doc.get("item_code") or "")
        if doctype == "Customer":
            return str(doc.get("customer_name") or doc.get("name") or "")
        if doc.get("amended_from"):  # ERPNext names an amended copy <original>-1, -2, …
            source = str(doc["amended_from"])
            base, _, n = source.rpartition("-")
            if not (base and n.isdigit() and base.count("-") >= 3):
                base, n = source, "0"
            return f"{base}-{int(n) + 1}"
        series = _RETURN_SERIES if doctype == "Sales Invoice" and doc.get("is_return") else _SERIES[doctype]
        series = series.replace(".YYYY.", str(datetime.now(UTC).year))
        return f"{series}{self.store.ids.next_int(series):05d}"

    def _meta(self, doctype: str, doc: dict, name: str) -> dict:
        now = _now()
        doc.update({"name": name, "owner": "Administrator", "creation": now, "modified": now,
                    "modified_by": "Administrator", "idx": 0, "doctype": doctype,
                    "_seq": self.store.ids.next_int("seq")})
        for i, row in enumerate(doc.get(_CHILD_TABLES.get(doctype, ""), []) or [], start=1):
            if not isinstance(row, dict):
                raise _validation("child table rows must be objects")
            row.update({"name": row.get("name") if row.get("_keep") else f"{self.store.ids.next_int('row'):010x}",
                        "parent": name, "parenttype": doctype, "idx": i})
            row.pop("_keep", None)
        return doc

    def bin(self, item_code: str, warehouse: str) -> dict:
        for b in self.docs("Bin").values():
            if b["item_code"] == item_code and b["warehouse"] == warehouse:
                return b
        b = self._meta("Bin", {"item_code": item_code, "warehouse": warehouse, "actual_qty": Decimal(0),
                               "reserved_qty": Decimal(0), "projected_qty": Decimal(0), "docstatus": 0},
                       self.new_name("Bin", {}))
        self.docs("Bin")[b["name"]] = b
        return b

    def move(self, item_code: str, warehouse: str, *, actual: Decimal = Decimal(0), reserved: Decimal = Decimal(0)
             ) -> None:
        b = self.bin(item_code, warehouse)
        if b["actual_qty"] + actual < 0:
            raise _validation(f"{-actual} units of Item {item_code} needed in Warehouse {warehouse} to complete "
                              f"this transaction; {b['actual_qty']} available", "NegativeStockError")
        b["actual_qty"] += actual
        b["reserved_qty"] = max(b["reserved_qty"] + reserved, Decimal(0))
        b["projected_qty"] = b["actual_qty"] - b["reserved_qty"]

    # -- insert / submit ----------------------------------------------------------------------------------------
    def insert(self, doctype: str, doc: dict) -> dict:
        if doctype not in _DOCTYPES:
            raise FrappeError(404, "DoesNotExistError", f"DocType {doctype} not found")
        doc = {k: v for k, v in doc.items() if k not in ("name", "owner", "creation", "modified", "doctype")}
        docstatus = int(doc.get("docstatus") or 0)
        if docstatus not in (0, 1) or (docstatus == 1 and doctype not in _SUBMITTABLE):
            raise _validation(f"Cannot insert {doctype} with docstatus {docstatus}")
        with self.store.lock:
            name = self.new_name(doctype, doc)
            if not name:
                raise _validation(f"{doctype}: a name (item_code) is required", "MandatoryError")
            if name in self.docs(doctype):
                raise FrappeError(409, "DuplicateEntryError", f"{doctype} {name} already exists")
            self._meta(doctype, doc, name)
            getattr(self, "_validate_" + doctype.lower().replace(" ", "_"), lambda d: None)(doc)
            doc["docstatus"] = 0
            if docstatus == 1:
                self.submit(doctype, doc)
            self.docs(doctype)[name] = doc
        return doc

    def submit(self, doctype: str, doc: dict) -> None:
        getattr(self, "_on_submit_" + doctype.lower().replace(" ", "_"))(doc)
        doc["docstatus"] = 1
        doc["modified"] = _now()

    def _item(self, code: Any) -> dict:
        item = self.docs("Item").get(str(code))
        if item is None:
            raise _validation(f"Could not find Item: {code}", "LinkValidationError")
        return item

    def _validate_item(self, doc: dict) -> None:
        doc.setdefault("item_name", doc["item_code"])
        doc["disabled"] = int(doc.get("disabled") or 0)
        doc.setdefault("is_stock_item", 1)
        doc.setdefault("stock_uom", "Nos")
        doc["customer_items"] = doc.get("customer_items") or []

    def _totals(self, doc: dict, *, sign: int = 1) -> None:
        items = doc.get("items") or []
        if not items:
            raise _validation("Items are required", "MandatoryError")
        net = Decimal(0)
        for row in items:
            self._item(row.get("item_code"))
            qty, rate = _d(row.get("qty")), _d(row.get("rate"))
            if qty == 0 or (qty < 0) != (sign < 0):
                raise _validation(f"Row {row['idx']}: quantity {qty} is not allowed here")
            row["qty"], row["rate"], row["amount"] = qty, rate, (qty * rate).quantize(Decimal("0.01"))
            net += row["amount"]
        taxes = Decimal(0)
        for t in doc.get("taxes") or []:
            if t.get("charge_type") != "Actual" or not t.get("account_head"):
                raise _validation("Only Actual charges on an account are supported by this sandbox")
            t["tax_amount"] = _d(t.get("tax_amount"))
            taxes += t["tax_amount"]
        doc["total_qty"] = sum((r["qty"] for r in items), Decimal(0))
        doc["net_total"] = doc["total"] = net
        doc["total_taxes_and_charges"] = taxes
        doc["grand_total"] = doc["rounded_total"] = net + taxes
        doc.setdefault("currency", "USD")

    def _validate_sales_order(self, doc: dict) -> None:
        if not doc.get("customer"):
            raise _validation("Customer is mandatory", "MandatoryError")
        self._totals(doc)
        for row in doc["items"]:
            # "Delivery Warehouse" is the label of Sales Order Item.warehouse; ERPNext's docs post it by label
            row.setdefault("warehouse", row.pop("delivery_warehouse", None) or doc.get("set_warehouse"))
            row["delivered_qty"] = Decimal(0)
            row["billed_amt"] = Decimal(0)
        doc.update({"status": "Draft", "per_delivered": Decimal(0), "per_billed": Decimal(0)})

    def _on_submit_sales_order(self, doc: dict) -> None:
        for row in doc["items"]:
            if row.get("warehouse"):
                self.move(row["item_code"], row["warehouse"], reserved=row["qty"])
        doc["status"] = "To Deliver and Bill"

    def _so_status(self, so: dict) -> None:
        qty = sum((r["qty"] for r in so["items"]), Decimal(0))
        delivered = sum((min(r["delivered_qty"], r["qty"]) for r in so["items"]), Decimal(0))
        so["per_delivered"] = (delivered * 100 / qty).quantize(Decimal("0.01")) if qty else Decimal(100)
        if so["status"] in ("Closed", "Cancelled"):
            return
        done_d, done_b = so["per_delivered"] >= 100, so["per_billed"] >= 100
        so["status"] = ("Completed" if done_d and done_b else "To Bill" if done_d
                        else "To Deliver" if done_b else "To Deliver and Bill")

    def _validate_delivery_note(self, doc: dict) -> None:
        if not doc.get("customer"):
            raise _validation("Customer is mandatory", "MandatoryError")
        self._totals(doc)
        doc["status"] = "Draft"

    def _on_submit_delivery_note(self, doc: dict) -> None:
        moves = []
        for row in doc["items"]:
            so = self.get("Sales Order", row["against_sales_order"]) if row.get("against_sales_order") else None
            so_row = next((r for r in so["items"] if r["name"] == row.get("so_detail")), None) if so else None
            if so is not None and (so["docstatus"] != 1 or so["status"] in ("Closed", "Cancelled")):
                raise _validation(f"Sales Order {so['name']} is {so['status']}")
            if so_row is not None and so_row["delivered_qty"] + row["qty"] > so_row["qty"]:
                raise _validation(f"Row {row['idx']}: cannot deliver more than ordered for Item {row['item_code']}")
            moves.append((row, so, so_row))
        for row, _so, _so_row in moves:  # check stock before any change
            b = self.bin(row["item_code"], row.get("warehouse") or doc.get("set_warehouse") or "")
            needed = sum((r["qty"] for r, _, _ in moves if r["item_code"] == row["item_code"]), Decimal(0))
            if b["actual_qty"] < needed:
                raise _validation(f"{needed} units of Item {row['item_code']} needed in Warehouse {b['warehouse']} "
                                  f"to complete this transaction; {b['actual_qty']} available", "NegativeStockError")
        for row, so, so_row in moves:
            self.move(row["item_code"], row.get("warehouse") or doc.get("set_warehouse") or "", actual=-row["qty"],
                      reserved=-row["qty"] if so_row is not None else Decimal(0))
            if so_row is not None:
                so_row["delivered_qty"] += row["qty"]
                self._so_status(so)
        doc["status"] = "To Bill"

    def _validate_sales_invoice(self, doc: dict) -> None:
        if not doc.get("customer"):
            raise _validation("Customer is mandatory", "MandatoryError")
        doc["is_return"] = int(doc.get("is_return") or 0)
        self._totals(doc, sign=-1 if doc["is_return"] else 1)
        if doc["is_return"] and doc.get("return_against"):
            against = self.get("Sales Invoice", doc["return_against"])
            if against["docstatus"] != 1 or against.get("is_return"):
                raise _validation(f"Return against {against['name']} is not allowed")
        doc["status"] = "Draft"
        doc["outstanding_amount"] = doc["grand_total"]

    def _validate_purchase_invoice(self, doc: dict) -> None:
        if not doc.get("supplier"):
            raise _validation("Supplier is mandatory", "MandatoryError")
        self._totals(doc)
        bill_no = doc.get("bill_no")
        if bill_no:  # Accounts Settings "Check Supplier Invoice Number Uniqueness"
            for other in self.docs("Purchase Invoice").values():
                if other.get("docstatus") != 2 and other.get("supplier") == doc["supplier"] \
                        and other.get("bill_no") == bill_no:
                    raise _validation(f"Supplier Invoice No exists in Purchase Invoice {other['name']}")
        doc["status"] = "Draft"
        doc["outstanding_amount"] = doc["grand_total"]

    def _on_submit_purchase_invoice(self, doc: dict) -> None:
        doc["status"] = "Unpaid"

    def _on_submit_sales_invoice(self, doc: dict) -> None:
        for row in doc["items"]:
            if not doc["is_return"] and row.get("sales_order"):
                so = self.get("Sales Order", row["sales_order"])
                if so["docstatus"] != 1:
                    raise _validation(f"Sales Order {so['name']} is not submitted")
                so_row = next((r for r in so["items"] if r["name"] == row.get("so_detail")), None)
                if so_row is not None:
                    so_row["billed_amt"] += row["amount"]
                billed = sum((r["billed_amt"] for r in so["items"]), Decimal(0))
                net = sum((r["amount"] for r in so["items"]), Decimal(0))
                so["per_billed"] = (billed * 100 / net).quantize(Decimal("0.01")) if net else Decimal(100)
                self._so_status(so)
        doc["status"] = "Return" if doc["is_return"] else "Unpaid"

    def _validate_journal_entry(self, doc: dict) -> None:
        rows = doc.get("accounts") or []
        if len(rows) < 2:
            raise _validation("Journal Entry needs at least two accounts", "MandatoryError")
        debit = credit = Decimal(0)
        for row in rows:
            if not row.get("account"):
                raise _validation(f"Row {row['idx']}: Account is mandatory", "MandatoryError")
            row["debit_in_account_currency"] = _d(row.get("debit_in_account_currency"))
            row["credit_in_account_currency"] = _d(row.get("credit_in_account_currency"))
            row["debit"], row["credit"] = row["debit_in_account_currency"], row["credit_in_account_currency"]
            debit += row["debit"]
            credit += row["credit"]
        if debit != credit:
            raise _validation(f"Total Debit must be equal to Total Credit. The difference is {debit - credit}")
        doc["total_debit"], doc["total_credit"] = debit, credit

    def _on_submit_journal_entry(self, doc: dict) -> None:
        pass  # posting to the GL is not modelled; the document is the record

    def _validate_stock_entry(self, doc: dict) -> None:
        purpose = doc.get("stock_entry_type") or doc.get("purpose")
        if purpose not in ("Material Receipt", "Material Issue"):
            raise _validation(f"Stock Entry Type {purpose!r} is not supported by this sandbox")
        doc["purpose"] = doc["stock_entry_type"] = purpose
        for row in doc.get("items") or []:
            self._item(row.get("item_code"))
            row["qty"] = _d(row.get("qty"))
            if row["qty"] <= 0:
                raise _validation(f"Row {row['idx']}: quantity must be positive")
            wh = row.get("t_warehouse") if purpose == "Material Receipt" else row.get("s_warehouse")
            if not wh:
                raise _validation(f"Row {row['idx']}: a warehouse is mandatory", "MandatoryError")
        if not doc.get("items"):
            raise _validation("Items are required", "MandatoryError")

    def _on_submit_stock_entry(self, doc: dict) -> None:
        for row in doc["items"]:
            if doc["purpose"] == "Material Receipt":
                self.move(row["item_code"], row["t_warehouse"], actual=row["qty"])
            else:
                self.move(row["item_code"], row["s_warehouse"], actual=-row["qty"])

    # -- cancel ---------------------------------------------------------------------------------------------
    def cancel(self, doctype: str, name: str) -> None:
        with self.store.lock:
            doc = self.get(doctype, name)
            if doc["docstatus"] != 1:
                raise _validation(f"Cannot cancel {doctype} {name}: it is not submitted")
            if doctype == "Sales Order":
                linked = [d["name"] for dt in ("Delivery Note", "Sales Invoice") for d in self.docs(dt).values()
                          if d["docstatus"] == 1 and any(r.get("against_sales_order") == name
                                                         or r.get("sales_order") == name for r in d["items"])]
                if linked:
                    raise _validation(f"Cannot cancel {name}: it is linked with submitted {', '.join(linked)}",
                                      "LinkExistsError")
                if doc["status"] != "Closed":
                    for row in doc["items"]:
                        if row.get("warehouse"):
                            self.move(row["item_code"], row["warehouse"],
                                      reserved=-(row["qty"] - row["delivered_qty"]))
            elif doctype == "Sales Invoice" and not doc.get("is_return"):
                if any(d["docstatus"] == 1 and d.get("return_against") == name
                       for d in self.docs("Sales Invoice").values()):
                    raise _validation(f"Cannot cancel {name}: credit notes are made against it", "LinkExistsError")
            elif doctype in ("Delivery Note", "Stock Entry"):
                raise _validation(f"Cancelling a {doctype} is not supported by this sandbox")
            doc["docstatus"] = 2
            doc["status"] = "Cancelled"
            doc["modified"] = _now()

    # -- Sales Order methods --------------------------------------------------------------------------------
    def _submitted_so(self, name: Any) -> dict:
        so = self.get("Sales Order", str(name))
        if so["docstatus"] != 1:
            raise _validation(f"Sales Order {name} is not submitted")
        if so["status"] in ("Closed", "Cancelled"):
            raise _validation(f"Sales Order {name} is {so['status']}")
        return so

    def make_delivery_note(self, source_name: Any) -> dict:
        so = self._submitted_so(source_name)
        items = [{k: v for k, v in {
            "item_code": r["item_code"], "item_name": r.get("item_name") or r["item_code"],
            "qty": r["qty"] - r["delivered_qty"], "rate": r["rate"], "warehouse": r.get("warehouse"),
            "against_sales_order": so["name"], "so_detail": r["name"],
            "retailflow_line_id": r.get("retailflow_line_id"), "retailflow_tax": r.get("retailflow_tax"),
        }.items() if v is not None} for r in so["items"] if r["qty"] > r["delivered_qty"]]
        return {"doctype": "Delivery Note", "docstatus": 0, "customer": so["customer"], "company": so.get("company"),
                "currency": so.get("currency"), "po_no": so.get("po_no"), "set_warehouse": so.get("set_warehouse"),
                "items": items, "taxes": []}

    def make_sales_invoice(self, source_name: Any) -> dict:
        so = self.get("Sales Order", str(source_name))
        if so["docstatus"] != 1 or so["status"] == "Cancelled":
            raise _validation(f"Sales Order {source_name} is not submitted")
        if so["per_billed"] >= 100:
            raise _validation(f"Sales Order {source_name} is already fully billed")
        items = [{k: v for k, v in {
            "item_code": r["item_code"], "qty": r["qty"], "rate": r["rate"], "sales_order": so["name"],
            "so_detail": r["name"], "warehouse": r.get("warehouse"),
            "retailflow_line_id": r.get("retailflow_line_id"), "retailflow_tax": r.get("retailflow_tax"),
        }.items() if v is not None} for r in so["items"] if r["qty"] > 0]
        return {"doctype": "Sales Invoice", "docstatus": 0, "customer": so["customer"], "company": so.get("company"),
                "currency": so.get("currency"), "po_no": so.get("po_no"), "is_return": 0, "items": items,
                "taxes": [{k: t[k] for k in ("charge_type", "account_head", "description", "tax_amount")}
                          for t in so.get("taxes") or []]}

    def update_status(self, status: Any, name: Any) -> None:
        with self.store.lock:
            so = self.get("Sales Order", str(name))
            if so["docstatus"] != 1:
                raise _validation(f"Sales Order {name} is not submitted")
            if status == "Closed" and so["status"] != "Closed":
                for row in so["items"]:
                    if row.get("warehouse"):
                        self.move(row["item_code"], row["warehouse"], reserved=-(row["qty"] - row["delivered_qty"]))
                so["status"] = "Closed"
            elif status == "Draft" and so["status"] == "Closed":  # "Re-open"
                for row in so["items"]:
                    if row.get("warehouse"):
                        self.move(row["item_code"], row["warehouse"], reserved=row["qty"] - row["delivered_qty"])
                so["status"] = "To Deliver and Bill"
                self._so_status(so)
            elif status not in ("Closed", "Draft"):
                raise _validation(f"Unsupported status {status!r}")

    def update_child_qty_rate(self, parent_doctype: Any, trans_items: Any, parent_doctype_name: Any,
                              child_docname: Any = "items") -> None:
        if parent_doctype != "Sales Order" or child_docname != "items":
            raise _validation("Only Sales Order items can be updated by this sandbox")
        items = json.loads(trans_items, parse_float=Decimal) if isinstance(trans_items, str) else trans_items
        if not isinstance(items, list):
            raise _validation("trans_items must be a list")
        with self.store.lock:
            so = self._submitted_so(parent_doctype_name)
            if so["per_billed"] > 0:
                raise _validation(f"Sales Order {so['name']} is billed; its items cannot change")
            rows = {r["name"]: r for r in so["items"]}
            for t in items:
                row = rows.get(t.get("docname"))
                if row is None:
                    raise _validation("Adding rows is not supported by this sandbox")
                qty, rate = _d(t.get("qty")), _d(t.get("rate", row["rate"]))
                if qty < row["delivered_qty"]:
                    raise _validation(f"Row #{row['idx']}: Cannot set quantity less than delivered quantity")
                if row.get("warehouse"):
                    self.move(row["item_code"], row["warehouse"], reserved=qty - row["qty"])
                row["qty"], row["rate"], row["amount"] = qty, rate, (qty * rate).quantize(Decimal("0.01"))
            net = sum((r["amount"] for r in so["items"]), Decimal(0))
            taxes = sum((_d(t["tax_amount"]) for t in so.get("taxes") or []), Decimal(0))
            so.update({"net_total": net, "total": net, "grand_total": net + taxes, "rounded_total": net + taxes,
                       "total_qty": sum((r["qty"] for r in so["items"]), Decimal(0)), "modified": _now()})
            self._so_status(so)

    # -- listing --------------------------------------------------------------------------------------------
    def rows_of(self, doctype: str, parent: str | None) -> list[dict]:
        if doctype == "Item Customer Detail":
            if parent != "Item":
                raise FrappeError(403, "PermissionError", "parent=Item is required for a child table")
            return [{**row, "parent": item["name"], "_seq": item["_seq"]}
                    for item in self.docs("Item").values() for row in item.get("customer_items") or []]
        if doctype not in _DOCTYPES:
            raise FrappeError(404, "DoesNotExistError", f"DocType {doctype} not found")
        return list(self.docs(doctype).values())

    def list(self, doctype: str, params: dict[str, str]) -> list[dict]:
        try:
            filters = json.loads(params.get("filters") or "[]", parse_float=Decimal)
            fields = json.loads(params.get("fields") or '["name"]')
            start = int(params.get("limit_start") or 0)
            page = int(params.get("limit_page_length") or params.get("limit") or 20)
        except ValueError:
            raise _validation("filters and fields must be JSON; limit_start and limit_page_length integers") from None
        if isinstance(filters, dict):
            filters = [[k, "=", v] for k, v in filters.items()]
        if not isinstance(filters, list) or not isinstance(fields, list) or start < 0 or page < 0:
            raise _validation("invalid filters, fields or limits")
        order = (params.get("order_by") or "creation desc").lower()
        with self.store.lock:
            rows = [r for r in self.rows_of(doctype, params.get("parent")) if all(_match(r, f) for f in filters)]
            rows.sort(key=lambda r: r.get("_seq", 0), reverse=order.endswith("desc"))
            rows = rows[start:start + page] if page else rows[start:]
            if fields == ["*"]:
                return [{k: v for k, v in r.items() if not isinstance(v, list)} for r in rows]
            return [{f: r.get(f) for f in fields} for r in rows]


def create_app(*, api_key: str | None = None, api_secret: str | None = None,
               injector: FaultInjector | None = None) -> FastAPI:
    """The ERPNext sandbox app; the token must match `api_key`/`api_secret` (default: the settings')."""
    if api_key is None or api_secret is None:
        from runtime.settings import get_settings

        settings = get_settings()
        api_key = settings.erpnext_api_key if api_key is None else api_key
        api_secret = settings.erpnext_api_secret.get_secret_value() if api_secret is None else api_secret
    sb = ErpNextSandbox(api_key=api_key, api_secret=api_secret)
    app = make_app("ERPNext / Frappe REST", __doc__ or "")
    app.state.sandbox = sb
    install_faults(app, injector or FaultInjector(), reset_hooks=[sb.store.reset])

    @app.exception_handler(FrappeError)
    async def _frappe_error(_request: Request, exc: FrappeError) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content=frappe_error_body(exc.exc_type, exc.message))

    async def _body(request: Request) -> dict:
        try:
            body = json.loads(await request.body() or b"{}", parse_float=Decimal)
        except ValueError:
            raise _validation("the request body is not valid JSON") from None
        if isinstance(body, dict) and isinstance(body.get("data"), str):  # frappe also accepts data=<json>
            body = json.loads(body["data"], parse_float=Decimal)
        if not isinstance(body, dict):
            raise _validation("the request body must be a JSON object")
        return body

    def _guard(request: Request) -> None:
        denied = sb.check_auth(request)
        if denied is not None:
            raise FrappeError(401, "AuthenticationError", "Invalid API key or secret")

    def _safe(fn, *args: Any) -> Any:
        try:
            return fn(*args)
        except FrappeError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, InvalidOperation) as exc:
            raise _validation(f"invalid document: {type(exc).__name__}: {exc}") from None

    @app.get("/api/resource/{doctype}")
    async def list_resource(doctype: str, request: Request) -> JSONResponse:
        _guard(request)
        rows = _safe(sb.list, unquote(doctype), dict(request.query_params))
        return JSONResponse({"data": _out(rows)})

    @app.get("/api/resource/{doctype}/{name}")
    async def get_resource(doctype: str, name: str, request: Request) -> JSONResponse:
        _guard(request)
        with sb.store.lock:
            return JSONResponse({"data": _out(sb.get(unquote(doctype), unquote(name)))})

    @app.post("/api/resource/{doctype}")
    async def insert_resource(doctype: str, request: Request) -> JSONResponse:
        _guard(request)
        body = await _body(request)
        return JSONResponse({"data": _out(_safe(sb.insert, unquote(doctype), body))})

    @app.put("/api/resource/{doctype}/{name}")
    async def update_resource(doctype: str, name: str, request: Request) -> JSONResponse:
        _guard(request)
        body = await _body(request)
        doctype, name = unquote(doctype), unquote(name)
        with sb.store.lock:
            doc = sb.get(doctype, name)
            if doc["docstatus"] == 2:
                raise _validation(f"Cannot edit cancelled {doctype} {name}", "UpdateAfterSubmitError")
            target = int(body.pop("docstatus", doc["docstatus"]) or 0)
            if doc["docstatus"] == 1 and body:
                raise _validation(f"Not allowed to change fields of submitted {doctype} {name}",
                                  "UpdateAfterSubmitError")
            if doc["docstatus"] == 0 and body:
                updated = {**{k: v for k, v in doc.items()}, **body}
                _safe(getattr(sb, "_validate_" + doctype.lower().replace(" ", "_"), lambda d: None), updated)
                doc.clear()
                doc.update(updated)
            if target == 1 and doc["docstatus"] == 0:
                _safe(sb.submit, doctype, doc)
            elif target == 2:
                sb.cancel(doctype, name)
            doc["modified"] = _now()
            return JSONResponse({"data": _out(doc)})

    @app.delete("/api/resource/{doctype}/{name}")
    async def delete_resource(doctype: str, name: str, request: Request) -> JSONResponse:
        _guard(request)
        doctype, name = unquote(doctype), unquote(name)
        with sb.store.lock:
            doc = sb.get(doctype, name)
            if doc["docstatus"] == 1:
                raise _validation(f"Submitted {doctype} {name} cannot be deleted; cancel it first")
            del sb.docs(doctype)[name]
        return JSONResponse({"message": "ok"})

    @app.post("/api/method/frappe.client.cancel")
    async def client_cancel(request: Request) -> JSONResponse:
        _guard(request)
        body = await _body(request)
        _safe(sb.cancel, str(body.get("doctype")), str(body.get("name")))
        return JSONResponse({"message": None})

    @app.post(f"/api/method/{_SO}.make_delivery_note")
    async def make_delivery_note(request: Request) -> JSONResponse:
        _guard(request)
        body = await _body(request)
        with sb.store.lock:
            return JSONResponse({"message": _out(_safe(sb.make_delivery_note, body.get("source_name")))})

    @app.post(f"/api/method/{_SO}.make_sales_invoice")
    async def make_sales_invoice(request: Request) -> JSONResponse:
        _guard(request)
        body = await _body(request)
        with sb.store.lock:
            return JSONResponse({"message": _out(_safe(sb.make_sales_invoice, body.get("source_name")))})

    @app.post(f"/api/method/{_SO}.update_status")
    async def update_status(request: Request) -> JSONResponse:
        _guard(request)
        body = await _body(request)
        _safe(sb.update_status, body.get("status"), body.get("name"))
        return JSONResponse({"message": None})

    @app.post("/api/method/erpnext.controllers.accounts_controller.update_child_qty_rate")
    async def update_child_qty_rate(request: Request) -> JSONResponse:
        _guard(request)
        body = await _body(request)
        _safe(sb.update_child_qty_rate, body.get("parent_doctype"), body.get("trans_items"),
              body.get("parent_doctype_name"), body.get("child_docname", "items"))
        return JSONResponse({"message": None})

    return app
