"""POS store-day activities: stock movements of POS transactions, and posting the store day's journal to the ERP.
Each is one idempotent call into one adapter: stock by POS transaction id and line, the journal by its external
reference (`storeday:{store}:{date}` for the day, `…:adj:{n}` for the n-th batch of late transactions).

StoreDay is started and signalled by starters/pos.py only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.orders import business_errors
from adapters.inventory.backorders import BackorderBook
from adapters.ports import Adapters
from adapters.pos.stock import PosStock
from canonical.finance import JournalEntry
from canonical.inventory import BackorderReceipt, StockShortfall
from canonical.pos import PosTransaction

STORE_DAY_WORKFLOW = "StoreDay"
STORE_DAY_CLOSE_WORKFLOW = "StoreDayClose"


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PosStockInput(_In):
    store_id: str
    location: str
    transactions: list[PosTransaction] = Field(min_length=1)


class PosStockResult(_In):
    applied: int
    replayed: int
    shortfalls: list[StockShortfall] = []  # reservations these sales took units from (absent in old histories)
    # orders with a backordered line waiting for an item these returns put back on the shelf (absent in old ones)
    backorder_receipts: list[BackorderReceipt] = []


class PostJournalInput(_In):
    journal: JournalEntry


class LocalDateInput(_In):
    timezone: str
    days_ago: int = 0


@activity.defn(name="store_local_date")
def store_local_date(inp: LocalDateInput) -> date:
    """Today (minus `days_ago`) in the store's time zone; a local activity of StoreDayClose, so the date is
    recorded in its history (a later tz database cannot change it on replay)."""
    try:
        tz = ZoneInfo(inp.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ApplicationError(f"unknown time zone {inp.timezone!r}", type="UnknownTimeZone",
                               non_retryable=True) from None
    return (datetime.now(UTC).astimezone(tz) - timedelta(days=inp.days_ago)).date()


class PosActivities:
    def __init__(self, adapters: Adapters) -> None:
        self.adapters = adapters
        self._stock: PosStock | None = None

    @property
    def stock(self) -> PosStock:
        if self._stock is None:
            ledger = self.adapters.inventory
            if ledger is None:
                raise RuntimeError("POS stock needs the inventory ledger (adapters.inventory)")
            self._stock = PosStock(ledger.engine, ledger)
        return self._stock

    @activity.defn(name="apply_pos_stock")
    @business_errors
    def apply_pos_stock(self, inp: PosStockInput) -> PosStockResult:
        events, results = self.stock.apply_with_results(inp.store_id, inp.location, inp.transactions)
        applied = sum(r.applied for r in results)
        receipts = BackorderBook(self.stock.ledger.engine).receipts(events, results)
        return PosStockResult(applied=applied, replayed=len(results) - applied,
                              shortfalls=[s for r in results for s in r.shortfalls], backorder_receipts=receipts)

    @activity.defn(name="post_pos_journal")
    @business_errors
    def post_pos_journal(self, inp: PostJournalInput) -> str:
        return self.adapters.erp.post_journal(inp.journal)

    def all(self) -> list[Callable[..., Any]]:
        return [self.apply_pos_stock, self.post_pos_journal, store_local_date]


def group_by_store_day(transactions: Iterable[PosTransaction]) -> dict[str, list[PosTransaction]]:
    out: dict[str, list[PosTransaction]] = defaultdict(list)
    for t in transactions:
        out[t.workflow_id].append(t)
    return dict(out)


