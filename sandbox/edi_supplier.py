"""A sandbox drop-ship supplier on the other side of the EDI drop folder (adapters/supplier/dropfolder.py).

It behaves like a supplier's EDI gateway polling an SFTP box: it picks up (and removes) what the retailer left in
`outbound/`, and answers each 850 interchange with, in `inbound/`, one interchange each of

- a 997 accepting the 850's functional group,
- an 855 acknowledging every PO1 (ACK IA accepted, IB backordered, IR rejected),
- an 856 ship notice (BSN, TD5 carrier, REF*CN tracking, HL S/O/I with LIN/SN1) of what it shipped,
- an 810 invoice (BIG, IT1 at the PO's prices, TDS in cents) of what it shipped.

A retailer that sends EDIFACT (an ORDERS D.96A interchange: the supplier is in RETAILFLOW_SUPPLIER_EDIFACT_PARTNERS)
is answered in EDIFACT, built with pydifact like the retailer's own: an ORDRSP (LIN action 5 accepted, 3 changed
with QTY 113 accepted and QTY 83 backordered, 7 not accepted), a DESADV (TDT carrier, RFF+CN tracking, LIN/QTY 12)
and an INVOIC (LIN/QTY 47/PRI AAA at the order's prices, summary MOA 77); no CONTRL, as the retailer sends none.

An 860 (purchase order change request: BCH01 01 the whole PO cancelled, 04 lines deleted (POC DI) or decreased
(POC QD)) is answered with a 997 and an 865 (BCA02 AT accepted, RJ rejected; a POC/ACK per line, IA or IR). It is
accepted while the PO's 856 has not gone out (late 856: the held 856 and 810 are rebuilt with what is left, or
dropped when nothing is), and the supplier then ships only what is left; it is rejected once the 856 was sent, for a
PO it never received, or by the `reject_change_rate` fault.

997s the retailer sends for the supplier's interchanges are read and kept in its state. Its own interchange
control numbers are monotonic in `<folder>/.supplier/state.json`.

Faults are deterministic: each PO draws from `random.Random(f"{seed}:{po_number}")` against the configured rates.
- late 856: the 856 and the 810 are held for `late_856_ticks` further `process_once` calls;
- partial ship: the last line ships half its units (rounded down); the 855 backorders the rest (ACK IB);
- rejected line: the first line is refused (ACK IR) and neither shipped nor invoiced;
- malformed 856: its SE01 segment count is off by one (the retailer must quarantine it); in EDIFACT the DESADV's
  UNT01.

`process_once(folder)` does one pass; `run_in_thread(folder)` polls until its stop event is set.
"""

from __future__ import annotations

import json
import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pyx12.segment
from pydifact.segmentcollection import Interchange as EdifactInterchange
from pydifact.segmentcollection import Message
from pydifact.segments import Segment

from adapters.supplier import edifact, x12
from adapters.supplier.dropfolder import LocalDropFolder
from canonical.supplier import EdiError, PoChange, PurchaseOrder


@dataclass(frozen=True)
class SupplierFaults:
    seed: int = 0
    late_856_rate: float = 0.0
    late_856_ticks: int = 2
    partial_ship_rate: float = 0.0
    reject_line_rate: float = 0.0
    malformed_856_rate: float = 0.0
    reject_change_rate: float = 0.0


@dataclass
class PlannedLine:
    line_number: str
    item_code: str
    supplier_item: str | None
    ordered: int
    unit_price: Decimal
    shipped: int = 0
    backordered: int = 0
    rejected: bool = False


@dataclass
class Plan:
    po: PurchaseOrder
    lines: list[PlannedLine]
    late: bool = False
    malformed_856: bool = False
    faults: list[str] = field(default_factory=list)


