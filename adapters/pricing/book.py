"""The price book (tables `price_changes` and `channel_prices_shown`): every accepted price change line with its
status (pending approval → approved → live → ended; or rejected / cancelled / invalid), and what each channel
shows now for each of its SKUs and why (the change set, the line, publish or revert, who approved, when it was
read back). Written by the PricePublication workflow's activities; read by the API (`GET /prices/{sku}`) and by
the overlap check of new change sets."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, or_, select

from adapters import sql as db
from canonical.pricing import PriceChangeSet, PriceKind, PriceList, PriceWindow, PublishedLine
from canonical.promotion_matching import PUBLISHED_STATUSES, PublishedPromotion

ACTIVE = ("pending", "approved", "live")  # windows a new change may not overlap
STATUSES = frozenset({"pending", "approved", "live", "ended", "rejected", "cancelled", "invalid"})


def _dec(value: str | None) -> Decimal | None:
    return Decimal(value) if value is not None else None


class PriceBook:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- change sets ---------------------------------------------------------------------------------------------
    def record_change_set(self, change_set: PriceChangeSet, status: str = "pending") -> int:
        """Insert the set's lines (idempotent by change set and line); returns the lines inserted now."""
        t = db.price_changes
        inserted = 0
        with self.engine.begin() as conn:
            known = set(conn.execute(select(t.c.line).where(t.c.change_set_id == change_set.change_set_id))
                        .scalars().all())
            for i, ln in enumerate(change_set.lines):
                if i in known:
                    continue
                conn.execute(t.insert().values(
                    change_set_id=change_set.change_set_id, line=i, item_code=ln.item_code, channel=ln.channel,
                    currency=ln.currency, amount=str(ln.amount),
                    compare_at=str(ln.compare_at) if ln.compare_at is not None else None,
                    effective_from=ln.effective_from, effective_to=ln.effective_to, kind=ln.kind.value,
                    promotion_id=ln.promotion_id, status=status, reason=change_set.reason,
                    requested_by=change_set.requested_by, created_at=db.utcnow(), updated_at=db.utcnow()))
                inserted += 1
        return inserted

    def set_status(self, change_set_id: str, status: str, *, lines: Iterable[int] | None = None,
                   approved_by: str | None = None) -> int:
        if status not in STATUSES:
            raise ValueError(f"unknown price change status {status!r}")
        t = db.price_changes
        values: dict[str, Any] = {"status": status, "updated_at": db.utcnow()}
        if approved_by is not None:
            values["approved_by"] = approved_by
        query = t.update().where(t.c.change_set_id == change_set_id)
        if lines is not None:
            query = query.where(t.c.line.in_(list(lines)))
        with self.engine.begin() as conn:
            return conn.execute(query.values(**values)).rowcount or 0

    def windows(self, item_codes: Iterable[str], channels: Iterable[str]) -> PriceList:
        """The active windows (pending, approved, live) of these items on these channels."""
        t = db.price_changes
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where(
                t.c.item_code.in_(list(item_codes)) & t.c.channel.in_(list(channels)) & t.c.status.in_(ACTIVE))
                .order_by(t.c.id)).mappings().all()
        return PriceList(windows=[PriceWindow(
            change_set_id=r["change_set_id"], item_code=r["item_code"], channel=r["channel"],
            amount=Decimal(r["amount"]), currency=r["currency"], effective_from=r["effective_from"],
            effective_to=r["effective_to"], status=r["status"]) for r in rows])

    def changes(self, sku: str) -> list[dict[str, Any]]:
        """Every line of every change set for the item `sku`, oldest first."""
        t = db.price_changes
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.item_code == sku).order_by(t.c.id)).mappings().all()
        return [dict(r) for r in rows]

    def published_promotions(self, channel: str, item_codes: Iterable[str]) -> list[PublishedPromotion]:
        """The promotion lines of these items on `channel` that were published (live now, or ended since): what a
        settled promotion line is explained by (the settlement store picks the one live when the order was placed)."""
        items = sorted(set(item_codes))
        if not items:
            return []
        t = db.price_changes
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where(
                (t.c.channel == channel) & t.c.item_code.in_(items) & (t.c.kind == PriceKind.PROMOTION.value)
                & t.c.status.in_(sorted(PUBLISHED_STATUSES))).order_by(t.c.id)).mappings().all()
        return [PublishedPromotion(
            change_set_id=r["change_set_id"], line=r["line"], promotion_id=r["promotion_id"], item_code=r["item_code"],
            channel=r["channel"], currency=r["currency"], amount=Decimal(r["amount"]),
            compare_at=_dec(r["compare_at"]), effective_from=r["effective_from"], effective_to=r["effective_to"],
            status=r["status"]) for r in rows]

    def items_of_channel_skus(self, channel: str, skus: Iterable[str]) -> dict[str, str]:
        """The item each channel SKU was published for on `channel` (from what the channel was published); a SKU
        never published is not in the answer."""
        wanted = sorted(set(skus))
        if not wanted:
            return {}
        t = db.channel_prices_shown
        with self.engine.connect() as conn:
            return {sku: item for sku, item in conn.execute(select(t.c.channel_sku, t.c.item_code).where(
                (t.c.channel == channel) & t.c.channel_sku.in_(wanted)))}

    # -- what each channel shows -----------------------------------------------------------------------------------
    def record_shown(self, published: PublishedLine, *, change_set_id: str, reason: str, approved_by: str | None,
                     verified_at: datetime) -> None:
        t = db.channel_prices_shown
        with self.engine.begin() as conn:
            for sku in published.channel_skus:
                values = dict(item_code=published.item_code, currency=published.currency,
                              amount=str(published.amount),
                              compare_at=str(published.compare_at) if published.compare_at is not None else None,
                              change_set_id=change_set_id, line=published.line, action=published.action,
                              reason=reason, approved_by=approved_by, verified_at=verified_at)
                where = (t.c.channel == published.channel) & (t.c.channel_sku == sku)
                if conn.execute(select(t.c.channel_sku).where(where)).first():
                    conn.execute(t.update().where(where).values(**values))
                else:
                    conn.execute(t.insert().values(channel=published.channel, channel_sku=sku, **values))

    def shown(self, sku: str) -> list[dict[str, Any]]:
        """What each channel shows for the item `sku` (or for a channel SKU `sku`), by channel."""
        t = db.channel_prices_shown
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where(or_(t.c.item_code == sku, t.c.channel_sku == sku))
                                .order_by(t.c.channel, t.c.channel_sku)).mappings().all()
        out = []
        for r in rows:
            row = dict(r)
            row["amount"] = Decimal(row["amount"])
            row["compare_at"] = _dec(row["compare_at"])
            out.append(row)
        return out

    def current(self, item_code: str, channel: str) -> Decimal | None:
        """The price the channel was last verified to show for the item (any of its SKUs), or None."""
        rows = [r for r in self.shown(item_code) if r["channel"] == channel and r["item_code"] == item_code]
        return rows[0]["amount"] if rows else None
