"""EDIFACT with a drop-ship supplier (adapters/supplier/edifact.py, sandbox/edi_supplier.py): our ORDERS read back
(`parse_orders`, the inverse of `build_orders`: what an INVOIC is matched to), and the sandbox supplier answering
an ORDERS in EDIFACT (ORDRSP / DESADV / INVOIC built with pydifact) with its faults: a rejected line, a partial
ship, a late DESADV, a malformed DESADV quarantined with the segment and position of its UNT."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from adapters.supplier import edifact
from adapters.supplier.dropfolder import LocalDropFolder
from adapters.supplier.edi import EdiSupplierAdapter
from adapters.supplier.ledger import SqlEdiLedger
from canonical.order import Address
from canonical.supplier import (
    AckLineStatus,
    EdiError,
    PoAcknowledgement,
    PoLine,
    PurchaseOrder,
    ShipNotice,
    SupplierInvoice,
    match_invoice,
)
from sandbox.edi_supplier import SandboxEdiSupplier, SupplierFaults

AT = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)


def _po(number: str = "PO2001") -> PurchaseOrder:
    return PurchaseOrder(
        po_number=number, supplier_id="ACME", order_ref="shopify:2001", currency="EUR",
        ship_to=Address(name="Zoë O'Neil+Co", line1="Keizersgracht 1", city="Amsterdam", region="NH",
                        postal_code="1015 CJ", country="NL"),
        lines=[PoLine(line_number="1", item_code="LAMP-1", quantity=2, unit_price=Decimal("10.50")),
               PoLine(line_number="2", item_code="BULB:E27", quantity=5, unit_price=Decimal("3.2575")),
               PoLine(line_number="3", item_code="SHADE", quantity=4, unit_price=Decimal("100"))])


def test_free_text_outside_unoc_loses_its_accent_and_the_file_is_iso_8859_1(world):
    adapter, _ = world
    po = _po().model_copy(update={"ship_to": _po().ship_to.model_copy(update={"name": "Łukasz Żak", "city": "Łódź"})})
    sent = adapter.send_purchase_order(po)
    data = adapter.transport.get("outbound", sent.file_name)
    assert "NAD+ST++Lukasz Zak++Keizersgracht 1+Lódz+" in data.decode("latin-1")
    back = adapter.purchase_order(po.po_number)
    assert back is not None and (back.ship_to.name, back.ship_to.city) == ("Lukasz Zak", "Lódz")


def test_orders_read_back_is_the_order_sent():
    po = _po()
    text = edifact.build_orders(po, sender="RETAILFLOW", recipient="ACME", control="000000007", at=AT)
    assert "?'" in text and "BULB?:E27" in text  # pydifact escaped the service characters
    ix = edifact.read_edifact(text)
    [msg] = ix.messages
    back = edifact.parse_orders(ix, msg)
    assert (back.po_number, back.supplier_id, back.order_ref, back.currency) == ("PO2001", "ACME", "shopify:2001",
                                                                                 "EUR")
    assert back.ship_to.model_dump(exclude_none=True) == {"name": "Zoë O'Neil+Co", "line1": "Keizersgracht 1",
                                                          "city": "Amsterdam", "region": "NH",
                                                          "postal_code": "1015 CJ", "country": "NL"}
    assert [(ln.line_number, ln.item_code, ln.quantity, ln.unit_price, ln.uom) for ln in back.lines] == [
        ("1", "LAMP-1", 2, Decimal("10.50"), "EA"), ("2", "BULB:E27", 5, Decimal("3.2575"), "EA"),
        ("3", "SHADE", 4, Decimal("100"), "EA")]


def test_an_orders_line_without_quantity_names_its_lin():
    text = edifact.build_orders(_po(), sender="RETAILFLOW", recipient="ACME", control="000000007", at=AT)
    broken = text.replace("QTY+21:5:PCE'\n", "").replace("UNT+18+1'", "UNT+17+1'")
    ix = edifact.read_edifact(broken)
    with pytest.raises(EdiError) as err:
        edifact.parse_orders(ix, ix.messages[0])
    lines = [ln for ln in broken.splitlines() if ln]
    assert err.value.segment_id == "LIN"
    assert err.value.segment_position == next(i for i, ln in enumerate(lines) if ln.startswith("LIN+2+"))


@pytest.fixture
def world(engine, tmp_path):
    adapter = EdiSupplierAdapter(LocalDropFolder(tmp_path / "drop"), SqlEdiLedger(engine), our_id="RETAILFLOW",
                                 edifact_partners=frozenset({"ACME"}), clock=lambda: AT)
    return adapter, tmp_path / "drop"


def _supplier(folder, **faults) -> SandboxEdiSupplier:
    return SandboxEdiSupplier(folder, supplier_id="ACME", faults=SupplierFaults(**faults), clock=lambda: AT)


def test_the_sandbox_supplier_answers_orders_in_edifact_that_match(world):
    adapter, folder = world
    adapter.send_purchase_order(_po())
    written = _supplier(folder).process_once()
    assert [n.rsplit("_", 1)[1] for n in written] == ["ORDRSP.edi", "DESADV.edi", "INVOIC.edi"]
    assert LocalDropFolder(folder).list("outbound") == []  # picked up
    result = adapter.collect()
    assert [d.document_type for d in result.documents] == ["ORDRSP", "DESADV", "INVOIC"]
    assert result.acknowledgements_sent == []  # no 997 / CONTRL in EDIFACT
    ack, notice, invoice = (d.document for d in result.documents)
    assert isinstance(ack, PoAcknowledgement) and isinstance(notice, ShipNotice)
    assert isinstance(invoice, SupplierInvoice)
    assert (ack.po_number, ack.status_code, ack.rejected) == ("PO2001", "AC", False)
    assert {ln.status for ln in ack.lines} == {AckLineStatus.ACCEPTED}
    assert (notice.po_number, notice.carrier, notice.tracking_number[:2]) == ("PO2001", "UPSN", "1Z")
    assert [(s.line_number, s.item_code, s.quantity) for s in notice.lines] == [
        ("1", "LAMP-1", 2), ("2", "BULB:E27", 5), ("3", "SHADE", 4)]
    # 21.00 + 16.29 (5 x 3.2575 = 16.2875, to the cent) + 400.00
    assert (invoice.po_number, invoice.supplier_id, invoice.total.amount, invoice.currency) == (
        "PO2001", "ACME", Decimal("437.29"), "EUR")
    sent = adapter.purchase_order("PO2001")
    assert sent is not None and match_invoice(invoice, sent, [notice]).matched


def test_a_rejected_line_and_a_partial_ship_in_edifact(world):
    adapter, folder = world
    adapter.send_purchase_order(_po())
    _supplier(folder, reject_line_rate=1.0, partial_ship_rate=1.0).process_once()
    ack, notice, invoice = (d.document for d in adapter.collect().documents)
    assert isinstance(ack, PoAcknowledgement) and isinstance(notice, ShipNotice)
    assert isinstance(invoice, SupplierInvoice)
    assert [(a.line_number, a.status, a.quantity) for a in ack.lines] == [
        ("1", AckLineStatus.REJECTED, 2), ("2", AckLineStatus.ACCEPTED, 5), ("3", AckLineStatus.CHANGED, 2),
        ("3", AckLineStatus.BACKORDERED, 2)]
    assert [(s.line_number, s.quantity) for s in notice.lines] == [("2", 5), ("3", 2)]
    assert [(ln.line_number, ln.quantity) for ln in invoice.lines] == [("2", 5), ("3", 2)]
    sent = adapter.purchase_order("PO2001")
    assert sent is not None and match_invoice(invoice, sent, [notice]).matched


def test_a_wholly_rejected_order_is_an_ordrsp_not_accepted(world):
    adapter, folder = world
    po = _po().model_copy(update={"lines": _po().lines[:1]})
    adapter.send_purchase_order(po)
    assert [n.rsplit("_", 1)[1] for n in _supplier(folder, reject_line_rate=1.0).process_once()] == ["ORDRSP.edi"]
    [doc] = adapter.collect().documents
    assert isinstance(doc.document, PoAcknowledgement) and doc.document.rejected  # BGM03 27


def test_a_late_desadv_and_its_invoic_come_later_with_fresh_control_numbers(world):
    adapter, folder = world
    adapter.send_purchase_order(_po())
    supplier = _supplier(folder, late_856_rate=1.0, late_856_ticks=2)
    assert [n.rsplit("_", 1)[1] for n in supplier.process_once()] == ["ORDRSP.edi"]
    first = adapter.collect()
    adapter.acknowledge(first.documents[0].receipt)
    assert supplier.process_once() == []
    assert [n.rsplit("_", 1)[1] for n in supplier.process_once()] == ["DESADV.edi", "INVOIC.edi"]
    second = adapter.collect()
    assert [d.document_type for d in second.documents] == ["DESADV", "INVOIC"]
    controls = [d.receipt.interchange_control for d in first.documents + second.documents]
    assert controls == sorted(controls) and len(set(controls)) == 3


def test_a_malformed_desadv_is_quarantined_with_its_unt(world):
    adapter, folder = world
    adapter.send_purchase_order(_po())
    _supplier(folder, malformed_856_rate=1.0).process_once()
    result = adapter.collect()
    assert [d.document_type for d in result.documents] == ["ORDRSP", "INVOIC"]
    [q] = result.quarantined
    assert q.file_name.endswith("_DESADV.edi") and (q.segment_id, q.element_position) == ("UNT", 1)
    lines = [ln for ln in LocalDropFolder(folder).get("quarantine", q.file_name).decode().splitlines() if ln]
    assert q.segment_position == next(i for i, ln in enumerate(lines) if ln.startswith("UNT+"))


def test_a_repeated_orders_interchange_is_answered_once(world):
    adapter, folder = world
    sent = adapter.send_purchase_order(_po())
    drop = LocalDropFolder(folder)
    data = drop.get("outbound", sent.file_name)
    supplier = _supplier(folder)
    assert len(supplier.process_once()) == 3
    drop.put("outbound", sent.file_name, data)  # our retry re-sends the same UNB05
    assert supplier.process_once() == []
