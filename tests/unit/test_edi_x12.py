"""X12 for drop-ship suppliers (adapters/supplier): 850 build / parse round trip, envelope validation with the
segment and position of each fault, control numbers, duplicate interchanges, quarantine, 997s both ways, invoice
matching and the embedded ERP's payables."""

from __future__ import annotations

import json
import threading
import warnings
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from adapters.erp.base import SupplierPayables
from adapters.erp.local import LocalErp
from adapters.sql import create_schema, make_engine
from adapters.supplier import x12
from adapters.supplier.base import SupplierAdapter
from adapters.supplier.dropfolder import LocalDropFolder, ManagedFileTransport
from adapters.supplier.edi import EdiSupplierAdapter
from adapters.supplier.ledger import SqlEdiLedger
from canonical.money import Money
from canonical.order import Address
from canonical.supplier import (
    EdiError,
    InvoiceLine,
    PayableConflict,
    PoAcknowledgement,
    PoLine,
    PurchaseOrder,
    ShipNotice,
    ShippedLine,
    SupplierInvoice,
    match_invoice,
)

AT = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
US = x12.Party("ZZ", "RETAILFLOW")
ACME = x12.Party("ZZ", "ACMESUPPLY")


def _po(number: str = "PO1001") -> PurchaseOrder:
    return PurchaseOrder(
        po_number=number, supplier_id="ACMESUPPLY", order_ref="shopify:1001",
        ship_to=Address(name="Ann*Smith~", line1="1 Main St", line2="Apt 2", city="Berea", region="KY",
                        postal_code="40403", country="US"),
        lines=[PoLine(line_number="1", item_code="SKU-A", supplier_item="AC-100", quantity=2,
                      unit_price=Decimal("10.50")),
               PoLine(line_number="2", item_code="SKU-B", quantity=5, unit_price=Decimal("3.2575"))])


def _segments(text: str) -> list[str]:
    return [s.strip() for s in text.split("~") if s.strip()]


def _rebuild(segments: list[str]) -> str:
    return "~\n".join(segments) + "~\n"


