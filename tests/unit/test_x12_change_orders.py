"""X12 004010 purchase order change documents (adapters/supplier/x12.py): the 860 we build (BCH01 01 cancellation
of the whole PO, 04 change with POC lines DI delete item / QD quantity decrease) read back through pyx12 with its
envelope counts checked, and the 865 a supplier answers with (BCA02 accepts or rejects), as the sandbox supplier
builds it and as a supplier's gateway might send it with other layout."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.supplier import x12
from canonical.supplier import AckLineStatus, EdiError, PoChange, PoChangeAck, PoChangeLine

AT = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
US, ACME = x12.Party("ZZ", "RETAILFLOW"), x12.Party("ZZ", "ACME")


def _segments(text: str) -> list[str]:
    ix = x12.read_interchange(text)
    return [seg.format().rstrip("~") for g in ix.groups for t in g.transactions for _, seg in t.segments]


def test_a_cancellation_is_an_860_with_bch01_01_and_no_line_changes():
    change = PoChange(po_number="RF0123456789ABCDEF", supplier_id="ACME", purpose="01", sequence=1,
                      po_date="20261201", reason="order cancelled by the customer")
    text = x12.build_change_order(change, sender=US, receiver=ACME, control=42, at=AT)
    ix = x12.read_interchange(text)  # pyx12: ISA13/IEA02, GS06/GE02, SE01 counted
    assert ix.control == "000000042" and ix.transaction_sets == ["860"] and ix.groups[0].functional_id == "PC"
    segs = _segments(text)
    assert segs[1] == "BCH*01*DS*RF0123456789ABCDEF**1*20261201*****20261203"
    assert segs[2] == "MSG*order cancelled by the customer"
    assert not [s for s in segs if s.startswith("POC")]
    back = x12.parse_860(ix, ix.groups[0].transactions[0])
    assert back.cancellation and back.sequence == 1 and back.po_number == change.po_number and back.lines == []


def test_a_change_carries_a_poc_per_line_deleted_or_decreased():
    change = PoChange(po_number="PO-1", supplier_id="ACME", purpose="04", sequence=2, po_date="20261201",
                      lines=[PoChangeLine(line_number="1", change="QD", quantity=1, was=2, item_code="PENDANT"),
                             PoChangeLine(line_number="2", change="DI", quantity=0, was=3, item_code="SHADE")])
    text = x12.build_change_order(change, sender=US, receiver=ACME, control=43, at=AT)
    segs = _segments(text)
    assert segs[1].startswith("BCH*04*DS*PO-1**2*20261201")
    assert [s for s in segs if s.startswith(("POC", "CTT"))] == [
        "POC*1*QD*2*1*EA***BP*PENDANT", "POC*2*DI*3*0*EA***BP*SHADE", "CTT*2*1"]  # POC03 was, POC04 left
    ix = x12.read_interchange(text)
    back = x12.parse_860(ix, ix.groups[0].transactions[0])
    assert [(ln.line_number, ln.change, ln.was, ln.quantity, ln.item_code) for ln in back.lines] == [
        ("1", "QD", 2, 1, "PENDANT"), ("2", "DI", 3, 0, "SHADE")]
    assert back.purpose == "04" and back.sequence == 2


def test_an_865_accepting_and_one_rejecting_are_read_with_their_verdict():
    def ack(status: str, line_status: str) -> PoChangeAck:
        body = [x12.segment("BCA", "04", status, "PO-1", "", "2", "20261201"),
                x12.segment("POC", "2", "DI", "3", "0", "EA"), x12.segment("ACK", line_status, "0", "EA"),
                x12.segment("CTT", "1")]
        text = x12.build_interchange(ACME, US, 7, [("865", body)], at=AT)
        ix = x12.read_interchange(text)
        assert ix.groups[0].functional_id == "CA"
        [doc] = x12.parse_documents(ix)
        assert isinstance(doc, PoChangeAck)
        return doc

    accepted = ack("AT", "IA")
    assert not accepted.rejected and accepted.sequence == 2 and accepted.purpose == "04"
    assert accepted.lines[0].status == AckLineStatus.ACCEPTED and accepted.lines[0].line_number == "2"
    rejected = ack("RJ", "IR")
    assert rejected.rejected and rejected.lines[0].status == AckLineStatus.REJECTED
    partly = ack("AC", "IR")  # acknowledged with changes, but the line refused: not what we asked
    assert partly.rejected


def test_a_malformed_change_is_an_edi_error_at_its_segment():
    body = [x12.segment("BCH", "04", "DS", "PO-1", "", "two", "20261201")]
    ix = x12.read_interchange(x12.build_interchange(US, ACME, 9, [("860", body)], at=AT))
    with pytest.raises(EdiError) as err:
        x12.parse_860(ix, ix.groups[0].transactions[0])
    assert (err.value.segment_id, err.value.element_position, err.value.segment_position) == ("BCH", 5, 3)
    body = [x12.segment("BCH", "04", "DS", "PO-1", "", "1", "20261201"), x12.segment("POC", "1", "QI", "5", "6", "EA")]
    ix = x12.read_interchange(x12.build_interchange(US, ACME, 10, [("860", body)], at=AT))
    with pytest.raises(EdiError) as err:
        x12.parse_860(ix, ix.groups[0].transactions[0])
    assert (err.value.segment_id, err.value.element_position) == ("POC", 2)


def test_an_identifier_with_a_delimiter_is_refused_not_altered():
    change = PoChange(po_number="PO*1", supplier_id="ACME", purpose="01", sequence=1)
    with pytest.raises(ValueError, match="delimiter"):
        x12.build_change_order(change, sender=US, receiver=ACME, control=1, at=AT)
