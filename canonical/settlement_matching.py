"""The settlement reconciliation's rules, as pure functions over what the settlement store read and what the ERP
answered: is a settled order or refund matched, which amounts have no GL account, do the lines add up to the
deposit, and which balanced journal a settlement posts. No database, no ERP, no Temporal: the store
(adapters/settlements/store.py) feeds them page by page and writes what they return.

Amounts are integers in the currency's minor unit (`to_minor` / `from_minor`), so sums are exact; an exception is
an `ExceptionDraft`, the row the store writes to `settlement_exceptions`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from canonical.finance import (
    ExceptionKind,
    JournalBuilder,
    JournalDimensions,
    JournalEntry,
    JournalLine,
    ReconciliationOpen,
    fee_category,
    resolve_account,
)
from canonical.money import Money, minor_units, quantize
from canonical.stores import LegalEntity

MATCH_KINDS = (ExceptionKind.UNMATCHED_SETTLEMENT, ExceptionKind.AMOUNT_MISMATCH, ExceptionKind.SKU_MISMATCH)
"""What `match` writes about the settlement's own lines (an open one makes its lines unmatched)."""
PARKING_KINDS = (*MATCH_KINDS, ExceptionKind.UNCLASSIFIED, ExceptionKind.TOTAL_DIFFERENCE)
"""What parks a run and what the analyst's `skip` resolves to suspense (`unmatched_platform` is informational)."""


class FinanceConfig(BaseModel):
    """The finance settings the reconciliation reads, injected by the composition root (runtime/finance.py)."""

    model_config = ConfigDict(frozen=True)

    account_map: dict[str, str] = Field(description="(transaction type/)amount type/description → GL account")
    suspense_account: str = "1999"
    clearing_account: str = "1150"
    legal_entity: str = Field(default="main", description="The default legal entity (a channel with no store)")
    channel_entities: dict[str, str] = Field(default_factory=dict, description="Channel (store) → legal entity")
    entities: dict[str, LegalEntity] = Field(default_factory=dict, description="Legal entity → its books' currency "
                                             "and FX account (none: books in the settlement's currency)")
    fx_rates: dict[str, dict[date, Decimal]] = Field(
        default_factory=dict, description='"EUR/GBP" → {effective date: GBP per EUR}; the rate of a posting date '
        "is the latest effective on or before it")

    def entity_for(self, channel: str) -> str:
        return self.channel_entities.get(channel, self.legal_entity)

    def rate(self, source: str, target: str, on: date) -> Decimal | None:
        """Units of `target` per unit of `source` on `on`: the configured pair's rate, else the inverse pair's
        (1/rate to 10 significant decimals); None when neither has a rate effective by then."""
        def latest(pair: str) -> Decimal | None:
            dated = {d: r for d, r in self.fx_rates.get(pair, {}).items() if d <= on}
            return dated[max(dated)] if dated else None

        direct = latest(f"{source}/{target}")
        if direct is not None:
            return direct
        inverse = latest(f"{target}/{source}")
        return (Decimal(1) / inverse).quantize(Decimal("1e-10")) if inverse else None


# --- money in minor units -----------------------------------------------------------------------------------
def to_minor(amount: Decimal, currency: str) -> int:
    """An amount with at most the currency's decimals, as an integer of its minor unit."""
    return int(amount.scaleb(minor_units(currency)))


def rounded_minor(value: object, currency: str) -> int:
    """An ERP's amount (Decimal, float or string), rounded to the currency's decimals, in minor units."""
    return to_minor(Decimal(str(value)).quantize(Decimal(1).scaleb(-minor_units(currency))), currency)


def from_minor(value: int | None, currency: str) -> Money:
    return Money.of(Decimal(int(value or 0)).scaleb(-minor_units(currency)), currency)


# --- what the ERP answers -----------------------------------------------------------------------------------
class ErpOrderFacts(BaseModel):
    """A sales order as the settlement match reads it, whatever the ERP."""

    model_config = ConfigDict(frozen=True)

    id: str
    grand_total: Decimal
    status: str  # open | invoiced | cancelled | ... (lower case)
    currency: str | None = None
    channel_skus: list[str] = Field(default_factory=list, description="The channel SKUs the order was booked with")
    created_at: datetime | None = Field(default=None, description="When the order was placed (booked), if the ERP "
                                        "says: the time a settled promotion is matched at (issue 21)")


class CreditNoteFacts(BaseModel):
    """An open (submitted) credit note of an order: its external reference and what it credits (positive)."""

    model_config = ConfigDict(frozen=True)

    external_ref: str
    total: Decimal


