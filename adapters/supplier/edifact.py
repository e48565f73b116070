"""UN/EDIFACT for suppliers that use it: build ORDERS (D.96A), read ORDRSP / DESADV / INVOIC into the canonical
supplier documents, and read our ORDERS back (the sandbox supplier; matching an INVOIC to the order as sent).
Tokenising (UNA service characters, release character, composites) and serialising are
pydifact's (`pydifact.segmentcollection.Interchange`); the envelope checks pydifact leaves out are made here on its
parsed segments: UNT01 (segments of the message, UNH and UNT included), UNT02 = UNH01, UNZ01 (messages) and
UNZ02 = UNB05. A fault is an `EdiError` naming the segment tag and its position (UNB = 0; a UNA is not counted).
"""

from __future__ import annotations

import unicodedata
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

from pydifact.exceptions import EDISyntaxError
from pydifact.parser import Parser
from pydifact.segmentcollection import Interchange, Message
from pydifact.segments import Segment

from canonical.money import Money
from canonical.order import Address
from canonical.supplier import (
    AckLine,
    AckLineStatus,
    EdiError,
    InvoiceLine,
    PoAcknowledgement,
    PoLine,
    PurchaseOrder,
    ShipNotice,
    ShippedLine,
    SupplierDocument,
    SupplierInvoice,
)

ORDERS_VERSION = ["ORDERS", "D", "96A", "UN"]


@dataclass
class EdifactMessage:
    reference: str  # UNH01
    type: str  # UNH02:1, e.g. INVOIC
    segments: list[tuple[int, Segment]] = field(default_factory=list)  # between UNH and UNT


@dataclass
class EdifactInterchange:
    sender: str  # UNB02:1
    recipient: str
    control: str  # UNB05
    messages: list[EdifactMessage]


def _first(element: object) -> str:
    if isinstance(element, list):
        return str(element[0]).strip() if element else ""
    return str(element or "").strip()


def _component(seg: Segment, n: int, c: int = 1) -> str:
    """Element n (1-based), component c (1-based); '' when absent."""
    if n > len(seg.elements):
        return ""
    el = seg.elements[n - 1]
    if isinstance(el, list):
        return str(el[c - 1]).strip() if c <= len(el) else ""
    return str(el).strip() if c == 1 else ""


def read_edifact(data: bytes | str) -> EdifactInterchange:
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    text = text.lstrip("\ufeff\r\n\t ")
    try:
        with warnings.catch_warnings():  # pydifact warns that it ships no segment directory for v1-v3 syntax
            warnings.filterwarnings("ignore", message=".*segments.xml not found.*")
            parser = Parser()
            segments = [seg for seg in parser.parse(text) if seg.tag != "UNA"]
            # the UNB checked and read by pydifact's Interchange (which drops the UNZ: checked below)
            ix = Interchange.from_segments(iter(segments), characters=parser.characters)
    except (EDISyntaxError, ValueError, IndexError, AssertionError, StopIteration) as exc:
        raise EdiError(f"unreadable EDIFACT interchange: {exc}", segment_id="UNB", segment_position=0) from None
    messages: list[EdifactMessage] = []
    current: EdifactMessage | None = None
    unz: tuple[int, Segment] | None = None
    for pos, seg in enumerate(segments[1:], start=1):  # UNB is position 0
        if unz is not None:
            raise EdiError("data after UNZ", segment_id=seg.tag, segment_position=pos)
        if seg.tag == "UNH":
            if current is not None:
                raise EdiError("UNH before the previous message's UNT", segment_id="UNH", segment_position=pos)
            current = EdifactMessage(reference=_first(seg.elements[0]), type=_component(seg, 2))
            current.segments.append((pos, seg))
        elif seg.tag == "UNT":
            if current is None:
                raise EdiError("UNT without UNH", segment_id="UNT", segment_position=pos)
            count = len(current.segments) + 1
            if _component(seg, 1) != str(count):
                raise EdiError(f"UNT01 says {_component(seg, 1)} segments, the message has {count}",
                               segment_id="UNT", segment_position=pos, element_position=1)
            if _component(seg, 2) != current.reference:
                raise EdiError(f"UNT02 {_component(seg, 2)!r} does not match UNH01 {current.reference!r}",
                               segment_id="UNT", segment_position=pos, element_position=2)
            messages.append(current)
            current = None
        elif seg.tag == "UNZ":
            if current is not None:
                raise EdiError("UNZ inside a message (UNT missing)", segment_id="UNZ", segment_position=pos)
            unz = (pos, seg)
        elif current is None:
            raise EdiError(f"segment {seg.tag} outside a message", segment_id=seg.tag, segment_position=pos)
        else:
            current.segments.append((pos, seg))
    if unz is None:
        raise EdiError("interchange has no UNZ trailer", segment_id=None, segment_position=len(segments))
    pos, seg = unz
    control = _first(ix.control_reference)
    if _component(seg, 1) != str(len(messages)):
        raise EdiError(f"UNZ01 says {_component(seg, 1)} messages, the interchange has {len(messages)}",
                       segment_id="UNZ", segment_position=pos, element_position=1)
    if _component(seg, 2) != control:
        raise EdiError(f"UNZ02 {_component(seg, 2)!r} does not match UNB05 {control!r}", segment_id="UNZ",
                       segment_position=pos, element_position=2)
    return EdifactInterchange(sender=_first(ix.sender), recipient=_first(ix.recipient), control=control,
                              messages=messages)


