"""Tax engine port: quote, commit, void; idempotent by transaction code."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from canonical.money import Money
from canonical.order import Order, TaxQuote


@runtime_checkable
class TaxAdapter(Protocol):
    def quote(self, transaction_code: str, order: Order) -> TaxQuote:
        """Price tax for the order (an uncommitted transaction); raise InvalidAddress if it cannot be located."""

    def requote(self, transaction_code: str, order: Order) -> TaxQuote:
        """Price an uncommitted transaction again for a changed order; raise TaxRejected once committed."""

    def commit(self, transaction_code: str) -> None:
        """Commit the quoted transaction (report it as collected); committing twice is a no-op."""

    def void(self, transaction_code: str) -> bool:
        """Void if present and not already voided; True if voided by this call."""

    def refund_tax(self, code: str, original_code: str, amount: Money) -> None:
        """Record tax given back against the original transaction; idempotent by code."""

    def void_tax_refund(self, code: str) -> bool:
        """Void a tax refund if present; True if voided by this call."""