class BookedOrderTotal(BaseModel):
    """A channel order booked in the ERP: its external order id (without the `order:{channel}:` prefix)."""

    model_config = ConfigDict(frozen=True)

    order_id: str
    grand_total: Decimal


def order_ref(channel: str, order_id: str) -> str:
    """The ERP's external reference of a channel order."""
    return f"order:{channel}:{order_id}"


# --- what the store reads -----------------------------------------------------------------------------------
class SettledGroup(NamedTuple):
    """The settlement lines of one order id and kind (order or refund)."""

    order_id: str
    line_count: int
    buyer_minor: int  # the buyer amounts: what the buyer paid (orders, positive) or got back (refunds, negative)
    adjustment_min: str | None = None
    adjustment_max: str | None = None

    @property
    def adjustment_id(self) -> str | None:
        """The provider's adjustment id when the group's lines carry one and the same."""
        return self.adjustment_min if self.adjustment_min == self.adjustment_max else None


class AmountGroup(NamedTuple):
    """The lines of one (transaction type, amount type, description): how they are classified and posted."""

    transaction_type: str
    amount_type: str
    amount_description: str
    line_count: int
    total_minor: int
    unmatched: bool = False  # order/refund lines with no order id or an open match exception
    buyer: bool = False  # buyer amounts (what the match compared with the sales order or credit note)


class ExceptionDraft(NamedTuple):
    """A `settlement_exceptions` row before the store adds the settlement key."""

    kind: str
    cause: str
    txn_kind: str | None
    order_id: str | None
    line_count: int
    settlement_minor: int
    platform_minor: int | None
    difference_minor: int
    adjustment_id: str | None = None
    amount_type: str | None = None
    amount_description: str | None = None


def _exc(kind: ExceptionKind, cause: str, txn_kind: str | None, order_id: str | None, n: int, settled: int,
         platform: int | None, adjustment_id: str | None = None) -> ExceptionDraft:
    return ExceptionDraft(kind=kind.value, cause=cause[:2000], txn_kind=txn_kind, order_id=order_id, line_count=n,
                          settlement_minor=settled, platform_minor=platform,
                          difference_minor=settled - (platform or 0), adjustment_id=adjustment_id)


# --- matching -----------------------------------------------------------------------------------------------
def match_order(group: SettledGroup, found: ErpOrderFacts | None, settled_skus: Iterable[str], currency: str
                ) -> ExceptionDraft | None:
    """A settled order against the ERP sales order of the same external reference: it must exist, not be
    cancelled, be in the settlement's currency, total what the buyer paid, and hold every settled SKU (when the
    order names channel SKUs at all). None when it matches."""
    oid, n, settled = group.order_id, group.line_count, group.buyer_minor
    if found is None:
        return _exc(ExceptionKind.UNMATCHED_SETTLEMENT, f"order {oid}: no platform sales order", "order", oid, n,
                    settled, None)
    if found.status == "cancelled":
        return _exc(ExceptionKind.UNMATCHED_SETTLEMENT, f"order {oid}: the sales order {found.id} is cancelled, "
                    "yet the provider settled it", "order", oid, n, settled, 0)
    platform = rounded_minor(found.grand_total, currency)
    if found.currency != currency:
        return _exc(ExceptionKind.AMOUNT_MISMATCH, f"order {oid}: sales order in {found.currency}, settled in "
                    f"{currency}", "order", oid, n, settled, platform)
    if settled != platform:
        return _exc(ExceptionKind.AMOUNT_MISMATCH, f"order {oid}: settled {from_minor(settled, currency)}, sales "
                    f"order {found.id} totals {from_minor(platform, currency)}", "order", oid, n, settled, platform)
    on_order = {str(s) for s in found.channel_skus if s}
    unknown = sorted(set(settled_skus) - on_order)
    if unknown and on_order:
        return _exc(ExceptionKind.SKU_MISMATCH, f"order {oid}: SKU {', '.join(unknown)} settled but not on sales "
                    f"order {found.id}", "order", oid, n, settled, platform)
    return None