def _number(seg: Segment, n: int, c: int, pos: int) -> Decimal:
    raw = _component(seg, n, c).replace(",", ".")  # EDIFACT allows a decimal comma
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise EdiError(f"{raw!r} is not a number", segment_id=seg.tag, segment_position=pos,
                       element_position=n) from None
    if not value.is_finite():
        raise EdiError(f"{raw!r} is not a number", segment_id=seg.tag, segment_position=pos, element_position=n)
    return value


def _whole(seg: Segment, n: int, c: int, pos: int) -> int:
    value = _number(seg, n, c, pos)
    if value != value.to_integral_value() or value < 0:
        raise EdiError(f"{value} is not a whole quantity", segment_id=seg.tag, segment_position=pos,
                       element_position=n)
    return int(value)


def _lin_item(seg: Segment) -> str | None:
    return _component(seg, 3, 1) or None  # LIN03 C212: item number : type (IN buyer's, SA supplier's, EN EAN)


def _po_reference(msg: EdifactMessage) -> str | None:
    for _, seg in msg.segments:
        if seg.tag == "RFF" and _component(seg, 1, 1) == "ON":
            return _component(seg, 1, 2) or None
    return None


def parse_invoic(ix: EdifactInterchange, msg: EdifactMessage) -> SupplierInvoice:
    number = date = None
    currency = "EUR"
    total: Decimal | None = None
    lines: list[InvoiceLine] = []
    line: dict | None = None

    def close() -> None:
        if line is not None:
            if "price" not in line:
                raise EdiError("invoice line has no PRI price", segment_id="LIN", segment_position=line["pos"])
            lines.append(InvoiceLine(line_number=line["number"], item_code=line["item"], quantity=line["qty"],
                                     unit_price=line["price"], uom=line["uom"]))

    for pos, seg in msg.segments:
        if seg.tag == "BGM":
            number = _component(seg, 2)
        elif seg.tag == "DTM" and _component(seg, 1, 1) == "137":
            date = _component(seg, 1, 2)[:8]
        elif seg.tag == "CUX" and _component(seg, 1, 2):
            currency = _component(seg, 1, 2)
        elif seg.tag == "LIN":
            close()
            line = {"pos": pos, "number": _component(seg, 1) or None, "item": _lin_item(seg), "qty": 0, "uom": "EA"}
        elif seg.tag == "QTY" and line is not None and _component(seg, 1, 1) in ("47", "12"):  # invoiced, despatched
            if _component(seg, 1, 1) == "47" or not line.get("qty_47"):
                line["qty"] = _whole(seg, 1, 2, pos)
                line["uom"] = _component(seg, 1, 3) or "EA"
                line["qty_47"] = _component(seg, 1, 1) == "47"
        elif seg.tag == "PRI" and line is not None and "price" not in line:
            price = _number(seg, 1, 2, pos)
            basis = _component(seg, 1, 5)
            line["price"] = price / Decimal(basis) if basis else price  # PRI05: the price is per `basis` units
        elif seg.tag == "MOA" and _component(seg, 1, 1) in ("77", "86") and line is not None and pos > line["pos"]:
            if any(s.tag == "UNS" and p < pos for p, s in msg.segments):
                total = _number(seg, 1, 2, pos)  # summary section: invoice amount (77) or total (86)
    close()
    if number is None or total is None:
        raise EdiError("INVOIC without BGM number or summary MOA 77/86", segment_id="BGM" if number is None else
                       "MOA", segment_position=msg.segments[0][0])
    return SupplierInvoice(invoice_number=number, invoice_date=date, po_number=_po_reference(msg),
                           supplier_id=ix.sender, currency=currency, lines=lines,
                           total=Money(amount=total, currency=currency), interchange_control=ix.control)


