"""ERP port: the system of record for items, stock, sales orders and invoices."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from canonical.fulfillment import InvoiceRef, Reservation, ResolvedLine, SalesOrderRef
from canonical.order import Order, Shipment, TaxQuote
from canonical.returns import AuthorizedReturn, CreditNote, DispositionLine, ReturnRequest


@runtime_checkable
class ErpAdapter(Protocol):
    def resolve_skus(self, order: Order) -> list[ResolvedLine]:
        """Map each order line's channel SKU to an ERP item; raise UnknownSku listing every unknown one."""

    def reserve(self, key: str, lines: list[ResolvedLine], *, allow_backorder: bool) -> Reservation:
        """Reserve stock atomically; idempotent by `key`. Raise OutOfStock when short and backorders are off."""

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

    def cancel_sales_order(self, external_ref: str) -> bool:
        """Cancel if present and open; True if it was cancelled by this call."""

    def post_delivery(self, external_ref: str, shipment: Shipment, lines: list[ResolvedLine]) -> None:
        """Record goods issued for a shipment (consumes the reservation); idempotent by shipment id."""

    def create_invoice(self, external_ref: str) -> InvoiceRef:
        """Invoice the sales order; idempotent by external reference."""

    # -- returns (additive) --
    def authorize_return(self, request: ReturnRequest, *, workflow_id: str, return_window_days: int
                         ) -> AuthorizedReturn:
        """Check the return against the sales order, its deliveries and earlier credit notes; price it."""

    def create_credit_note(self, note: CreditNote) -> CreditNote:
        """Book a balanced credit note; idempotent by external reference; never credits a unit twice."""

    def cancel_credit_note(self, external_ref: str) -> bool:
        """Cancel if present and open; True if cancelled by this call."""

    def restock(self, receipt_key: str, lines: list[DispositionLine]) -> int:
        """Put `restock` units back on hand; idempotent by receipt key; returns the units added."""
