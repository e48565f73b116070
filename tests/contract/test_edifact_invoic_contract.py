"""A published UN/EDIFACT INVOIC (tests/fixtures/edi/edifact/invoic_pydifact_invoice1.edi, SOURCES.md: pydifact's
own test file, D.97A, a price per 100 units) taken unchanged from a supplier's inbox by the invoice sweep
(activities/sourcing.py `sweep_supplier_invoices`): matched to the ORDERS we sent for its order reference (RFF+ON
X18V00003) and to a DESADV of it, posted once as a payable; the same file against an order at another price is
quarantined with the difference. The ORDERS and the DESADV are ours (adapters/supplier/edifact.py, the sandbox
supplier's builder); only the INVOIC is the published one."""

from __future__ import annotations

import json
from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy import select
from temporalio.testing import ActivityEnvironment

from activities.sourcing import InvoiceSweepInput, SplitFulfillmentActivities
from adapters.erp.local import LocalErp
from adapters.sql import supplier_invoices
from adapters.supplier.dropfolder import LocalDropFolder
from adapters.supplier.edi import EdiSupplierAdapter
from adapters.supplier.ledger import SqlEdiLedger
from canonical.order import Address
from canonical.supplier import PoLine, PurchaseOrder
from sandbox.edi_supplier import SupplierFaults, build_edifact, desadv_body, plan_for
from tests.conftest import fixture_bytes

SUPPLIER = "01010000253001"  # the INVOIC's UNB sender


def _order(price: str) -> PurchaseOrder:
    return PurchaseOrder(po_number="X18V00003", supplier_id=SUPPLIER, currency="EUR",
                         ship_to=Address(name="Vauxhall Motors Ltd", city="Luton", country="GB"),
                         lines=[PoLine(line_number="1", item_code="090346642", quantity=54,
                                       unit_price=Decimal(price))])


@pytest.mark.parametrize(("price", "posted"), [("36.301724", True), ("36.30", False)])
def test_published_invoic_matched_to_the_orders_as_sent_and_posted_once(engine, tmp_path, price, posted):
    from datetime import UTC, datetime

    at = datetime(1999, 10, 6, 19, 2, tzinfo=UTC)
    drop = LocalDropFolder(tmp_path / "drop")
    edi = EdiSupplierAdapter(drop, SqlEdiLedger(engine), our_id="O0013000093SCHA-Z59",
                             edifact_partners=frozenset({SUPPLIER}), clock=lambda: at)
    acts = SplitFulfillmentActivities(SimpleNamespace(erp=LocalErp(engine)), suppliers={"edi": edi})  # type: ignore[arg-type]
    po = _order(price)
    edi.send_purchase_order(po)  # our ORDERS, kept in archive/ as sent
    drop.put("inbound", "desadv.edi", build_edifact(SUPPLIER, "O0013000093SCHA-Z59", 1, "DESADV",
                                                    desadv_body(plan_for(po, SupplierFaults()), at, "DHL"),
                                                    at).encode("latin-1"))
    published = fixture_bytes("edi", "edifact", "invoic_pydifact_invoice1.edi")
    drop.put("inbound", "invoice1.edi", published)

    env = ActivityEnvironment()
    result = env.run(acts.sweep_supplier_invoices, InvoiceSweepInput(adapter="edi"))
    with engine.connect() as conn:
        payables = list(conn.execute(select(supplier_invoices)))
    assert "desadv.edi" in drop.list("inbound")  # a ship notice is its order's to take, not the sweep's
    if posted:
        assert result.posted == ["edi:invoice1.edi:1060113800026"]
        [payable] = payables
        assert (payable.supplier_id, payable.invoice_number, payable.po_number, payable.currency) == (
            SUPPLIER, "1060113800026", "X18V00003", "EUR")
        assert Decimal(str(payable.total)) == Decimal("1960.29")  # 54 x 3630.1724 per 100, to the cent
        assert drop.get("archive", "invoice1.edi") == published
        drop.put("inbound", "invoice1_again.edi", published)  # the same UNB05 again: a duplicate, not a payable
        again = env.run(acts.sweep_supplier_invoices, InvoiceSweepInput(adapter="edi"))
        assert again.posted == [] and "invoice1_again.edi.duplicate" in drop.list("archive")
    else:
        assert result.mismatched == ["edi:invoice1.edi:1060113800026"] and payables == []
        report = json.loads(drop.get("quarantine", "invoice1.edi.error.json"))
        assert [(d["kind"], d["detail"]) for d in report["differences"]] == [
            ("price", "invoiced at 36.301724, ordered at 36.3")]
