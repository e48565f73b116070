"""ASC X12 004010 for drop-ship suppliers: build the 850 purchase order and the 997 functional acknowledgement,
read 855 / 856 / 810 / 997 into the canonical supplier documents (canonical/supplier.py).

Tokenising, envelope bookkeeping and serialising are pyx12's (`pyx12.x12file.X12Reader` / `X12Writer`,
`pyx12.segment.Segment`): it splits segments on the interchange's own delimiters (read from the ISA), checks
ISA13/IEA02, GS06/GE02, ST02/SE02 and the SE01 / GE01 / IEA01 counts, and writes the trailers with the counts it
kept. Its error codes are X12's own (AK5 / AK9 codes), so a rejecting 997 quotes them. Anything malformed is an
`EdiError` naming the segment id and its 0-based position in the interchange (ISA = 0) and, for one element, the
element's position (BEG03 = 3).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

import pyx12.errors
import pyx12.segment
import pyx12.x12file

from canonical.money import Money
from canonical.order import Address
from canonical.supplier import (
    AckedTransaction,
    AckLine,
    AckLineStatus,
    EdiError,
    FunctionalAck,
    InvoiceLine,
    PoAcknowledgement,
    PoChange,
    PoChangeAck,
    PoChangeLine,
    PoLine,
    PurchaseOrder,
    ShipNotice,
    ShippedLine,
    SupplierDocument,
    SupplierInvoice,
)

SEGMENT_TERMINATOR = "~"
ELEMENT_SEPARATOR = "*"
COMPONENT_SEPARATOR = ">"
VERSION = "00401"  # ISA12
GROUP_VERSION = "004010"  # GS08
FUNCTIONAL_IDS = {"850": "PO", "855": "PR", "856": "SH", "810": "IN", "997": "FA", "860": "PC", "865": "CA"}

# pyx12 soft findings that are layout, not structure: the indentation and trailing separators published samples
# carry. Everything else it reports is fatal.
_LAYOUT = ("Segment contains a leading space", "Segment contains trailing element terminators")


# -- reading ---------------------------------------------------------------------------------------------------------

@dataclass
class Transaction:
    set_id: str  # ST01
    control: str  # ST02
    segments: list[tuple[int, pyx12.segment.Segment]] = field(default_factory=list)  # (position, segment), ST..SE


@dataclass
class Group:
    functional_id: str  # GS01
    control: str  # GS06
    sender: str  # GS02
    receiver: str  # GS03
    version: str  # GS08
    transactions: list[Transaction] = field(default_factory=list)


@dataclass
class Interchange:
    sender_qualifier: str  # ISA05
    sender_id: str  # ISA06, stripped
    receiver_qualifier: str
    receiver_id: str
    control: str  # ISA13
    version: str  # ISA12
    usage: str  # ISA15: P production, T test
    groups: list[Group] = field(default_factory=list)
    segment_count: int = 0

    @property
    def transaction_sets(self) -> list[str]:
        return [t.set_id for g in self.groups for t in g.transactions]


class InterchangeError(EdiError):
    """An EdiError that also says how far the interchange was understood, so the receiver can still answer with a
    rejecting 997 (who sent it, its ISA13, the group and transaction set where it broke)."""

    def __init__(self, message: str, *, segment_id: str | None, segment_position: int | None,
                 element_position: int | None = None, code: str | None = None, level: str | None = None,
                 partial: Interchange | None = None) -> None:
        super().__init__(message, segment_id=segment_id, segment_position=segment_position,
                         element_position=element_position, code=code)
        self.level = level  # isa | gs | st | seg
        self.partial = partial


def _text(data: bytes | str) -> str:
    if isinstance(data, bytes):
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            return data.decode("latin-1")
    return data[1:] if data.startswith("\ufeff") else data


def _value(seg: pyx12.segment.Segment, n: int) -> str:
    """Element n (1-based) of a segment, stripped; '' when absent."""
    v = seg.get_value(f"{n:02d}")
    return (v or "").strip()


def read_interchange(data: bytes | str) -> Interchange:
    """Parse and validate one interchange (ISA ... IEA). Raise InterchangeError at the first structural fault."""
    text = _text(data).lstrip("\r\n\t ")
    try:
        reader = pyx12.x12file.X12Reader(io.StringIO(text))
    except pyx12.errors.X12Error as exc:
        raise InterchangeError(f"unreadable interchange header: {exc}", segment_id="ISA", segment_position=0,
                               level="isa") from None
    ix: Interchange | None = None
    group: Group | None = None
    txn: Transaction | None = None
    position = -1
    ended = False
    try:
        for seg in reader:
            position += 1
            seg_id = seg.get_seg_id() or ""
            fatal = [e for e in reader.pop_errors() if e[2] not in _LAYOUT]
            if ended:
                raise InterchangeError("data after the interchange trailer (one interchange per file)",
                                       segment_id=seg_id, segment_position=position, level="isa", partial=ix)
            if fatal:
                kind, code, message = fatal[0][0], fatal[0][1], fatal[0][2]
                raise InterchangeError(message, segment_id=seg_id, segment_position=position, code=code,
                                       level=kind, partial=ix)
            if position == 0:
                if seg_id != "ISA":  # pragma: no cover - RawX12File refuses it first
                    raise InterchangeError("interchange must start with ISA", segment_id=seg_id,
                                           segment_position=0, level="isa")
                control = _value(seg, 13)
                if not (len(control) == 9 and control.isdigit()):
                    raise InterchangeError(f"ISA13 {control!r} is not a 9-digit control number", segment_id="ISA",
                                           segment_position=0, element_position=13, level="isa")
                ix = Interchange(sender_qualifier=_value(seg, 5), sender_id=_value(seg, 6),
                                 receiver_qualifier=_value(seg, 7), receiver_id=_value(seg, 8), control=control,
                                 version=_value(seg, 12), usage=_value(seg, 15))
                continue
            assert ix is not None
            if seg_id == "GS":
                group = Group(functional_id=_value(seg, 1), control=_value(seg, 6), sender=_value(seg, 2),
                              receiver=_value(seg, 3), version=_value(seg, 8))
                ix.groups.append(group)
            elif seg_id == "ST":
                if group is None:
                    raise InterchangeError("ST outside a functional group", segment_id="ST",
                                           segment_position=position, level="gs", partial=ix)
                txn = Transaction(set_id=_value(seg, 1), control=_value(seg, 2))
                group.transactions.append(txn)
                txn.segments.append((position, seg))
            elif seg_id == "SE":
                if txn is not None:
                    txn.segments.append((position, seg))
                txn = None
            elif seg_id == "GE":
                group = None
            elif seg_id == "IEA":
                ended = True
            elif txn is None:
                raise InterchangeError(f"segment {seg_id} outside a transaction set", segment_id=seg_id,
                                       segment_position=position, level="st", partial=ix)
            else:
                txn.segments.append((position, seg))
    except pyx12.errors.X12Error as exc:
        raise InterchangeError(str(exc), segment_id="ISA", segment_position=max(position, 0), level="isa",
                               partial=ix) from None
    reader.cleanup()
    missing = [e for e in reader.pop_errors() if e[2] not in _LAYOUT]
    if missing or ix is None or not ended:
        message = missing[0][2] if missing else "interchange has no IEA trailer"
        raise InterchangeError(message, segment_id=None, segment_position=position + 1,
                               code=missing[0][1] if missing else "023",
                               level=missing[0][0] if missing else "isa", partial=ix)
    ix.segment_count = position + 1
    return ix


# -- writing ---------------------------------------------------------------------------------------------------------

_DELIMITERS = (SEGMENT_TERMINATOR, ELEMENT_SEPARATOR, COMPONENT_SEPARATOR, "\r", "\n")


def _code(value: str, what: str) -> str:
    """An identifier (PO number, item code): refused if it holds a delimiter; it cannot be altered silently."""
    if any(d in value for d in _DELIMITERS):
        raise ValueError(f"{what} {value!r} contains an X12 delimiter")
    return value


def _free(value: str | None, limit: int) -> str:
    """Free text (names, address lines): delimiters become spaces, cut to the element's maximum length."""
    out = value or ""
    for d in _DELIMITERS:
        out = out.replace(d, " ")
    return out.strip()[:limit]