def plan_for(po: PurchaseOrder, faults: SupplierFaults) -> Plan:
    rng = random.Random(f"{faults.seed}:{po.po_number}")
    draws = {name: rng.random() for name in ("late", "partial", "reject", "malformed")}
    lines = [PlannedLine(ln.line_number, ln.item_code, ln.supplier_item, ln.quantity, ln.unit_price,
                         shipped=ln.quantity) for ln in po.lines]
    plan = Plan(po=po, lines=lines)
    if draws["reject"] < faults.reject_line_rate:
        lines[0].rejected, lines[0].shipped = True, 0
        plan.faults.append("rejected_line")
    if draws["partial"] < faults.partial_ship_rate:
        last = lines[-1]
        if not last.rejected:
            last.shipped = last.ordered // 2
            last.backordered = last.ordered - last.shipped
            plan.faults.append("partial_ship")
    if draws["late"] < faults.late_856_rate:
        plan.late = True
        plan.faults.append("late_856")
    if draws["malformed"] < faults.malformed_856_rate:
        plan.malformed_856 = True
        plan.faults.append("malformed_856")
    return plan


def _seg(seg_id: str, *values: str) -> pyx12.segment.Segment:
    return x12.segment(seg_id, *values)


def body_855(plan: Plan, at: datetime) -> list[pyx12.segment.Segment]:
    all_rejected = all(ln.rejected for ln in plan.lines)
    changed = any(ln.rejected or ln.backordered for ln in plan.lines)
    status = "RJ" if all_rejected else ("AC" if changed else "AD")
    body = [_seg("BAK", "00", status, plan.po.po_number, at.strftime("%Y%m%d"))]
    for ln in plan.lines:
        ids = ["BP", ln.item_code] + (["VP", ln.supplier_item] if ln.supplier_item else [])
        body.append(_seg("PO1", ln.line_number, str(ln.ordered), "EA", x12.decimal_r(ln.unit_price), "", *ids))
        if ln.rejected:
            body.append(_seg("ACK", "IR", str(ln.ordered), "EA"))
            continue
        if ln.shipped:
            body.append(_seg("ACK", "IA", str(ln.shipped), "EA"))
        if ln.backordered:
            body.append(_seg("ACK", "IB", str(ln.backordered), "EA"))
    body.append(_seg("CTT", str(len(plan.lines))))
    return body


def shipment_id(po_number: str) -> str:
    return f"SH{po_number}"[:30]


def body_856(plan: Plan, at: datetime, carrier: str) -> list[pyx12.segment.Segment]:
    po = plan.po.po_number
    body = [_seg("BSN", "00", shipment_id(po), at.strftime("%Y%m%d"), at.strftime("%H%M")),
            _seg("HL", "1", "", "S"), _seg("TD5", "B", "2", carrier), _seg("REF", "CN", tracking_number(po)),
            _seg("HL", "2", "1", "O"), _seg("PRF", po)]
    hl = 2
    for ln in plan.lines:
        if not ln.shipped:
            continue
        hl += 1
        ids = ["BP", ln.item_code] + (["VP", ln.supplier_item] if ln.supplier_item else [])
        body += [_seg("HL", str(hl), "2", "I"), _seg("LIN", ln.line_number, *ids),
                 _seg("SN1", ln.line_number, str(ln.shipped), "EA")]
    body.append(_seg("CTT", str(hl)))
    return body


def tracking_number(po_number: str) -> str:
    """A deterministic UPS-style tracking number for the PO's shipment."""
    digits = "".join(f"{ord(c):03d}" for c in po_number)[-14:].rjust(14, "0")
    return f"1Z{digits}"


def body_810(plan: Plan, at: datetime) -> list[pyx12.segment.Segment]:
    po = plan.po
    body = [_seg("BIG", at.strftime("%Y%m%d"), f"INV{po.po_number}"[:22], "", po.po_number),
            _seg("CUR", "SE", po.currency)]
    total = Decimal(0)
    count = 0
    for ln in plan.lines:
        if not ln.shipped:
            continue
        count += 1
        total += (ln.unit_price * ln.shipped).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)  # per line, cents
        body.append(_seg("IT1", ln.line_number, str(ln.shipped), "EA", x12.decimal_r(ln.unit_price), "", "BP",
                         ln.item_code))
    cents = (total * 100).to_integral_value()
    if cents != total * 100:
        raise ValueError(f"invoice total {total} is not whole cents")
    body += [_seg("TDS", str(int(cents))), _seg("CTT", str(count))]
    return body


# -- EDIFACT answers (D.96A, as adapters/supplier/edifact.py reads them) ---------------------------------------------

def _eseg(tag: str, *elements: str | list[str]) -> Segment:
    return Segment(tag, *elements)


def _price(value: Decimal) -> str:
    return format(value.normalize(), "f")


