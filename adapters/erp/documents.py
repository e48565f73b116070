"""Read what an ERP booked for a business key as a `ParityDocument` (canonical/erp_routing.py), the form the
dual-run parity check compares (issue 21, part 2). One reader per ERP adapter:

- the embedded ERP (`LocalErp`): its `erp_sales_orders` / `erp_invoices` rows;
- ERPNext (`ErpNext`, `ShadowErpNext`): the Sales Order (``po_no`` = the key), the Sales Invoice (``retailflow_ref``) or
  the return Sales Invoice of a credit note (``retailflow_ref`` = the credit note's reference, ``is_return``; its
  negative amounts and quantities read as the credit they are).

Amounts are put in terms both share: a document's net is its grand total less its tax, so shipping counts in the
net on both (the embedded ERP books it in the net, ERPNext as a charge row); lines are per channel line id (ERPNext
books a line whose net does not divide by its quantity as two rows, added up here).

Parity is read for `orders` (sales orders), `invoices` (sales invoices), `credit_notes` and `journals` (a journal's
lines per platform account — ERPNext's account names mapped back through its account map — as debit less credit;
ERPNext's Journal Entry carries no currency, so the system of record's is taken for it); stock is refused by name.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select

from adapters.erp.erpnext import ADJ, LINE, LINE_TAX, REF, ErpNext
from adapters.erp.local import LocalErp
from adapters.sql import erp as tables
from canonical.erp_routing import ParityDocument, ParityLine

PARITY_PROCESSES = ("orders", "invoices", "credit_notes", "journals")


def _d(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value or 0))


def read_document(erp_name: str, adapter: Any, process: str, key: str, *, currency: str | None = None
                  ) -> ParityDocument | None:
    """The document `adapter` (the ERP named `erp_name` in the routing file) booked for `key`, or None. `currency`:
    the document's currency where the ERP does not record it (an ERPNext Journal Entry)."""
    if process not in PARITY_PROCESSES:
        raise ValueError(f"parity of process {process!r} is not read yet; one of: {', '.join(PARITY_PROCESSES)}")
    if isinstance(adapter, LocalErp):
        return _local(erp_name, adapter, process, key)
    if isinstance(adapter, ErpNext):
        if process == "journals":
            return _erpnext_journal(erp_name, adapter, key, currency or "USD")
        return _erpnext(erp_name, adapter, process, key)
    raise TypeError(f"no parity reader for ERP adapter {type(adapter).__name__} ({erp_name})")


# -- the embedded ERP -------------------------------------------------------------------------------------------
def _local(erp_name: str, erp: LocalErp, process: str, key: str) -> ParityDocument | None:
    so_t, inv_t, cn_t, je_t = tables.sales_orders, tables.invoices, tables.credit_notes, tables.erp_journals
    with erp.engine.connect() as conn:
        if process == "journals":
            je = conn.execute(select(je_t).where(je_t.c.external_ref == key)).mappings().first()
            if je is None:
                return None
            return _journal(process, key, erp_name, je["id"], je["currency"], str(je["posting_date"]),
                            [(str(ln["account"]), _d(ln.get("debit")), _d(ln.get("credit"))) for ln in je["lines"]])
        if process == "credit_notes":
            cn = conn.execute(select(cn_t).where(cn_t.c.external_ref == key)).mappings().first()
            if cn is None:
                return None
            lines = [ParityLine(line_id=str(ln["line_id"]), item_code=str(ln.get("item_code") or ""),
                                quantity=int(ln["quantity"]), net=_d(ln["net"]), tax=_d(ln["tax"]))
                     for ln in cn["lines"] or []]
            return ParityDocument(
                process=process, business_key=key, erp=erp_name, document_id=cn["id"], status=cn["status"],
                currency=cn["currency"], net_total=_d(cn["grand_total"]) - _d(cn["tax_total"]),
                tax_total=_d(cn["tax_total"]), grand_total=_d(cn["grand_total"]), lines=_merged(lines),
                dimensions={"channel": _channel(cn["order_external_ref"]),
                            "order": str(cn["order_external_ref"])})
        so = conn.execute(select(so_t).where(so_t.c.external_ref == key)).mappings().first()
        if process == "orders":
            if so is None:
                return None
            lines = [ParityLine(line_id=str(sl["line_id"]), item_code=str(sl["item_code"]),
                                quantity=int(sl["quantity"]), net=_d(sl["net"]), tax=_d(sl["tax"]))
                     for sl in so["lines"] or []]
            return ParityDocument(
                process=process, business_key=key, erp=erp_name, document_id=so["id"], status=so["status"],
                currency=so["currency"], net_total=_d(so["grand_total"]) - _d(so["tax_total"]),
                tax_total=_d(so["tax_total"]), grand_total=_d(so["grand_total"]), lines=_merged(lines),
                dimensions={"channel": so["channel"], "external_order_id": so["external_order_id"]})
        inv = conn.execute(select(inv_t).where(inv_t.c.external_ref == key)).mappings().first()
    if inv is None:
        return None
    return ParityDocument(
        process=process, business_key=key, erp=erp_name, document_id=inv["id"], status="submitted",
        currency=inv["currency"], net_total=_d(inv["grand_total"]) - _d(inv["tax_total"]),
        tax_total=_d(inv["tax_total"]), grand_total=_d(inv["grand_total"]),
        dimensions={"channel": so["channel"]} if so is not None else {})