def parse_desadv(ix: EdifactInterchange, msg: EdifactMessage) -> ShipNotice:
    number = carrier = tracking = None
    lines: list[ShippedLine] = []
    line: tuple[str | None, str | None] | None = None
    for pos, seg in msg.segments:
        if seg.tag == "BGM":
            number = _component(seg, 2)
        elif seg.tag == "TDT" and carrier is None:
            carrier = _component(seg, 5, 1) or None  # TDT05 C040 carrier identification
        elif seg.tag == "RFF" and _component(seg, 1, 1) in ("CN", "BN", "AAS") and tracking is None:
            tracking = _component(seg, 1, 2) or None
        elif seg.tag == "LIN":
            line = (_component(seg, 1) or None, _lin_item(seg))
        elif seg.tag == "QTY" and line is not None and _component(seg, 1, 1) == "12":
            lines.append(ShippedLine(line_number=line[0], item_code=line[1], quantity=_whole(seg, 1, 2, pos),
                                     uom=_component(seg, 1, 3) or "EA"))
            line = None
    if not number:
        raise EdiError("DESADV without BGM number", segment_id="BGM", segment_position=msg.segments[0][0])
    return ShipNotice(shipment_id=number, po_number=_po_reference(msg), supplier_id=ix.sender, carrier=carrier,
                      tracking_number=tracking, lines=lines, interchange_control=ix.control)


# LIN02 action request (1229): 5 accepted without amendment, 3 changed, 7 not accepted; QTY 83 backordered
def parse_ordrsp(ix: EdifactInterchange, msg: EdifactMessage) -> PoAcknowledgement:
    status = "29"
    lines: list[AckLine] = []
    line: dict | None = None

    def close() -> None:
        if line is None:
            return
        code, ordered = line["code"], line.get("21")
        if code == "7":
            lines.append(AckLine(line_number=line["number"], item_code=line["item"], status=AckLineStatus.REJECTED,
                                 quantity=ordered or 0, ordered=ordered, code=code))
            return
        accepted = line.get("113", ordered or 0)
        lines.append(AckLine(line_number=line["number"], item_code=line["item"], quantity=accepted, ordered=ordered,
                             code=code, status=AckLineStatus.ACCEPTED if code in ("5", "") else
                             AckLineStatus.CHANGED))
        if line.get("83"):
            lines.append(AckLine(line_number=line["number"], item_code=line["item"], quantity=line["83"],
                                 ordered=ordered, code=code, status=AckLineStatus.BACKORDERED))

    for pos, seg in msg.segments:
        if seg.tag == "BGM":
            status = _component(seg, 3) or status  # BGM03 1225: 29 accepted, 27 not accepted, 4 change
        elif seg.tag == "LIN":
            close()
            line = {"number": _component(seg, 1), "code": _component(seg, 2), "item": _lin_item(seg)}
        elif seg.tag == "QTY" and line is not None and _component(seg, 1, 1) in ("21", "113", "83"):
            line[_component(seg, 1, 1)] = _whole(seg, 1, 2, pos)
    close()
    po = _po_reference(msg)
    if po is None:
        raise EdiError("ORDRSP without RFF+ON order reference", segment_id="RFF", segment_position=msg.segments[0][0])
    return PoAcknowledgement(po_number=po, supplier_id=ix.sender, status_code={"29": "AC", "27": "RJ"}.get(
        status, "AC"), lines=lines, interchange_control=ix.control)


PARSERS: dict[str, Callable[[EdifactInterchange, EdifactMessage], SupplierDocument]] = {"INVOIC": parse_invoic, "DESADV": parse_desadv, "ORDRSP": parse_ordrsp}


def parse_documents(ix: EdifactInterchange) -> list[tuple[str, SupplierDocument]]:
    out: list[tuple[str, SupplierDocument]] = []
    for msg in ix.messages:
        parser = PARSERS.get(msg.type)
        if parser is None:
            raise EdiError(f"message {msg.type} is not one a supplier sends us", segment_id="UNH",
                           segment_position=msg.segments[0][0], element_position=2)
        out.append((msg.type, parser(ix, msg)))
    return out


