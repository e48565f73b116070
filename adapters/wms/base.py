"""WMS / 3PL port: release orders for picking, cancel releases."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from canonical.fulfillment import ResolvedLine, WmsReleaseRef
from canonical.order import Address


@runtime_checkable
class WmsAdapter(Protocol):
    def release(self, external_ref: str, lines: list[ResolvedLine], ship_to: Address | None) -> WmsReleaseRef:
        """Send a fulfilment request; idempotent by external reference."""

    def cancel_release(self, external_ref: str) -> bool:
        """Cancel if present; True if cancelled by this call. Raise CannotCancel if already shipped."""
