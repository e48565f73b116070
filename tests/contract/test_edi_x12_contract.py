"""Published X12 interchanges (tests/fixtures/edi/x12, SOURCES.md: EDI libraries' own test samples) read unchanged
by adapters/supplier/x12.py: byte order marks, CRLF, indentation, `~` as element separator and `*` as segment
terminator all as published; the envelopes validate and the documents map to the canonical facts."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

from adapters.supplier import x12
from canonical.supplier import AckLineStatus, FunctionalAck, PoAcknowledgement, ShipNotice, SupplierInvoice

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "edi" / "x12"


def _read(name: str) -> x12.Interchange:
    return x12.read_interchange((FIXTURES / name).read_bytes())


def test_850_published_sample():
    ix = _read("850_From_aojuk.txt")
    assert (ix.sender_id, ix.receiver_id, ix.control, ix.transaction_sets) == ("SITESTUFFP2P", "SUPPLIERID",
                                                                               "000000091", ["850"])
    assert (ix.groups[0].functional_id, ix.groups[0].control, ix.groups[0].version) == ("PO", "83", "004010")
    po = x12.parse_850(ix, ix.groups[0].transactions[0])
    assert po.po_number == "6190"
    assert (po.ship_to.name, po.ship_to.line1, po.ship_to.city, po.ship_to.region, po.ship_to.postal_code) == (
        "Demo Buying Property", "street 1", "Austin", "TX", "78759")
    assert [(ln.line_number, ln.item_code, ln.quantity, ln.uom, ln.unit_price) for ln in po.lines] == [
        ("6917", "123456", 1, "PK", Decimal("10.98")), ("6915", "654321", 1, "EA", Decimal("219"))]
    # AMT*TT*229.98 in the sample: the lines add up to it
    assert sum(ln.unit_price * ln.quantity for ln in po.lines) == Decimal("229.98")


def test_855_published_sample_two_transaction_sets():
    ix = _read("855_855SSimmons.txt")
    assert ix.control == "000076417" and ix.transaction_sets == ["855", "855"]
    first, second = x12.parse_documents(ix)
    assert isinstance(first, PoAcknowledgement) and isinstance(second, PoAcknowledgement)
    assert (first.po_number, first.status_code, second.po_number) == ("7542", "AD", "99035")
    # BAK02 AD (acknowledge, no change) and no ACK segments: every line accepted as ordered
    assert [(ln.line_number, ln.item_code, ln.status, ln.quantity) for ln in first.lines] == [
        ("100", "4620451B", AckLineStatus.ACCEPTED, 1), ("200", "1528451M", AckLineStatus.ACCEPTED, 1)]
    assert first.supplier_id == "121792154"


def test_856_published_sample_with_unusual_delimiters():
    ix = _read("856_Example1.txt")
    assert ix.transaction_sets == ["856"] and ix.segment_count == 29
    [notice] = x12.parse_documents(ix)
    assert isinstance(notice, ShipNotice)
    assert (notice.shipment_id, notice.po_number, notice.supplier_id) == ("123456", "123456", "201495124")
    assert [(ln.line_number, ln.item_code, ln.quantity, ln.uom) for ln in notice.lines] == [
        ("001", "1234-123456", 16, "PC"), ("002", "1234-654321", 23, "LB"), ("004", "1234-223456", 16, "PC")]


def test_810_published_sample_total_is_implied_cents():
    ix = _read("810_2011110815164104.txt")
    [invoice] = x12.parse_documents(ix)
    assert isinstance(invoice, SupplierInvoice)
    assert (invoice.invoice_number, invoice.invoice_date, invoice.po_number) == ("3323399", "20111031", "981903")
    assert len(invoice.lines) == 7 and invoice.lines[0].quantity == 11 and invoice.lines[0].unit_price == 1305
    assert invoice.total.amount == Decimal("56358.00")  # TDS*5635800
    assert sum(ln.extended for ln in invoice.lines) == invoice.total.amount


def test_997_published_sample_rejection_details():
    ix = _read("997_staedi_simple997.edi")
    [ack] = x12.parse_documents(ix)
    assert isinstance(ack, FunctionalAck)
    assert (ack.functional_id, ack.group_control, ack.status, ack.accepted) == ("HC", "000001", "R", False)
    [txn] = ack.transactions
    assert (txn.transaction_set, txn.control_number, txn.status) == ("837", "0021", "R")
    assert txn.errors == ["segment NM1 at 8: code 8", "element 8: code 7"]


def test_published_samples_answered_with_a_valid_997():
    for name in ("855_855SSimmons.txt", "856_Example1.txt", "810_2011110815164104.txt"):
        ix = _read(name)
        text = x12.build_functional_ack([x12.GroupVerdict.accept(g) for g in ix.groups],
                                        sender=x12.Party(ix.receiver_qualifier, ix.receiver_id),
                                        receiver=x12.Party(ix.sender_qualifier, ix.sender_id), control=5,
                                        at=datetime(2026, 12, 3))
        acks = [a for a in x12.parse_documents(x12.read_interchange(text)) if isinstance(a, FunctionalAck)]
        assert [(a.functional_id, a.group_control, a.status) for a in acks] == [
            (g.functional_id, g.control, "A") for g in ix.groups]


def test_edifact_invoic_published_sample():
    """pydifact's own INVOIC test file (D.97A): a price per 100 units (PRI05) and the summary MOA 77."""
    from adapters.supplier import edifact

    data = (FIXTURES.parent / "edifact" / "invoic_pydifact_invoice1.edi").read_bytes()
    ix = edifact.read_edifact(data)
    assert (ix.sender, ix.recipient, ix.control) == ("01010000253001", "O0013000093SCHA-Z59", "PAYO0012101221")
    [(kind, invoice)] = edifact.parse_documents(ix)
    assert kind == "INVOIC" and isinstance(invoice, SupplierInvoice)
    assert (invoice.invoice_number, invoice.invoice_date, invoice.po_number, invoice.currency) == (
        "1060113800026", "19991006", "X18V00003", "EUR")
    [line] = invoice.lines
    assert (line.item_code, line.quantity, line.uom, line.unit_price) == ("090346642", 54, "PCE",
                                                                          Decimal("36.301724"))
    assert invoice.total.amount == Decimal("1960.29")  # = 54 x 3630.1724 / 100, to the cent
    assert (line.extended).quantize(Decimal("0.01")) == invoice.total.amount