def ordrsp_body(plan: Plan, at: datetime) -> list[Segment]:
    all_rejected = all(ln.rejected for ln in plan.lines)
    changed = any(ln.rejected or ln.backordered for ln in plan.lines)
    body = [_eseg("BGM", "231", f"R{plan.po.po_number}"[:35], "27" if all_rejected else ("4" if changed else "29")),
            _eseg("DTM", ["137", at.strftime("%Y%m%d"), "102"]), _eseg("RFF", ["ON", plan.po.po_number])]
    for ln in plan.lines:
        code = "7" if ln.rejected else ("3" if ln.backordered else "5")
        body += [_eseg("LIN", ln.line_number, code, [ln.item_code, "IN"]), _eseg("QTY", ["21", str(ln.ordered)])]
        if ln.backordered:
            body += [_eseg("QTY", ["113", str(ln.shipped)]), _eseg("QTY", ["83", str(ln.backordered)])]
    return body


def desadv_body(plan: Plan, at: datetime, carrier: str) -> list[Segment]:
    po = plan.po.po_number
    body = [_eseg("BGM", "351", shipment_id(po), "9"), _eseg("DTM", ["137", at.strftime("%Y%m%d"), "102"]),
            _eseg("RFF", ["ON", po]), _eseg("TDT", "20", "", "30", "", carrier),
            _eseg("RFF", ["CN", tracking_number(po)])]
    for ln in plan.lines:
        if ln.shipped:
            body += [_eseg("LIN", ln.line_number, "", [ln.item_code, "IN"]), _eseg("QTY", ["12", str(ln.shipped)])]
    return body


def invoic_body(plan: Plan, at: datetime) -> list[Segment]:
    po = plan.po
    body = [_eseg("BGM", "380", f"INV{po.po_number}"[:35], "9"), _eseg("DTM", ["137", at.strftime("%Y%m%d"), "102"]),
            _eseg("RFF", ["ON", po.po_number]), _eseg("CUX", ["2", po.currency, "4"])]
    total = Decimal(0)
    for ln in plan.lines:
        if not ln.shipped:
            continue
        amount = (ln.unit_price * ln.shipped).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
        total += amount
        body += [_eseg("LIN", ln.line_number, "", [ln.item_code, "IN"]), _eseg("QTY", ["47", str(ln.shipped), "PCE"]),
                 _eseg("MOA", ["203", _price(amount)]), _eseg("PRI", ["AAA", _price(ln.unit_price)])]
    body += [_eseg("UNS", "S"), _eseg("MOA", ["77", format(total, "f")])]
    return body


def build_edifact(sender: str, recipient: str, control: int, kind: str, body: list[Segment], at: datetime) -> str:
    ix = EdifactInterchange(sender=sender, recipient=recipient, control_reference=f"{control:09d}",
                            syntax_identifier=("UNOC", 3), timestamp=at)
    msg = Message("1", [kind, "D", "96A", "UN"])
    for seg in body:
        msg.add_segment(seg)
    ix.add_message(msg)
    return ix.serialize(break_lines=True)


def _break_unt_count(text: str) -> str:
    """The malformed-DESADV fault: UNT01 one more than the message's segments."""
    out = []
    for line in text.split("\n"):
        if line.startswith("UNT+"):
            count, rest = line[4:].split("+", 1)
            line = f"UNT+{int(count) + 1}+{rest}"
        out.append(line)
    return "\n".join(out)


def _break_segment_count(text: str) -> str:
    """The malformed-856 fault: SE01 one more than the segments the writer counted."""
    out = []
    for line in text.split("\n"):
        if line.startswith("SE" + x12.ELEMENT_SEPARATOR):
            seg = pyx12.segment.Segment(line, x12.SEGMENT_TERMINATOR, x12.ELEMENT_SEPARATOR, x12.COMPONENT_SEPARATOR)
            seg.set("01", str(int(seg.get_value("01") or "0") + 1))
            line = seg.format()
        out.append(line)
    return "\n".join(out)


