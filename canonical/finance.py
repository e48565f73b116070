"""Finance: settlements (marketplace payouts), journals (what the ERP's ledger receives) and reconciliation results.

Money is Decimal in the currency's minor unit. A journal's debits equal its credits, always: `JournalEntry`
refuses to exist otherwise. Vendor names never appear here; adapters map vendor reports onto these models.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from enum import StrEnum

from pydantic import Field, field_validator, model_validator

from canonical.errors import BusinessError
from canonical.money import DecimalAmount, Money, currency_code, quantize
from canonical.order import CanonicalModel, UtcDatetime


class SettlementFileInvalid(BusinessError):
    action = "Replace the report file with a valid one (or fix the adapter), then send `retry`; or `cancel`."


class JournalConflict(BusinessError):
    action = "A journal with this reference is already posted with other amounts: reverse it in the ERP, then `retry`."


class ReconciliationOpen(BusinessError):
    action = "Resolve the exceptions (fix the data and `retry`, or `skip` to post them to suspense)."


FINANCE_ERROR_TYPES: frozenset[str] = frozenset(
    cls.__name__ for cls in (SettlementFileInvalid, JournalConflict, ReconciliationOpen))


_currency = currency_code


class TransactionKind(StrEnum):
    """What a settlement line is about, whatever the provider calls it."""

    ORDER = "order"  # money for goods sold (principal, tax, shipping charged) and its fees
    REFUND = "refund"  # money given back to a buyer, and the fees returned
    FEE = "fee"  # a fee not tied to an order (subscription, storage, advertising)
    RESERVE = "reserve"  # money held back or released by the provider
    ADJUSTMENT = "adjustment"  # reimbursements, chargebacks, corrections
    PAYOUT = "payout"  # the transfer itself (a balance transaction describing the deposit)
    OTHER = "other"


class Settlement(CanonicalModel):
    """The header of a settlement report: one deposit for one period."""

    provider: str = Field(min_length=1, max_length=64)
    settlement_id: str = Field(min_length=1, max_length=128)
    period_start: UtcDatetime | None = None
    period_end: UtcDatetime | None = None
    deposit_date: UtcDatetime | None = None
    total: DecimalAmount = Field(description="What the provider deposited (negative: the seller owes)")
    currency: str
    marketplace: str | None = None

    @field_validator("currency", mode="before")
    @classmethod
    def _cur(cls, v: str) -> str:
        return _currency(v)

    @model_validator(mode="after")
    def _minor_unit(self) -> Settlement:
        if quantize(self.total, self.currency) != self.total:
            raise ValueError(f"total {self.total} has more decimals than {self.currency} allows")
        return self

    @property
    def key(self) -> str:
        return settlement_key(self.provider, self.settlement_id)

    @property
    def workflow_id(self) -> str:
        return f"settlement:{self.key}"

    @property
    def total_money(self) -> Money:
        return Money.of(self.total, self.currency)


def settlement_key(provider: str, settlement_id: str) -> str:
    return f"{provider}:{settlement_id}"


class SettlementLine(CanonicalModel):
    """One money movement of a settlement (one amount of one transaction)."""

    provider: str
    settlement_id: str
    line_no: int = Field(ge=1, description="1-based position of the line in the report")
    transaction_type: str = Field(description="As the provider writes it, e.g. Order, Refund, charge")
    kind: TransactionKind
    order_id: str | None = None
    merchant_order_id: str | None = None
    adjustment_id: str | None = None
    shipment_id: str | None = None
    marketplace: str | None = None
    sku: str | None = None
    quantity: int | None = None
    amount_type: str = ""
    amount_description: str = ""
    amount: DecimalAmount = Field(description="Positive: money to the seller; negative: money taken")
    currency: str
    posted_at: UtcDatetime | None = None
    buyer_amount: bool = Field(default=False, description="Part of what the buyer paid or got back (principal, "
                               "tax, shipping charged, promotions): matched against the platform's order or refund")
    source_ref: str | None = Field(default=None, description="The provider's id of the transaction, if any")

    @field_validator("currency", mode="before")
    @classmethod
    def _cur(cls, v: str) -> str:
        return _currency(v)

    @model_validator(mode="after")
    def _minor_unit(self) -> SettlementLine:
        if quantize(self.amount, self.currency) != self.amount:
            raise ValueError(f"line {self.line_no}: amount {self.amount} has more decimals than {self.currency} allows")
        return self


# --- journals -----------------------------------------------------------------------------------------------

class JournalDimensions(CanonicalModel):
    channel: str | None = None
    store: str | None = None
    legal_entity: str | None = None
    currency: str

    @field_validator("currency", mode="before")
    @classmethod
    def _cur(cls, v: str) -> str:
        return _currency(v)


class JournalLine(CanonicalModel):
    account: str = Field(min_length=1, max_length=64)
    debit: DecimalAmount = Decimal(0)
    credit: DecimalAmount = Decimal(0)
    dimensions: JournalDimensions
    memo: str | None = Field(default=None, max_length=500)
    transaction_amount: DecimalAmount | None = Field(default=None, description="Signed (debit positive) amount in "
                                                     "the transaction currency, when the journal is booked in the "
                                                     "legal entity's currency at an exchange rate")
    transaction_currency: str | None = None

    @model_validator(mode="after")
    def _one_side(self) -> JournalLine:
        if self.debit < 0 or self.credit < 0:
            raise ValueError(f"account {self.account}: debit and credit must not be negative")
        if (self.debit == 0) == (self.credit == 0):
            raise ValueError(f"account {self.account}: a journal line is either a debit or a credit")
        cur = self.dimensions.currency
        for name in ("debit", "credit"):
            value = getattr(self, name)
            if quantize(value, cur) != value:
                raise ValueError(f"account {self.account}: {name} {value} has more decimals than {cur} allows")
        return self

    @property
    def signed(self) -> Decimal:
        """Debit positive, credit negative."""
        return self.debit - self.credit


class JournalEntry(CanonicalModel):
    """A balanced journal: one currency, debits equal credits to the minor unit."""

    external_ref: str = Field(min_length=1, max_length=255, description="Idempotency key, e.g. settlement:amazon:123")
    posting_date: date
    currency: str
    description: str = Field(default="", max_length=500)
    lines: list[JournalLine] = Field(min_length=2)
    exchange_rate: DecimalAmount | None = Field(default=None, description="Units of `currency` per unit of the "
                                                "lines' transaction currency (None: booked in its own currency)")

    @field_validator("currency", mode="before")
    @classmethod
    def _cur(cls, v: str) -> str:
        return _currency(v)

    @model_validator(mode="after")
    def _balanced(self) -> JournalEntry:
        for line in self.lines:
            if line.dimensions.currency != self.currency:
                raise ValueError(f"account {line.account} is in {line.dimensions.currency}, the journal in "
                                 f"{self.currency}")
        debits, credits = self.total_debit, self.total_credit
        if debits != credits:
            raise ValueError(f"journal {self.external_ref} does not balance: debits {debits} != credits {credits} "
                             f"{self.currency}")
        return self

    @property
    def total_debit(self) -> Decimal:
        return sum((line.debit for line in self.lines), Decimal(0))

    @property
    def total_credit(self) -> Decimal:
        return sum((line.credit for line in self.lines), Decimal(0))


class JournalBuilder:
    """Collects signed postings (debit positive) and summarizes them into one line per account and dimensions."""

    def __init__(self, currency: str) -> None:
        self.currency = _currency(currency)
        self._sums: dict[tuple[str, JournalDimensions, str | None], Decimal] = {}

    def add(self, account: str, amount: Decimal, dimensions: JournalDimensions, memo: str | None = None) -> None:
        if dimensions.currency != self.currency:
            raise ValueError(f"posting in {dimensions.currency} to a {self.currency} journal")
        key = (account, dimensions, memo)
        self._sums[key] = self._sums.get(key, Decimal(0)) + Decimal(amount)

    def debit(self, account: str, amount: Decimal, dimensions: JournalDimensions, memo: str | None = None) -> None:
        self.add(account, amount, dimensions, memo)

    def credit(self, account: str, amount: Decimal, dimensions: JournalDimensions, memo: str | None = None) -> None:
        self.add(account, -Decimal(amount), dimensions, memo)

    @property
    def imbalance(self) -> Decimal:
        """Debits minus credits so far."""
        return sum(self._sums.values(), Decimal(0))

    def lines(self) -> list[JournalLine]:
        out = []
        for (account, dims, memo), amount in sorted(self._sums.items(), key=lambda kv: (kv[0][0], repr(kv[0][1:]))):
            amount = quantize(amount, self.currency)
            if amount == 0:
                continue
            out.append(JournalLine(account=account, dimensions=dims, memo=memo,
                                   debit=amount if amount > 0 else Decimal(0),
                                   credit=-amount if amount < 0 else Decimal(0)))
        return out

    def build(self, external_ref: str, posting_date: date, description: str = "") -> JournalEntry:
        return JournalEntry(external_ref=external_ref, posting_date=posting_date, currency=self.currency,
                            description=description, lines=self.lines())


def journal_totals(lines: Iterable[JournalLine]) -> tuple[Decimal, Decimal]:
    lines = list(lines)
    return sum((x.debit for x in lines), Decimal(0)), sum((x.credit for x in lines), Decimal(0))


# --- reconciliation -------------------------------------------------------------------------------------------

def journal_fingerprint(lines: Iterable[dict]) -> list[tuple]:
    """What two postings of one journal reference must share to be the same journal: per line its account, debit,
    credit and dimensions, order-free (amounts compared as Decimals, so `"5.00"` equals `5`). Lines are dicts as
    stored (`JournalLine.model_dump(mode="json")`) or as an ERP answers them (without dimensions)."""
    return sorted((x["account"], Decimal(str(x["debit"])), Decimal(str(x["credit"])),
                   tuple(sorted((x.get("dimensions") or {}).items()))) for x in lines)


class ExceptionKind(StrEnum):
    UNMATCHED_SETTLEMENT = "unmatched_settlement"  # settlement lines with no platform order or refund
    AMOUNT_MISMATCH = "amount_mismatch"  # the order or refund exists, the money differs
    SKU_MISMATCH = "sku_mismatch"  # a settled SKU is not on the platform's order
    UNMATCHED_PLATFORM = "unmatched_platform"  # a platform order in the period the provider did not settle
    UNCLASSIFIED = "unclassified"  # no GL account for the amount type / description
    TOTAL_DIFFERENCE = "total_difference"  # the lines do not add up to the deposit
    PROMOTION_UNEXPLAINED = "promotion_unexplained"  # a promotion line no published promotion explains (issue 21)
    PROMOTION_EXPLAINED = "promotion_explained"  # informational: the published promotion that explains the line
    PROMOTION_UNCHECKED = "promotion_unchecked"  # informational: the ERP gave no order time to check the line at


class ReconciliationException(CanonicalModel):
    kind: ExceptionKind
    cause: str
    order_id: str | None = None
    adjustment_id: str | None = None
    amount_type: str | None = None
    amount_description: str | None = None
    line_count: int = 0
    settlement_amount: DecimalAmount = Decimal(0)
    platform_amount: DecimalAmount | None = None
    difference: DecimalAmount = Decimal(0)
    resolution: str | None = Field(default=None, description="suspense (skipped by an analyst) or None (open)")


class Difference(CanonicalModel):
    cause: str
    amount: Money


class ReconciliationResult(CanonicalModel):
    """What a reconciliation found and did. Lists are capped (see the counts) to keep workflow history small."""

    provider: str
    settlement_id: str
    status: str
    currency: str
    deposit_total: Money
    lines_total: Money
    line_count: int
    matched_count: int
    matched_amount: Money
    unmatched_settlement_count: int
    unmatched_settlement_amount: Money
    unmatched_platform_count: int = 0
    unmatched_platform_amount: Money | None = None
    non_order_count: int = Field(default=0, description="Lines not about an order (fees, reserves...): classified only")
    exceptions: list[ReconciliationException] = Field(default_factory=list)
    exception_count: int = 0
    differences: list[Difference] = Field(default_factory=list)
    by_category: dict[str, DecimalAmount] = Field(default_factory=dict)
    journal_ref: str | None = None
    erp_journal_id: str | None = None
    journal_posted_now: bool = False
    suspense_amount: Money | None = None
    promotions: list[ReconciliationException] = Field(
        default_factory=list, description="Promotion lines explained by a published promotion (kind "
        "promotion_explained; the unexplained ones are exceptions)")
    promotions_explained_count: int = 0


# Reporting categories (the GL account comes from the configurable account map). They add up to the deposit: every
# line lands in exactly one, and customer money (principal, shipping charged), tax, fees, reserves and adjustments
# stay apart. Tax words are tried before shipping: Amazon's `ItemPrice/ShippingTax` is tax, not shipping.
_CATEGORY_WORDS: list[tuple[str, tuple[str, ...]]] = [
    ("reserve", ("reserve",)),
    ("adjustment", ("reimburse",)),  # `FBA Inventory Reimbursement` is an adjustment, not a fulfilment fee
    ("promotion", ("promotion", "promo", "coupon", "discount")),
    ("tax", ("tax", "vat", "gst")),
    ("commission", ("commission", "referral", "closing fee", "variableclosingfee")),
    ("fulfilment_fee", ("fba", "fulfil", "fulfill", "pick", "pack", "weight")),
    ("shipping_credit", ("shipping", "shippingchargeback", "postage")),
    ("adjustment", ("adjust", "reimburse", "chargeback", "claim", "dispute", "correction", "guarantee")),
    ("principal", ("principal", "itemprice", "gross", "goodwill")),
]
# Payment providers that settle whole charges (Shopify Payments: `charge`/`refund` with an `amount` and a `fee`
# line per balance transaction): the amount is what the customer paid or got back, the fee is processing.
_CUSTOMER_MONEY_TYPES = frozenset({"charge", "refund"})
_ADJUSTMENT_TYPES = frozenset({"adjustment", "credit", "debit", "dispute", "chargeback refund",
                               "a-to-z guarantee claim"})


def fee_category(transaction_type: str, amount_type: str, amount_description: str) -> str:
    """A reporting category: principal (customer money for goods, net of refunds), tax, shipping_credit,
    promotion, commission, fulfilment_fee, processing_fee, reserve, adjustment or other_fee."""
    ttype, atype, desc = transaction_type.strip().lower(), amount_type.strip().lower(), \
        amount_description.strip().lower()
    text = f"{atype} {desc}"
    if atype == "itemprice" and not any(w in desc for w in ("tax", "vat", "gst", "shipping")):
        return "principal"
    if atype in _CUSTOMER_MONEY_TYPES and desc == "amount":
        return "principal"
    if desc == "fee" and atype in (_CUSTOMER_MONEY_TYPES | {"application_fee_refund"}):
        return "processing_fee"
    for category, words in _CATEGORY_WORDS:
        if any(w in text for w in words):
            return category
    if ttype in _ADJUSTMENT_TYPES or atype in _ADJUSTMENT_TYPES:
        return "adjustment"
    return "other_fee"


ACCOUNT_RULE_ORDER = ("{type}/{amount_type}/{description}", "{amount_type}/{description}", "*/{description}",
                      "{type}/{amount_type}/*", "{amount_type}/*", "{type}/*", "*")
"""The account map's keys, most specific first (docs/finance.md): the exact amount type and description (with
or without the transaction type), then the description alone, then the amount type, then the transaction type,
then the map's default `*` (if any)."""