def match_refund(group: SettledGroup, notes: list[CreditNoteFacts], currency: str) -> ExceptionDraft | None:
    """A refunded order against its open credit notes: the refund must equal the note whose reference ends with
    the provider's adjustment id, or else all of the order's notes together, or one of them. None when it
    matches."""
    refunded = -group.buyer_minor  # refunds are negative in a settlement
    oid, n, adj = group.order_id, group.line_count, group.adjustment_min
    found = [(note.external_ref, rounded_minor(note.total, currency)) for note in notes]
    one_adj = group.adjustment_id
    by_adj = [t for ext, t in found if one_adj and ext.endswith(f":{one_adj}")]
    totals = by_adj or [t for _, t in found]
    if not found:
        return _exc(ExceptionKind.UNMATCHED_SETTLEMENT, f"refund of order {oid}"
                    f"{f' (adjustment {adj})' if adj else ''}: no platform credit note", "refund", oid, n,
                    -refunded, None, adj)
    if refunded != sum(totals) and refunded not in totals:
        return _exc(ExceptionKind.AMOUNT_MISMATCH, f"refund of order {oid}: settled {from_minor(refunded, currency)}, "
                    f"credit note(s) total {from_minor(sum(totals), currency)}", "refund", oid, n, -refunded,
                    -sum(totals), adj)
    return None


def lines_without_order(kind: str, line_count: int, buyer_minor: int) -> ExceptionDraft:
    """Order or refund lines that name no order id cannot be matched at all."""
    return _exc(ExceptionKind.UNMATCHED_SETTLEMENT, f"{line_count} {kind} line(s) without an order id", kind, None,
                line_count, buyer_minor, None)


def unmatched_platform(order: BookedOrderTotal, currency: str) -> ExceptionDraft:
    """An order of the channel booked in the period that the provider did not settle (informational)."""
    return _exc(ExceptionKind.UNMATCHED_PLATFORM, f"order {order.order_id}: booked in the period, not in this "
                "settlement (it may settle in the next one)", "order", order.order_id, 0, 0,
                rounded_minor(order.grand_total, currency))


# --- classification and totals ------------------------------------------------------------------------------
def by_category(groups: Iterable[AmountGroup], currency: str) -> dict[str, Decimal]:
    """Totals per reporting category (principal, tax, commission, ...)."""
    out: dict[str, Decimal] = defaultdict(Decimal)
    for g in groups:
        out[fee_category(g.transaction_type, g.amount_type, g.amount_description)] += \
            from_minor(g.total_minor, currency).amount
    return dict(out)


def unclassified(group: AmountGroup, account_map: dict[str, str]) -> ExceptionDraft | None:
    """An amount type the account map gives no GL account (None when it has one)."""
    ttype, atype, desc = group.transaction_type, group.amount_type, group.amount_description
    if resolve_account(account_map, ttype, atype, desc) is not None:
        return None
    return ExceptionDraft(
        kind=ExceptionKind.UNCLASSIFIED.value, txn_kind=None, order_id=None,
        cause=f"no GL account for {ttype} / {atype} / {desc} (add `{atype}/{desc}` to the finance account map)",
        amount_type=atype, amount_description=desc, line_count=group.line_count, settlement_minor=group.total_minor,
        platform_minor=None, difference_minor=group.total_minor)


def total_difference(deposit_minor: int, lines_minor: int, line_count: int, currency: str) -> ExceptionDraft | None:
    """The lines must add up to the deposit; None when they do."""
    diff = deposit_minor - lines_minor
    if not diff:
        return None
    return ExceptionDraft(
        kind=ExceptionKind.TOTAL_DIFFERENCE.value, txn_kind=None, order_id=None,
        cause=f"the lines add up to {from_minor(lines_minor, currency)}, the deposit is "
        f"{from_minor(deposit_minor, currency)}: {from_minor(diff, currency)} unexplained",
        line_count=line_count, settlement_minor=lines_minor, platform_minor=deposit_minor, difference_minor=diff)


# --- the journal --------------------------------------------------------------------------------------------
class SettlementHeader(NamedTuple):
    """What the journal needs of a staged settlement."""

    key: str
    provider: str
    settlement_id: str
    currency: str
    deposit_minor: int
    posting_time: datetime | None  # deposit date, else period end, else when it was staged


class JournalPlan(NamedTuple):
    journal: JournalEntry
    suspense_minor: int  # credited to suspense (negative: debited)


def deposit_account(account_map: dict[str, str]) -> str:
    """The bank account the deposit is debited to: the map's `deposit` entry, else 1010 (never the map's `*`
    default: the deposit is no settlement line)."""
    return {k.strip().lower(): v for k, v in account_map.items()}.get("deposit") or "1010"


