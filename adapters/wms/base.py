"""WMS / 3PL port: release orders for picking, cancel releases."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from canonical.fulfillment import ResolvedLine, WmsReleaseRef
from canonical.order import Address
from canonical.returns import AuthorizedLine


@runtime_checkable
class WmsAdapter(Protocol):
    def release(self, external_ref: str, lines: list[ResolvedLine], ship_to: Address | None) -> WmsReleaseRef:
        """Send a fulfilment request; idempotent by external reference."""

    def cancel_release(self, external_ref: str) -> bool:
        """Cancel if present; True if cancelled by this call. Raise CannotCancel if already shipped."""

    def amend_release(self, external_ref: str, lines: list[ResolvedLine]) -> bool:
        """Replace a release's lines before it ships; raise CannotCancel once shipping."""

    def expect_return(self, external_ref: str, lines: list[AuthorizedLine]) -> str:
        """Announce an inbound return; idempotent by external reference; returns the WMS id."""

    def cancel_expected_return(self, external_ref: str) -> bool:
        """Withdraw the announcement if present; True if cancelled by this call."""