def segment(seg_id: str, *values: str) -> pyx12.segment.Segment:
    seg = pyx12.segment.Segment(seg_id, SEGMENT_TERMINATOR, ELEMENT_SEPARATOR, COMPONENT_SEPARATOR)
    for i, v in enumerate(values, start=1):
        seg.set(f"{i:02d}", v)
    return seg


def decimal_r(value: Decimal) -> str:
    """X12 'R' (explicit decimal) form: no exponent, no trailing zeros beyond the point."""
    text = format(value.normalize(), "f")
    return text


@dataclass(frozen=True)
class Party:
    qualifier: str  # ISA05/07: ZZ mutually defined, 01 DUNS, 12 phone ...
    id: str


def build_interchange(sender: Party, receiver: Party, control: int, transactions: Iterable[tuple[str, list[
        pyx12.segment.Segment]]], *, at: datetime, usage: str = "P", group_control: int | None = None) -> str:
    """Serialise one interchange of one functional group holding the given transaction sets (ST01 and the body
    segments between ST and SE). pyx12's writer adds the SE/GE/IEA trailers with the counts it kept."""
    if not 0 < control <= 999_999_999:
        raise ValueError(f"interchange control number {control} out of range 1..999999999")
    txns = list(transactions)
    if not txns:
        raise ValueError("an interchange needs at least one transaction set")
    set_ids = {s for s, _ in txns}
    if len({FUNCTIONAL_IDS[s] for s in set_ids}) != 1:
        raise ValueError(f"one functional group holds one kind of document, got {sorted(set_ids)}")
    functional_id = FUNCTIONAL_IDS[txns[0][0]]
    gcn = str(group_control if group_control is not None else control)
    out = io.StringIO()
    writer = pyx12.x12file.X12Writer(out, SEGMENT_TERMINATOR, ELEMENT_SEPARATOR, COMPONENT_SEPARATOR, "\n")
    writer.Write(segment(
        "ISA", "00", " " * 10, "00", " " * 10, sender.qualifier, _code(sender.id, "sender id").ljust(15)[:15],
        receiver.qualifier, _code(receiver.id, "receiver id").ljust(15)[:15], at.strftime("%y%m%d"),
        at.strftime("%H%M"), "U", VERSION, f"{control:09d}", "0", usage, COMPONENT_SEPARATOR))
    writer.Write(segment("GS", functional_id, sender.id, receiver.id, at.strftime("%Y%m%d"), at.strftime("%H%M"),
                         gcn, "X", GROUP_VERSION))
    for n, (set_id, body) in enumerate(txns, start=1):
        writer.Write(segment("ST", set_id, f"{n:04d}"))
        for seg in body:
            writer.Write(seg)
        writer.Write(segment("SE"))
    writer.Write(segment("GE"))
    writer.Write(segment("IEA"))
    return out.getvalue()


