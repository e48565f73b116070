"""Supplier port: send a drop-ship purchase order, collect what the supplier answered, acknowledge what was
taken. Whatever the wire (EDI over a drop folder, an API), the documents are canonical (canonical/supplier.py)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import Field

from canonical.order import CanonicalModel
from canonical.supplier import (
    FunctionalAck,
    PoAcknowledgement,
    PoChangeAck,
    PoChangeLine,
    PoLine,
    PurchaseOrder,
    ShipNotice,
    SupplierInvoice,
)


class SentPurchaseOrder(CanonicalModel):
    po_number: str
    supplier_id: str
    interchange_control: str = Field(description="The control number the order travelled under (ISA13 for X12)")
    file_name: str
    resent: bool = Field(default=False, description="True when this PO had been sent before: nothing new was sent")


class SentChange(CanonicalModel):
    """A change request (X12 860) as sent, or as found sent before (`resent`: nothing new was sent)."""

    po_number: str
    supplier_id: str
    sequence: int = Field(description="BCH05: the change order sequence number of this PO")
    cancellation: bool
    lines: list[PoChangeLine] = Field(default_factory=list, description="The lines changed (none: the whole PO)")
    interchange_control: str
    file_name: str
    resent: bool = False


class ChangeNotSupported(Exception):
    """The supplier's wire has no change request here (an EDIFACT partner: ORDCHG is not built)."""


class InboundReceipt(CanonicalModel):
    """Names one inbound file for `acknowledge`: taken once, archived, never delivered again."""

    file_name: str
    supplier_id: str
    interchange_control: str


class InboundDocument(CanonicalModel):
    receipt: InboundReceipt
    document_type: str = Field(description="855, 856, 810, 865, 997 (X12) or ORDRSP, DESADV, INVOIC (EDIFACT)")
    document: PoAcknowledgement | ShipNotice | SupplierInvoice | FunctionalAck | PoChangeAck


class QuarantinedFile(CanonicalModel):
    file_name: str
    error: str
    segment_id: str | None
    segment_position: int | None
    element_position: int | None


class Collected(CanonicalModel):
    documents: list[InboundDocument] = Field(default_factory=list)
    quarantined: list[QuarantinedFile] = Field(default_factory=list)
    duplicates: list[str] = Field(default_factory=list, description="Files of interchanges already processed")
    acknowledgements_sent: list[str] = Field(default_factory=list, description="997 files written")


@runtime_checkable
class SupplierAdapter(Protocol):
    def send_purchase_order(self, po: PurchaseOrder) -> SentPurchaseOrder:
        """Send the purchase order (its lines, ship-to and PO number); idempotent by PO number and supplier: a PO
        already sent is not sent again."""

    def cancel_purchase_order(self, po_number: str, reason: str) -> SentChange:
        """Ask the supplier to cancel the whole purchase order (X12 860, BCH01 01); idempotent: a PO whose latest
        change sent is a cancellation is not cancelled again (`resent`). The supplier answers with an 865."""

    def change_purchase_order(self, po_number: str, lines: list[PoLine]) -> SentChange:
        """Ask the supplier to change the purchase order to `lines` (by PO line number: smaller quantities; a line
        of the PO not among them is deleted); X12 860 BCH01 04 with a POC per changed line (DI, QD). Idempotent: a
        PO already at those quantities is not sent again (`resent`). ValueError for an increase or an unknown
        line, ChangeNotSupported where the wire has no change request."""

    def collect(self) -> Collected:
        """Read what the supplier left: parse it, acknowledge each interchange at the syntax level (997), quarantine
        malformed files with the position of the fault, skip interchanges already processed. Documents of a file
        come back on every collect until `acknowledge`d."""

    def acknowledge(self, receipt: InboundReceipt) -> bool:
        """The documents of this file were taken: archive it; an interchange with the same control number arriving
        again is a duplicate. True the first time."""
