"""Store POS as the platform sees it: transactions (sales and returns with their lines and tenders), the running
totals of a store day and the one summarized, balanced journal a store day posts to the general ledger.

Money is Decimal in the currency's minor unit. A line's tax is exclusive: what the customer pays for a line is
`quantity × unit_price − discount + tax`, and an itemized transaction's tenders add up to exactly that. A POS that
reports only the money (Square's payment and refund webhooks carry no basket) sends an *unitemized* transaction:
tenders without lines; its gross goes to the unitemized-sales account until finance reclassifies it.
Journals reuse `canonical.finance.JournalEntry` (which refuses to exist unless it balances).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum

from pydantic import Field, field_validator, model_validator

from canonical.finance import JournalBuilder, JournalDimensions, JournalEntry
from canonical.fulfillment import StepRecord
from canonical.money import DecimalAmount, currency_code, quantize
from canonical.order import CanonicalModel, UtcDatetime

ZERO = Decimal(0)


def store_day_workflow_id(store_id: str, business_date: date | str) -> str:
    day = business_date.isoformat() if isinstance(business_date, date) else business_date
    return f"storeday:{store_id}:{day}"


class TenderType(StrEnum):
    CASH = "cash"
    CARD = "card"
    GIFT_CARD = "gift_card"
    OTHER = "other"


class PosKind(StrEnum):
    SALE = "sale"
    RETURN = "return"


_currency = currency_code


class PosLine(CanonicalModel):
    sku: str = Field(min_length=1, max_length=64, description="The store's SKU (an ERP item code or a mapped SKU)")
    name: str | None = Field(default=None, max_length=255)
    quantity: int = Field(gt=0)
    unit_price: DecimalAmount = Field(ge=0, description="Before discount and tax")
    discount: DecimalAmount = Field(default=ZERO, ge=0, description="Total discount on the line")
    tax: DecimalAmount = Field(default=ZERO, ge=0, description="Tax on the line (exclusive)")

    @property
    def gross(self) -> Decimal:
        return self.unit_price * self.quantity

    @property
    def total(self) -> Decimal:
        return self.gross - self.discount + self.tax


class Tender(CanonicalModel):
    type: TenderType
    amount: DecimalAmount = Field(gt=0, description="Money taken (sale) or given back (return); positive")


class PosTransaction(CanonicalModel):
    """One POS sale or return. Amounts are positive; `kind` says which way the money went."""

    pos_transaction_id: str = Field(min_length=1, max_length=200, description="Unique per POS; replays are no-ops")
    store_id: str = Field(min_length=1, max_length=56)
    business_date: date = Field(description="The store's trading day (local), not the UTC date")
    kind: PosKind
    lines: list[PosLine] = Field(default_factory=list, max_length=500,
                                 description="Empty: an unitemized transaction (the POS reported money only)")
    tenders: list[Tender] = Field(min_length=1, max_length=20)
    occurred_at: UtcDatetime
    currency: str
    source: str = Field(default="pos", max_length=64, description="pos (batch), square …")
    reference: str | None = Field(default=None, max_length=255, description="The POS's order or receipt id")

    @field_validator("currency", mode="before")
    @classmethod
    def _cur(cls, v: str) -> str:
        return _currency(v)

    @model_validator(mode="after")
    def _check(self) -> PosTransaction:
        cur = self.currency
        amounts = [("tender", t.amount) for t in self.tenders]
        for i, line in enumerate(self.lines, 1):
            amounts += [(f"line {i} unit_price", line.unit_price), (f"line {i} discount", line.discount),
                        (f"line {i} tax", line.tax)]
            if line.discount > line.gross:
                raise ValueError(f"line {i} ({line.sku}): discount {line.discount} exceeds the line's {line.gross}")
        for what, value in amounts:
            if quantize(value, cur) != value:
                raise ValueError(f"{what} {value} has more decimals than {cur} allows")
        if self.lines and self.tender_total != self.lines_total:
            raise ValueError(f"tenders add up to {self.tender_total} but the lines to {self.lines_total} {cur}")
        return self

    @property
    def itemized(self) -> bool:
        return bool(self.lines)

    @property
    def tender_total(self) -> Decimal:
        return sum((t.amount for t in self.tenders), ZERO)

    @property
    def lines_total(self) -> Decimal:
        return sum((line.total for line in self.lines), ZERO)

    @property
    def workflow_id(self) -> str:
        return store_day_workflow_id(self.store_id, self.business_date)


class StoreDayTotals(CanonicalModel):
    """What a store day (or its late adjustments) adds up to. Returns are kept apart from sales."""

    currency: str | None = None
    transactions: int = 0
    sales: int = 0
    returns: int = 0
    gross_sales: DecimalAmount = ZERO
    sales_discounts: DecimalAmount = ZERO
    sales_tax: DecimalAmount = ZERO
    unitemized_sales: DecimalAmount = ZERO
    gross_returns: DecimalAmount = ZERO
    returns_discounts: DecimalAmount = ZERO
    returns_tax: DecimalAmount = ZERO
    unitemized_returns: DecimalAmount = ZERO
    tenders: dict[TenderType, DecimalAmount] = Field(
        default_factory=dict, description="Net per tender type: taken on sales minus given back on returns")

    @property
    def is_empty(self) -> bool:
        return self.transactions == 0

    def add(self, txn: PosTransaction) -> StoreDayTotals:
        if self.currency is not None and txn.currency != self.currency:
            raise ValueError(f"transaction {txn.pos_transaction_id} is in {txn.currency}, the store day in "
                             f"{self.currency}")
        gross = sum((line.gross for line in txn.lines), ZERO)
        discount = sum((line.discount for line in txn.lines), ZERO)
        tax = sum((line.tax for line in txn.lines), ZERO)
        unitemized = ZERO if txn.itemized else txn.tender_total
        sign = 1 if txn.kind == PosKind.SALE else -1
        tenders = dict(self.tenders)
        for t in txn.tenders:
            tenders[t.type] = tenders.get(t.type, ZERO) + sign * t.amount
        upd: dict = {"currency": txn.currency, "transactions": self.transactions + 1, "tenders": tenders}
        if txn.kind == PosKind.SALE:
            upd.update(sales=self.sales + 1, gross_sales=self.gross_sales + gross,
                       sales_discounts=self.sales_discounts + discount, sales_tax=self.sales_tax + tax,
                       unitemized_sales=self.unitemized_sales + unitemized)
        else:
            upd.update(returns=self.returns + 1, gross_returns=self.gross_returns + gross,
                       returns_discounts=self.returns_discounts + discount, returns_tax=self.returns_tax + tax,
                       unitemized_returns=self.unitemized_returns + unitemized)
        return self.model_copy(update=upd)

    @property
    def net_sales(self) -> Decimal:
        """Revenue after discounts and returns, before tax (unitemized money counts in full)."""
        return (self.gross_sales - self.sales_discounts + self.unitemized_sales
                - self.gross_returns + self.returns_discounts - self.unitemized_returns)

    @property
    def tax_payable(self) -> Decimal:
        return self.sales_tax - self.returns_tax

    @property
    def expected_cash(self) -> Decimal:
        return self.tenders.get(TenderType.CASH, ZERO)


def merge_totals(a: StoreDayTotals, b: StoreDayTotals) -> StoreDayTotals:
    """A store day's totals including its posted adjustments (what StoreDay shows): counts, amounts and tenders
    added up; `a`'s currency unless it has none."""
    if b.is_empty:
        return a
    tenders = dict(a.tenders)
    for k, v in b.tenders.items():
        tenders[k] = tenders.get(k, 0) + v
    fields = ("transactions", "sales", "returns", "gross_sales", "sales_discounts", "sales_tax", "unitemized_sales",
              "gross_returns", "returns_discounts", "returns_tax", "unitemized_returns")
    return a.model_copy(update={"currency": a.currency or b.currency, "tenders": tenders,
                                **{f: getattr(a, f) + getattr(b, f) for f in fields}})