def purchase_order_body(po: PurchaseOrder, *, at: datetime) -> list[pyx12.segment.Segment]:
    """The 850's segments between ST and SE: BEG (00 original, DS drop-ship), CUR, REF (our order), N1/N3/N4 ship
    to, one PO1 per line (BP our item, VP the supplier's) and CTT (line count, unit hash)."""
    to = po.ship_to
    body = [segment("BEG", "00", "DS", _code(po.po_number, "PO number"), "", at.strftime("%Y%m%d")),
            segment("CUR", "BY", po.currency)]
    if po.order_ref:
        body.append(segment("REF", "CO", _free(po.order_ref, 30)))
    body.append(segment("N1", "ST", _free(to.name or to.company or "CUSTOMER", 60)))
    if to.line1:
        body.append(segment("N3", _free(to.line1, 55), _free(to.line2, 55)))
    body.append(segment("N4", _free(to.city, 30), _free(to.region, 2), _free(to.postal_code, 15), to.country))
    for line in po.lines:
        ids = ["BP", _code(line.item_code, "item code")]
        if line.supplier_item:
            ids += ["VP", _code(line.supplier_item, "supplier item")]
        body.append(segment("PO1", _code(line.line_number, "line number"), str(line.quantity), line.uom,
                            decimal_r(line.unit_price), "", *ids))
    body.append(segment("CTT", str(len(po.lines)), str(sum(ln.quantity for ln in po.lines))))
    return body


