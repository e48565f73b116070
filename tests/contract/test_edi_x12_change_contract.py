"""Published X12 860 / 865 interchanges (tests/fixtures/edi/x12, SOURCES.md: the OopFactory X12 parser's own
samples) read by adapters/supplier/x12.py and the EDI adapter as they are. Two of the four published samples have
broken envelopes (a 14-character ISA06, an ISA12 of 00200 with an IEA02 of eight digits, a missing IEA): those are
quarantined with the segment and position, as a supplier's broken file would be; the Tyco 865's body is then read
through an envelope corrected in the test (ISA12 00401, IEA02 = ISA13), which is said where it is done."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from adapters.sql import create_schema, make_engine
from adapters.supplier import x12
from adapters.supplier.dropfolder import LocalDropFolder
from adapters.supplier.edi import EdiSupplierAdapter
from adapters.supplier.ledger import SqlEdiLedger
from canonical.supplier import AckLineStatus, PoChangeAck

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "edi" / "x12"


def test_865_published_acceptance_with_its_change_sequence():
    ix = x12.read_interchange((FIXTURES / "865_FromAdvanceAutoParts.txt").read_bytes())
    assert (ix.control, ix.transaction_sets, ix.groups[0].functional_id) == ("865000001", ["865"], "CA")
    [ack] = x12.parse_documents(ix)
    assert isinstance(ack, PoChangeAck)
    # BCA*06*AC*0025076**1*20090209: acknowledged with detail and change, PO 0025076, change sequence 1
    assert (ack.po_number, ack.status_code, ack.purpose, ack.sequence, ack.rejected) == ("0025076", "AC", "06", 1,
                                                                                       False)
    assert ack.lines == []  # its POC carries no ACK


def test_865_published_with_a_line_ack_read_through_a_corrected_envelope():
    text = (FIXTURES / "865_FromTyco.txt").read_text(encoding="utf-8-sig")
    # the published envelope is ISA12 00200 and IEA02 00001660 for ISA13 000016680: corrected here, body unchanged
    fixed = text.replace("*U*00200*", "*U*00401*").replace("IEA*1*00001660~", "IEA*1*000016680~")
    ix = x12.read_interchange(fixed)
    [ack] = x12.parse_documents(ix)
    assert isinstance(ack, PoChangeAck)
    assert (ack.po_number, ack.status_code, ack.sequence, ack.rejected) == ("2470184577", "AC", 3, False)
    [line] = ack.lines  # POC*00001*RS*1000*1000*PC ... ACK*IC*1000*EA: accepted with changes
    assert (line.line_number, line.item_code, line.status, line.quantity, line.code) == (
        "00001", "CC848777821", AckLineStatus.CHANGED, 1000, "IC")


def test_published_860_and_865s_with_broken_envelopes_are_quarantined_with_their_position(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    create_schema(engine)
    drop = LocalDropFolder(tmp_path / "drop")
    adapter = EdiSupplierAdapter(drop, SqlEdiLedger(engine), our_id="009125527",
                                 clock=lambda: datetime(2026, 12, 3, tzinfo=UTC))
    for name in ("860_Example1.txt", "865_FromTyco.txt", "865_FromMclaneCo.txt"):
        drop.put("inbound", name, (FIXTURES / name).read_bytes())
    result = adapter.collect()
    where = {q.file_name: (q.segment_id, q.segment_position) for q in result.quarantined}
    assert where == {"860_Example1.txt": ("ISA", 0), "865_FromTyco.txt": ("ISA", 0),
                     "865_FromMclaneCo.txt": (None, 25)}  # McLane's last segment is GE: no IEA trailer
    assert not result.documents and not drop.list("inbound")
    report = json.loads(drop.get("quarantine", "865_FromMclaneCo.txt.error.json"))
    assert "Interchange Control Trailer" in report["error"]
    engine.dispose()