# -- ERPNext ----------------------------------------------------------------------------------------------------
def _erpnext(erp_name: str, erp: ErpNext, process: str, key: str) -> ParityDocument | None:
    if process == "orders":
        doc = erp.find("Sales Order", [["po_no", "=", key]])
        if doc is None:  # a cancelled order is still a document: the record's may be cancelled too
            rows = erp.list_docs("Sales Order", [["po_no", "=", key], ["docstatus", "=", 2]], ["name"],
                                 order_by="creation desc", limit=1)
            doc = erp.get_doc("Sales Order", rows[0]["name"]) if rows else None
    else:
        is_return = 1 if process == "credit_notes" else 0
        doc = erp.find("Sales Invoice", [[REF, "=", key], ["is_return", "=", is_return]])
        if doc is None and is_return:
            rows = erp.list_docs("Sales Invoice", [[REF, "=", key], ["is_return", "=", 1], ["docstatus", "=", 2]],
                                 ["name"], order_by="creation desc", limit=1)
            doc = erp.get_doc("Sales Invoice", rows[0]["name"]) if rows else None
    if doc is None:
        return None
    sign = Decimal(-1) if process == "credit_notes" else Decimal(1)  # a return invoice books the credit negative
    tax = sign * sum((_d(t.get("tax_amount")) for t in doc.get("taxes") or []
                      if t.get("account_head") == erp.tax_account), Decimal(0))
    grand = sign * _d(doc.get("grand_total"))
    lines = []
    for row in doc.get("items") or []:
        line_id = str(row.get(LINE) or row["item_code"])
        amount_only = line_id.endswith(ADJ)  # a credit without units is booked as one unit marked #adj
        lines.append(ParityLine(line_id=line_id.removesuffix(ADJ), item_code=str(row["item_code"]),
                                quantity=0 if amount_only else int(sign * _d(row.get("qty"))),
                                net=sign * _d(row.get("amount")), tax=sign * _d(row.get(LINE_TAX))))
    by_customer = {customer: channel for channel, customer in erp.customers.items()}
    customer = str(doc.get("customer") or "")
    status = "cancelled" if doc.get("docstatus") == 2 else "draft" if doc.get("docstatus") == 0 \
        else str(doc.get("status") or "submitted")
    return ParityDocument(
        process=process, business_key=key, erp=erp_name, document_id=str(doc["name"]), status=status,
        currency=str(doc.get("currency") or "USD"), net_total=grand - tax, tax_total=tax, grand_total=grand,
        lines=_merged(lines) if process in ("orders", "credit_notes") else [],
        dimensions={"channel": by_customer.get(customer, customer), "customer": customer,
                    "company": str(doc.get("company") or ""), "warehouse": str(doc.get("set_warehouse") or ""),
                    "shadow": "yes" if doc.get("retailflow_shadow") else "no"},
        shadow=bool(doc.get("retailflow_shadow")))


def _erpnext_journal(erp_name: str, erp: ErpNext, key: str, currency: str) -> ParityDocument | None:
    doc = erp.find("Journal Entry", [[REF, "=", key]])
    if doc is None:
        return None
    platform = {name: code for code, name in erp.account_map.items()}
    return _journal("journals", key, erp_name, str(doc["name"]), currency, str(doc.get("posting_date") or ""),
                    [(platform.get(str(r["account"]), str(r["account"])), _d(r.get("debit_in_account_currency")),
                      _d(r.get("credit_in_account_currency"))) for r in doc.get("accounts") or []],
                    shadow=bool(doc.get("retailflow_shadow")))


def _journal(process: str, key: str, erp_name: str, doc_id: str, currency: str, posting_date: str,
             rows: list[tuple[str, Decimal, Decimal]], *, shadow: bool = False) -> ParityDocument:
    """A journal as totals and one line per account: its rows, and their debit less credit."""
    by_account: dict[str, tuple[int, Decimal]] = {}
    for account, debit, credit in rows:
        n, amount = by_account.get(account, (0, Decimal(0)))
        by_account[account] = (n + 1, amount + debit - credit)
    debit = sum((r[1] for r in rows), Decimal(0))
    return ParityDocument(
        process=process, business_key=key, erp=erp_name, document_id=doc_id, status="posted", currency=currency,
        net_total=debit, tax_total=Decimal(0), grand_total=debit,
        lines=[ParityLine(line_id=a, item_code=a, quantity=n, net=amount, tax=Decimal(0))
               for a, (n, amount) in sorted(by_account.items())],
        dimensions={"posting_date": posting_date[:10], **({"shadow": "yes"} if shadow else {})}, shadow=shadow)


def _channel(order_ref: str) -> str:
    parts = str(order_ref).split(":", 2)
    return parts[1] if len(parts) == 3 else ""


def _merged(lines: list[ParityLine]) -> list[ParityLine]:
    """One line per channel line id (ERPNext books some as two rows)."""
    out: dict[str, ParityLine] = {}
    for line in lines:
        have = out.get(line.line_id)
        out[line.line_id] = line if have is None else have.model_copy(update={
            "quantity": have.quantity + line.quantity, "net": have.net + line.net, "tax": have.tax + line.tax})
    return [out[k] for k in sorted(out)]