def build_purchase_order(po: PurchaseOrder, *, sender: Party, receiver: Party, control: int, at: datetime,
                         usage: str = "P") -> str:
    return build_interchange(sender, receiver, control, [("850", purchase_order_body(po, at=at))], at=at,
                             usage=usage)


@dataclass(frozen=True)
class GroupVerdict:
    """What a 997 says of one received functional group."""

    functional_id: str
    group_control: str
    transactions: list[tuple[str, str, str, str | None]]  # (ST01, ST02, AK501, AK502 code)
    status: str  # AK901
    received: int  # AK903

    @classmethod
    def accept(cls, group: Group) -> GroupVerdict:
        return cls(group.functional_id, group.control, [(t.set_id, t.control, "A", None) for t in group.transactions],
                   "A", len(group.transactions))


def rejection_verdict(error: InterchangeError) -> GroupVerdict | None:
    """The 997 verdict for an interchange that broke inside a functional group: that group rejected, with the
    transaction set (and X12's code) where it broke. None when it broke before any group (nothing to AK1)."""
    ix = error.partial
    if ix is None or not ix.groups:
        return None
    group = ix.groups[-1]
    txns: list[tuple[str, str, str, str | None]] = []
    for t in group.transactions:
        broke_here = t is group.transactions[-1] and error.level in ("st", "seg")
        code = (error.code if error.code and error.code.isdigit() else "5") if broke_here else None
        txns.append((t.set_id, t.control, "R" if broke_here else "A", code))
    ak9 = "R"
    return GroupVerdict(group.functional_id, group.control, txns, ak9, max(len(txns), 1))


def functional_ack_body(verdicts: list[GroupVerdict]) -> list[list[pyx12.segment.Segment]]:
    """One 997 body per verdict: AK1, per transaction AK2/AK5, AK9."""
    bodies = []
    for v in verdicts:
        body = [segment("AK1", v.functional_id, v.group_control)]
        for set_id, control, status, code in v.transactions:
            body.append(segment("AK2", set_id, control))
            body.append(segment("AK5", status, *([code] if code else [])))
        accepted = sum(1 for t in v.transactions if t[2] in ("A", "E"))
        body.append(segment("AK9", v.status, str(len(v.transactions)), str(v.received), str(accepted)))
        bodies.append(body)
    return bodies


def change_order_body(change: PoChange, *, at: datetime) -> list[pyx12.segment.Segment]:
    """The 860's segments between ST and SE (X12 004010 Purchase Order Change Request - Buyer Initiated): BCH01 01
    cancellation of the whole PO (no POC lines) or 04 change; BCH02 DS drop-ship, BCH03 our PO number, BCH05 the
    change order sequence number, BCH06 the PO's date (BEG05 of the 850), BCH11 the date of this change; a MSG with
    the reason; one POC per changed line: POC01 the PO1 line number, POC02 DI (delete item) or QD (quantity
    decrease), POC03 the current order quantity (before this change, X12's "Quantity Ordered"), POC04 the quantity
    left to receive after it (0 for DI; nothing is received before the 856), POC05 the unit; BP our item. CTT:
    changed lines, hash of POC04."""
    if change.sequence is None:
        raise ValueError("a change order we send carries its sequence number (BCH05)")
    po_date = change.po_date or at.strftime("%Y%m%d")
    body = [segment("BCH", change.purpose, "DS", _code(change.po_number, "PO number"), "", str(change.sequence),
                    po_date, "", "", "", "", at.strftime("%Y%m%d"))]
    if change.reason:
        body.append(segment("MSG", _free(change.reason, 264)))
    for line in change.lines:
        ids = ["BP", _code(line.item_code, "item code")] if line.item_code else []
        was = line.was if line.was is not None else line.quantity
        body.append(segment("POC", _code(line.line_number, "line number"), line.change, str(was),
                            str(line.quantity), line.uom, *(["", "", *ids] if ids else [])))
    if change.lines:
        body.append(segment("CTT", str(len(change.lines)), str(sum(ln.quantity for ln in change.lines))))
    return body


