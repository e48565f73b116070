"""POS stock movements: each line of a POS sale takes units off the store's on-hand in the inventory ledger, each
line of a return puts them back. Idempotent by POS transaction id: the ledger's `source_event_id` is
`pos:{pos transaction id}:{line no}`, so a replayed transaction (offline replay, a retried activity) moves nothing.

A POS SKU is the ERP item code, or is mapped to one through the SKU cross-reference of channel `pos`
(`retailflow catalog map-sku pos <POS SKU> <ITEM>`). An unknown SKU is a business fault (the store day parks).
Sales are recorded even when they take on-hand below zero: the goods have left the store; drift reconciliation
finds the difference. A sale that takes units open reservations held takes them back from those reservations
(newest first) and reports them as shortfalls, which StoreDay tells the orders.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Engine, select

from adapters import sql as db
from adapters.inventory.ledger import InventoryLedger
from canonical.errors import UnknownSku
from canonical.inventory import ApplyResult, InventoryEvent, InventoryEventKind, StockShortfall
from canonical.pos import PosKind, PosTransaction

POS_SKU_CHANNEL = "pos"


class PosStock:
    def __init__(self, engine: Engine, ledger: InventoryLedger, *, channel: str = POS_SKU_CHANNEL) -> None:
        self.engine = engine
        self.ledger = ledger
        self.channel = channel

    def resolve(self, skus: Iterable[str]) -> dict[str, str]:
        """POS SKU → ERP item code; raise UnknownSku listing every SKU that is neither."""
        wanted = set(skus)
        if not wanted:
            return {}
        with self.engine.connect() as conn:
            mapped = {r.channel_sku: r.item_code for r in conn.execute(
                select(db.sku_xref.c.channel_sku, db.sku_xref.c.item_code).where(
                    (db.sku_xref.c.channel == self.channel) & db.sku_xref.c.channel_sku.in_(wanted)))}
            items = {r.item_code for r in conn.execute(
                select(db.items.c.item_code).where(db.items.c.item_code.in_(wanted - mapped.keys())))}
        out = {**{s: s for s in items}, **mapped}
        unknown = sorted(wanted - out.keys())
        if unknown:
            raise UnknownSku(f"POS SKU(s) are neither ERP items nor mapped for channel {self.channel!r}: "
                             f"{', '.join(unknown)}", details={"channel": self.channel, "skus": unknown})
        return out

    def events(self, store_id: str, location: str, transactions: Iterable[PosTransaction]) -> list[InventoryEvent]:
        transactions = list(transactions)
        items = self.resolve(line.sku for t in transactions for line in t.lines)
        out = []
        for t in transactions:
            kind = InventoryEventKind.SALE if t.kind == PosKind.SALE else InventoryEventKind.RECEIPT
            for no, line in enumerate(t.lines, 1):
                out.append(InventoryEvent(
                    source=f"pos:{store_id}", source_event_id=f"pos:{t.pos_transaction_id}:{no}", kind=kind,
                    sku=items[line.sku], location=location, quantity=line.quantity, occurred_at=t.occurred_at,
                    reference=t.pos_transaction_id))
        return out

    def apply(self, store_id: str, location: str, transactions: Iterable[PosTransaction]) -> tuple[int, int]:
        """Apply the movements of the transactions; (applied, replayed) movement counts."""
        applied, replayed, _ = self.apply_with_shortfalls(store_id, location, transactions)
        return applied, replayed

    def apply_with_shortfalls(self, store_id: str, location: str, transactions: Iterable[PosTransaction]
                              ) -> tuple[int, int, list[StockShortfall]]:
        """Apply the movements; (applied, replayed, the reservations the sales took units from). A sale that
        takes reserved units takes them back from the newest open reservations (see the ledger's
        `take_back_from_reservations`); a replayed transaction takes nothing again."""
        _, results = self.apply_with_results(store_id, location, transactions)
        applied = sum(r.applied for r in results)
        return applied, len(results) - applied, [s for r in results for s in r.shortfalls]

    def apply_with_results(self, store_id: str, location: str, transactions: Iterable[PosTransaction]
                           ) -> tuple[list[InventoryEvent], list[ApplyResult]]:
        """Apply the movements; each event with its result (a return's receipt raises on-hand: backorders)."""
        events = self.events(store_id, location, transactions)
        return events, self.ledger.apply_events(events)
