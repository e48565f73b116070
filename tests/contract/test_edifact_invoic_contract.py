"""A published UN/EDIFACT INVOIC (tests/fixtures/edi/edifact/invoic_pydifact_invoice1.edi, SOURCES.md: pydifact's
own test file, D.97A, a price per 100 units) taken unchanged from a supplier's inbox by the invoice sweep
(activities/sourcing.py `sweep_supplier_invoices`): matched to the ORDERS we sent for its order reference (RFF+ON
X18V00003) and to a DESADV of it, posted once as a payable; the same file against an order at another price is
quarantined with the difference. The ORDERS and the DESADV are ours (adapters/supplier/edifact.py, the sandbox
supplier's builder); only the INVOIC is the published one. The same for a published X12 810 (the OopFactory
parser's `810_2011110815164104.txt`, seven IT1 lines for PO 981903), matched to the 850 we sent and an 856."""

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
from adapters.supplier import x12
from adapters.supplier.dropfolder import LocalDropFolder
from adapters.supplier.edi import EdiSupplierAdapter
from adapters.supplier.ledger import SqlEdiLedger
from canonical.order import Address
from canonical.supplier import PoLine, PurchaseOrder
from sandbox.edi_supplier import SupplierFaults, body_856, build_edifact, desadv_body, plan_for
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


def test_published_810_matched_to_the_850_as_sent_and_posted_once(engine, tmp_path):
    from datetime import UTC, datetime

    at = datetime(2011, 11, 3, 15, 57, tzinfo=UTC)
    supplier, us = x12.Party("ZZ", "XXXXXXXX4T"), x12.Party("12", "XXXXXXXXXFTP")  # the 810's ISA06 / ISA08
    drop = LocalDropFolder(tmp_path / "drop")
    edi = EdiSupplierAdapter(drop, SqlEdiLedger(engine), our_id=us.id, our_qualifier=us.qualifier,
                             clock=lambda: at)
    acts = SplitFulfillmentActivities(SimpleNamespace(erp=LocalErp(engine)), suppliers={"edi": edi})  # type: ignore[arg-type]
    ordered = [("10190150", 11, "1305"), ("10235150", 8, "767"), ("10240150", 12, "1196"), ("10245170", 6, "1800"),
               ("10250150", 8, "930"), ("21520120", 20, "120"), ("21520150", 5, "175")]
    po = PurchaseOrder(po_number="981903", supplier_id=supplier.id, currency="USD",
                       ship_to=Address(name="SLEEP COUNTRY - KENT", line1="6705 SOUTH 209TH ST", city="KENT",
                                       region="WA", postal_code="98032", country="US"),
                       lines=[PoLine(line_number=str(n), item_code=item, quantity=q, unit_price=Decimal(price))
                              for n, (item, q, price) in enumerate(ordered, start=1)])
    edi.send_purchase_order(po)
    drop.put("inbound", "856.x12", x12.build_interchange(supplier, us, 7, [
        ("856", body_856(plan_for(po, SupplierFaults()), at, "UPSN"))], at=at).encode())
    published = fixture_bytes("edi", "x12", "810_2011110815164104.txt")
    drop.put("inbound", "810.x12", published)

    env = ActivityEnvironment()
    result = env.run(acts.sweep_supplier_invoices, InvoiceSweepInput(adapter="edi"))
    assert result.posted == ["edi:810.x12:3323399"]
    with engine.connect() as conn:
        [payable] = list(conn.execute(select(supplier_invoices)))
    assert (payable.supplier_id, payable.invoice_number, payable.po_number, payable.currency) == (
        supplier.id, "3323399", "981903", "USD")
    assert Decimal(str(payable.total)) == Decimal("56358.00")  # TDS*5635800
    assert drop.get("archive", "810.x12") == published and "856.x12" in drop.list("inbound")
    assert env.run(acts.sweep_supplier_invoices, InvoiceSweepInput(adapter="edi")).posted == []