def resolve_account(account_map: dict[str, str], transaction_type: str, amount_type: str,
                    amount_description: str) -> str | None:
    """The GL account for a line: the first key of ACCOUNT_RULE_ORDER the account map holds (case-insensitive);
    None when none does (the line is unclassified)."""
    lowered = {k.strip().lower(): v for k, v in account_map.items()}
    for rule in ACCOUNT_RULE_ORDER:
        key = rule.format(type=transaction_type, amount_type=amount_type, description=amount_description)
        account = lowered.get(key.strip().lower())
        if account:
            return account
    return None


# --- workflow inputs and views ---------------------------------------------------------------------------------

class SettlementInput(CanonicalModel):
    """Start a reconciliation: workflow id `settlement:{provider}:{settlement_id}`."""

    provider: str = Field(min_length=1, max_length=64)
    settlement_id: str = Field(min_length=1, max_length=128)
    source: str = Field(min_length=1, description="Report id in the provider's report folder, or a file path")
    channel: str | None = Field(default=None, description="The sales channel of the platform's orders; default "
                                "the provider's name up to the first '-' (amazon-de → amazon)")
    step_max_attempts: int = Field(default=10, ge=1)

    @property
    def effective_channel(self) -> str:
        return self.channel or self.provider.split("-", 1)[0]

    @property
    def workflow_id(self) -> str:
        return f"settlement:{settlement_key(self.provider, self.settlement_id)}"


class SettlementStatus(StrEnum):
    RECEIVED = "received"
    STAGED = "staged"
    MATCHED = "matched"
    NEEDS_ATTENTION = "needs_attention"
    POSTING = "posting"
    POSTED = "posted"
    CANCELLED = "cancelled"
    FAILED = "failed"


class SettlementView(CanonicalModel):
    workflow_id: str
    provider: str
    settlement_id: str
    status: SettlementStatus
    step: str | None = None
    reason: str | None = None
    line_count: int | None = None
    matched_count: int | None = None
    unmatched_count: int | None = None
    exception_count: int | None = None
    difference: Money | None = None
    erp_journal_id: str | None = None
    steps: list[str] = Field(default_factory=list)


class FetchSettlementsInput(CanonicalModel):
    provider: str = Field(min_length=1, max_length=64)
    channel: str | None = None


class FetchSettlementsResult(CanonicalModel):
    started: list[str] = Field(default_factory=list)
    already_running_or_done: list[str] = Field(default_factory=list)
    unreadable: list[str] = Field(default_factory=list)