class PosAccounts(CanonicalModel):
    """GL accounts of a store day's journal (override with RETAILFLOW_POS_ACCOUNTS as JSON)."""

    sales: str = "4000"
    returns: str = "4010"
    discounts: str = "4020"
    unitemized_sales: str = Field(default="4090", description="Money a POS reported without its basket")
    tax_payable: str = "2200"
    cash_over_short: str = "6900"
    tender_clearing: dict[TenderType, str] = Field(default_factory=lambda: {
        TenderType.CASH: "1050", TenderType.CARD: "1060", TenderType.GIFT_CARD: "2300", TenderType.OTHER: "1070"})

    def tender_account(self, tender: TenderType) -> str:
        return self.tender_clearing.get(tender) or self.tender_clearing.get(TenderType.OTHER) or "1070"


def build_store_day_journal(totals: StoreDayTotals, *, external_ref: str, store_id: str, business_date: date,
                            accounts: PosAccounts, legal_entity: str | None = None,
                            counted_cash: Decimal | None = None, description: str = "") -> JournalEntry | None:
    """One summarized, balanced journal for a store day (or a batch of late transactions); None if it would
    have no lines. Sales revenue, returns and discounts gross; tax payable net; tender clearing per tender type;
    with `counted_cash`, the cash clearing takes what was counted and the difference goes to cash over/short."""
    if totals.is_empty or totals.currency is None:
        return None
    cur = totals.currency
    dims = JournalDimensions(channel="pos", store=store_id, legal_entity=legal_entity, currency=cur)
    jb = JournalBuilder(cur)
    jb.credit(accounts.sales, totals.gross_sales, dims, "POS gross sales")
    jb.debit(accounts.discounts, totals.sales_discounts - totals.returns_discounts, dims, "POS discounts")
    jb.debit(accounts.returns, totals.gross_returns, dims, "POS returns")
    jb.credit(accounts.unitemized_sales, totals.unitemized_sales - totals.unitemized_returns, dims,
              "POS sales reported without items (incl. tax)")
    jb.credit(accounts.tax_payable, totals.tax_payable, dims, "Sales tax collected")
    for tender, amount in sorted(totals.tenders.items()):
        jb.debit(accounts.tender_account(tender), amount, dims, f"Tender clearing: {tender.value}")
    if counted_cash is not None:
        over = counted_cash - totals.expected_cash
        jb.debit(accounts.tender_account(TenderType.CASH), over, dims, "Tender clearing: cash")
        jb.credit(accounts.cash_over_short, over, dims, "Cash over/short")
    lines = jb.lines()
    if not lines:
        return None
    return JournalEntry(external_ref=external_ref, posting_date=business_date, currency=cur,
                        description=description or f"POS store day {store_id} {business_date.isoformat()}",
                        lines=lines)