def build_change_order(change: PoChange, *, sender: Party, receiver: Party, control: int, at: datetime,
                       usage: str = "P") -> str:
    return build_interchange(sender, receiver, control, [("860", change_order_body(change, at=at))], at=at,
                             usage=usage)


def parse_860(ix: Interchange, txn: Transaction) -> PoChange:
    """An 860 as the supplier reads it (the sandbox supplier, and the round-trip tests)."""
    bch_pos, bch = _require(txn, "BCH")
    reason = None
    lines: list[PoChangeLine] = []
    for pos, seg in txn.segments:
        sid = seg.get_seg_id()
        if sid == "MSG" and reason is None:
            reason = _value(seg, 1) or None
        elif sid == "POC":
            code = _value(seg, 2)
            if code not in ("DI", "QD"):
                raise EdiError(f"POC02 {code!r}: only DI and QD are taken", segment_id="POC", segment_position=pos,
                               element_position=2)
            if code == "QD" and not _value(seg, 4):
                raise EdiError("a quantity decrease names the quantity left to receive", segment_id="POC",
                               segment_position=pos, element_position=4)
            lines.append(PoChangeLine(line_number=_value(seg, 1), change=code,
                                      quantity=_int(seg, 4, pos) if _value(seg, 4) else 0,
                                      was=_int(seg, 3, pos) if _value(seg, 3) else None,
                                      uom=_value(seg, 5) or "EA", item_code=_our_item(_product_ids(seg, 8))))
    purpose, seq = _value(bch, 1), _value(bch, 5)
    if purpose not in ("01", "04"):
        raise EdiError(f"BCH01 {purpose!r}: only 01 (cancellation) and 04 (change) are taken", segment_id="BCH",
                       segment_position=bch_pos, element_position=1)
    if seq and not (seq.isdigit() and int(seq) > 0):
        raise EdiError(f"BCH05 {seq!r} is not a change order sequence number", segment_id="BCH",
                       segment_position=bch_pos, element_position=5)
    return PoChange(po_number=_value(bch, 3), supplier_id=ix.receiver_id, purpose=purpose,
                    sequence=int(seq) if seq else None,
                    po_date=_value(bch, 6) or None, reason=reason, lines=lines, interchange_control=ix.control)


def po_date(ix: Interchange) -> str | None:
    """BEG05 of the interchange's first 850 (the PO's date, which an 860's BCH06 repeats)."""
    for g in ix.groups:
        for t in g.transactions:
            if t.set_id == "850":
                return _value(_require(t, "BEG")[1], 5) or None
    return None


def build_functional_ack(verdicts: list[GroupVerdict], *, sender: Party, receiver: Party, control: int,
                         at: datetime, usage: str = "P") -> str:
    return build_interchange(sender, receiver, control, [("997", b) for b in functional_ack_body(verdicts)], at=at,
                             usage=usage)


# -- documents -------------------------------------------------------------------------------------------------------

def _int(seg: pyx12.segment.Segment, n: int, position: int) -> int:
    raw = _value(seg, n)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value != value.to_integral_value() or value < 0:
        raise EdiError(f"{raw!r} is not a whole quantity", segment_id=seg.get_seg_id(), segment_position=position,
                       element_position=n)
    return int(value)


