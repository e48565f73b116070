"""Inventory ports: where drift reconciliation gets the system of record's stock from."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from canonical.inventory import StockSnapshotLine


@runtime_checkable
class StockSnapshotSource(Protocol):
    def stock_snapshot(self) -> list[StockSnapshotLine]:
        """On-hand per SKU and location as the ERP or WMS sees it now."""