class StoreDayStatus(StrEnum):
    OPEN = "open"
    NEEDS_ATTENTION = "needs_attention"
    CLOSING = "closing"
    CLOSED = "closed"  # the day's journal is posted; late transactions still post as adjustments
    FINISHED = "finished"  # the late window is over
    CANCELLED = "cancelled"


class CloseRequest(CanonicalModel):
    counted_cash: DecimalAmount | None = Field(default=None, ge=0, description="Cash counted in the drawer(s)")
    actor: str = Field(default="system", min_length=1, max_length=200)
    reason: str | None = Field(default=None, max_length=2000)


class PostedJournal(CanonicalModel):
    external_ref: str
    erp_journal_id: str | None = None
    transactions: int
    net_sales: DecimalAmount
    posted_at: UtcDatetime


class RejectedTransaction(CanonicalModel):
    pos_transaction_id: str
    reason: str


class StoreDayCarry(CanonicalModel):
    """The state a store day carries into its next run (continue-as-new)."""

    status: StoreDayStatus = StoreDayStatus.OPEN
    totals: StoreDayTotals = Field(default_factory=StoreDayTotals)
    late: StoreDayTotals = Field(default_factory=StoreDayTotals, description="After close, not yet posted")
    seen_ids: list[str] = Field(default_factory=list)
    duplicates: int = 0
    stock_skipped: list[str] = Field(default_factory=list)
    rejected: list[RejectedTransaction] = Field(default_factory=list)
    close: CloseRequest | None = None
    journal: PostedJournal | None = None
    adjustments: list[PostedJournal] = Field(default_factory=list)
    closed_at: UtcDatetime | None = None
    cash_over_short: DecimalAmount | None = None
    late_since: UtcDatetime | None = None
    projection_version: int = 0
    runs: int = 1


class StoreDayInput(CanonicalModel):
    store_id: str = Field(min_length=1, max_length=56)
    business_date: date
    location: str | None = Field(default=None, description="Stock location of the store; default the store id")
    accounts: PosAccounts = Field(default_factory=PosAccounts)
    legal_entity: str | None = None
    late_window_hours: int = Field(default=168, ge=0, description="How long after close late transactions post")
    adjustment_delay_seconds: int = Field(default=300, ge=0, description="Late transactions are batched this long")
    max_transactions_per_run: int = Field(default=2000, gt=0, description="Continue-as-new after this many")
    step_max_attempts: int = Field(default=10, ge=1)
    carry: StoreDayCarry | None = None
    activity_task_queues: dict[str, str] = Field(
        default_factory=dict, description="Activity name → task queue of a partner worker (RETAILFLOW_ACTIVITY_TASK_QUEUES)")

    @property
    def workflow_id(self) -> str:
        return store_day_workflow_id(self.store_id, self.business_date)


class StoreDaySummary(CanonicalModel):
    """The status of a store day: what it added up to and what it posted."""

    workflow_id: str
    store_id: str
    business_date: date
    status: StoreDayStatus
    reason: str | None = None
    currency: str | None = None
    totals: StoreDayTotals
    net_sales: DecimalAmount = ZERO
    tax_payable: DecimalAmount = ZERO
    expected_cash: DecimalAmount = ZERO
    counted_cash: DecimalAmount | None = None
    cash_over_short: DecimalAmount | None = None
    duplicates: int = 0
    pending_late: int = 0
    journal: PostedJournal | None = None
    adjustments: list[PostedJournal] = Field(default_factory=list)
    rejected: list[RejectedTransaction] = Field(default_factory=list)
    stock_skipped: list[str] = Field(default_factory=list)
    steps: list[StepRecord] = Field(default_factory=list)


class StoreDayCloseInput(CanonicalModel):
    """For a Temporal Schedule: close the store day of `store_id` whose business date is today (or `days_ago`
    days before) in the store's time zone at the time the schedule fires."""

    store_id: str = Field(min_length=1, max_length=64)
    timezone: str = "UTC"
    days_ago: int = Field(default=0, ge=0, le=31)
    business_date: date | None = Field(default=None, description="Close this date instead (backfill, by hand)")


class StoreDayCloseResult(CanonicalModel):
    workflow_id: str
    business_date: date
    signalled: bool
    detail: str | None = None
