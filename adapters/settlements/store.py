"""The settlement store: the platform database's settlement tables (adapters/sql/settlements.py) and the steps of a
reconciliation on them. Lines are staged in batches and every later step works set-based on the staged rows, keyed
by the settlement key (`{provider}:{settlement_id}`); the rules (what matches, what has no GL account, which journal
is posted) are the pure functions of `canonical.settlement_matching`, fed page by page.

The ERP is asked through its port (`settlement_orders`, `settlement_credit_notes`, `orders_booked_between`,
`post_journal`), always outside a write transaction: no lock is held across an ERP call, and SQLite (which
serialises connections) never sees two connections of one step at once.

Each step is safe to run twice: staging is skipped when the settlement is already staged, matching and
classification rewrite their own open exceptions, the journal is built once per settlement and posted by its
external reference `settlement:{provider}:{settlement_id}`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import structlog
from sqlalchemy import Engine, case, delete, exists, func, insert, select, update

from adapters import sql as db
from adapters.erp.base import ErpAdapter
from adapters.marketplace.settlement_reports import SettlementReportSource, open_reader
from canonical.finance import (
    Difference,
    ExceptionKind,
    JournalEntry,
    ReconciliationException,
    ReconciliationOpen,
    ReconciliationResult,
    SettlementFileInvalid,
)
from canonical.money import Money
from canonical.promotion_matching import (
    PublishedPromotion,
    SettledPromotion,
    is_item_promotion,
    match_promotion,
)
from canonical.settlement_matching import (
    MATCH_KINDS,
    PARKING_KINDS,
    AmountGroup,
    ExceptionDraft,
    FinanceConfig,
    SettledGroup,
    SettlementHeader,
    by_category,
    from_minor,
    lines_without_order,
    match_order,
    match_refund,
    order_ref,
    plan_journal,
    to_minor,
    total_difference,
    unclassified,
    unmatched_platform,
)
from canonical.settlement_steps import (
    BuildJournalInput,
    ClassifyResult,
    JournalSummary,
    MatchResult,
    PostResult,
    StageInput,
    StageResult,
    TotalsResult,
)

log = structlog.get_logger(__name__)

BATCH_SIZE = 5000
PAGE_SIZE = 2000
MAX_LISTED_EXCEPTIONS = 50

Progress = Callable[[int, int, int], None]
"""Called per staged batch with (lines staged, bytes read, file size)."""

L, E, J, S = db.settlement_lines, db.settlement_exceptions, db.settlement_journals, db.settlements


def exception_model(row: Any, currency: str) -> ReconciliationException:
    """A `settlement_exceptions` row as the canonical exception."""
    return ReconciliationException(
        kind=ExceptionKind(row["kind"]), cause=row["cause"], order_id=row["order_id"],
        adjustment_id=row["adjustment_id"], amount_type=row["amount_type"],
        amount_description=row["amount_description"], line_count=row["line_count"],
        settlement_amount=from_minor(row["settlement_minor"], currency).amount,
        platform_amount=from_minor(row["platform_minor"], currency).amount if row["platform_minor"] is not None
        else None,
        difference=from_minor(row["difference_minor"], currency).amount, resolution=row["resolution"])


def _open_exception_for_line():
    return exists().where((E.c.settlement_key == L.c.settlement_key) & (E.c.order_id == L.c.order_id)
                          & (E.c.txn_kind == L.c.kind) & E.c.kind.in_([k.value for k in MATCH_KINDS]))


PROMOTION_KINDS = (ExceptionKind.PROMOTION_UNEXPLAINED, ExceptionKind.PROMOTION_EXPLAINED,
                   ExceptionKind.PROMOTION_UNCHECKED)
"""What `match` writes about promotion lines (issue 21): an unexplained one parks the run, but never makes its order's
lines unmatched (the journal clears them as before); `skip` accepts it."""


class PromotionSource(Protocol):
    """The price book as the match reads it (adapters/pricing/book.py `PriceBook`)."""

    def published_promotions(self, channel: str, item_codes: Iterable[str]) -> list[PublishedPromotion]: ...

    def items_of_channel_skus(self, channel: str, skus: Iterable[str]) -> dict[str, str]: ...


_BUYER = func.sum(case((L.c.buyer_amount.is_(True), L.c.amount_minor), else_=0))


class SettlementStore:
    """The settlement tables on the platform database engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- reading -----------------------------------------------------------------------------------------------
    def _header(self, conn, key: str):
        row = conn.execute(select(S).where(S.c.settlement_key == key)).mappings().first()
        if row is None or row["staged_at"] is None:
            raise SettlementFileInvalid(f"settlement {key} is not staged")
        return row

    def _posted(self, conn, key: str, head=None) -> bool:
        """The settlement's journal is posted (its status says so, or the ERP gave the journal an id before the
        run could report it): nothing may reopen it — no exception is re-added, nothing goes to suspense twice."""
        if head is None:
            head = conn.execute(select(S.c.status).where(S.c.settlement_key == key)).mappings().first()
        if head is not None and head["status"] == "posted":
            return True
        return conn.execute(select(func.count()).select_from(J).where(
            (J.c.settlement_key == key) & J.c.erp_journal_id.is_not(None))).scalar_one() > 0

    def _write_exceptions(self, conn, key: str, drafts: list[ExceptionDraft]) -> None:
        if drafts:
            conn.execute(insert(E), [{"settlement_key": key, **d._asdict()} for d in drafts])

    def _amount_groups(self, conn, key: str) -> list[AmountGroup]:
        q = (select(L.c.transaction_type, L.c.amount_type, L.c.amount_description, func.count(),
                    func.sum(L.c.amount_minor))
             .where(L.c.settlement_key == key)
             .group_by(L.c.transaction_type, L.c.amount_type, L.c.amount_description))
        return [AmountGroup(t, a, d, n, int(total or 0)) for t, a, d, n, total in conn.execute(q)]

    def detail(self, key: str, *, exceptions_offset: int = 0, exceptions_limit: int = 100) -> dict | None:
        """For the API: the header row, the journal row (or None), a page of exceptions and their count; None when
        the settlement was never staged."""
        with self.engine.connect() as conn:
            head = conn.execute(select(S).where(S.c.settlement_key == key)).mappings().first()
            if head is None:
                return None
            journal = conn.execute(select(J).where(J.c.settlement_key == key)).mappings().first()
            rows = conn.execute(select(E).where(E.c.settlement_key == key).order_by(E.c.id)
                                .offset(exceptions_offset).limit(exceptions_limit)).mappings().all()
            count = conn.execute(select(func.count()).select_from(E).where(E.c.settlement_key == key)).scalar_one()
        return {"header": dict(head), "journal": dict(journal) if journal else None,
                "exceptions": [exception_model(r, head["currency"]) for r in rows], "exception_count": count}

    # -- stage -------------------------------------------------------------------------------------------------
    def stage(self, reports: SettlementReportSource, inp: StageInput, progress: Progress | None = None
              ) -> StageResult:
        """Stream the report into `settlement_lines` in batches of BATCH_SIZE; `progress` is called per batch."""
        path = reports.resolve(inp.provider, inp.source)
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
                row = conn.execute(select(S).where(S.c.settlement_key == key)).mappings().first()
                if row is not None and row["staged_at"] is not None and not inp.restage:
                    return StageResult(settlement_key=key, provider=s.provider, settlement_id=s.settlement_id,
                                       currency=row["currency"], line_count=row["line_count"],
                                       lines_total=from_minor(row["lines_minor"], row["currency"]),
                                       deposit_total=from_minor(row["deposit_minor"], row["currency"]),
                                       already_staged=True, already_posted=self._posted(conn, key, row))
                if row is not None and (row["status"] == "posted" or self._posted(conn, key, row)):
                    raise SettlementFileInvalid(f"settlement {key} is already posted; it is not staged again")
                header = dict(provider=s.provider, settlement_id=s.settlement_id, marketplace=s.marketplace,
                              currency=cur, period_start=s.period_start, period_end=s.period_end,
                              deposit_date=s.deposit_date, deposit_minor=to_minor(s.total, cur), lines_minor=0,
                              line_count=0, source=str(path), status="staging", staged_at=None,
                              updated_at=db.utcnow())
                if row is None:
                    conn.execute(S.insert().values(settlement_key=key, **header))
                else:
                    conn.execute(update(S).where(S.c.settlement_key == key).values(**header))
                conn.execute(delete(L).where(L.c.settlement_key == key))
                conn.execute(delete(E).where(E.c.settlement_key == key))
            count, total = 0, 0
            batch: list[dict] = []
            ins = insert(L)

            def flush() -> None:
                with self.engine.begin() as conn:
                    conn.execute(ins, batch)
                batch.clear()
                if progress:
                    progress(count, raw.tell(), size)

            for line in reader:
                minor = to_minor(line.amount, cur)
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
            conn.execute(update(S).where(S.c.settlement_key == key).values(
                line_count=count, lines_minor=total, status="staged", staged_at=db.utcnow(), updated_at=db.utcnow()))
        if progress:
            progress(count, size, size)
        log.info("settlement.staged", settlement=key, lines=count)
        return StageResult(settlement_key=key, provider=s.provider, settlement_id=s.settlement_id, currency=cur,
                           line_count=count, lines_total=from_minor(total, cur),
                           deposit_total=from_minor(to_minor(s.total, cur), cur))

    # -- match -------------------------------------------------------------------------------------------------
    def _settled_pages(self, key: str, kind: str) -> Iterator[list[SettledGroup]]:
        """Keyset pages of the lines of one kind grouped by order id, each read on its own short connection."""
        last = None
        while True:
            cond = (L.c.settlement_key == key) & (L.c.kind == kind) & L.c.order_id.is_not(None)
            if last is not None:
                cond = cond & (L.c.order_id > last)
            q = (select(L.c.order_id, func.count(), _BUYER, func.min(L.c.adjustment_id), func.max(L.c.adjustment_id))
                 .where(cond).group_by(L.c.order_id).order_by(L.c.order_id).limit(PAGE_SIZE))
            with self.engine.connect() as conn:
                chunk = [SettledGroup(oid, n, int(buyer or 0), a1, a2) for oid, n, buyer, a1, a2 in conn.execute(q)]
            if not chunk:
                return
            yield chunk
            last = chunk[-1].order_id

    def match(self, key: str, channel: str, erp: ErpAdapter, promotions: PromotionSource | None = None
              ) -> MatchResult:
        """Each settled order against the ERP sales order of the same external reference, each refunded order
        against its open credit notes, and the channel's orders booked in the period that were not settled. With
        the price book (`promotions`), each matched order's promotion lines are explained by the promotion
        published for the item on the channel and live when the order was placed (`_explain_promotions`)."""
        with self.engine.begin() as conn:
            head = self._header(conn, key)
            cur = head["currency"]
            if self._posted(conn, key, head):  # a re-run of a posted settlement: its exceptions stay as posted
                return self.match_counts(key, cur, conn)
            conn.execute(delete(E).where((E.c.settlement_key == key) & E.c.resolution.is_(None) & E.c.kind.in_(
                [k.value for k in (*MATCH_KINDS, ExceptionKind.UNMATCHED_PLATFORM, *PROMOTION_KINDS)])))

        for chunk in self._settled_pages(key, "order"):
            refs = {order_ref(channel, g.order_id): g.order_id for g in chunk}
            orders = {refs[ref]: o for ref, o in erp.settlement_orders(list(refs)).items() if ref in refs}
            with self.engine.begin() as conn:
                skus: dict[str, set[str]] = defaultdict(set)
                if orders:
                    for oid, sku in conn.execute(select(L.c.order_id, L.c.sku).where(
                            (L.c.settlement_key == key) & (L.c.kind == "order") & L.c.order_id.in_(list(orders))
                            & L.c.sku.is_not(None)).group_by(L.c.order_id, L.c.sku)):
                        skus[oid].add(sku)
                drafts = [d for g in chunk if (d := match_order(
                    g, orders.get(g.order_id), skus.get(g.order_id, ()), cur)) is not None]
                self._write_exceptions(conn, key, drafts)
            if promotions is not None:
                flagged = {d.order_id for d in drafts}
                matched = {oid: o for oid, o in orders.items() if oid not in flagged}
                self._explain_promotions(key, channel, cur, matched, promotions)

        for chunk in self._settled_pages(key, "refund"):
            notes = erp.settlement_credit_notes([order_ref(channel, g.order_id) for g in chunk])
            drafts = [d for g in chunk if (d := match_refund(
                g, notes.get(order_ref(channel, g.order_id), []), cur)) is not None]
            if drafts:
                with self.engine.begin() as conn:
                    self._write_exceptions(conn, key, drafts)

        period = head["period_start"] is not None and head["period_end"] is not None
        booked = erp.orders_booked_between(channel, head["period_start"], head["period_end"], cur) if period else []
        with self.engine.begin() as conn:
            drafts = [lines_without_order(kind, n, int(total or 0)) for kind, n, total in conn.execute(
                select(L.c.kind, func.count(), _BUYER).where(
                    (L.c.settlement_key == key) & L.c.kind.in_(["order", "refund"]) & L.c.order_id.is_(None))
                .group_by(L.c.kind))]
            settled_ids: set[str] = set()
            for i in range(0, len(booked), PAGE_SIZE):
                settled_ids.update(oid for (oid,) in conn.execute(select(L.c.order_id).where(
                    (L.c.settlement_key == key) & L.c.order_id.in_([o.order_id for o in booked[i:i + PAGE_SIZE]]))
                    .distinct()))
            drafts += [unmatched_platform(o, cur) for o in booked if o.order_id not in settled_ids]
            self._write_exceptions(conn, key, drafts)
        return self.match_counts(key, cur)

    def _explain_promotions(self, key: str, channel: str, cur: str, orders: dict[str, Any],
                            promotions: PromotionSource) -> None:
        """The item promotion lines of the matched `orders` (order id → ErpOrderFacts), per order and SKU, against
        the price book; one `promotion_explained` or `promotion_unexplained` row each."""
        if not orders:
            return
        ids = list(orders)
        base = (L.c.settlement_key == key) & (L.c.kind == "order") & L.c.order_id.in_(ids)
        with self.engine.connect() as conn:
            promo_rows = [(oid, sku, desc, int(n), int(total or 0)) for oid, sku, atype, desc, n, total in conn.execute(
                select(L.c.order_id, L.c.sku, L.c.amount_type, L.c.amount_description, func.count(),
                       func.sum(L.c.amount_minor)).where(base & (func.lower(L.c.amount_type) == "promotion"))
                .group_by(L.c.order_id, L.c.sku, L.c.amount_type, L.c.amount_description))
                if is_item_promotion(atype or "", desc or "")]
            if not promo_rows:
                return
            with_promotions = sorted({r[0] for r in promo_rows})
            quantities = {(oid, sku): int(q or 0) for oid, sku, q in conn.execute(
                select(L.c.order_id, L.c.sku, func.max(L.c.quantity)).where(
                    (L.c.settlement_key == key) & (L.c.kind == "order") & L.c.order_id.in_(with_promotions)
                    & L.c.sku.is_not(None)).group_by(L.c.order_id, L.c.sku))}
        grouped: dict[tuple[str, str], list[int]] = {}
        descriptions: dict[tuple[str, str], str] = {}
        for oid, sku, desc, n, total in promo_rows:
            acc = grouped.setdefault((oid, sku or ""), [0, 0])
            acc[0] += n
            acc[1] += total
            descriptions.setdefault((oid, sku or ""), desc or "Principal")
        skus = {sku for _, sku in grouped if sku}
        items = {sku: promotions.items_of_channel_skus(channel, skus).get(sku, sku) for sku in skus}
        candidates = promotions.published_promotions(channel, set(items.values()))
        drafts = []
        for (oid, sku), (n, total) in sorted(grouped.items()):
            settled = SettledPromotion(order_id=oid, sku=sku, line_count=n, promotion_minor=total,
                                       quantity=max(1, quantities.get((oid, sku), 0)),
                                       amount_description=descriptions[(oid, sku)])
            found = match_promotion(settled, item_code=items.get(sku), channel=channel,
                                    placed_at=getattr(orders[oid], "created_at", None), candidates=candidates,
                                    currency=cur)
            drafts.append(found.draft)
        with self.engine.begin() as conn:
            self._write_exceptions(conn, key, drafts)

    def match_counts(self, key: str, cur: str, conn=None) -> MatchResult:
        if conn is None:
            with self.engine.connect() as conn:
                return self.match_counts(key, cur, conn)
        flagged = _open_exception_for_line()
        base = (L.c.settlement_key == key) & L.c.kind.in_(["order", "refund"])
        unmatched_n, unmatched_sum = conn.execute(select(func.count(), func.sum(L.c.amount_minor)).where(
            base & (L.c.order_id.is_(None) | flagged))).one()
        matched_n, matched_sum = conn.execute(select(func.count(), func.sum(L.c.amount_minor)).where(
            base & L.c.order_id.is_not(None) & ~flagged)).one()
        n_exc = conn.execute(select(func.count()).select_from(E).where(  # open ones: what still parks the run
            (E.c.settlement_key == key) & E.c.resolution.is_(None)
            & E.c.kind.in_([k.value for k in (*MATCH_KINDS, ExceptionKind.PROMOTION_UNEXPLAINED)]))).scalar_one()
        n_platform = conn.execute(select(func.count()).select_from(E).where(
            (E.c.settlement_key == key) & (E.c.kind == ExceptionKind.UNMATCHED_PLATFORM.value))).scalar_one()
        return MatchResult(matched_count=matched_n, matched_amount=from_minor(matched_sum, cur),
                           unmatched_count=unmatched_n, unmatched_amount=from_minor(unmatched_sum, cur),
                           exception_count=n_exc, unmatched_platform_count=n_platform)

    # -- classify and totals -----------------------------------------------------------------------------------
    def classify(self, key: str, account_map: dict[str, str]) -> ClassifyResult:
        with self.engine.begin() as conn:
            head = self._header(conn, key)
            cur = head["currency"]
            posted = self._posted(conn, key, head)
            if not posted:
                conn.execute(delete(E).where((E.c.settlement_key == key) & E.c.resolution.is_(None)
                                             & (E.c.kind == ExceptionKind.UNCLASSIFIED.value)))
        with self.engine.connect() as conn:
            groups = self._amount_groups(conn, key)
        if posted:  # posted as it was classified then; nothing is reopened
            return ClassifyResult(by_category=by_category(groups, cur), unclassified_count=0)
        drafts = [d for g in groups if (d := unclassified(g, account_map)) is not None]
        if drafts:
            with self.engine.begin() as conn:
                self._write_exceptions(conn, key, drafts)
        return ClassifyResult(by_category=by_category(groups, cur), unclassified_count=len(drafts))

    def check_totals(self, key: str) -> TotalsResult:
        with self.engine.begin() as conn:
            head = self._header(conn, key)
            cur = head["currency"]
            total = int(conn.execute(select(func.coalesce(func.sum(L.c.amount_minor), 0)).where(
                L.c.settlement_key == key)).scalar_one())
            if self._posted(conn, key, head):  # the difference (if any) was posted to suspense already
                return TotalsResult(lines_total=from_minor(total, cur),
                                    deposit_total=from_minor(head["deposit_minor"], cur), difference=from_minor(0, cur))
            conn.execute(delete(E).where((E.c.settlement_key == key) & E.c.resolution.is_(None)
                                         & (E.c.kind == ExceptionKind.TOTAL_DIFFERENCE.value)))
            draft = total_difference(head["deposit_minor"], total, head["line_count"], cur)
            self._write_exceptions(conn, key, [draft] if draft else [])
        return TotalsResult(lines_total=from_minor(total, cur), deposit_total=from_minor(head["deposit_minor"], cur),
                            difference=from_minor(head["deposit_minor"] - total, cur))

    def resolve(self, key: str, actor: str) -> int:
        """The analyst's skip: every open parking exception goes to suspense, with the analyst's name (none once
        the settlement is posted: what went to suspense went once)."""
        with self.engine.begin() as conn:
            if self._posted(conn, key):
                return 0
            result = conn.execute(update(E).where(
                (E.c.settlement_key == key) & E.c.resolution.is_(None)
                & E.c.kind.in_([k.value for k in PARKING_KINDS])).values(
                resolution="suspense", resolved_by=actor[:200], resolved_at=db.utcnow()))
            # an unexplained promotion is accepted as settled: its money clears with its order, as before
            accepted = conn.execute(update(E).where(
                (E.c.settlement_key == key) & E.c.resolution.is_(None)
                & (E.c.kind == ExceptionKind.PROMOTION_UNEXPLAINED.value)).values(
                resolution="accepted", resolved_by=actor[:200], resolved_at=db.utcnow()))
        return result.rowcount + accepted.rowcount

    # -- journal -----------------------------------------------------------------------------------------------
    def build_journal(self, inp: BuildJournalInput, config: FinanceConfig) -> JournalSummary:
        key = inp.settlement_key
        with self.engine.connect() as conn:
            head = self._header(conn, key)
            existing = conn.execute(select(J).where(J.c.settlement_key == key)).mappings().first()
        cur = head["currency"]
        if existing is not None and existing["erp_journal_id"]:
            journal = JournalEntry.model_validate(existing["journal"])
            return JournalSummary(external_ref=journal.external_ref, line_count=len(journal.lines),
                                  total_debit=Money.of(journal.total_debit, cur),
                                  suspense_amount=from_minor(existing["suspense_minor"], cur), already_posted=True,
                                  erp_journal_id=existing["erp_journal_id"])
        inner = select(L.c.transaction_type, L.c.amount_type, L.c.amount_description, L.c.amount_minor,
                       (L.c.kind.in_(["order", "refund"]) & (L.c.order_id.is_(None) | _open_exception_for_line()))
                       .label("unmatched"),
                       (L.c.kind.in_(["order", "refund"]) & L.c.buyer_amount.is_(True)).label("buyer"),
                       ).where(L.c.settlement_key == key).subquery()
        q = (select(inner.c.transaction_type, inner.c.amount_type, inner.c.amount_description, inner.c.unmatched,
                    inner.c.buyer, func.sum(inner.c.amount_minor))
             .group_by(inner.c.transaction_type, inner.c.amount_type, inner.c.amount_description, inner.c.unmatched,
                       inner.c.buyer))
        with self.engine.connect() as conn:
            groups = [AmountGroup(t, a, d, 0, int(total or 0), bool(unmatched), bool(buyer))
                      for t, a, d, unmatched, buyer, total in conn.execute(q)]
        header = SettlementHeader(key=key, provider=head["provider"], settlement_id=head["settlement_id"],
                                  currency=cur, deposit_minor=head["deposit_minor"],
                                  posting_time=head["deposit_date"] or head["period_end"] or head["staged_at"])
        plan = plan_journal(header, groups, channel=inp.channel, strict=inp.mode == "strict", config=config)
        journal = plan.journal
        values = dict(external_ref=journal.external_ref, currency=cur, journal=journal.model_dump(mode="json"),
                      suspense_minor=plan.suspense_minor, built_at=db.utcnow())
        with self.engine.begin() as conn:
            if existing is None:
                conn.execute(insert(J).values(settlement_key=key, **values))
            else:
                conn.execute(update(J).where(J.c.settlement_key == key).values(**values))
        return JournalSummary(external_ref=journal.external_ref, line_count=len(journal.lines),
                              total_debit=Money.of(journal.total_debit, cur),
                              suspense_amount=from_minor(plan.suspense_minor, cur), already_posted=False)

    def post_journal(self, key: str, erp: ErpAdapter) -> PostResult:
        """Post the built journal to the ERP (idempotent there by its external reference) and record its id."""
        with self.engine.connect() as conn:
            row = conn.execute(select(J).where(J.c.settlement_key == key)).mappings().first()
        if row is None:
            raise ReconciliationOpen(f"no journal built for settlement {key}")
        journal_id = erp.post_journal(JournalEntry.model_validate(row["journal"]))
        posted_now = row["erp_journal_id"] is None
        with self.engine.begin() as conn:
            conn.execute(update(J).where((J.c.settlement_key == key) & J.c.erp_journal_id.is_(None))
                         .values(erp_journal_id=journal_id, posted_at=db.utcnow()))
        return PostResult(erp_journal_id=journal_id, posted_now=posted_now)

    # -- report ------------------------------------------------------------------------------------------------
    def report(self, key: str, status: str, workflow_id: str | None = None) -> ReconciliationResult:
        """Build the result and record it (with the status and the workflow id) on the settlement's row.
        `journal_posted_now` is true when this report is the one that makes the settlement `posted` (the run
        that posted its journal), false for a re-run of a settlement already posted."""
        result = self.build_result(key, status)
        if status == "posted" and result.erp_journal_id:
            with self.engine.connect() as conn:
                before = conn.execute(select(S.c.status).where(S.c.settlement_key == key)).scalar_one_or_none()
            result = result.model_copy(update={"journal_posted_now": before != "posted"})
        with self.engine.begin() as conn:
            conn.execute(update(S).where(S.c.settlement_key == key).values(
                status=status, result=result.model_dump(mode="json"), updated_at=db.utcnow(),
                workflow_id=workflow_id))
        return result

    def build_result(self, key: str, status: str) -> ReconciliationResult:
        with self.engine.connect() as conn:
            head = self._header(conn, key)
            cur = head["currency"]
            counts = self.match_counts(key, cur, conn)
            groups = self._amount_groups(conn, key)
            non_order = conn.execute(select(func.count()).select_from(L).where(
                (L.c.settlement_key == key) & ~L.c.kind.in_(["order", "refund"]))).scalar_one()
            platform_n, platform_sum = conn.execute(select(func.count(), func.sum(E.c.platform_minor)).where(
                (E.c.settlement_key == key) & (E.c.kind == ExceptionKind.UNMATCHED_PLATFORM.value))).one()
            explained = E.c.kind == ExceptionKind.PROMOTION_EXPLAINED.value
            n_exc = conn.execute(select(func.count()).select_from(E).where(
                (E.c.settlement_key == key) & ~explained)).scalar_one()
            exc_rows = conn.execute(select(E).where((E.c.settlement_key == key) & ~explained).order_by(
                (E.c.kind == ExceptionKind.UNMATCHED_PLATFORM.value), E.c.id).limit(MAX_LISTED_EXCEPTIONS)
            ).mappings().all()
            n_promo = conn.execute(select(func.count()).select_from(E).where(
                (E.c.settlement_key == key) & explained)).scalar_one()
            promo_rows = conn.execute(select(E).where((E.c.settlement_key == key) & explained).order_by(E.c.id)
                                      .limit(MAX_LISTED_EXCEPTIONS)).mappings().all()
            journal = conn.execute(select(J).where(J.c.settlement_key == key)).mappings().first()
        diff = head["deposit_minor"] - int(head["lines_minor"])
        differences = []
        if diff:
            differences.append(Difference(cause="the lines do not add up to the deposit", amount=from_minor(diff, cur)))
        for r in exc_rows:
            if r["kind"] == ExceptionKind.AMOUNT_MISMATCH.value or (
                    r["kind"] == ExceptionKind.PROMOTION_UNEXPLAINED.value and r["platform_minor"] is not None):
                differences.append(Difference(cause=r["cause"], amount=from_minor(r["difference_minor"], cur)))
        return ReconciliationResult(
            provider=head["provider"], settlement_id=head["settlement_id"], status=status, currency=cur,
            deposit_total=from_minor(head["deposit_minor"], cur), lines_total=from_minor(head["lines_minor"], cur),
            line_count=head["line_count"], matched_count=counts.matched_count, matched_amount=counts.matched_amount,
            unmatched_settlement_count=counts.unmatched_count,
            unmatched_settlement_amount=counts.unmatched_amount,
            unmatched_platform_count=platform_n, unmatched_platform_amount=from_minor(platform_sum, cur),
            non_order_count=non_order, exceptions=[exception_model(r, cur) for r in exc_rows], exception_count=n_exc,
            differences=differences, by_category=by_category(groups, cur),
            journal_ref=journal["external_ref"] if journal else None,
            erp_journal_id=journal["erp_journal_id"] if journal else None,
            journal_posted_now=False,
            suspense_amount=from_minor(journal["suspense_minor"], cur) if journal else None,
            promotions=[exception_model(r, cur) for r in promo_rows], promotions_explained_count=n_promo,
        )