def _dec(seg: pyx12.segment.Segment, n: int, position: int, *, implied: int = 0) -> Decimal:
    raw = _value(seg, n)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise EdiError(f"{raw!r} is not a number", segment_id=seg.get_seg_id(), segment_position=position,
                       element_position=n) from None
    if not value.is_finite() or (implied and "." in raw):
        raise EdiError(f"{raw!r} is not an N{implied} amount", segment_id=seg.get_seg_id(),
                       segment_position=position, element_position=n)
    return value.scaleb(-implied) if implied else value


def _product_ids(seg: pyx12.segment.Segment, start: int) -> dict[str, str]:
    """Qualifier/id pairs from element `start` on (PO106/107, LIN02/03, IT106/107 ...)."""
    out: dict[str, str] = {}
    n = start
    while n + 1 <= len(seg):
        qual, ident = _value(seg, n), _value(seg, n + 1)
        if qual and ident and qual not in out:
            out[qual] = ident
        n += 2
    return out


def _our_item(ids: dict[str, str]) -> str | None:
    for qual in ("BP", "IN", "CB", "SK"):  # buyer's part, buyer's item, buyer's catalogue, buyer's SKU
        if qual in ids:
            return ids[qual]
    return next(iter(ids.values()), None)


def _require(txn: Transaction, seg_id: str) -> tuple[int, pyx12.segment.Segment]:
    for pos, seg in txn.segments:
        if seg.get_seg_id() == seg_id:
            return pos, seg
    first = txn.segments[0][0] if txn.segments else None
    raise EdiError(f"{txn.set_id} {txn.control} has no {seg_id} segment", segment_id=seg_id,
                   segment_position=first)


_ACK_STATUS = {"IA": AckLineStatus.ACCEPTED, "AC": AckLineStatus.ACCEPTED, "AR": AckLineStatus.ACCEPTED,
               "IB": AckLineStatus.BACKORDERED, "IR": AckLineStatus.REJECTED, "ID": AckLineStatus.REJECTED}


def _ack_status(code: str) -> AckLineStatus:
    if code in _ACK_STATUS:
        return _ACK_STATUS[code]
    if code.startswith("R"):  # R1..R8: rejected for a stated reason
        return AckLineStatus.REJECTED
    return AckLineStatus.CHANGED  # IC, IP, IQ, IS ...: accepted with changes


def parse_855(ix: Interchange, txn: Transaction) -> PoAcknowledgement:
    _, bak = _require(txn, "BAK")
    status, po_number = _value(bak, 2), _value(bak, 3)
    lines: list[AckLine] = []
    current: tuple[str, int, str | None, bool] | None = None  # (line, ordered, item, had an ACK)

    def close() -> None:
        if current is not None and not current[3]:  # a PO1 without ACK takes the header's verdict
            rejected = status in ("RJ", "RD")
            lines.append(AckLine(line_number=current[0], item_code=current[2], quantity=current[1],
                                 ordered=current[1], code=status,
                                 status=AckLineStatus.REJECTED if rejected else AckLineStatus.ACCEPTED))

    for pos, seg in txn.segments:
        sid = seg.get_seg_id()
        if sid == "PO1":
            close()
            current = (_value(seg, 1), _int(seg, 2, pos), _our_item(_product_ids(seg, 6)), False)
        elif sid == "ACK" and current is not None:
            code = _value(seg, 1)
            lines.append(AckLine(line_number=current[0], item_code=current[2], status=_ack_status(code),
                                 quantity=_int(seg, 2, pos), ordered=current[1], code=code))
            current = (current[0], current[1], current[2], True)
    close()
    return PoAcknowledgement(po_number=po_number, supplier_id=ix.sender_id, status_code=status, lines=lines,
                             interchange_control=ix.control)


