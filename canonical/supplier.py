"""Drop-ship suppliers: the purchase order we send and the documents a supplier answers with (acknowledgement,
ship notice, invoice, functional acknowledgement), whatever the wire format (X12, EDIFACT), plus the pure rule that
matches a supplier's invoice to its purchase order and ship notices before it is posted as a payable.

Quantities are ints (units), unit prices exact Decimals (a supplier may price to 4 decimals), totals Money.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import Field, field_validator

from canonical.errors import BusinessError
from canonical.money import Money, currency_code, quantize
from canonical.order import Address, CanonicalModel


class EdiError(Exception):
    """A malformed interchange: which segment (id and 0-based index in the interchange, ISA being 0) and, where it
    is one element, which element (1-based, as X12 numbers them: BEG03 is element 3)."""

    def __init__(self, message: str, *, segment_id: str | None, segment_position: int | None,
                 element_position: int | None = None, code: str | None = None) -> None:
        where = f"segment {segment_id or '?'} at position {segment_position}"
        if element_position is not None:
            where += f", element {element_position:02d}"
        super().__init__(f"{message} ({where})")
        self.reason = message
        self.segment_id = segment_id
        self.segment_position = segment_position
        self.element_position = element_position
        self.code = code

    def as_dict(self) -> dict[str, object]:
        return {"error": self.reason, "segment_id": self.segment_id, "segment_position": self.segment_position,
                "element_position": self.element_position, "code": self.code}


class PayableConflict(BusinessError):
    """The supplier's invoice number was posted before with other amounts: a posted payable is corrected in the ERP
    (a debit note), never rewritten."""

    action = "Check the supplier's invoice against the payable already posted; ask the supplier for a credit note."


class PoLine(CanonicalModel):
    line_number: str = Field(description="PO101: the buyer's line number, echoed by the supplier")
    item_code: str = Field(description="Our item (the buyer's part number, BP)")
    supplier_item: str | None = Field(default=None, description="The supplier's part number (VP), when known")
    quantity: int = Field(gt=0)
    unit_price: Decimal = Field(description="Exact price per unit in the PO's currency")
    uom: str = "EA"

    @field_validator("unit_price", mode="before")
    @classmethod
    def _price(cls, v: object) -> Decimal:
        if isinstance(v, float):
            raise ValueError("a unit price is never a float")
        return Decimal(str(v)) if not isinstance(v, Decimal) else v


class PurchaseOrder(CanonicalModel):
    po_number: str = Field(min_length=1, max_length=22)
    supplier_id: str = Field(description="The trading partner (its interchange id)")
    order_ref: str | None = Field(default=None, description="Our sales order / workflow the drop-ship serves")
    currency: str = "USD"
    ship_to: Address
    lines: list[PoLine] = Field(min_length=1)

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        return currency_code(v)

    def line(self, line_number: str) -> PoLine | None:
        return next((ln for ln in self.lines if ln.line_number == line_number), None)


class AckLineStatus(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    BACKORDERED = "backordered"
    CHANGED = "changed"


class AckLine(CanonicalModel):
    line_number: str
    item_code: str | None = None
    status: AckLineStatus
    quantity: int = Field(ge=0, description="Units the status applies to")
    ordered: int | None = None
    code: str = Field(description="The supplier's line status code as sent (X12 ACK01: IA, IR, IB, ...)")


class PoAcknowledgement(CanonicalModel):
    po_number: str
    supplier_id: str
    status_code: str = Field(description="BAK02 as sent: AC, AD, AK, RD, RJ ...")
    lines: list[AckLine]
    interchange_control: str

    @property
    def rejected(self) -> bool:
        return self.status_code == "RJ"


class ShippedLine(CanonicalModel):
    line_number: str | None = None
    item_code: str | None = None
    quantity: int = Field(ge=0)
    uom: str = "EA"


class ShipNotice(CanonicalModel):
    shipment_id: str = Field(description="BSN02: the supplier's shipment identification")
    po_number: str | None = None
    supplier_id: str
    carrier: str | None = None
    tracking_number: str | None = None
    lines: list[ShippedLine]
    interchange_control: str


class InvoiceLine(CanonicalModel):
    line_number: str | None = None
    item_code: str | None = None
    quantity: int = Field(ge=0)
    unit_price: Decimal
    uom: str = "EA"

    @property
    def extended(self) -> Decimal:
        return self.unit_price * self.quantity


class SupplierInvoice(CanonicalModel):
    invoice_number: str
    invoice_date: str | None = Field(default=None, description="CCYYMMDD as sent")
    po_number: str | None = None
    supplier_id: str
    currency: str = "USD"
    lines: list[InvoiceLine]
    total: Money = Field(description="TDS01: the invoice total the supplier states")
    interchange_control: str

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        return currency_code(v)


class AckedTransaction(CanonicalModel):
    transaction_set: str  # AK201
    control_number: str  # AK202
    status: str  # AK501: A accepted, E accepted with errors, R rejected
    errors: list[str] = Field(default_factory=list, description="AK3/AK4 errors as 'SEG@pos' / 'element n code c'")


class FunctionalAck(CanonicalModel):
    """A 997: the receiver's verdict on one of our functional groups."""

    functional_id: str  # AK101: PO for an 850 group
    group_control: str  # AK102: our GS06
    status: str  # AK901
    transactions: list[AckedTransaction]
    supplier_id: str
    interchange_control: str

    @property
    def accepted(self) -> bool:
        return self.status in ("A", "E")