@pytest.fixture
def engine(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path / 'edi.db'}")
    create_schema(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def adapter(engine, tmp_path) -> EdiSupplierAdapter:
    return EdiSupplierAdapter(LocalDropFolder(tmp_path / "drop"), SqlEdiLedger(engine), our_id="RETAILFLOW",
                              clock=lambda: AT)


# -- build / parse ---------------------------------------------------------------------------------------------------

def test_850_round_trip_with_envelope_counts():
    text = x12.build_purchase_order(_po(), sender=US, receiver=ACME, control=42, at=AT)
    segs = _segments(text)
    assert segs[0].startswith("ISA*00*          *00*          *ZZ*RETAILFLOW     *ZZ*ACMESUPPLY     *261203*0930*U*00401*"
                              "000000042*0*P*>")
    assert len(segs[0]) == 105  # fixed width ISA, terminator aside
    assert segs[1] == "GS*PO*RETAILFLOW*ACMESUPPLY*20261203*0930*42*X*004010"
    assert "BEG*00*DS*PO1001**20261203" in segs
    assert "N1*ST*Ann Smith" in segs  # delimiters in free text become spaces
    assert "PO1*1*2*EA*10.5**BP*SKU-A*VP*AC-100" in segs
    assert "PO1*2*5*EA*3.2575**BP*SKU-B" in segs
    assert "CTT*2*7" in segs
    st, se = segs.index("ST*850*0001"), next(i for i, s in enumerate(segs) if s.startswith("SE*"))
    assert segs[se] == f"SE*{se - st + 1}*0001"
    assert segs[-2:] == ["GE*1*42", "IEA*1*000000042"]

    ix = x12.read_interchange(text)
    assert (ix.sender_id, ix.receiver_id, ix.control, ix.transaction_sets) == ("RETAILFLOW", "ACMESUPPLY",
                                                                               "000000042", ["850"])
    po = x12.parse_850(ix, ix.groups[0].transactions[0])
    assert po.po_number == "PO1001" and po.order_ref == "shopify:1001" and po.currency == "USD"
    assert [(ln.line_number, ln.item_code, ln.supplier_item, ln.quantity, ln.unit_price) for ln in po.lines] == [
        ("1", "SKU-A", "AC-100", 2, Decimal("10.5")), ("2", "SKU-B", None, 5, Decimal("3.2575"))]
    assert (po.ship_to.name, po.ship_to.city, po.ship_to.region, po.ship_to.country) == ("Ann Smith", "Berea",
                                                                                          "KY", "US")


def test_identifiers_with_delimiters_are_refused_not_altered():
    with pytest.raises(ValueError, match="delimiter"):
        x12.build_purchase_order(_po("PO*1"), sender=US, receiver=ACME, control=1, at=AT)
    with pytest.raises(ValueError, match="out of range"):
        x12.build_purchase_order(_po(), sender=US, receiver=ACME, control=1_000_000_000, at=AT)


def _855(*, ack_qty: str = "2") -> str:
    body = [x12.segment("BAK", "00", "AC", "PO1001", "20261203"),
            x12.segment("PO1", "1", "2", "EA", "10.5", "", "BP", "SKU-A"), x12.segment("ACK", "IA", ack_qty, "EA"),
            x12.segment("PO1", "2", "5", "EA", "3.2575", "", "BP", "SKU-B"), x12.segment("ACK", "IA", "3", "EA"),
            x12.segment("ACK", "IB", "2", "EA"),
            x12.segment("PO1", "3", "1", "EA", "9", "", "BP", "SKU-C"), x12.segment("ACK", "IR", "1", "EA"),
            x12.segment("CTT", "3")]
    return x12.build_interchange(ACME, US, 7, [("855", body)], at=AT)


def test_855_lines_accepted_backordered_rejected():
    ix = x12.read_interchange(_855())
    [ack] = x12.parse_documents(ix)
    assert isinstance(ack, PoAcknowledgement)
    assert [(ln.line_number, ln.status.value, ln.quantity, ln.code) for ln in ack.lines] == [
        ("1", "accepted", 2, "IA"), ("2", "accepted", 3, "IA"), ("2", "backordered", 2, "IB"),
        ("3", "rejected", 1, "IR")]
    assert ack.supplier_id == "ACMESUPPLY" and ack.interchange_control == "000000007"


# -- envelope validation ---------------------------------------------------------------------------------------------

def _broken(mutate) -> str:
    segs = _segments(_855())
    mutate(segs)
    return _rebuild(segs)


def _index(segs: list[str], prefix: str) -> int:
    return next(i for i, s in enumerate(segs) if s.startswith(prefix))


@pytest.mark.parametrize(("name", "mutate", "seg_id", "code"), [
    ("SE01 count", lambda s: s.__setitem__(_index(s, "SE*"), "SE*99*0001"), "SE", "4"),
    ("ST02/SE02", lambda s: s.__setitem__(_index(s, "SE*"), s[_index(s, "SE*")].replace("*0001", "*0002")), "SE",
     "3"),
    ("GS06/GE02", lambda s: s.__setitem__(_index(s, "GE*"), "GE*1*8"), "GE", "4"),
    ("GE01 count", lambda s: s.__setitem__(_index(s, "GE*"), "GE*2*7"), "GE", "5"),
    ("ISA13/IEA02", lambda s: s.__setitem__(_index(s, "IEA*"), "IEA*1*000000008"), "IEA", "001"),
    ("IEA01 count", lambda s: s.__setitem__(_index(s, "IEA*"), "IEA*3*000000007"), "IEA", "021"),
])
def test_envelope_faults_name_segment_and_position(name, mutate, seg_id, code):
    text = _broken(mutate)
    with pytest.raises(x12.InterchangeError) as err:
        x12.read_interchange(text)
    segs = _segments(text)
    assert err.value.segment_id == seg_id, name
    assert err.value.segment_position == _index(segs, seg_id + "*"), name
    assert err.value.code == code, name
    assert f"segment {seg_id} at position {err.value.segment_position}" in str(err.value)


def test_missing_trailer_and_bad_control_number_and_bad_element():
    segs = _segments(_855())
    with pytest.raises(x12.InterchangeError) as err:
        x12.read_interchange(_rebuild(segs[:-1]))  # no IEA
    assert (err.value.segment_id, err.value.segment_position) == (None, len(segs) - 1)

    isa = segs[0].replace("*000000007*", "*00000007A*")
    with pytest.raises(x12.InterchangeError) as err:
        x12.read_interchange(_rebuild([isa, *segs[1:-1], "IEA*1*00000007A"]))
    assert (err.value.segment_id, err.value.segment_position, err.value.element_position) == ("ISA", 0, 13)

    with pytest.raises(x12.InterchangeError) as err:
        x12.read_interchange("GS*PR*X*Y~")
    assert (err.value.segment_id, err.value.segment_position) == ("ISA", 0)

    ix = x12.read_interchange(_855(ack_qty="2.5"))
    with pytest.raises(EdiError) as bad:
        x12.parse_documents(ix)
    assert (bad.value.segment_id, bad.value.segment_position, bad.value.element_position) == ("ACK", 5, 2)  # ISA 0, GS 1, ST 2, BAK 3, PO1 4, ACK 5


# -- control numbers -------------------------------------------------------------------------------------------------

def test_control_numbers_unique_and_monotonic_across_runs_and_threads(tmp_path):
    url = f"sqlite:///{tmp_path / 'ctl.db'}"
    first = make_engine(url)
    create_schema(first)
    assert [SqlEdiLedger(first).next_control_number("ACME") for _ in range(3)] == [1, 2, 3]
    first.dispose()

    again = make_engine(url)  # a new process on the same database continues, never restarts
    ledger = SqlEdiLedger(again)
    assert ledger.next_control_number("ACME") == 4
    assert ledger.next_control_number("OTHER") == 1  # per trading partner
    got: list[list[int]] = [[] for _ in range(4)]

    def take(i: int) -> None:
        for _ in range(15):
            got[i].append(ledger.next_control_number("ACME"))

    threads = [threading.Thread(target=take, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = sorted(n for g in got for n in g)
    assert every == list(range(5, 65))
    assert all(g == sorted(g) for g in got)
    again.dispose()


# -- the adapter: send, collect, acknowledge, duplicates, quarantine ------------------------------------------------

def test_adapter_satisfies_the_ports(adapter, engine):
    assert isinstance(adapter, SupplierAdapter)
    assert isinstance(adapter.transport, ManagedFileTransport)
    assert isinstance(LocalErp(engine), SupplierPayables)


def test_send_purchase_order_once(adapter):
    sent = adapter.send_purchase_order(_po())
    again = adapter.send_purchase_order(_po())
    assert (sent.interchange_control, sent.resent) == ("000000001", False)
    assert (again.interchange_control, again.resent, again.file_name) == ("000000001", True, sent.file_name)
    assert adapter.transport.list("outbound") == ["850_ACMESUPPLY_000000001.x12"]
    assert not [n for n in (adapter.transport.root / "outbound").iterdir() if n.name.startswith(".")]  # type: ignore[attr-defined]


def test_inbound_is_acknowledged_once_and_a_duplicate_is_not_processed_twice(adapter):
    drop = adapter.transport
    adapter.send_purchase_order(_po())
    drop.put("inbound", "acme_855.x12", _855().encode())

    first = adapter.collect()
    assert [d.document_type for d in first.documents] == ["855"]
    assert len(first.acknowledgements_sent) == 1
    ack_text = drop.get("outbound", first.acknowledgements_sent[0]).decode()
    assert "AK1*PR*7~" in ack_text and "AK2*855*0001~" in ack_text and "AK9*A*1*1*1~" in ack_text
    x12.read_interchange(ack_text)  # our 997 is itself a valid interchange

    redelivered = adapter.collect()  # not acknowledged yet: delivered again, 997 not repeated
    assert [d.document_type for d in redelivered.documents] == ["855"] and redelivered.acknowledgements_sent == []

    assert adapter.acknowledge(first.documents[0].receipt) is True
    assert drop.list("inbound") == [] and drop.list("archive") == ["850_ACMESUPPLY_000000001.x12.sent", "acme_855.x12"]
    assert adapter.acknowledge(first.documents[0].receipt) is False

    drop.put("inbound", "acme_855_again.x12", _855().encode())  # the same ISA13 from the same partner
    dup = adapter.collect()
    assert dup.documents == [] and dup.duplicates == ["acme_855_again.x12"]
    assert "acme_855_again.x12.duplicate" in drop.list("archive")


def test_malformed_file_is_quarantined_with_position_and_rejected_by_997(adapter):
    drop = adapter.transport
    text = _broken(lambda s: s.__setitem__(_index(s, "SE*"), "SE*99*0001"))
    drop.put("inbound", "bad_855.x12", text.encode())
    result = adapter.collect()
    assert result.documents == []
    [q] = result.quarantined
    position = _index(_segments(text), "SE*")
    assert (q.file_name, q.segment_id, q.segment_position) == ("bad_855.x12", "SE", position)
    assert drop.list("inbound") == []
    assert sorted(drop.list("quarantine")) == ["bad_855.x12", "bad_855.x12.error.json"]
    assert drop.get("quarantine", "bad_855.x12") == text.encode()  # kept byte for byte
    report = json.loads(drop.get("quarantine", "bad_855.x12.error.json"))
    assert (report["segment_id"], report["segment_position"], report["code"], report["partner"],
            report["interchange_control"]) == ("SE", position, "4", "ACMESUPPLY", "000000007")
    [ack] = result.acknowledgements_sent
    ack_text = drop.get("outbound", ack).decode()
    assert "AK2*855*0001~" in ack_text and "AK5*R*4~" in ack_text and "AK9*R*1*1*0~" in ack_text


def test_997_received_marks_our_850_acknowledged(adapter):
    sent = adapter.send_purchase_order(_po())
    body = [x12.segment("AK1", "PO", "1"), x12.segment("AK2", "850", "0001"), x12.segment("AK5", "A"),
            x12.segment("AK9", "A", "1", "1", "1")]
    adapter.transport.put("inbound", "acme_997.x12", x12.build_interchange(ACME, US, 3, [("997", body)],
                                                                           at=AT).encode())
    result = adapter.collect()
    assert [d.document_type for d in result.documents] == ["997"]
    assert result.acknowledgements_sent == []  # a 997 is never acknowledged
    record = adapter.ledger.get("outbound", "ACMESUPPLY", sent.interchange_control)
    assert record is not None and (record.ack_status, record.ack_control) == ("A", "000000003")


# -- invoice matching and payables -----------------------------------------------------------------------------------

def _invoice(lines: list[tuple[str, int, str]], total: str) -> SupplierInvoice:
    return SupplierInvoice(invoice_number="INV-9", po_number="PO1001", supplier_id="ACMESUPPLY",
                           lines=[InvoiceLine(line_number=n, quantity=q, unit_price=Decimal(p)) for n, q, p in lines],
                           total=Money.of(total, "USD"), interchange_control="000000009")


def _notice(shipped: list[tuple[str, int]]) -> ShipNotice:
    return ShipNotice(shipment_id="SH1", po_number="PO1001", supplier_id="ACMESUPPLY", interchange_control="8",
                      lines=[ShippedLine(line_number=n, quantity=q) for n, q in shipped])


def test_invoice_matches_po_and_ship_notices():
    ok = match_invoice(_invoice([("1", 2, "10.50"), ("2", 3, "3.2575")], "30.77"), _po(),
                       [_notice([("1", 2)]), _notice([("2", 3)])])
    assert ok.matched and ok.differences == []
    # 2 * 10.50 + 3 * 3.2575 (9.7725, invoiced as 9.77) = 30.77; a cent more is a difference
    off = match_invoice(_invoice([("1", 2, "10.50"), ("2", 3, "3.2575")], "30.78"), _po(),
                        [_notice([("1", 2), ("2", 3)])])
    assert [d.kind for d in off.differences] == ["total"]
    assert "lines add up to 30.77, invoice states 30.78" in off.differences[0].detail


def test_invoice_differences_price_quantity_total_unknown_line():
    result = match_invoice(_invoice([("1", 2, "10.51"), ("2", 5, "3.2575"), ("9", 1, "1")], "40.00"), _po(),
                           [_notice([("1", 2), ("2", 3)])])
    assert not result.matched
    assert sorted((d.kind, d.line_number) for d in result.differences) == [
        ("over_shipped", "2"), ("price", "1"), ("total", None), ("unknown_line", "9")]
    assert "5 invoiced, 3 shipped" in next(d.detail for d in result.differences if d.kind == "over_shipped")


def test_supplier_invoice_posted_once_as_payable(engine):
    erp = LocalErp(engine)
    invoice = _invoice([("1", 2, "10.50")], "21.00")
    first = erp.post_supplier_invoice(invoice)
    assert first.startswith("PINV-") and erp.post_supplier_invoice(invoice) == first
    with pytest.raises(PayableConflict):
        erp.post_supplier_invoice(_invoice([("1", 2, "10.60")], "21.20"))


# -- EDIFACT (adapters/supplier/edifact.py, pydifact) ----------------------------------------------------------------

def _edifact(messages: list[tuple[str, list[str]]], control: str = "EDI0001") -> str:
    """A supplier's interchange built with pydifact (not by string joining): each message's body segments as
    '+'/':' text parsed by pydifact's own parser."""
    from pydifact.parser import Parser
    from pydifact.segmentcollection import Interchange, Message

    ix = Interchange(sender="ACMESUPPLY", recipient="RETAILFLOW", control_reference=control,
                     syntax_identifier=("UNOC", 3), timestamp=AT.replace(tzinfo=None))
    for n, (kind, body) in enumerate(messages, start=1):
        msg = Message(str(n), [kind, "D", "96A", "UN"])
        with warnings.catch_warnings():  # pydifact ships no segment directory for D.96A
            warnings.filterwarnings("ignore", message=".*segments.xml not found.*")
            for seg in Parser().parse("'".join(body) + "'"):
                msg.add_segment(seg)
        ix.add_message(msg)
    return ix.serialize(break_lines=True)


def test_edifact_orders_round_trip_and_supplier_documents():
    from adapters.supplier import edifact

    text = edifact.build_orders(_po(), sender="RETAILFLOW", recipient="ACMESUPPLY", control="000000001", at=AT)
    ix = edifact.read_edifact(text)
    assert (ix.sender, ix.recipient, ix.control, [m.type for m in ix.messages]) == (
        "RETAILFLOW", "ACMESUPPLY", "000000001", ["ORDERS"])
    tags = [seg.tag for _, seg in ix.messages[0].segments]
    assert tags[:2] == ["UNH", "BGM"] and tags.count("LIN") == 2 and tags[-1] == "CNT"

    supplier = _edifact([
        ("ORDRSP", ["BGM+231+R1+29", "RFF+ON:PO1001", "LIN+1+5+SKU-A:IN", "QTY+21:2", "LIN+2+3+SKU-B:IN", "QTY+21:5",
                    "QTY+113:3", "QTY+83:2"]),
        ("DESADV", ["BGM+351+DES1+9", "RFF+ON:PO1001", "TDT+20++30++UPSN", "RFF+CN:1Z999", "LIN+1++SKU-A:IN",
                    "QTY+12:2"]),
        ("INVOIC", ["BGM+380+INV1+9", "RFF+ON:PO1001", "CUX+2:USD", "LIN+1++SKU-A:IN", "QTY+47:2", "PRI+AAA:10.5",
                    "UNS+S", "MOA+77:21"]),
    ])
    ack, notice, invoice = (d for _, d in edifact.parse_documents(edifact.read_edifact(supplier)))
    assert isinstance(ack, PoAcknowledgement) and isinstance(notice, ShipNotice)
    assert isinstance(invoice, SupplierInvoice)
    assert [(ln.line_number, ln.status.value, ln.quantity) for ln in ack.lines] == [
        ("1", "accepted", 2), ("2", "changed", 3), ("2", "backordered", 2)]
    assert (notice.po_number, notice.carrier, notice.tracking_number, notice.lines[0].quantity) == (
        "PO1001", "UPSN", "1Z999", 2)
    assert (invoice.invoice_number, invoice.total, invoice.lines[0].unit_price) == (
        "INV1", Money.of("21", "USD"), Decimal("10.5"))
    assert match_invoice(invoice, _po(), [notice]).matched


@pytest.mark.parametrize(("mutate", "seg_id", "element"), [
    (lambda t: t.replace("UNT+5+1'", "UNT+6+1'"), "UNT", 1),
    (lambda t: t.replace("UNT+5+1'", "UNT+5+2'"), "UNT", 2),
    (lambda t: t.replace("UNZ+1+EDI0001'", "UNZ+2+EDI0001'"), "UNZ", 1),
    (lambda t: t.replace("UNZ+1+EDI0001'", "UNZ+1+EDI0002'"), "UNZ", 2),
])
def test_edifact_envelope_faults_name_segment_and_position(mutate, seg_id, element):
    from adapters.supplier import edifact

    text = _edifact([("DESADV", ["BGM+351+DES1+9", "LIN+1++SKU-A:IN", "QTY+12:2"])])
    assert "UNT+5+1'" in text and "UNZ+1+EDI0001'" in text  # UNH, BGM, LIN, QTY, UNT
    with pytest.raises(EdiError) as err:
        edifact.read_edifact(mutate(text))
    lines = [ln for ln in text.splitlines() if ln]
    assert (err.value.segment_id, err.value.element_position) == (seg_id, element)
    assert err.value.segment_position == next(i for i, ln in enumerate(lines) if ln.startswith(seg_id + "+"))


def test_adapter_collects_edifact_and_quarantines_a_broken_one(tmp_path, engine):
    adapter = EdiSupplierAdapter(LocalDropFolder(tmp_path / "drop"), SqlEdiLedger(engine), our_id="RETAILFLOW",
                                 edifact_partners=frozenset({"ACMESUPPLY"}), clock=lambda: AT)
    sent = adapter.send_purchase_order(_po())
    assert sent.file_name.startswith("ORDERS_") and adapter.transport.get("outbound", sent.file_name).startswith(
        b"UNB+UNOC:3+RETAILFLOW+ACMESUPPLY+261203:0930+000000001'")
    good = _edifact([("DESADV", ["BGM+351+DES1+9", "RFF+ON:PO1001", "LIN+1++SKU-A:IN", "QTY+12:2"])])
    adapter.transport.put("inbound", "desadv.edi", good.encode())
    adapter.transport.put("inbound", "broken.edi", good.replace("UNT+6+1'", "UNT+9+1'").encode())
    result = adapter.collect()
    assert [d.document_type for d in result.documents] == ["DESADV"]
    assert [(q.file_name, q.segment_id) for q in result.quarantined] == [("broken.edi", "UNT")]
    adapter.acknowledge(result.documents[0].receipt)
    adapter.transport.put("inbound", "desadv_again.edi", good.encode())
    assert adapter.collect().duplicates == ["desadv_again.edi"]


def test_interchange_for_another_receiver_is_quarantined(adapter):
    text = x12.build_interchange(ACME, x12.Party("ZZ", "SOMEONEELSE"), 11, [("855", [
        x12.segment("BAK", "00", "AD", "PO1001", "20261203")])], at=AT)
    adapter.transport.put("inbound", "misrouted.x12", text.encode())
    result = adapter.collect()
    assert result.documents == []
    [q] = result.quarantined
    assert (q.segment_id, q.segment_position, q.element_position) == ("ISA", 0, 8)
    assert "SOMEONEELSE" in q.error
