"""ERP port: the system of record for items, stock, sales orders and invoices."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from pydantic import Field

from canonical.finance import JournalEntry
from canonical.fulfillment import InvoiceRef, Reservation, ResolvedLine, SalesOrderRef
from canonical.inventory import StockSnapshotLine
from canonical.order import CanonicalModel, Order, Shipment, TaxQuote
from canonical.returns import AuthorizedReturn, CreditNote, DispositionLine, ReturnRequest
from canonical.settlement_matching import BookedOrderTotal, CreditNoteFacts, ErpOrderFacts
from canonical.supplier import SupplierInvoice


class BookedLine(CanonicalModel):
    line_id: str
    item_code: str
    quantity: int
    shipped: int = 0


class BookedOrder(CanonicalModel):
    """What the ERP booked for an order (its sales order's lines and what was delivered of each): how intake checks
    a channel's refund or a cancellation after shipment against the order, whatever the ERP."""

    external_ref: str
    erp_sales_order_id: str
    currency: str
    status: str
    lines: list[BookedLine]
    taxes_included: bool | None = Field(default=None, description="Whether the channel's prices held their tax "
                                        "(VAT style), when the ERP recorded it; None when it did not")


@runtime_checkable
class ErpAdapter(Protocol):
    def resolve_skus(self, order: Order) -> list[ResolvedLine]:
        """Map each order line's channel SKU to an ERP item; raise UnknownSku listing every unknown one."""

    def channel_skus_of(self, channel: str, item_code: str) -> list[str]:
        """The channel's SKUs for an ERP item (the reverse of `resolve_skus`), sorted; the item code itself when
        the channel has no SKU of its own for it."""

    def reserve(self, key: str, lines: list[ResolvedLine], *, allow_backorder: bool,
                location: str | None = None) -> Reservation:
        """Reserve stock atomically; idempotent by `key`. Raise OutOfStock when short and backorders are off.
        With `location` (a fulfillment node's), only that location's free stock counts: the sourcing plan chose
        the node, so the units must be held there. An ERP that holds stock in one warehouse only reserves there
        and reports its warehouse as each line's location."""

    def release_reservation(self, key: str) -> bool:
        """Release what `key` reserved and has not consumed; True if anything was released."""

    def create_sales_order(
        self, external_ref: str, order: Order, lines: list[ResolvedLine], tax: TaxQuote
    ) -> SalesOrderRef:
        """Create the sales order, or return the existing one with the same external reference."""

    def amend_sales_order(self, external_ref: str, order: Order, lines: list[ResolvedLine], tax: TaxQuote) -> bool:
        """Rewrite an open sales order after lines were cancelled; raise CannotCancel once invoiced."""

    def reduce_reservation(self, key: str, lines: list[ResolvedLine]) -> int:
        """Shrink what `key` holds to what `lines` still need; idempotent; returns units given back."""

    def reserve_more(self, key: str, item_code: str, quantity: int, *, token: str,
                     avoid_location: str | None = None) -> int:
        """Re-source `quantity` units of `item_code` for `key` after a store sale took units it held: reserve
        them wherever stock is free (`avoid_location`, the selling store, last), all or nothing (raise
        OutOfStock naming what is short); idempotent by `token` (one re-sourcing). Returns the units reserved."""

    def cancel_sales_order(self, external_ref: str) -> bool:
        """Cancel if present and open; True if it was cancelled by this call."""

    def post_delivery(self, external_ref: str, shipment: Shipment, lines: list[ResolvedLine]) -> None:
        """Record goods issued for a shipment (consumes the reservation); idempotent by shipment id."""

    def create_invoice(self, external_ref: str) -> InvoiceRef:
        """Invoice the sales order; idempotent by external reference."""

    # -- returns (additive) --
    def booked_order(self, external_ref: str) -> BookedOrder | None:
        """The sales order booked for `external_ref` with its lines and delivered units, or None (an ERP may leave
        out a cancelled one)."""

    def authorize_return(self, request: ReturnRequest, *, workflow_id: str, return_window_days: int
                         ) -> AuthorizedReturn:
        """Check the return against the sales order, its deliveries and earlier credit notes; price it."""

    def create_credit_note(self, note: CreditNote) -> CreditNote:
        """Book a balanced credit note; idempotent by external reference; never credits a unit twice."""

    def cancel_credit_note(self, external_ref: str) -> bool:
        """Cancel if present and open; True if cancelled by this call."""

    def restock(self, receipt_key: str, lines: list[DispositionLine]) -> int:
        """Put `restock` units back on hand; idempotent by receipt key; returns the units added."""

    # -- inventory (additive) --
    def stock_snapshot(self) -> list[StockSnapshotLine]:
        """On-hand per SKU and location as the ERP sees it now (drift reconciliation compares the ledger)."""

    # -- finance (additive) --
    def post_journal(self, journal: JournalEntry) -> str:
        """Post a balanced journal to the general ledger; idempotent by `journal.external_ref` (the same journal
        posted again returns the first one's id); raise JournalConflict when that reference was posted with
        different amounts."""

    # -- settlement matching (additive): what the settlement store asks, page by page, outside any transaction --
    def settlement_orders(self, external_refs: list[str]) -> dict[str, ErpOrderFacts]:
        """For each external reference with a sales order: its id, grand total, currency, status (`cancelled`
        when cancelled) and the channel SKUs it was booked with. A live order wins over a cancelled one of the same
        reference. References without an order are left out."""

    def settlement_credit_notes(self, order_refs: list[str]) -> dict[str, list[CreditNoteFacts]]:
        """The open (submitted) credit notes of each order reference: their external reference and the amount
        credited (positive). Orders without one are left out."""

    def orders_booked_between(self, channel: str, start: datetime, end: datetime, currency: str
                              ) -> list[BookedOrderTotal]:
        """The channel's live (not cancelled) sales orders in `currency` booked in [start, end): external order
        id and grand total."""


@runtime_checkable
class SupplierPayables(Protocol):
    """Accounts payable for drop-ship suppliers (issue 20): a separate port beside ErpAdapter so ERPs that do not
    book payables yet still satisfy ErpAdapter. The embedded ERP implements it (adapters/erp/local.py)."""

    def post_supplier_invoice(self, invoice: SupplierInvoice) -> str:
        """Book the supplier's invoice as a payable; idempotent by (supplier, invoice number): posting it again
        returns the first payable's id; raise PayableConflict when that number was posted with other amounts."""
