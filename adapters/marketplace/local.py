"""The embedded marketplace: records what the platform sends back to channels, once per idempotency key."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from adapters import sql as db
from canonical.order import Shipment
from canonical.returns import Refund


class LocalMarketplace:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _record(self, key: str, channel: str, external_order_id: str, kind: str, payload: dict) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(db.channel_updates.insert().values(
                    idempotency_key=key, channel=channel, external_order_id=external_order_id, kind=kind,
                    payload=payload))
        except IntegrityError:
            pass  # already told the channel

    def confirm_shipment(self, channel: str, external_order_id: str, shipment: Shipment) -> None:
        self._record(f"shipment:{channel}:{external_order_id}:{shipment.shipment_id}", channel, external_order_id,
                     "shipment", shipment.model_dump(mode="json"))

    def notify_cancelled(self, channel: str, external_order_id: str, reason: str) -> None:
        self._record(f"cancelled:{channel}:{external_order_id}", channel, external_order_id, "cancelled",
                     {"reason": reason})

    def refund(self, refund: Refund) -> None:
        """One row per refunded line, unique by (refund key, line): a retried or re-delivered refund pays nothing."""
        rows = [dict(line_id=line.line_id, quantity=line.quantity, amount=(line.amount + line.tax).amount)
                for line in refund.lines]
        extra = refund.shipping - refund.fees_kept
        if not extra.is_zero:
            rows.append(dict(line_id="", quantity=0, amount=extra.amount))
        with self.engine.begin() as conn:
            if conn.execute(select(db.channel_refunds.c.id).where(
                    db.channel_refunds.c.refund_key == refund.refund_key)).first():
                return
            for row in rows:
                conn.execute(db.channel_refunds.insert().values(
                    refund_key=refund.refund_key, channel=refund.channel, external_order_id=refund.external_order_id,
                    currency=refund.currency, **row))

    def refunds(self, channel: str, external_order_id: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(db.channel_refunds).where(
                (db.channel_refunds.c.channel == channel) & (db.channel_refunds.c.external_order_id == external_order_id)
            ).order_by(db.channel_refunds.c.id)).mappings().all()
        return [dict(r) for r in rows]

    def notify_return_not_received(self, channel: str, external_order_id: str, return_id: str) -> None:
        self._record(f"return_not_received:{channel}:{return_id}", channel, external_order_id, "return_closed",
                     {"return_id": return_id, "reason": "not received"})

    def publish_availability(self, channel: str, sku: str, quantity: int, *, key: str | None = None) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(db.inventory_publications.insert().values(
                    idempotency_key=key, channel=channel, item_code=sku, quantity=quantity, published_at=db.utcnow()))
        except IntegrityError:
            pass  # this publication was made already

    def publications(self, sku: str, channel: str | None = None) -> list[dict]:
        t = db.inventory_publications
        query = select(t).where(t.c.item_code == sku).order_by(t.c.id)
        if channel:
            query = query.where(t.c.channel == channel)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings().all()]

    def updates(self, channel: str, external_order_id: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(db.channel_updates).where(
                (db.channel_updates.c.channel == channel) & (db.channel_updates.c.external_order_id == external_order_id)
            ).order_by(db.channel_updates.c.id)).mappings().all()
        return [dict(r) for r in rows]
