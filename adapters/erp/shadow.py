"""ERPNext as a *shadow* ERP in a dual-run (issue 21, part 2; docs/erp-migration.md): the same adapter, with every
document it creates marked as a shadow posting — the custom field ``retailflow_shadow`` (Check) set to 1 and the
document's ``remarks`` saying so — so nobody in ERPNext takes a shadow Sales Order, Delivery Note, Sales Invoice,
Journal Entry or Stock Entry for the system of record's. A shadow can also be a company of its own (the routing
file's ``company`` for the ERP), which keeps shadow books apart from real ones on one site.

It never takes reservation holds: the system of record reserves; the shadow only books the documents.
"""

from __future__ import annotations

from adapters.erp.erpnext import ErpNext

SHADOW = "retailflow_shadow"
SHADOW_REMARK = "retailflow dual-run SHADOW posting: not the system of record"
SHADOW_DOCTYPES = ("Sales Order", "Delivery Note", "Sales Invoice", "Journal Entry", "Stock Entry")


class ShadowErpNext(ErpNext):
    """ErpNext whose documents are marked shadow (see the module)."""

    shadow = True

    def insert(self, doctype: str, doc: dict, *, submit: bool = True) -> dict:
        if doctype in SHADOW_DOCTYPES:
            remarks = f"{SHADOW_REMARK}. {doc['remarks']}" if doc.get("remarks") else SHADOW_REMARK
            doc = {**doc, SHADOW: 1, "remarks": remarks}
        return super().insert(doctype, doc, submit=submit)

    def ensure_custom_fields(self) -> int:
        created = super().ensure_custom_fields()
        for doctype in SHADOW_DOCTYPES:
            if self.list_docs("Custom Field", [["dt", "=", doctype], ["fieldname", "=", SHADOW]], limit=1):
                continue
            self.insert("Custom Field", {"dt": doctype, "fieldname": SHADOW, "label": "Retailflow Shadow",
                                         "fieldtype": "Check", "insert_after": "po_no", "read_only": 1,
                                         "no_copy": 1}, submit=False)
            created += 1
        return created
