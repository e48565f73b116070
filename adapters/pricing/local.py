"""The embedded POS / channel price list (table `pos_prices`): the price port of a channel without a vendor API
(the embedded stores' tills read their prices from it)."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Engine, select

from adapters import sql as db
from canonical.errors import ChannelRejected
from canonical.money import Money
from canonical.pricing import ChannelPrice


class LocalPrices:
    lists_by_channel_sku = False  # the embedded channels know items by their ERP item codes

    def __init__(self, engine: Engine, *, refuse: set[tuple[str, str]] | None = None) -> None:
        self.engine = engine
        self.refuse = set(refuse or ())  # (channel, sku) pairs refused, for drills and tests

    def publish_price(self, channel: str, sku: str, price: Money, compare_at: Money | None = None) -> None:
        if (channel, sku) in self.refuse:
            raise ChannelRejected(f"the POS price list of {channel} refuses {sku}")
        t = db.pos_prices
        values = dict(currency=price.currency, amount=str(price.amount),
                      compare_at=str(compare_at.amount) if compare_at is not None else None, updated_at=db.utcnow())
        with self.engine.begin() as conn:
            found = conn.execute(select(t.c.sku).where((t.c.channel == channel) & (t.c.sku == sku))).first()
            if found:
                conn.execute(t.update().where((t.c.channel == channel) & (t.c.sku == sku)).values(**values))
            else:
                conn.execute(t.insert().values(channel=channel, sku=sku, **values))

    def read_price(self, channel: str, sku: str) -> ChannelPrice | None:
        t = db.pos_prices
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where((t.c.channel == channel) & (t.c.sku == sku))).mappings().first()
        if row is None:
            return None
        return ChannelPrice(channel=channel, channel_sku=sku, amount=Decimal(row["amount"]), currency=row["currency"],
                            compare_at=Decimal(row["compare_at"]) if row["compare_at"] is not None else None)