def parse_856(ix: Interchange, txn: Transaction) -> ShipNotice:
    _, bsn = _require(txn, "BSN")
    carrier = tracking = po_number = None
    lines: list[ShippedLine] = []
    line_number: str | None = None
    item: str | None = None
    for pos, seg in txn.segments:
        sid = seg.get_seg_id()
        if sid == "TD5" and carrier is None:
            carrier = _value(seg, 3) or None
        elif sid == "REF" and _value(seg, 1) in ("CN", "2I") and tracking is None:
            tracking = _value(seg, 2) or None
        elif sid == "PRF" and po_number is None:
            po_number = _value(seg, 1) or None
        elif sid == "LIN":
            line_number = _value(seg, 1) or None
            item = _our_item(_product_ids(seg, 2))
        elif sid == "SN1":
            lines.append(ShippedLine(line_number=_value(seg, 1) or line_number, item_code=item,
                                     quantity=_int(seg, 2, pos), uom=_value(seg, 3) or "EA"))
            line_number = item = None
    return ShipNotice(shipment_id=_value(bsn, 2), po_number=po_number, supplier_id=ix.sender_id, carrier=carrier,
                      tracking_number=tracking, lines=lines, interchange_control=ix.control)


def parse_810(ix: Interchange, txn: Transaction) -> SupplierInvoice:
    _, big = _require(txn, "BIG")
    tds_pos, tds = _require(txn, "TDS")
    currency = "USD"
    lines: list[InvoiceLine] = []
    for pos, seg in txn.segments:
        sid = seg.get_seg_id()
        if sid == "CUR" and _value(seg, 2):
            currency = _value(seg, 2)
        elif sid == "IT1":
            lines.append(InvoiceLine(line_number=_value(seg, 1) or None, item_code=_our_item(_product_ids(seg, 6)),
                                     quantity=_int(seg, 2, pos), uom=_value(seg, 3) or "EA",
                                     unit_price=_dec(seg, 4, pos)))
    total = _dec(tds, 1, tds_pos, implied=2)  # TDS01 is N2: 5635800 is 56358.00
    return SupplierInvoice(invoice_number=_value(big, 2), invoice_date=_value(big, 1) or None,
                           po_number=_value(big, 4) or None, supplier_id=ix.sender_id, currency=currency,
                           lines=lines, total=Money(amount=total, currency=currency), interchange_control=ix.control)


def parse_997(ix: Interchange, txn: Transaction) -> FunctionalAck:
    _, ak1 = _require(txn, "AK1")
    _, ak9 = _require(txn, "AK9")
    acked: list[AckedTransaction] = []
    current: tuple[str, str] | None = None  # (AK201, AK202)
    errors: list[str] = []
    for _pos, seg in txn.segments:
        sid = seg.get_seg_id()
        if sid == "AK2":
            current, errors = (_value(seg, 1), _value(seg, 2)), []
        elif sid == "AK3" and current is not None:
            errors.append(f"segment {_value(seg, 1)} at {_value(seg, 2)}: code {_value(seg, 4)}")
        elif sid == "AK4" and current is not None:
            errors.append(f"element {_value(seg, 1)}: code {_value(seg, 3)}")
        elif sid == "AK5" and current is not None:
            acked.append(AckedTransaction(transaction_set=current[0], control_number=current[1],
                                          status=_value(seg, 1), errors=errors))
            current = None
    return FunctionalAck(functional_id=_value(ak1, 1), group_control=_value(ak1, 2), status=_value(ak9, 1),
                         transactions=acked, supplier_id=ix.sender_id, interchange_control=ix.control)