def parse_orders(ix: EdifactInterchange, msg: EdifactMessage) -> PurchaseOrder:
    """An ORDERS as the supplier reads it (the sandbox supplier) and as we read our own copy back to match the
    supplier's INVOIC (`EdiSupplierAdapter.purchase_order`): BGM02 the PO number, RFF+CO our order, CUX, NAD+ST,
    LIN / QTY 21 / PRI AAA per line. The inverse of `build_orders`."""
    number = order_ref = None
    currency = "EUR"
    ship_to: dict[str, str | None] = {}
    lines: list[PoLine] = []
    line: dict | None = None

    def close() -> None:
        if line is not None:
            if "qty" not in line:
                raise EdiError("order line has no QTY+21", segment_id="LIN", segment_position=line["pos"])
            lines.append(PoLine(line_number=line["number"], item_code=line["item"], quantity=line["qty"],
                                unit_price=line.get("price", Decimal(0)), uom=line["uom"]))

    for pos, seg in msg.segments:
        if seg.tag == "BGM":
            number = _component(seg, 2) or None
        elif seg.tag == "RFF" and _component(seg, 1, 1) == "CO" and order_ref is None:
            order_ref = _component(seg, 1, 2) or None
        elif seg.tag == "CUX" and _component(seg, 1, 2):
            currency = _component(seg, 1, 2)
        elif seg.tag == "NAD" and _component(seg, 1) == "ST":
            ship_to = {"name": _component(seg, 3) or None, "line1": _component(seg, 5) or None,
                       "city": _component(seg, 6) or None, "region": _component(seg, 7) or None,
                       "postal_code": _component(seg, 8) or None, "country": _component(seg, 9) or None}
        elif seg.tag == "LIN":
            close()
            item = _lin_item(seg)
            if item is None:
                raise EdiError("LIN names no item", segment_id="LIN", segment_position=pos, element_position=3)
            line = {"pos": pos, "number": _component(seg, 1), "item": item}
        elif seg.tag == "QTY" and line is not None and _component(seg, 1, 1) == "21":
            line["qty"] = _whole(seg, 1, 2, pos)
            unit = _component(seg, 1, 3)
            line["uom"] = "EA" if unit in ("", "PCE") else unit
        elif seg.tag == "PRI" and line is not None and _component(seg, 1, 1) == "AAA" and "price" not in line:
            price = _number(seg, 1, 2, pos)
            basis = _component(seg, 1, 5)
            line["price"] = price / Decimal(basis) if basis else price
        elif seg.tag == "UNS":
            close()
            line = None
    close()
    if not number:
        raise EdiError("ORDERS without BGM order number", segment_id="BGM", segment_position=msg.segments[0][0])
    if not ship_to.get("country"):
        raise EdiError("ORDERS without NAD+ST ship-to country", segment_id="NAD", segment_position=msg.segments[0][0])
    return PurchaseOrder(po_number=number, supplier_id=ix.recipient, order_ref=order_ref, currency=currency,
                         lines=lines, ship_to=Address(**ship_to))


# letters outside ISO 8859-1 that Unicode does not decompose into a base letter and an accent
_NO_DECOMPOSITION = {"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Ħ": "H", "ħ": "h", "ı": "i", "Œ": "OE", "œ": "oe",
                     "Ŧ": "T", "ŧ": "t"}


def _latin1(value: str | None) -> str:
    """Free text within UNOC's character set (ISO 8859-1): a letter outside it loses its accent (Ł → L), anything
    else becomes a space. Identifiers are not changed (a PO number or item code outside it fails the encode)."""
    out = []
    for ch in value or "":
        if ord(ch) < 256:
            out.append(ch)
            continue
        base = _NO_DECOMPOSITION.get(ch) or unicodedata.normalize("NFKD", ch).encode(
            "latin-1", "ignore").decode("latin-1")
        out.append(base or " ")
    return "".join(out)


def _seg(tag: str, *elements: str | Sequence[str]) -> Segment:
    return Segment(tag, *[list(e) if not isinstance(e, str) else e for e in elements])


def build_orders(po: PurchaseOrder, *, sender: str, recipient: str, control: str, at: datetime) -> str:
    """An ORDERS D.96A interchange (UNOC:3) of one message: BGM 220, DTM 137, CUX, NAD+ST, LIN/QTY 21/PRI AAA per
    line, UNS, CNT. pydifact escapes any service character in the values (release character `?`)."""
    ix = Interchange(sender=sender, recipient=recipient, control_reference=control, syntax_identifier=("UNOC", 3),
                     timestamp=at)
    msg = Message("1", ORDERS_VERSION)
    to = po.ship_to
    msg.add_segment(_seg("BGM", "220", po.po_number, "9"))
    msg.add_segment(_seg("DTM", ["137", at.strftime("%Y%m%d"), "102"]))
    if po.order_ref:
        msg.add_segment(_seg("RFF", ["CO", po.order_ref]))
    msg.add_segment(_seg("CUX", ["2", po.currency, "9"]))
    msg.add_segment(_seg("NAD", "ST", "", _latin1(to.name or to.company), "", _latin1(to.line1), _latin1(to.city),
                         _latin1(to.region), _latin1(to.postal_code), to.country))
    for line in po.lines:
        msg.add_segment(_seg("LIN", line.line_number, "", [line.item_code, "IN"]))
        msg.add_segment(_seg("QTY", ["21", str(line.quantity), "PCE" if line.uom == "EA" else line.uom]))
        msg.add_segment(_seg("PRI", ["AAA", format(line.unit_price.normalize(), "f")]))
    msg.add_segment(_seg("UNS", "S"))
    msg.add_segment(_seg("CNT", ["2", str(len(po.lines))]))
    ix.add_message(msg)
    return ix.serialize(break_lines=True)
