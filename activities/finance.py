"""Settlement reconciliation activities. Lines never cross the Temporal boundary: `stage_settlement` streams a
report into the platform database in batches, and every later step works set-based on the staged rows, keyed by
the settlement key (`{provider}:{settlement_id}`); only ids, counts and totals go back to the workflow.

Each activity is safe to run twice: staging is skipped when the settlement is already staged, matching and
classification rewrite their own open exceptions, the journal is built once per settlement and posted to the ERP
by its external reference `settlement:{provider}:{settlement_id}`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, NamedTuple

import structlog
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, case, delete, exists, func, insert, select, update
from temporalio import activity

from activities.orders import business_errors
from adapters import sql as db
from adapters.marketplace.settlement_reports import (
    LocalSettlementReports,
    ReportRef,
    SettlementReportSource,
    open_reader,
)
from canonical.finance import (
    Difference,
    ExceptionKind,
    JournalBuilder,
    JournalDimensions,
    JournalEntry,
    ReconciliationException,
    ReconciliationOpen,
    ReconciliationResult,
    SettlementFileInvalid,
    fee_category,
    resolve_account,
)
from canonical.money import Money, minor_units
from runtime.settings import Settings, get_settings

log = structlog.get_logger(__name__)

BATCH_SIZE = 5000
PAGE_SIZE = 2000
MAX_LISTED_EXCEPTIONS = 50
MATCH_KINDS = (ExceptionKind.UNMATCHED_SETTLEMENT, ExceptionKind.AMOUNT_MISMATCH, ExceptionKind.SKU_MISMATCH)
PARKING_KINDS = (*MATCH_KINDS, ExceptionKind.UNCLASSIFIED, ExceptionKind.TOTAL_DIFFERENCE)


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StageInput(_In):
    provider: str
    source: str = Field(description="A report id in the provider's report folder, or an absolute file path")
    expected_settlement_id: str | None = None
    restage: bool = False


class StageResult(_In):
    settlement_key: str
    provider: str
    settlement_id: str
    currency: str
    line_count: int
    lines_total: Money
    deposit_total: Money
    already_staged: bool = False


class SettlementRef(_In):
    settlement_key: str
    channel: str


class MatchResult(_In):
    matched_count: int
    matched_amount: Money
    unmatched_count: int = Field(description="Settlement lines without a matching platform order or refund")
    unmatched_amount: Money
    exception_count: int
    unmatched_platform_count: int


class ClassifyResult(_In):
    by_category: dict[str, Decimal]
    unclassified_count: int


class TotalsResult(_In):
    lines_total: Money
    deposit_total: Money
    difference: Money


class ResolveInput(_In):
    settlement_key: str
    actor: str
    reason: str | None = None


class BuildJournalInput(_In):
    settlement_key: str
    channel: str
    mode: Literal["strict", "suspense"] = "strict"


class JournalSummary(_In):
    external_ref: str
    line_count: int
    total_debit: Money
    suspense_amount: Money
    already_posted: bool
    erp_journal_id: str | None = None


class PostResult(_In):
    erp_journal_id: str
    posted_now: bool


class ReportInput(_In):
    settlement_key: str
    channel: str
    status: str


class FetchInput(_In):
    provider: str


class _ErpOrder(NamedTuple):
    """A sales order as the settlement match reads it (the embedded ERP's row, or an ERP's API answer)."""

    id: str
    grand_total: Decimal
    status: str
    currency: str | None
    lines: list[dict]


def _to_minor(amount: Decimal, currency: str) -> int:
    return int(amount.scaleb(minor_units(currency)))


def _from_minor(value: int | None, currency: str) -> Money:
    return Money.of(Decimal(int(value or 0)).scaleb(-minor_units(currency)), currency)


def _heartbeat(details: dict) -> None:
    if activity.in_activity():
        activity.heartbeat(details)


class SettlementActivities:
    """Receives the adapters (for the ERP) and the platform database engine; the report source defaults to the
    embedded folder `<data_dir>/settlements`."""

    def __init__(self, adapters: Any, engine: Engine, settings: Settings | None = None,
                 reports: SettlementReportSource | None = None) -> None:
        self.adapters = adapters
        self.engine = engine
        self.settings = settings or get_settings()
        self.reports = reports or LocalSettlementReports(Path(self.settings.data_dir) / "settlements")

    # -- fetch -------------------------------------------------------------------------------------------------
    @activity.defn(name="list_settlement_reports")
    @business_errors
    def list_settlement_reports(self, inp: FetchInput) -> list[ReportRef]:
        return self.reports.list_reports(inp.provider)

    # -- stage -------------------------------------------------------------------------------------------------
    @activity.defn(name="stage_settlement")
    @business_errors
    def stage_settlement(self, inp: StageInput) -> StageResult:
        return self.stage(inp)

    def stage(self, inp: StageInput, progress: Callable[[int, int], None] | None = None) -> StageResult:
        """Stream the report into the database in batches (heartbeating `lines`/`bytes`); `progress(done, size)`
        is called per batch when given."""
        path = self.reports.resolve(inp.provider, inp.source)
        size = path.stat().st_size
        with open(path, "rb") as raw:
            reader = open_reader(inp.provider, raw)
            s = reader.settlement
            if inp.expected_settlement_id and s.settlement_id != inp.expected_settlement_id:
                raise SettlementFileInvalid(f"{path.name} holds settlement {s.settlement_id}, not "
                                            f"{inp.expected_settlement_id}")
            key = s.key
            cur = s.currency
            with self.engine.begin() as conn:
                row = conn.execute(select(db.settlements).where(db.settlements.c.settlement_key == key)
                                   ).mappings().first()
                if row is not None and row["staged_at"] is not None and not inp.restage:
                    return StageResult(settlement_key=key, provider=s.provider, settlement_id=s.settlement_id,
                                       currency=row["currency"], line_count=row["line_count"],
                                       lines_total=_from_minor(row["lines_minor"], row["currency"]),
                                       deposit_total=_from_minor(row["deposit_minor"], row["currency"]),
                                       already_staged=True)
                if row is not None and row["status"] == "posted":
                    raise SettlementFileInvalid(f"settlement {key} is already posted; it is not staged again")
                header = dict(provider=s.provider, settlement_id=s.settlement_id, marketplace=s.marketplace,
                              currency=cur, period_start=s.period_start, period_end=s.period_end,
                              deposit_date=s.deposit_date, deposit_minor=_to_minor(s.total, cur), lines_minor=0,
                              line_count=0, source=str(path), status="staging", staged_at=None,
                              updated_at=db.utcnow())
                if row is None:
                    conn.execute(db.settlements.insert().values(settlement_key=key, **header))
                else:
                    conn.execute(update(db.settlements).where(db.settlements.c.settlement_key == key).values(**header))
                conn.execute(delete(db.settlement_lines).where(db.settlement_lines.c.settlement_key == key))
                conn.execute(delete(db.settlement_exceptions).where(db.settlement_exceptions.c.settlement_key == key))
            count, total = 0, 0
            batch: list[dict] = []
            ins = insert(db.settlement_lines)

            def flush() -> None:
                with self.engine.begin() as conn:
                    conn.execute(ins, batch)
                batch.clear()
                _heartbeat({"lines": count, "bytes": raw.tell(), "size": size})
                if progress:
                    progress(raw.tell(), size)

            for line in reader:
                minor = _to_minor(line.amount, cur)
                count += 1
                total += minor
                batch.append({
                    "settlement_key": key, "line_no": line.line_no, "transaction_type": line.transaction_type[:64],
                    "kind": line.kind.value, "order_id": line.order_id, "merchant_order_id": line.merchant_order_id,
                    "adjustment_id": line.adjustment_id, "shipment_id": line.shipment_id,
                    "marketplace": line.marketplace, "sku": line.sku, "quantity": line.quantity,
                    "amount_type": line.amount_type, "amount_description": line.amount_description,
                    "amount_minor": minor, "buyer_amount": line.buyer_amount, "posted_at": line.posted_at,
                    "source_ref": line.source_ref,
                })
                if len(batch) >= BATCH_SIZE:
                    flush()
            if batch:
                flush()
        with self.engine.begin() as conn:
            conn.execute(update(db.settlements).where(db.settlements.c.settlement_key == key).values(
                line_count=count, lines_minor=total, status="staged", staged_at=db.utcnow(), updated_at=db.utcnow()))
        if progress:
            progress(size, size)
        log.info("settlement.staged", settlement=key, lines=count)
        return StageResult(settlement_key=key, provider=s.provider, settlement_id=s.settlement_id, currency=cur,
                           line_count=count, lines_total=_from_minor(total, cur),
                           deposit_total=_from_minor(_to_minor(s.total, cur), cur))

    # -- match -------------------------------------------------------------------------------------------------
    def _header(self, conn, key: str):
        row = conn.execute(select(db.settlements).where(db.settlements.c.settlement_key == key)).mappings().first()
        if row is None or row["staged_at"] is None:
            raise SettlementFileInvalid(f"settlement {key} is not staged")
        return row

    @activity.defn(name="match_settlement")
    @business_errors
    def match_settlement(self, inp: SettlementRef) -> MatchResult:
        key, channel = inp.settlement_key, inp.channel
        L, E = db.settlement_lines, db.settlement_exceptions
        prefix = f"order:{channel}:"
        with self.engine.begin() as conn:
            head = self._header(conn, key)
            cur = head["currency"]
            conn.execute(delete(E).where((E.c.settlement_key == key) & E.c.resolution.is_(None) & E.c.kind.in_(
                [k.value for k in (*MATCH_KINDS, ExceptionKind.UNMATCHED_PLATFORM)])))
        exceptions: list[dict] = []

        def exc(kind: ExceptionKind, cause: str, txn_kind: str, order_id: str | None, n: int, settled: int,
                platform: int | None, adjustment_id: str | None = None) -> None:
            exceptions.append(dict(settlement_key=key, kind=kind.value, cause=cause[:2000], txn_kind=txn_kind,
                                   order_id=order_id, adjustment_id=adjustment_id, line_count=n,
                                   settlement_minor=settled, platform_minor=platform,
                                   difference_minor=settled - (platform or 0)))

        def to_minor(value: Any) -> int:
            return _to_minor(Decimal(str(value)).quantize(Decimal(1).scaleb(-minor_units(cur))), cur)

        buyer = func.sum(case((L.c.buyer_amount.is_(True), L.c.amount_minor), else_=0))
        so, cn = db.sales_orders, db.credit_notes
        # An ERP whose documents are not in the platform database (ERPNext) answers the lookups over its API, page
        # by page, before the page's write transaction opens (no lock is held across a vendor call).
        remote = self._remote_erp()

        def pages(kind: str, prefetch: Callable[[list[str]], Any] | None = None):
            """Keyset pages of (order id, line count, buyer amount, adjustment ids), one connection each (SQLite
            serialises connections, so nothing stays open across pages); exceptions are written per page."""
            last = None
            while True:
                cond = (L.c.settlement_key == key) & (L.c.kind == kind)
                if last is not None:
                    cond = cond & (L.c.order_id > last)
                q = (select(L.c.order_id, func.count().label("n"), buyer.label("buyer"),
                            func.min(L.c.adjustment_id).label("adj"), func.max(L.c.adjustment_id).label("adj2"))
                     .where(cond & L.c.order_id.is_not(None)).group_by(L.c.order_id).order_by(L.c.order_id)
                     .limit(PAGE_SIZE))
                fetched = None
                if prefetch is not None:
                    with self.engine.connect() as conn:
                        chunk = conn.execute(q).all()
                    if not chunk:
                        return
                    fetched = prefetch([prefix + r.order_id for r in chunk])
                with self.engine.begin() as conn:
                    if prefetch is None:
                        chunk = conn.execute(q).all()
                        if not chunk:
                            return
                    yield conn, chunk, fetched
                    if exceptions:
                        conn.execute(insert(E), exceptions)
                        exceptions.clear()
                last = chunk[-1].order_id

        # orders: each settled order id against the ERP sales order of the same external reference
        for conn, chunk, fetched in pages("order", remote.settlement_orders if remote is not None else None):
            refs = {prefix + r.order_id: r.order_id for r in chunk}
            if remote is not None:
                orders = {refs[ref]: _ErpOrder(o["id"], o["grand_total"], o["status"], o["currency"],
                                               [{"channel_sku": sku} for sku in o["channel_skus"]])
                          for ref, o in fetched.items() if ref in refs}
            else:
                orders = {refs[row.external_ref]: row for row in conn.execute(
                    select(so.c.external_ref, so.c.id, so.c.grand_total, so.c.status, so.c.currency, so.c.lines)
                    .where(so.c.external_ref.in_(list(refs))))}
            skus: dict[str, set[str]] = defaultdict(set)
            if orders:
                for oid, sku in conn.execute(select(L.c.order_id, L.c.sku).where(
                        (L.c.settlement_key == key) & (L.c.kind == "order") & L.c.order_id.in_(list(orders))
                        & L.c.sku.is_not(None)).group_by(L.c.order_id, L.c.sku)):
                    skus[oid].add(sku)
            for r in chunk:
                settled, found = int(r.buyer or 0), orders.get(r.order_id)
                if found is None:
                    exc(ExceptionKind.UNMATCHED_SETTLEMENT, f"order {r.order_id}: no platform sales order",
                        "order", r.order_id, r.n, settled, None)
                    continue
                if found.status == "cancelled":
                    exc(ExceptionKind.UNMATCHED_SETTLEMENT, f"order {r.order_id}: the sales order {found.id} is "
                        "cancelled, yet the provider settled it", "order", r.order_id, r.n, settled, 0)
                    continue
                platform = to_minor(found.grand_total)
                if found.currency != cur:
                    exc(ExceptionKind.AMOUNT_MISMATCH, f"order {r.order_id}: sales order in {found.currency}, "
                        f"settled in {cur}", "order", r.order_id, r.n, settled, platform)
                    continue
                if settled != platform:
                    exc(ExceptionKind.AMOUNT_MISMATCH,
                        f"order {r.order_id}: settled {_from_minor(settled, cur)}, sales order {found.id} totals "
                        f"{_from_minor(platform, cur)}", "order", r.order_id, r.n, settled, platform)
                    continue
                on_order = {str(x.get("channel_sku")) for x in (found.lines or []) if x.get("channel_sku")}
                unknown = sorted(skus.get(r.order_id, set()) - on_order)
                if unknown and on_order:
                    exc(ExceptionKind.SKU_MISMATCH, f"order {r.order_id}: SKU {', '.join(unknown)} settled but "
                        f"not on sales order {found.id}", "order", r.order_id, r.n, settled, platform)

        # refunds: each refunded order id against its open ERP credit notes (by adjustment id when a return
        # carries the provider's adjustment id, else all of the order's notes, or one of them)
        for conn, chunk, fetched in pages("refund", remote.settlement_credit_notes if remote is not None else None):
            notes: dict[str, list[tuple[str, int]]] = defaultdict(list)
            if remote is not None:
                for ref, found in fetched.items():
                    notes[ref].extend((ext, to_minor(total)) for ext, total in found)
            else:
                for ref, ext, total in conn.execute(
                        select(cn.c.order_external_ref, cn.c.external_ref, cn.c.grand_total)
                        .where(cn.c.order_external_ref.in_([prefix + r.order_id for r in chunk])
                               & (cn.c.status == "open"))):
                    notes[ref].append((ext, to_minor(total)))
            for r in chunk:
                refunded = -int(r.buyer or 0)  # refunds are negative in a settlement
                found = notes.get(prefix + r.order_id, [])
                adj = r.adj if r.adj == r.adj2 else None
                by_adj = [t for ext, t in found if adj and ext.endswith(f":{adj}")]
                totals = by_adj or [t for _, t in found]
                if not found:
                    exc(ExceptionKind.UNMATCHED_SETTLEMENT, f"refund of order {r.order_id}"
                        f"{f' (adjustment {r.adj})' if r.adj else ''}: no platform credit note", "refund",
                        r.order_id, r.n, -refunded, None, r.adj)
                elif refunded != sum(totals) and refunded not in totals:
                    exc(ExceptionKind.AMOUNT_MISMATCH, f"refund of order {r.order_id}: settled "
                        f"{_from_minor(refunded, cur)}, credit note(s) total {_from_minor(sum(totals), cur)}",
                        "refund", r.order_id, r.n, -refunded, -sum(totals), r.adj)

        period = head["period_start"] is not None and head["period_end"] is not None
        booked = remote.orders_booked_between(channel, head["period_start"], head["period_end"], cur) \
            if remote is not None and period else []
        with self.engine.begin() as conn:
            # order and refund lines that name no order cannot be matched at all
            for kind, n, total in conn.execute(
                    select(L.c.kind, func.count(), buyer).where(
                        (L.c.settlement_key == key) & L.c.kind.in_(["order", "refund"]) & L.c.order_id.is_(None))
                    .group_by(L.c.kind)):
                exc(ExceptionKind.UNMATCHED_SETTLEMENT, f"{n} {kind} line(s) without an order id", kind, None, n,
                    int(total or 0), None)
            # the platform's side: orders of the channel booked in the period that the provider did not settle
            if remote is not None and period:
                settled_ids: set[str] = set()
                for i in range(0, len(booked), PAGE_SIZE):
                    settled_ids.update(oid for (oid,) in conn.execute(select(L.c.order_id).where(
                        (L.c.settlement_key == key) & L.c.order_id.in_([o for o, _ in booked[i:i + PAGE_SIZE]]))
                        .distinct()))
                for oid, total in booked:
                    if oid not in settled_ids:
                        exc(ExceptionKind.UNMATCHED_PLATFORM, f"order {oid}: booked in the period, not in this "
                            "settlement (it may settle in the next one)", "order", oid, 0, 0, to_minor(total))
            elif period:
                pq = (select(so.c.external_order_id, so.c.grand_total).where(
                    (so.c.channel == channel) & (so.c.status != "cancelled") & (so.c.currency == cur)
                    & (so.c.created_at >= head["period_start"]) & (so.c.created_at < head["period_end"])
                    & ~exists().where((L.c.settlement_key == key) & (L.c.order_id == so.c.external_order_id))))
                for oid, total in conn.execute(pq):
                    exc(ExceptionKind.UNMATCHED_PLATFORM, f"order {oid}: booked in the period, not in this "
                        "settlement (it may settle in the next one)", "order", oid, 0, 0, to_minor(total))
            if exceptions:
                conn.execute(insert(E), exceptions)
                exceptions.clear()
        return self._match_counts(key, cur)

    def _remote_erp(self) -> Any:
        """The ERP, when its documents live outside the platform database and it answers the settlement lookups
        (`settlement_orders`, `settlement_credit_notes`, `orders_booked_between`: adapters/erp/erpnext.py);
        None for the embedded ERP, whose tables are joined directly."""
        erp = getattr(self.adapters, "erp", None)
        return erp if all(callable(getattr(erp, m, None)) for m in (
            "settlement_orders", "settlement_credit_notes", "orders_booked_between")) else None

    def _open_exception_for_line(self, L, E):
        return exists().where((E.c.settlement_key == L.c.settlement_key) & (E.c.order_id == L.c.order_id)
                              & (E.c.txn_kind == L.c.kind) & E.c.kind.in_([k.value for k in MATCH_KINDS]))

    def _match_counts(self, key: str, cur: str, conn=None) -> MatchResult:
        if conn is None:
            with self.engine.connect() as conn:
                return self._match_counts(key, cur, conn)
        L, E = db.settlement_lines, db.settlement_exceptions
        flagged = self._open_exception_for_line(L, E)
        base = (L.c.settlement_key == key) & L.c.kind.in_(["order", "refund"])
        unmatched_n, unmatched_sum = conn.execute(select(func.count(), func.sum(L.c.amount_minor)).where(
            base & (L.c.order_id.is_(None) | flagged))).one()
        matched_n, matched_sum = conn.execute(select(func.count(), func.sum(L.c.amount_minor)).where(
            base & L.c.order_id.is_not(None) & ~flagged)).one()
        n_exc = conn.execute(select(func.count()).select_from(E).where(
            (E.c.settlement_key == key) & E.c.kind.in_([k.value for k in MATCH_KINDS]))).scalar_one()
        n_platform = conn.execute(select(func.count()).select_from(E).where(
            (E.c.settlement_key == key) & (E.c.kind == ExceptionKind.UNMATCHED_PLATFORM.value))).scalar_one()
        return MatchResult(matched_count=matched_n, matched_amount=_from_minor(matched_sum, cur),
                           unmatched_count=unmatched_n, unmatched_amount=_from_minor(unmatched_sum, cur),
                           exception_count=n_exc, unmatched_platform_count=n_platform)

    # -- classify ----------------------------------------------------------------------------------------------
    def _groups(self, key: str, conn=None):
        L = db.settlement_lines
        q = (select(L.c.transaction_type, L.c.amount_type, L.c.amount_description, func.count().label("n"),
                    func.sum(L.c.amount_minor).label("total"))
             .where(L.c.settlement_key == key)
             .group_by(L.c.transaction_type, L.c.amount_type, L.c.amount_description))
        if conn is not None:
            return conn.execute(q).all()
        with self.engine.connect() as conn:
            return conn.execute(q).all()

    @activity.defn(name="classify_settlement")
    @business_errors
    def classify_settlement(self, inp: SettlementRef) -> ClassifyResult:
        key = inp.settlement_key
        E = db.settlement_exceptions
        with self.engine.begin() as conn:
            cur = self._header(conn, key)["currency"]
            conn.execute(delete(E).where((E.c.settlement_key == key) & E.c.resolution.is_(None)
                                         & (E.c.kind == ExceptionKind.UNCLASSIFIED.value)))
        by_category: dict[str, Decimal] = defaultdict(Decimal)
        unclassified = []
        account_map = self.settings.finance_account_map
        for ttype, atype, desc, n, total in self._groups(key):
            amount = _from_minor(total, cur).amount
            by_category[fee_category(ttype, atype, desc)] += amount
            if resolve_account(account_map, ttype, atype, desc) is None:
                unclassified.append(dict(
                    settlement_key=key, kind=ExceptionKind.UNCLASSIFIED.value, txn_kind=None,
                    cause=f"no GL account for {ttype} / {atype} / {desc} (add `{atype}/{desc}` to the finance "
                    "account map)", amount_type=atype, amount_description=desc, line_count=n,
                    settlement_minor=int(total or 0), difference_minor=int(total or 0)))
        if unclassified:
            with self.engine.begin() as conn:
                conn.execute(insert(E), unclassified)
        return ClassifyResult(by_category=dict(by_category), unclassified_count=len(unclassified))

    # -- totals ------------------------------------------------------------------------------------------------
    @activity.defn(name="check_settlement_totals")
    @business_errors
    def check_settlement_totals(self, inp: SettlementRef) -> TotalsResult:
        key = inp.settlement_key
        L, E = db.settlement_lines, db.settlement_exceptions
        with self.engine.begin() as conn:
            head = self._header(conn, key)
            cur = head["currency"]
            total = conn.execute(select(func.coalesce(func.sum(L.c.amount_minor), 0)).where(
                L.c.settlement_key == key)).scalar_one()
            conn.execute(delete(E).where((E.c.settlement_key == key) & E.c.resolution.is_(None)
                                         & (E.c.kind == ExceptionKind.TOTAL_DIFFERENCE.value)))
            diff = head["deposit_minor"] - int(total)
            if diff:
                conn.execute(insert(E).values(
                    settlement_key=key, kind=ExceptionKind.TOTAL_DIFFERENCE.value, txn_kind=None,
                    cause=f"the lines add up to {_from_minor(total, cur)}, the deposit is "
                    f"{_from_minor(head['deposit_minor'], cur)}: {_from_minor(diff, cur)} unexplained",
                    line_count=head["line_count"], settlement_minor=int(total), platform_minor=head["deposit_minor"],
                    difference_minor=diff))
        return TotalsResult(lines_total=_from_minor(total, cur), deposit_total=_from_minor(head["deposit_minor"], cur),
                            difference=_from_minor(diff, cur))

    # -- analyst skip ------------------------------------------------------------------------------------------
    @activity.defn(name="resolve_settlement_exceptions")
    @business_errors
    def resolve_settlement_exceptions(self, inp: ResolveInput) -> int:
        E = db.settlement_exceptions
        with self.engine.begin() as conn:
            result = conn.execute(update(E).where(
                (E.c.settlement_key == inp.settlement_key) & E.c.resolution.is_(None)
                & E.c.kind.in_([k.value for k in PARKING_KINDS])).values(
                resolution="suspense", resolved_by=inp.actor[:200], resolved_at=db.utcnow()))
        return result.rowcount

    # -- journal -----------------------------------------------------------------------------------------------
    @activity.defn(name="build_settlement_journal")
    @business_errors
    def build_settlement_journal(self, inp: BuildJournalInput) -> JournalSummary:
        key = inp.settlement_key
        L, E, J = db.settlement_lines, db.settlement_exceptions, db.settlement_journals
        with self.engine.connect() as conn:
            head = self._header(conn, key)
            existing = conn.execute(select(J).where(J.c.settlement_key == key)).mappings().first()
        cur = head["currency"]
        if existing is not None and existing["erp_journal_id"]:
            journal = JournalEntry.model_validate(existing["journal"])
            return JournalSummary(external_ref=journal.external_ref, line_count=len(journal.lines),
                                  total_debit=Money.of(journal.total_debit, cur),
                                  suspense_amount=_from_minor(existing["suspense_minor"], cur), already_posted=True,
                                  erp_journal_id=existing["erp_journal_id"])
        flagged = self._open_exception_for_line(L, E)
        inner = select(L.c.transaction_type, L.c.amount_type, L.c.amount_description, L.c.amount_minor,
                       (L.c.kind.in_(["order", "refund"]) & (L.c.order_id.is_(None) | flagged)).label("unmatched")
                       ).where(L.c.settlement_key == key).subquery()
        q = (select(inner.c.transaction_type, inner.c.amount_type, inner.c.amount_description, inner.c.unmatched,
                    func.sum(inner.c.amount_minor))
             .group_by(inner.c.transaction_type, inner.c.amount_type, inner.c.amount_description, inner.c.unmatched))
        strict = inp.mode == "strict"
        s = self.settings
        dims = JournalDimensions(channel=inp.channel, legal_entity=s.finance_legal_entity, currency=cur)
        builder = JournalBuilder(cur)
        suspense = 0
        problems = []
        with self.engine.connect() as conn:
            groups = conn.execute(q).all()
        for ttype, atype, desc, unmatched, total in groups:
            total = int(total or 0)
            account = resolve_account(s.finance_account_map, ttype, atype, desc)
            if unmatched or account is None:
                if strict:
                    problems.append(f"{ttype}/{atype}/{desc}: {'unmatched' if unmatched else 'no GL account'}")
                    continue
                account = s.finance_suspense_account
                suspense += total  # credited to suspense (negative: debited)
            # money to the seller is credited to its account; money taken is debited
            builder.add(account, -_from_minor(total, cur).amount, dims)
        deposit_account = resolve_account(s.finance_account_map, "", "deposit", "") or \
            {k.lower(): v for k, v in s.finance_account_map.items()}.get("deposit", "1010")
        builder.add(deposit_account, _from_minor(head["deposit_minor"], cur).amount, dims)
        imbalance = builder.imbalance  # the deposit minus the lines: what nothing explains
        if imbalance:
            if strict:
                problems.append(f"the lines and the deposit differ by {imbalance} {cur}")
            else:
                builder.add(s.finance_suspense_account, -imbalance, dims)
                suspense += _to_minor(imbalance, cur)
        if problems:
            raise ReconciliationOpen(f"settlement {key} cannot be posted as it stands: {'; '.join(problems[:5])}",
                                     details={"problems": problems[:20]})
        when = head["deposit_date"] or head["period_end"] or head["staged_at"]
        journal = builder.build(f"settlement:{key}", when.date() if when else date.today(),
                                f"{head['provider']} settlement {head['settlement_id']}")
        values = dict(external_ref=journal.external_ref, currency=cur, journal=journal.model_dump(mode="json"),
                      suspense_minor=suspense, built_at=db.utcnow())
        with self.engine.begin() as conn:
            if existing is None:
                conn.execute(insert(J).values(settlement_key=key, **values))
            else:
                conn.execute(update(J).where(J.c.settlement_key == key).values(**values))
        return JournalSummary(external_ref=journal.external_ref, line_count=len(journal.lines),
                              total_debit=Money.of(journal.total_debit, cur), suspense_amount=_from_minor(suspense, cur),
                              already_posted=False)

    @activity.defn(name="post_settlement_journal")
    @business_errors
    def post_settlement_journal(self, inp: SettlementRef) -> PostResult:
        J = db.settlement_journals
        with self.engine.connect() as conn:
            row = conn.execute(select(J).where(J.c.settlement_key == inp.settlement_key)).mappings().first()
        if row is None:
            raise ReconciliationOpen(f"no journal built for settlement {inp.settlement_key}")
        journal = JournalEntry.model_validate(row["journal"])
        journal_id = self.adapters.erp.post_journal(journal)
        posted_now = row["erp_journal_id"] is None
        with self.engine.begin() as conn:
            conn.execute(update(J).where((J.c.settlement_key == inp.settlement_key) & J.c.erp_journal_id.is_(None))
                         .values(erp_journal_id=journal_id, posted_at=db.utcnow()))
        return PostResult(erp_journal_id=journal_id, posted_now=posted_now)

    # -- report ------------------------------------------------------------------------------------------------
    @activity.defn(name="report_settlement")
    @business_errors
    def report_settlement(self, inp: ReportInput) -> ReconciliationResult:
        result = self.build_result(inp.settlement_key, inp.status)
        with self.engine.begin() as conn:
            conn.execute(update(db.settlements).where(db.settlements.c.settlement_key == inp.settlement_key).values(
                status=inp.status, result=result.model_dump(mode="json"), updated_at=db.utcnow(),
                workflow_id=activity.info().workflow_id if activity.in_activity() else None))
        return result

    def build_result(self, key: str, status: str) -> ReconciliationResult:
        L, E, J = db.settlement_lines, db.settlement_exceptions, db.settlement_journals
        with self.engine.connect() as conn:
            head = self._header(conn, key)
            cur = head["currency"]
            counts = self._match_counts(key, cur, conn)
            groups = self._groups(key, conn)
            non_order = conn.execute(select(func.count()).select_from(L).where(
                (L.c.settlement_key == key) & ~L.c.kind.in_(["order", "refund"]))).scalar_one()
            platform_n, platform_sum = conn.execute(select(func.count(), func.sum(E.c.platform_minor)).where(
                (E.c.settlement_key == key) & (E.c.kind == ExceptionKind.UNMATCHED_PLATFORM.value))).one()
            n_exc = conn.execute(select(func.count()).select_from(E).where(E.c.settlement_key == key)).scalar_one()
            exc_rows = conn.execute(select(E).where(E.c.settlement_key == key).order_by(
                (E.c.kind == ExceptionKind.UNMATCHED_PLATFORM.value), E.c.id).limit(MAX_LISTED_EXCEPTIONS)
            ).mappings().all()
            journal = conn.execute(select(J).where(J.c.settlement_key == key)).mappings().first()
        by_category: dict[str, Decimal] = defaultdict(Decimal)
        for ttype, atype, desc, _, total in groups:
            by_category[fee_category(ttype, atype, desc)] += _from_minor(total, cur).amount
        diff = head["deposit_minor"] - int(head["lines_minor"])
        differences = []
        if diff:
            differences.append(Difference(cause="the lines do not add up to the deposit", amount=_from_minor(diff, cur)))
        for r in exc_rows:
            if r["kind"] == ExceptionKind.AMOUNT_MISMATCH.value:
                differences.append(Difference(cause=r["cause"], amount=_from_minor(r["difference_minor"], cur)))
        return ReconciliationResult(
            provider=head["provider"], settlement_id=head["settlement_id"], status=status, currency=cur,
            deposit_total=_from_minor(head["deposit_minor"], cur), lines_total=_from_minor(head["lines_minor"], cur),
            line_count=head["line_count"], matched_count=counts.matched_count, matched_amount=counts.matched_amount,
            unmatched_settlement_count=counts.unmatched_count,
            unmatched_settlement_amount=counts.unmatched_amount,
            unmatched_platform_count=platform_n, unmatched_platform_amount=_from_minor(platform_sum, cur),
            non_order_count=non_order, exceptions=[exception_model(r, cur) for r in exc_rows], exception_count=n_exc,
            differences=differences, by_category=dict(by_category),
            journal_ref=journal["external_ref"] if journal else None,
            erp_journal_id=journal["erp_journal_id"] if journal else None,
            journal_posted_now=False,
            suspense_amount=_from_minor(journal["suspense_minor"], cur) if journal else None,
        )

    def all(self) -> list:
        return [self.list_settlement_reports, self.stage_settlement, self.match_settlement, self.classify_settlement,
                self.check_settlement_totals, self.resolve_settlement_exceptions, self.build_settlement_journal,
                self.post_settlement_journal, self.report_settlement]


def exception_model(row, currency: str) -> ReconciliationException:
    return ReconciliationException(
        kind=ExceptionKind(row["kind"]), cause=row["cause"], order_id=row["order_id"],
        adjustment_id=row["adjustment_id"], amount_type=row["amount_type"],
        amount_description=row["amount_description"], line_count=row["line_count"],
        settlement_amount=_from_minor(row["settlement_minor"], currency).amount,
        platform_amount=_from_minor(row["platform_minor"], currency).amount if row["platform_minor"] is not None
        else None,
        difference=_from_minor(row["difference_minor"], currency).amount, resolution=row["resolution"])


def build_finance_activities(adapters: Any, settings: Settings | None = None) -> SettlementActivities:
    """For the worker: the platform database is the one the status projection writes to. When the Amazon channel
    runs on the SP-API adapter (RETAILFLOW_MARKETPLACE_ADAPTERS), Amazon's settlement reports are downloaded from
    the Reports API into the report folder before each listing (nothing connects until a fetch runs)."""
    engine = getattr(getattr(adapters, "projection", None), "engine", None) or adapters.erp.engine
    settings = settings or get_settings()
    reports: SettlementReportSource = LocalSettlementReports(Path(settings.data_dir) / "settlements")
    if settings.marketplace_adapters.get(settings.amazon_channel, "").strip().lower() == "amazon":
        from adapters.marketplace.amazon_sp import AmazonSettlementReports, build_amazon_sp

        reports = AmazonSettlementReports(build_amazon_sp(settings), reports, provider=settings.amazon_channel)
    return SettlementActivities(adapters, engine, settings, reports=reports)
