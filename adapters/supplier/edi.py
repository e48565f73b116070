"""EdiSupplierAdapter: the SupplierAdapter port over X12 (x12.py) and a managed-file drop folder (dropfolder.py),
with control numbers and acknowledgements kept in the platform database (ledger.py).

- `send_purchase_order` allocates the partner's next interchange control number, records the interchange, writes
  the 850 to `outbound/` atomically and then notes the file; a retry after a crash re-writes the same control
  number (the supplier drops a repeated ISA13), a retry after success sends nothing.
- `collect` reads `inbound/`: a malformed file is moved to `quarantine/` with `<file>.error.json` (segment id,
  position, element) and, when it broke inside a functional group, answered with a rejecting 997; a well-formed one
  is recorded, answered with an accepting 997 (once) and its documents returned until `acknowledge`d; a 997 from
  the supplier is noted on the interchange of ours it acknowledges; an interchange processed before is a duplicate
  (archived as `<file>.duplicate`, its documents not returned again).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from adapters.sql.base import utcnow
from adapters.supplier import edifact, x12
from adapters.supplier.base import (
    ChangeNotSupported,
    Collected,
    InboundDocument,
    InboundReceipt,
    QuarantinedFile,
    SentChange,
    SentPurchaseOrder,
)
from adapters.supplier.dropfolder import ManagedFileTransport
from adapters.supplier.ledger import SqlEdiLedger
from canonical.supplier import (
    EdiError,
    FunctionalAck,
    PoChange,
    PoChangeLine,
    PoLine,
    PurchaseOrder,
    ShipNotice,
)

MAX_INBOUND_BYTES = 20 * 1024 * 1024  # an interchange beyond this is no supplier document: quarantined unread


def _is_edifact(data: bytes) -> bool:
    """An EDIFACT interchange opens with UNA (service string advice) or UNB; an X12 one with ISA."""
    return data.lstrip(b"\xef\xbb\xbf\r\n\t ")[:3] in (b"UNA", b"UNB")


class EdiSupplierAdapter:
    def __init__(self, transport: ManagedFileTransport, ledger: SqlEdiLedger, *, our_id: str,
                 our_qualifier: str = "ZZ", partner_qualifiers: dict[str, str] | None = None, usage: str = "P",
                 edifact_partners: frozenset[str] = frozenset(), clock: Callable[[], datetime] = utcnow) -> None:
        self.transport = transport
        self.ledger = ledger
        self.us = x12.Party(our_qualifier, our_id)
        self.partner_qualifiers = partner_qualifiers or {}
        self.usage = usage
        self.edifact_partners = edifact_partners  # suppliers that take ORDERS and send ORDRSP/DESADV/INVOIC
        self.clock = clock

    def _partner(self, supplier_id: str) -> x12.Party:
        return x12.Party(self.partner_qualifiers.get(supplier_id, "ZZ"), supplier_id)

    # -- outbound --
    def send_purchase_order(self, po: PurchaseOrder) -> SentPurchaseOrder:
        previous = self.ledger.outbound_for(po.supplier_id, po.po_number, "850")
        if previous is not None and previous.file_name:
            return SentPurchaseOrder(po_number=po.po_number, supplier_id=po.supplier_id, resent=True,
                                     interchange_control=previous.control_number, file_name=previous.file_name)
        if previous is not None:
            control = int(previous.control_number)
        else:
            control = self.ledger.next_control_number(po.supplier_id)
            self.ledger.record(direction="outbound", partner=po.supplier_id, control_number=f"{control:09d}",
                               group_control=str(control), transaction_sets=["850"], reference=po.po_number)
        if po.supplier_id in self.edifact_partners:
            text = edifact.build_orders(po, sender=self.us.id, recipient=po.supplier_id, control=f"{control:09d}",
                                        at=self.clock())
            name = f"ORDERS_{po.supplier_id}_{control:09d}.edi"
            data = text.encode("latin-1")  # UNOC: ISO 8859-1 (build_orders keeps the free text within it)
        else:
            text = x12.build_purchase_order(po, sender=self.us, receiver=self._partner(po.supplier_id),
                                            control=control, at=self.clock(), usage=self.usage)
            name = f"850_{po.supplier_id}_{control:09d}.x12"
            data = text.encode("ascii")
        self.transport.put("archive", f"{name}.sent", data)  # ours, for invoice matching
        self.transport.put("outbound", name, data)
        self.ledger.written("outbound", po.supplier_id, f"{control:09d}", name)
        return SentPurchaseOrder(po_number=po.po_number, supplier_id=po.supplier_id,
                                 interchange_control=f"{control:09d}", file_name=name)

    # -- change requests (X12 860) --
    def cancel_purchase_order(self, po_number: str, reason: str) -> SentChange:
        return self._send_change(po_number, None, reason)

    def change_purchase_order(self, po_number: str, lines: list[PoLine]) -> SentChange:
        return self._send_change(po_number, lines, None)

    def changes_sent(self, po_number: str) -> list[PoChange]:
        """The 860s sent for `po_number` (written to the drop folder), oldest first, read back from our copies."""
        out: list[PoChange] = []
        for rec in self.ledger.about("outbound", po_number, "860"):
            if not rec.file_name:
                continue
            ix = x12.read_interchange(self.transport.get("archive", f"{rec.file_name}.sent"))
            out += [x12.parse_860(ix, t) for g in ix.groups for t in g.transactions if t.set_id == "860"]
        return out

    def current_quantities(self, po_number: str) -> dict[str, int]:
        """PO line number → the quantity as last requested: the 850's, with every 860 sent applied (a cancellation
        leaves every line at 0). A change the supplier rejected (865) still counts: the request stands."""
        po = self.purchase_order(po_number)
        if po is None:
            raise LookupError(f"purchase order {po_number} was not sent")
        qty = {ln.line_number: ln.quantity for ln in po.lines}
        for change in self.changes_sent(po_number):
            if change.cancellation:
                qty = dict.fromkeys(qty, 0)
            for ln in change.lines:
                if ln.line_number in qty:
                    qty[ln.line_number] = ln.quantity
        return qty

    def _send_change(self, po_number: str, lines: list[PoLine] | None, reason: str | None) -> SentChange:
        """One 860 for the PO: a cancellation (`lines` None) or a change to `lines`. Idempotent: the change is
        computed against what was last requested, so a retry after success finds nothing to change and sends
        nothing; a retry after a crash between recording and writing re-writes the same control number."""
        sent_850 = self.ledger.about("outbound", po_number, "850")
        if not sent_850 or not sent_850[0].file_name:
            raise LookupError(f"purchase order {po_number} was not sent")
        supplier = sent_850[0].partner
        if supplier in self.edifact_partners:
            raise ChangeNotSupported(f"{supplier} takes EDIFACT: no ORDCHG change order is built yet")
        po = self.purchase_order(po_number)
        assert po is not None
        current = self.current_quantities(po_number)
        history = self.changes_sent(po_number)
        records = self.ledger.about("outbound", po_number, "860")
        pending = next((r for r in records if not r.file_name), None)
        changed: list[PoChangeLine] = []
        if lines is None:
            purpose = "01"
            nothing = bool(history) and history[-1].cancellation and pending is None
        else:
            target: dict[str, int] = {}
            for ln in lines:
                if ln.line_number not in current:
                    raise ValueError(f"purchase order {po_number} has no line {ln.line_number}")
                target[ln.line_number] = target.get(ln.line_number, 0) + ln.quantity
            for pl in po.lines:
                was, now = current[pl.line_number], target.get(pl.line_number, 0)
                if now > was:
                    raise ValueError(f"line {pl.line_number} of purchase order {po_number}: {now} > {was} requested; "
                                     "a change order here only decreases")
                if now < was:
                    changed.append(PoChangeLine(line_number=pl.line_number, change="DI" if now == 0 else "QD",
                                                quantity=now, was=was, item_code=pl.item_code, uom=pl.uom))
            purpose = "04"
            nothing = not changed and pending is None
        if nothing:
            last = records[-1] if records else sent_850[0]
            return SentChange(po_number=po_number, supplier_id=supplier, sequence=len(history),
                              cancellation=bool(history) and history[-1].cancellation, lines=[],
                              interchange_control=last.control_number, file_name=last.file_name or "", resent=True)
        if pending is not None:
            control = int(pending.control_number)
        else:
            control = self.ledger.next_control_number(supplier)
            self.ledger.record(direction="outbound", partner=supplier, control_number=f"{control:09d}",
                               group_control=str(control), transaction_sets=["860"], reference=po_number)
        original = x12.read_interchange(self.transport.get("archive", f"{sent_850[0].file_name}.sent"))
        change = PoChange(po_number=po_number, supplier_id=supplier, purpose=purpose, sequence=len(history) + 1,
                          po_date=x12.po_date(original), reason=reason, lines=changed)
        text = x12.build_change_order(change, sender=self.us, receiver=self._partner(supplier), control=control,
                                      at=self.clock(), usage=self.usage)
        name = f"860_{supplier}_{control:09d}.x12"
        data = text.encode("ascii")
        self.transport.put("archive", f"{name}.sent", data)
        self.transport.put("outbound", name, data)
        self.ledger.written("outbound", supplier, f"{control:09d}", name)
        return SentChange(po_number=po_number, supplier_id=supplier, sequence=len(history) + 1,
                          cancellation=change.cancellation, lines=changed, interchange_control=f"{control:09d}",
                          file_name=name)

    def _send_997(self, partner: str, verdicts: list[x12.GroupVerdict], about: str) -> tuple[str, str]:
        """Write a 997 to the partner; returns (file name, its ISA13)."""
        control = self.ledger.next_control_number(partner)
        text = x12.build_functional_ack(verdicts, sender=self.us, receiver=self._partner(partner), control=control,
                                        at=self.clock(), usage=self.usage)
        name = f"997_{partner}_{control:09d}.x12"
        self.ledger.record(direction="outbound", partner=partner, control_number=f"{control:09d}",
                           group_control=str(control), transaction_sets=["997"], reference=about)
        self.transport.put("outbound", name, text.encode("ascii"))
        self.ledger.written("outbound", partner, f"{control:09d}", name)
        return name, f"{control:09d}"

    # -- inbound --
    def _quarantine(self, name: str, data: bytes, error: EdiError, result: Collected,
                    partial: x12.Interchange | None) -> None:
        report = {"file": name, **error.as_dict(), "partner": partial.sender_id if partial else None,
                  "interchange_control": partial.control if partial else None,
                  "quarantined_at": self.clock().isoformat()}
        self.transport.put("quarantine", name, data)
        self.transport.put("quarantine", f"{name}.error.json", json.dumps(report, indent=2).encode())
        self.transport.remove("inbound", name)
        result.quarantined.append(QuarantinedFile(file_name=name, error=error.reason, segment_id=error.segment_id,
                                                  segment_position=error.segment_position,
                                                  element_position=error.element_position))

    def collect(self) -> Collected:
        result = Collected()
        for name in self.transport.list("inbound"):
            if name.endswith(".error.json"):
                continue
            data = self.transport.get("inbound", name)
            if len(data) > MAX_INBOUND_BYTES:
                self._quarantine(name, data, EdiError(f"file of {len(data)} bytes exceeds {MAX_INBOUND_BYTES}",
                                                      segment_id=None, segment_position=None), result, None)
                continue
            if _is_edifact(data):
                self._collect_edifact(name, data, result)
                continue
            try:
                ix = x12.read_interchange(data)
            except x12.InterchangeError as exc:
                self._quarantine(name, data, exc, result, exc.partial)
                verdict = x12.rejection_verdict(exc)
                if verdict is not None and exc.partial is not None and verdict.functional_id != "FA":
                    result.acknowledgements_sent.append(
                        self._send_997(exc.partial.sender_id, [verdict], exc.partial.control)[0])
                continue
            try:
                if ix.receiver_id != self.us.id:
                    raise EdiError(f"interchange is addressed to {ix.receiver_id!r}, not to us ({self.us.id!r})",
                                   segment_id="ISA", segment_position=0, element_position=8)
                docs = x12.parse_documents(ix)
            except EdiError as exc:
                self._quarantine(name, data, exc, result, ix)
                verdicts = [self._verdict_with_error(g, exc) for g in ix.groups if g.functional_id != "FA"]
                if verdicts:
                    result.acknowledgements_sent.append(self._send_997(ix.sender_id, verdicts, ix.control)[0])
                continue
            partner = ix.sender_id
            fresh = self.ledger.record(direction="inbound", partner=partner, control_number=ix.control,
                                       transaction_sets=ix.transaction_sets, file_name=name,
                                       group_control=ix.groups[0].control if ix.groups else None,
                                       reference=self._reference(docs))
            record = None if fresh else self.ledger.get("inbound", partner, ix.control)
            if record is not None and record.processed_at is not None:
                self.transport.move("inbound", name, "archive", f"{name}.duplicate")
                result.duplicates.append(name)
                continue
            needs_ack = [g for g in ix.groups if g.functional_id != "FA"]  # a 997 is never acknowledged
            if needs_ack and (record is None or record.acked_at is None):
                ack, ack_control = self._send_997(partner, [x12.GroupVerdict.accept(g) for g in needs_ack],
                                                  ix.control)
                self.ledger.acknowledged("inbound", partner, ix.control, status="A", ack_control=ack_control)
                result.acknowledgements_sent.append(ack)
            receipt = InboundReceipt(file_name=name, supplier_id=partner, interchange_control=ix.control)
            set_ids = iter(ix.transaction_sets)
            for doc in docs:
                if isinstance(doc, FunctionalAck):
                    self.ledger.acknowledged_group(partner, doc.group_control, status=doc.status,
                                                   ack_control=ix.control,
                                                   detail="; ".join(e for t in doc.transactions for e in t.errors)
                                                   or None)
                result.documents.append(InboundDocument(receipt=receipt, document_type=next(set_ids), document=doc))
        return result

    def _collect_edifact(self, name: str, data: bytes, result: Collected) -> None:
        """An EDIFACT interchange: validated and mapped like X12, recorded and de-duplicated by UNB05. No CONTRL
        acknowledgement is sent (not implemented): EDIFACT suppliers are acknowledged by the documents."""
        try:
            ix = edifact.read_edifact(data)
            docs = edifact.parse_documents(ix)
        except EdiError as exc:
            self._quarantine(name, data, exc, result, None)
            return
        fresh = self.ledger.record(direction="inbound", partner=ix.sender, control_number=ix.control[:14],
                                   transaction_sets=[t for t, _ in docs], file_name=name,
                                   reference=self._reference([d for _, d in docs]))
        record = None if fresh else self.ledger.get("inbound", ix.sender, ix.control[:14])
        if record is not None and record.processed_at is not None:
            self.transport.move("inbound", name, "archive", f"{name}.duplicate")
            result.duplicates.append(name)
            return
        receipt = InboundReceipt(file_name=name, supplier_id=ix.sender, interchange_control=ix.control[:14])
        for kind, doc in docs:
            result.documents.append(InboundDocument(receipt=receipt, document_type=kind, document=doc))

    @staticmethod
    def _verdict_with_error(group: x12.Group, error: EdiError) -> x12.GroupVerdict:
        txns: list[tuple[str, str, str, str | None]] = []
        for t in group.transactions:
            positions = [p for p, _ in t.segments]
            broke = error.segment_position is not None and positions and positions[0] <= error.segment_position \
                <= positions[-1]
            txns.append((t.set_id, t.control, "R" if broke else "A", "5" if broke else None))
        accepted = sum(1 for t in txns if t[2] == "A")
        status = "A" if accepted == len(txns) else ("P" if accepted else "R")
        return x12.GroupVerdict(group.functional_id, group.control, txns, status, len(txns))

    @staticmethod
    def _reference(docs: list) -> str | None:
        for doc in docs:
            po = getattr(doc, "po_number", None)
            if po:
                return str(po)[:64]
        return None

    def acknowledge(self, receipt: InboundReceipt) -> bool:
        first = self.ledger.processed(receipt.supplier_id, receipt.interchange_control)
        try:
            self.transport.move("inbound", receipt.file_name, "archive")
        except FileNotFoundError:
            pass
        return first

    # -- invoice matching: what was ordered and what shipped, as sent and received --
    def purchase_order(self, po_number: str) -> PurchaseOrder | None:
        """The purchase order we sent for `po_number`, read back from our copy (`archive/<file>.sent`): the X12 850,
        or the EDIFACT ORDERS of a supplier in `edifact_partners`; None when none was sent."""
        record = self.ledger.about("outbound", po_number, "850")  # an ORDERS is recorded as the 850 it stands for
        if not record or not record[0].file_name:
            return None
        try:
            data = self.transport.get("archive", f"{record[0].file_name}.sent")
        except FileNotFoundError:
            return None
        if _is_edifact(data):
            ix_e = edifact.read_edifact(data)
            return next((edifact.parse_orders(ix_e, m) for m in ix_e.messages if m.type == "ORDERS"), None)
        ix = x12.read_interchange(data)
        return next((x12.parse_850(ix, t) for g in ix.groups for t in g.transactions if t.set_id == "850"), None)

    def ship_notices(self, po_number: str, *, besides: frozenset[str] = frozenset()) -> list[ShipNotice]:
        """The 856s (or EDIFACT DESADVs) received for `po_number` and already taken (archived), except the files in
        `besides`."""
        notices: list[ShipNotice] = []
        for rec in self.ledger.about("inbound", po_number, None):
            sets = rec.transaction_sets.split(",")
            if not rec.file_name or rec.file_name in besides or rec.processed_at is None \
                    or not ("856" in sets or "DESADV" in sets):
                continue
            try:
                data = self.transport.get("archive", rec.file_name)
            except FileNotFoundError:
                continue
            docs = [d for _, d in edifact.parse_documents(edifact.read_edifact(data))] if _is_edifact(data) \
                else x12.parse_documents(x12.read_interchange(data))
            notices += [d for d in docs if isinstance(d, ShipNotice) and d.po_number == po_number]
        return notices

    def reject_document(self, receipt: InboundReceipt, report: dict) -> None:
        """A well-formed document we cannot take (an invoice that does not match its PO): moved to `quarantine/`
        with `<file>.error.json` (the report), and marked processed so a resend of it is a duplicate."""
        try:
            data = self.transport.get("inbound", receipt.file_name)
        except FileNotFoundError:  # taken meanwhile by another reader (an order's poll, the invoice sweep)
            return
        self.transport.put("quarantine", receipt.file_name, data)
        self.transport.put("quarantine", f"{receipt.file_name}.error.json", json.dumps(
            {"file": receipt.file_name, "partner": receipt.supplier_id,
             "interchange_control": receipt.interchange_control, **report,
             "quarantined_at": self.clock().isoformat()}, indent=2, default=str).encode())
        self.transport.remove("inbound", receipt.file_name)
        self.ledger.processed(receipt.supplier_id, receipt.interchange_control)