def plan_journal(head: SettlementHeader, groups: Iterable[AmountGroup], *, channel: str, strict: bool,
                 config: FinanceConfig, today: date | None = None) -> JournalPlan:
    """One summarized journal for the settlement: the deposit debited to the bank, money to the seller credited
    to its account, money taken debited. `strict` refuses (ReconciliationOpen) while any line is unmatched or
    unclassified or the lines and the deposit differ; otherwise those go to the suspense account.

    The buyer amounts of matched orders and refunds (principal, tax, shipping charged and the promotions that
    reduced them) always go to the clearing account, whatever account the map gives them: the match proved they
    add up to the sales order's grand total (or the credit note), which is the receivable the clearing account
    settles. So per order the clearing credit is what the platform invoiced less what it credited, and a coupon
    the sales order is already net of is never booked a second time as an expense."""
    cur = head.currency
    entity = config.entity_for(channel)
    dims = JournalDimensions(channel=channel, store=channel, legal_entity=entity, currency=cur)
    builder = JournalBuilder(cur)
    suspense = 0
    problems = []
    for g in groups:
        account = resolve_account(config.account_map, g.transaction_type, g.amount_type, g.amount_description)
        if g.unmatched or account is None:
            if strict:
                problems.append(f"{g.transaction_type}/{g.amount_type}/{g.amount_description}: "
                                f"{'unmatched' if g.unmatched else 'no GL account'}")
                continue
            account = config.suspense_account
            suspense += g.total_minor
        elif g.buyer:
            account = config.clearing_account
        builder.add(account, -from_minor(g.total_minor, cur).amount, dims)
    builder.add(deposit_account(config.account_map), from_minor(head.deposit_minor, cur).amount, dims)
    imbalance = builder.imbalance  # the deposit minus the lines: what nothing explains
    if imbalance:
        if strict:
            problems.append(f"the lines and the deposit differ by {imbalance} {cur}")
        else:
            builder.add(config.suspense_account, -imbalance, dims)
            suspense += to_minor(imbalance, cur)
    if problems:
        raise ReconciliationOpen(f"settlement {head.key} cannot be posted as it stands: {'; '.join(problems[:5])}",
                                 details={"problems": problems[:20]})
    when = head.posting_time
    posting_date = when.date() if when else (today or date.today())
    journal = builder.build(f"settlement:{head.key}", posting_date, f"{head.provider} settlement {head.settlement_id}")
    books = config.entities.get(entity)
    if books is not None and books.currency != cur:
        journal = in_books_currency(journal, books, config.rate(cur, books.currency, posting_date), key=head.key)
    return JournalPlan(journal, suspense)


def in_books_currency(journal: JournalEntry, books: LegalEntity, rate: Decimal | None, *, key: str) -> JournalEntry:
    """The journal as the legal entity books it: every line converted at `rate` (half-even to the books'
    currency) and keeping its amount in the settlement's currency (`transaction_amount`); what the rounding of
    the lines leaves over goes to the entity's FX account, so the journal balances in both currencies and nothing
    is silently mixed. No rate: ReconciliationOpen (it parks, naming the pair to configure)."""
    cur, target = journal.currency, books.currency
    if rate is None or rate <= 0:
        raise ReconciliationOpen(
            f"settlement {key} is in {cur} but {books.name} keeps its books in {target}, and no {cur}/{target} "
            f"exchange rate is configured for {journal.posting_date} (RETAILFLOW_FINANCE_FX_RATES)",
            details={"currency": cur, "books_currency": target, "legal_entity": books.name,
                     "posting_date": journal.posting_date.isoformat()})
    converted = []
    for line in journal.lines:
        amount = quantize(line.signed * rate, target)
        converted.append((line, amount))
    residue = -sum((a for _, a in converted), Decimal(0))
    lines = []
    for line, amount in converted:
        if amount == 0:
            continue
        dims = line.dimensions.model_copy(update={"currency": target})
        lines.append(JournalLine(account=line.account, dimensions=dims, memo=line.memo,
                                 debit=amount if amount > 0 else Decimal(0), credit=-amount if amount < 0 else Decimal(0),
                                 transaction_amount=line.signed, transaction_currency=cur))
    if residue:
        dims = journal.lines[0].dimensions.model_copy(update={"currency": target})
        lines.append(JournalLine(account=books.fx_account, dimensions=dims, memo=f"rounding at {cur}/{target} {rate}",
                                 debit=residue if residue > 0 else Decimal(0),
                                 credit=-residue if residue < 0 else Decimal(0),
                                 transaction_amount=Decimal(0), transaction_currency=cur))
    return JournalEntry(external_ref=journal.external_ref, posting_date=journal.posting_date, currency=target,
                        description=f"{journal.description} ({cur} at {rate} {target})", lines=lines,
                        exchange_rate=rate)