def parse_865(ix: Interchange, txn: Transaction) -> PoChangeAck:
    """An 865 Purchase Order Change Acknowledgment: BCA01 the purpose of the change it answers (01 cancellation,
    04 change), BCA02 the verdict (AT accepted, AC/AD/AK acknowledged; RJ/RD rejected), BCA03 our PO number, BCA05
    the change order sequence number of our 860; per POC line its ACK (IA accepted, IR rejected ...)."""
    bca_pos, bca = _require(txn, "BCA")
    seq = _value(bca, 5)
    lines: list[AckLine] = []
    current: tuple[str, int, str | None] | None = None
    for pos, seg in txn.segments:
        sid = seg.get_seg_id()
        if sid == "POC":  # POC04: the quantity left after the change (POC03 the current order quantity)
            left = _value(seg, 4) or _value(seg, 3)
            current = (_value(seg, 1), _int(seg, 4 if _value(seg, 4) else 3, pos) if left else 0,
                       _our_item(_product_ids(seg, 8)))
        elif sid == "ACK" and current is not None:
            code = _value(seg, 1)
            lines.append(AckLine(line_number=current[0], item_code=current[2], status=_ack_status(code),
                                 quantity=_int(seg, 2, pos) if _value(seg, 2) else current[1], ordered=current[1],
                                 code=code))
    if seq and not seq.isdigit():
        raise EdiError(f"BCA05 {seq!r} is not a change order sequence number", segment_id="BCA",
                       segment_position=bca_pos, element_position=5)
    return PoChangeAck(po_number=_value(bca, 3), supplier_id=ix.sender_id, purpose=_value(bca, 1),
                       status_code=_value(bca, 2), sequence=int(seq) if seq else None, lines=lines,
                       interchange_control=ix.control)


PARSERS: dict[str, Callable[[Interchange, Transaction], SupplierDocument]] = {
    "855": parse_855, "856": parse_856, "810": parse_810, "997": parse_997, "865": parse_865}


def parse_documents(ix: Interchange) -> list[SupplierDocument]:
    """Every transaction set of a validated interchange as a canonical document; a set we do not take (an 850 sent
    to us, a 940) is an EdiError at its ST."""
    docs: list[SupplierDocument] = []
    for group in ix.groups:
        for txn in group.transactions:
            parser = PARSERS.get(txn.set_id)
            if parser is None:
                raise EdiError(f"transaction set {txn.set_id} is not one a supplier sends us", segment_id="ST",
                               segment_position=txn.segments[0][0], element_position=1, code="1")
            docs.append(parser(ix, txn))
    return docs


def parse_850(ix: Interchange, txn: Transaction) -> PurchaseOrder:
    """An 850 as the supplier reads it (the sandbox supplier, and the contract test over published 850s)."""
    _, beg = _require(txn, "BEG")
    currency = "USD"
    order_ref = None
    name: str | None = None
    line1 = line2 = city = region = postal = None
    country = "US"
    in_ship_to = False
    lines: list[PoLine] = []
    for pos, seg in txn.segments:
        sid = seg.get_seg_id()
        if sid == "CUR" and _value(seg, 2):
            currency = _value(seg, 2)
        elif sid == "REF" and _value(seg, 1) == "CO" and order_ref is None:
            order_ref = _value(seg, 2) or None
        elif sid == "N1":
            in_ship_to = _value(seg, 1) == "ST"
            if in_ship_to:
                name = _value(seg, 2) or None
        elif sid == "N3" and in_ship_to:
            line1, line2 = _value(seg, 1) or None, _value(seg, 2) or None
        elif sid == "N4" and in_ship_to:
            city, region, postal = _value(seg, 1) or None, _value(seg, 2) or None, _value(seg, 3) or None
            country = _value(seg, 4) or country
        elif sid == "PO1":
            in_ship_to = False
            ids = _product_ids(seg, 6)
            item = _our_item(ids)
            if item is None:
                raise EdiError("PO1 names no product", segment_id="PO1", segment_position=pos, element_position=7)
            lines.append(PoLine(line_number=_value(seg, 1), item_code=item, supplier_item=ids.get("VP"),
                                quantity=_int(seg, 2, pos), uom=_value(seg, 3) or "EA",
                                unit_price=_dec(seg, 4, pos)))
    return PurchaseOrder(po_number=_value(beg, 3), supplier_id=ix.receiver_id, order_ref=order_ref,
                         currency=currency, lines=lines,
                         ship_to=Address(name=name, line1=line1, line2=line2, city=city, region=region,
                                         postal_code=postal, country=country))