class PoChangeLine(CanonicalModel):
    """One line of a purchase order change (X12 860 POC): DI the line deleted, QD its quantity decreased."""

    line_number: str = Field(description="POC01: the PO1 line number of the 850")
    change: str = Field(pattern="^(DI|QD)$", description="POC02: DI delete item, QD quantity decrease")
    quantity: int = Field(ge=0, description="POC04: the quantity left to receive after the change (0: deleted)")
    was: int | None = Field(default=None, ge=0, description="POC03: the current order quantity, before the change")
    item_code: str | None = None
    uom: str = "EA"


class PoChange(CanonicalModel):
    """A purchase order change request we send (X12 860): the whole PO cancelled (purpose 01) or some lines
    deleted or decreased (purpose 04). `sequence` numbers the changes of one PO (BCH05), from 1."""

    po_number: str
    supplier_id: str
    purpose: str = Field(pattern="^(01|04)$", description="BCH01: 01 cancellation, 04 change")
    sequence: int | None = Field(default=None, ge=1, description="BCH05; ours always carry it, a published "
                                 "860 may not")
    po_date: str | None = Field(default=None, description="BCH06: the PO's date, CCYYMMDD")
    reason: str | None = None
    lines: list[PoChangeLine] = Field(default_factory=list)
    interchange_control: str | None = None

    @property
    def cancellation(self) -> bool:
        return self.purpose == "01"


class PoChangeAck(CanonicalModel):
    """The supplier's answer to a change request (X12 865): BCA02 accepts (AT, AC, AD, AK) or rejects (RJ, RD)."""

    po_number: str
    supplier_id: str
    purpose: str = Field(description="BCA01: the purpose of the change answered (01 cancellation, 04 change)")
    status_code: str = Field(description="BCA02 as sent")
    sequence: int | None = Field(default=None, description="BCA05: the change order sequence number answered")
    lines: list[AckLine] = Field(default_factory=list)
    interchange_control: str

    @property
    def rejected(self) -> bool:
        return self.status_code in ("RJ", "RD") or any(ln.status == AckLineStatus.REJECTED for ln in self.lines)


SupplierDocument = PoAcknowledgement | ShipNotice | SupplierInvoice | FunctionalAck | PoChangeAck


# -- invoice matching: three-way (purchase order, what shipped, what is invoiced) -------------------------------------

class InvoiceDifference(CanonicalModel):
    kind: str = Field(description="over_shipped | price | unknown_line | total | currency | po")
    line_number: str | None = None
    item_code: str | None = None
    detail: str


class InvoiceMatch(CanonicalModel):
    matched: bool
    differences: list[InvoiceDifference]
    total: Money


def _key(line_number: str | None, item_code: str | None) -> str:
    return line_number or item_code or ""


def match_invoice(invoice: SupplierInvoice, po: PurchaseOrder, notices: list[ShipNotice]) -> InvoiceMatch:
    """Match an invoice to its purchase order and ship notices: each line's quantity invoiced is at most what
    shipped of that line (all notices together), its unit price is exactly the PO's, and the lines (each extension
    rounded half-even to the currency's minor unit, as the invoice's total is stated) add up to the stated total. Lines are keyed by PO line number, falling back to our item code."""
    diffs: list[InvoiceDifference] = []
    if invoice.po_number is not None and invoice.po_number != po.po_number:
        diffs.append(InvoiceDifference(kind="po", detail=f"invoice is for PO {invoice.po_number}, not {po.po_number}"))
    if invoice.currency != po.currency:
        diffs.append(InvoiceDifference(kind="currency", detail=f"invoiced in {invoice.currency}, ordered in "
                                       f"{po.currency}"))
    by_number = {ln.line_number: ln for ln in po.lines}
    by_item = {ln.item_code: ln for ln in po.lines}
    shipped: dict[str, int] = {}
    for notice in notices:
        for s in notice.lines:
            po_line = by_number.get(s.line_number or "") or by_item.get(s.item_code or "")
            key = po_line.line_number if po_line else _key(s.line_number, s.item_code)
            shipped[key] = shipped.get(key, 0) + s.quantity
    invoiced: dict[str, int] = {}
    lines_total = Decimal(0)
    for inv in invoice.lines:
        lines_total += quantize(inv.extended, invoice.currency)
        po_line = by_number.get(inv.line_number or "") or by_item.get(inv.item_code or "")
        if po_line is None:
            diffs.append(InvoiceDifference(kind="unknown_line", line_number=inv.line_number, item_code=inv.item_code,
                                           detail="invoiced line is not on the purchase order"))
            continue
        invoiced[po_line.line_number] = invoiced.get(po_line.line_number, 0) + inv.quantity
        if inv.unit_price != po_line.unit_price:
            diffs.append(InvoiceDifference(kind="price", line_number=po_line.line_number, item_code=po_line.item_code,
                                           detail=f"invoiced at {inv.unit_price}, ordered at {po_line.unit_price}"))
    for number, qty in sorted(invoiced.items()):
        if qty > shipped.get(number, 0):
            line = by_number[number]
            diffs.append(InvoiceDifference(kind="over_shipped", line_number=number, item_code=line.item_code,
                                           detail=f"{qty} invoiced, {shipped.get(number, 0)} shipped"))
    if lines_total != invoice.total.amount:
        diffs.append(InvoiceDifference(kind="total", detail=f"lines add up to {lines_total}, invoice states "
                                       f"{invoice.total.amount}"))
    return InvoiceMatch(matched=not diffs, differences=diffs, total=invoice.total)
