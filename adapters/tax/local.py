"""The embedded tax engine: a rate table by country and region; quote, commit, void by transaction code."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from adapters import sql as db
from canonical.errors import InvalidAddress, TaxRejected
from canonical.money import Money, quantize
from canonical.order import Order, TaxQuote, TaxQuoteLine


class LocalTax:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def rate_for(self, country: str, region: str | None) -> tuple[Decimal, str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(db.tax_rates).where(
                    (db.tax_rates.c.country == country) & (db.tax_rates.c.region.in_([region or "", ""]))
                )
            ).mappings().all()
        by_region = {r["region"]: r for r in rows}
        row = by_region.get(region or "") or by_region.get("")
        if row is None:
            return Decimal(0), f"{country}{'-' + region if region else ''} (no nexus)"
        return Decimal(row["rate"]), row["name"]

    def _compute(self, transaction_code: str, order: Order) -> TaxQuote:
        addr = order.shipping_address or order.billing_address
        needs_shipping = any(line.requires_shipping for line in order.lines)
        if addr is None:
            raise InvalidAddress("the order has no shipping or billing address to locate tax")
        if needs_shipping and order.shipping_address is not None:
            missing = [f for f in ("line1", "city") if not getattr(order.shipping_address, f)]
            if missing:
                raise InvalidAddress(f"the shipping address lacks {', '.join(missing)}")
        rate, jurisdiction = self.rate_for(addr.country, addr.region)
        if order.customer.tax_exempt:
            rate, jurisdiction = Decimal(0), f"{jurisdiction} (customer exempt)"
        if rate < 0 or rate > 1:
            raise TaxRejected(f"rate {rate} for {jurisdiction} is out of range")
        cur = order.currency
        # order-level discounts reduce the taxable base of the lines, in proportion to their net
        nets = [line.net for line in order.lines]
        shares = order.order_discount_total.allocate([n.amount for n in nets]) if nets else []
        lines = []
        for line, net, share in zip(order.lines, nets, shares, strict=True):
            base = net - share
            line_rate = rate if line.taxable else Decimal(0)
            tax = self._tax(base.amount, line_rate, order.taxes_included, cur)
            taxable = base - tax if order.taxes_included else base
            lines.append(TaxQuoteLine(line_id=line.line_id, taxable_amount=taxable, rate=line_rate, tax=tax))
        shipping_tax = self._tax(order.shipping_net.amount, rate, order.taxes_included, cur)
        total = Money.zero(cur)
        for t in lines:
            total = total + t.tax
        total = total + shipping_tax
        return TaxQuote(transaction_code=transaction_code, currency=cur, jurisdiction=jurisdiction,
                        taxes_included=order.taxes_included, lines=lines, shipping_tax=shipping_tax, total_tax=total)

    @staticmethod
    def _tax(amount: Decimal, rate: Decimal, included: bool, currency: str) -> Money:
        if included:
            return Money.of(quantize(amount - amount / (1 + rate), currency), currency)
        return Money.of(quantize(amount * rate, currency), currency)

    def quote(self, transaction_code: str, order: Order) -> TaxQuote:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(db.tax_transactions).where(db.tax_transactions.c.code == transaction_code)
            ).mappings().first()
        if row is not None and row["status"] != "voided":
            return TaxQuote.model_validate(row["quote"])
        quote = self._compute(transaction_code, order)
        with self.engine.begin() as conn:
            if row is not None:  # re-quote a voided transaction (after an analyst retry)
                conn.execute(update(db.tax_transactions).where(db.tax_transactions.c.code == transaction_code).values(
                    status="quoted", total_tax=quote.total_tax.amount, quote=quote.model_dump(mode="json"),
                    updated_at=db.utcnow()))
            else:
                try:
                    conn.execute(db.tax_transactions.insert().values(
                        code=transaction_code, status="quoted", currency=quote.currency,
                        total_tax=quote.total_tax.amount, quote=quote.model_dump(mode="json")))
                except IntegrityError:
                    pass
        return quote

    def requote(self, transaction_code: str, order: Order) -> TaxQuote:
        """Price an uncommitted transaction again for a changed order (lines cancelled before shipment);
        idempotent. Raise TaxRejected once it is committed."""
        quote = self._compute(transaction_code, order)
        with self.engine.begin() as conn:
            row = conn.execute(select(db.tax_transactions.c.status).where(
                db.tax_transactions.c.code == transaction_code)).first()
            if row is None:
                conn.execute(db.tax_transactions.insert().values(
                    code=transaction_code, status="quoted", currency=quote.currency,
                    total_tax=quote.total_tax.amount, quote=quote.model_dump(mode="json")))
                return quote
            if row.status == "committed":
                raise TaxRejected(f"tax transaction {transaction_code} is committed and cannot be re-priced")
            conn.execute(update(db.tax_transactions).where(db.tax_transactions.c.code == transaction_code).values(
                status="quoted", total_tax=quote.total_tax.amount, quote=quote.model_dump(mode="json"),
                updated_at=db.utcnow()))
        return quote

    def commit(self, transaction_code: str) -> None:
        with self.engine.begin() as conn:
            row = conn.execute(
                select(db.tax_transactions.c.status).where(db.tax_transactions.c.code == transaction_code)
            ).first()
            if row is None:
                raise TaxRejected(f"no tax transaction {transaction_code} to commit")
            if row.status == "voided":
                raise TaxRejected(f"tax transaction {transaction_code} is voided and cannot be committed")
            if row.status == "committed":
                return
            conn.execute(update(db.tax_transactions).where(db.tax_transactions.c.code == transaction_code)
                         .values(status="committed", updated_at=db.utcnow()))

    def void(self, transaction_code: str) -> bool:
        with self.engine.begin() as conn:
            row = conn.execute(
                select(db.tax_transactions.c.status).where(db.tax_transactions.c.code == transaction_code)
            ).first()
            if row is None or row.status == "voided":
                return False
            conn.execute(update(db.tax_transactions).where(db.tax_transactions.c.code == transaction_code)
                         .values(status="voided", updated_at=db.utcnow()))
            return True

    def refund_tax(self, code: str, original_code: str, amount: Money) -> None:
        with self.engine.begin() as conn:
            row = conn.execute(select(db.tax_adjustments.c.status).where(db.tax_adjustments.c.code == code)).first()
            if row is not None and row.status == "committed":
                return
            if row is not None:
                conn.execute(update(db.tax_adjustments).where(db.tax_adjustments.c.code == code).values(
                    status="committed", amount=amount.amount, currency=amount.currency))
                return
            conn.execute(db.tax_adjustments.insert().values(code=code, original_code=original_code,
                                                            currency=amount.currency, amount=amount.amount,
                                                            status="committed"))

    def void_tax_refund(self, code: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(update(db.tax_adjustments).where(
                (db.tax_adjustments.c.code == code) & (db.tax_adjustments.c.status == "committed"))
                .values(status="voided"))
            return result.rowcount > 0

    def adjustments(self, original_code: str) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(db.tax_adjustments).where(
                db.tax_adjustments.c.original_code == original_code)).mappings().all()]

    def status(self, transaction_code: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(db.tax_transactions.c.status).where(db.tax_transactions.c.code == transaction_code)
            ).scalar()