class SandboxEdiSupplier:
    def __init__(self, folder: str | Path, *, supplier_id: str = "ACMESUPPLY", faults: SupplierFaults | None = None,
                 carrier: str = "UPSN", clock=lambda: datetime.now(UTC)) -> None:
        self.drop = LocalDropFolder(folder)
        self.state_dir = Path(folder) / ".supplier"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.supplier_id = supplier_id
        self.faults = faults or SupplierFaults()
        self.carrier = carrier
        self.clock = clock
        self.us = x12.Party("ZZ", supplier_id)

    # state: control counter, tick, held documents, 997s received, POs seen
    def _load(self) -> dict:
        path = self.state_dir / "state.json"
        if path.exists():
            return json.loads(path.read_text())
        return {"control": 0, "tick": 0, "held": [], "acks_received": {}, "orders": {}, "seen": []}

    def _save(self, state: dict) -> None:
        tmp = self.state_dir / ".state.json.tmp"
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
        tmp.replace(self.state_dir / "state.json")

    def _write(self, state: dict, buyer: x12.Party, set_id: str, body: list[pyx12.segment.Segment] | None,
               *, text: str | None = None, broken: bool = False) -> str:
        state["control"] += 1
        control = state["control"]
        at = self.clock()
        if text is None:
            assert body is not None
            text = x12.build_interchange(self.us, buyer, control, [(set_id, body)], at=at)
        if broken:
            text = _break_segment_count(text)
        name = f"{self.supplier_id}_{control:09d}_{set_id}.x12"
        self.drop.put("inbound", name, text.encode("ascii"))
        return name

    def process_once(self) -> list[str]:
        """One pass: release held documents that are due, answer new 850s, read 997s. Returns the files written."""
        state = self._load()
        state["tick"] += 1
        written: list[str] = []
        due = [h for h in state["held"] if h["due"] <= state["tick"]]
        state["held"] = [h for h in state["held"] if h["due"] > state["tick"]]
        for held in due:
            if held.get("syntax") == "edifact":
                plan = plan_for(PurchaseOrder.model_validate(held["po"]), self.faults)
                written.append(self._write_edifact(state, held["buyer_id"], held["set_id"], plan,
                                                   broken=held["broken"]))
                continue
            buyer = x12.Party(held["buyer_qualifier"], held["buyer_id"])
            written.append(self._write(state, buyer, held["set_id"], None, text=self._retime(held["text"], state),
                                       broken=held["broken"]))
        for name in self.drop.list("outbound"):
            data = self.drop.get("outbound", name)
            self.drop.remove("outbound", name)  # picked up, as a supplier's gateway takes files off the box
            if data.lstrip(b"\xef\xbb\xbf\r\n\t ")[:3] in (b"UNA", b"UNB"):
                written += self._take_edifact(state, name, data)
                continue
            try:
                ix = x12.read_interchange(data)
            except EdiError as exc:
                state.setdefault("rejected_files", []).append({"file": name, "error": str(exc)})
                continue
            key = f"{ix.sender_id}:{ix.control}"
            if key in state["seen"]:
                continue  # a repeated ISA13: the supplier processes an interchange once
            state["seen"].append(key)
            buyer = x12.Party(ix.sender_qualifier, ix.sender_id)
            for group in ix.groups:
                for txn in group.transactions:
                    if txn.set_id == "997":
                        ack = x12.parse_997(ix, txn)
                        state["acks_received"][ack.group_control] = ack.status
                    elif txn.set_id == "850":
                        written += self._answer(state, buyer, ix, group, x12.parse_850(ix, txn))
                    elif txn.set_id == "860":
                        written += self._answer_change(state, buyer, group, x12.parse_860(ix, txn))
        self._save(state)
        return written

    def _retime(self, text: str, state: dict) -> str:
        """A held interchange gets the control number of when it is sent: rebuild its ISA/IEA numbers."""
        control = state["control"] + 1
        out = []
        for line in text.split("\n"):
            if line.startswith("ISA" + x12.ELEMENT_SEPARATOR) or line.startswith("IEA" + x12.ELEMENT_SEPARATOR):
                seg = pyx12.segment.Segment(line, x12.SEGMENT_TERMINATOR, x12.ELEMENT_SEPARATOR,
                                            x12.COMPONENT_SEPARATOR)
                seg.set("13" if line.startswith("ISA") else "02", f"{control:09d}")
                line = seg.format()
            elif line.startswith("GS" + x12.ELEMENT_SEPARATOR) or line.startswith("GE" + x12.ELEMENT_SEPARATOR):
                seg = pyx12.segment.Segment(line, x12.SEGMENT_TERMINATOR, x12.ELEMENT_SEPARATOR,
                                            x12.COMPONENT_SEPARATOR)
                seg.set("06" if line.startswith("GS") else "02", str(control))
                line = seg.format()
            out.append(line)
        state["control"] = control - 1  # _write takes the next number: the one just stamped
        return "\n".join(out)

    def _answer(self, state: dict, buyer: x12.Party, ix: x12.Interchange, group: x12.Group,
                po: PurchaseOrder) -> list[str]:
        at = self.clock()
        plan = plan_for(po, self.faults)
        state["orders"][po.po_number] = {"faults": plan.faults, "po": po.model_dump(mode="json"),
                                         "malformed_856": plan.malformed_856,
                                         "lines": {ln.line_number: {"ordered": ln.ordered, "shipped": ln.shipped,
                                                                    "backordered": ln.backordered,
                                                                    "rejected": ln.rejected} for ln in plan.lines}}
        written = [self._write(state, buyer, "997", None, text=x12.build_functional_ack(
            [x12.GroupVerdict.accept(group)], sender=self.us, receiver=buyer, control=state["control"] + 1, at=at)),
            self._write(state, buyer, "855", body_855(plan, at))]
        if not any(ln.shipped for ln in plan.lines):
            return written
        later = [("856", x12.build_interchange(self.us, buyer, 1, [("856", body_856(plan, at, self.carrier))], at=at),
                  plan.malformed_856),
                 ("810", x12.build_interchange(self.us, buyer, 1, [("810", body_810(plan, at))], at=at), False)]
        if plan.late:
            for set_id, text, broken in later:
                state["held"].append({"due": state["tick"] + self.faults.late_856_ticks, "set_id": set_id,
                                      "text": text, "broken": broken, "buyer_qualifier": buyer.qualifier,
                                      "buyer_id": buyer.id, "po_number": po.po_number})
            return written
        for set_id, text, broken in later:
            written.append(self._write(state, buyer, set_id, None, text=self._retime(text, state), broken=broken))
        return written

    def _answer_change(self, state: dict, buyer: x12.Party, group: x12.Group, change: PoChange) -> list[str]:
        """An 860: a 997 for its group, then the 865 (accepted while the 856 has not gone out)."""
        at = self.clock()
        order = state["orders"].get(change.po_number)
        held = [h for h in state["held"] if h.get("po_number") == change.po_number]
        rng = random.Random(f"{self.faults.seed}:{change.po_number}:change:{change.sequence}")
        why = None
        if order is None or "po" not in order:
            why = "unknown purchase order"
        elif rng.random() < self.faults.reject_change_rate:
            why = "rejected_change"
        elif not held and any(ln["shipped"] for ln in order["lines"].values()):
            why = "already shipped"
        numbers = list(order["lines"]) if order else []
        revised = dict.fromkeys(numbers, 0) if change.cancellation else {ln.line_number: ln.quantity
                                                                          for ln in change.lines}
        if why is None and any(n not in order["lines"] for n in revised):
            why = "unknown line"
        if why is None:
            assert order is not None
            for number, qty in revised.items():
                line = order["lines"][number]
                line["ordered"] = min(line["ordered"], qty)
                line["shipped"] = min(line["shipped"], qty)
                line["backordered"] = max(0, min(line["backordered"], qty - line["shipped"]))
            state["held"] = [h for h in state["held"] if h.get("po_number") != change.po_number]
            plan = self._plan_of(order)
            if held and any(ln.shipped for ln in plan.lines):  # the held 856 and 810 rebuilt with what is left
                for set_id, body, broken in (("856", body_856(plan, at, self.carrier), order["malformed_856"]),
                                             ("810", body_810(plan, at), False)):
                    state["held"].append({**held[0], "set_id": set_id, "broken": broken,
                                          "text": x12.build_interchange(self.us, buyer, 1, [(set_id, body)], at=at)})
        (order or {}).setdefault("changes", []).append({"sequence": change.sequence, "purpose": change.purpose,
                                                        "accepted": why is None, "why": why})
        ack = "IA" if why is None else "IR"
        body = [_seg("BCA", change.purpose, "AT" if why is None else "RJ", change.po_number, "",
                     str(change.sequence or ""), change.po_date or at.strftime("%Y%m%d"))]
        for ln in change.lines:
            was = ln.was if ln.was is not None else ln.quantity
            body += [_seg("POC", ln.line_number, ln.change, str(was), str(ln.quantity), ln.uom),
                     _seg("ACK", ack, str(ln.quantity), ln.uom)]
        if change.lines:
            body.append(_seg("CTT", str(len(change.lines))))
        return [self._write(state, buyer, "997", None, text=x12.build_functional_ack(
            [x12.GroupVerdict.accept(group)], sender=self.us, receiver=buyer, control=state["control"] + 1, at=at)),
            self._write(state, buyer, "865", body)]

    @staticmethod
    def _plan_of(order: dict) -> Plan:
        po = PurchaseOrder.model_validate(order["po"])
        lines = []
        for ln in po.lines:
            st = order["lines"][ln.line_number]
            lines.append(PlannedLine(ln.line_number, ln.item_code, ln.supplier_item, st.get("ordered", ln.quantity),
                                     ln.unit_price, shipped=st["shipped"], backordered=st["backordered"],
                                     rejected=st["rejected"]))
        return Plan(po=po, lines=lines, malformed_856=order.get("malformed_856", False))

    # -- EDIFACT --
    def _take_edifact(self, state: dict, name: str, data: bytes) -> list[str]:
        try:
            ix = edifact.read_edifact(data)
            orders = [edifact.parse_orders(ix, m) for m in ix.messages if m.type == "ORDERS"]
        except EdiError as exc:
            state.setdefault("rejected_files", []).append({"file": name, "error": str(exc)})
            return []
        key = f"{ix.sender}:{ix.control}"
        if key in state["seen"]:
            return []  # a repeated UNB05: processed once
        state["seen"].append(key)
        written: list[str] = []
        for po in orders:
            written += self._answer_edifact(state, ix.sender, po)
        return written

    def _write_edifact(self, state: dict, buyer: str, kind: str, plan: Plan, *, broken: bool = False) -> str:
        state["control"] += 1
        control = state["control"]
        at = self.clock()
        body = {"ORDRSP": lambda: ordrsp_body(plan, at), "DESADV": lambda: desadv_body(plan, at, self.carrier),
                "INVOIC": lambda: invoic_body(plan, at)}[kind]()
        text = build_edifact(self.supplier_id, buyer, control, kind, body, at)
        if broken:
            text = _break_unt_count(text)
        name = f"{self.supplier_id}_{control:09d}_{kind}.edi"
        self.drop.put("inbound", name, text.encode("latin-1"))  # UNOC
        return name

    def _answer_edifact(self, state: dict, buyer: str, po: PurchaseOrder) -> list[str]:
        plan = plan_for(po, self.faults)
        state["orders"][po.po_number] = {"faults": plan.faults, "syntax": "edifact",
                                         "lines": {ln.line_number: {"shipped": ln.shipped,
                                                                    "backordered": ln.backordered,
                                                                    "rejected": ln.rejected} for ln in plan.lines}}
        written = [self._write_edifact(state, buyer, "ORDRSP", plan)]
        if not any(ln.shipped for ln in plan.lines):
            return written
        later = [("DESADV", plan.malformed_856), ("INVOIC", False)]
        if plan.late:
            for kind, broken in later:
                state["held"].append({"due": state["tick"] + self.faults.late_856_ticks, "syntax": "edifact",
                                      "set_id": kind, "po": po.model_dump(mode="json"), "broken": broken,
                                      "buyer_id": buyer})
            return written
        for kind, broken in later:
            written.append(self._write_edifact(state, buyer, kind, plan, broken=broken))
        return written


def process_once(folder: str | Path, **kwargs) -> list[str]:
    return SandboxEdiSupplier(folder, **kwargs).process_once()


def run_in_thread(folder: str | Path, *, interval: float = 1.0, **kwargs) -> tuple[threading.Thread, threading.Event]:
    """Poll the drop folder every `interval` seconds until the returned event is set."""
    supplier = SandboxEdiSupplier(folder, **kwargs)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            supplier.process_once()
            stop.wait(interval)

    thread = threading.Thread(target=loop, name="sandbox-edi-supplier", daemon=True)
    thread.start()
    return thread, stop
