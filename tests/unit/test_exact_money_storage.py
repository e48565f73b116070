"""Money is stored exactly on both databases (adapters/sql/base.py, ExactMoney): NUMERIC(18, 4) on PostgreSQL, a
BIGINT count of 1/10000 units on SQLite, whose NUMERIC is a binary float (issue 16, defect 9: a journal total read
10982462.5899999900 in SQL). Values, SUM, comparisons and additions in SQL stay exact; nothing is rounded silently.
The migration of existing SQLite data (revision 0006) is tested in tests/unit/test_migrations.py.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import StatementError

from adapters import sql as db
from adapters.erp.local import LocalErp
from adapters.sql.base import ExactMoney, money_decimal, money_to_units
from canonical.finance import JournalDimensions, JournalEntry, JournalLine

BIG = Decimal("10982462.59")  # the journal total of the report
HUGE = Decimal("12345678901234.56")  # 14 integer digits: NUMERIC(18, 4) holds it, a double does not


def _journal(ref: str, amount: Decimal) -> JournalEntry:
    d = JournalDimensions(channel="amazon", currency="USD")
    return JournalEntry(external_ref=ref, posting_date=date(2026, 1, 1), currency="USD", lines=[
        JournalLine(account="1010", debit=amount, dimensions=d),
        JournalLine(account="1150", credit=amount, dimensions=d)])


def _order_and_invoice(conn, n: int, total: Decimal) -> None:
    conn.execute(insert(db.sales_orders).values(
        id=f"SO-{n}", external_ref=f"shopify:{n}", channel="shopify", external_order_id=str(n), currency="USD",
        net_total=total, tax_total=Decimal(0), grand_total=total, lines=[]))
    conn.execute(insert(db.invoices).values(
        id=f"INV-{n}", external_ref=f"shopify:{n}", sales_order_id=f"SO-{n}", currency="USD",
        net_total=total, tax_total=Decimal(0), grand_total=total))


def _tax_adjustments(conn, amounts: list[Decimal]) -> None:
    conn.execute(insert(db.tax_adjustments), [
        {"code": f"adj-{i}", "original_code": "t", "currency": "USD", "amount": a} for i, a in enumerate(amounts)])


@pytest.mark.parametrize("amount", [BIG, HUGE, Decimal("0.01"), Decimal("99999999999999.99")])
def test_journal_total_reads_back_exactly(engine, amount):
    erp = LocalErp(engine)
    erp.post_journal(_journal("settlement:amazon:big", amount))
    row = erp.get_journal("settlement:amazon:big")
    assert row is not None
    # today's SQLite code read HUGE back as 12345678901234.5605 (the nearest double, printed to four places)
    assert (row["total_debit"], row["total_credit"]) == (amount, amount)
    assert str(row["total_debit"]) == str(amount.quantize(Decimal("0.0001")))


def test_invoice_total_reads_back_exactly(engine):
    with engine.begin() as conn:
        _order_and_invoice(conn, 1, HUGE)
    with engine.connect() as conn:
        inv = conn.execute(select(db.invoices)).mappings().one()
        so = conn.execute(select(db.sales_orders.c.grand_total)).scalar_one()
    assert inv["grand_total"] == inv["net_total"] == so == HUGE
    assert isinstance(so, Decimal) and so.as_tuple().exponent == -4


def test_sum_of_many_amounts_is_exact_in_sql(engine):
    tenths = [Decimal("0.1")] * 10_000
    with engine.begin() as conn:
        _tax_adjustments(conn, tenths)
    amount = db.tax_adjustments.c.amount
    with engine.connect() as conn:
        assert conn.execute(select(func.sum(amount))).scalar_one() == Decimal("1000.0000")
        assert conn.execute(select(func.count()).where(amount == Decimal("0.1"))).scalar_one() == 10_000
    # a big amount and many small ones: a double sum reads 100000000000.1067 (today's SQLite code)
    with engine.begin() as conn:
        conn.execute(db.tax_adjustments.delete())
        _tax_adjustments(conn, [Decimal("99999999999.9999")] + [Decimal("0.0001")] * 1000)
    with engine.connect() as conn:
        assert conn.execute(select(func.sum(amount))).scalar_one() == Decimal("100000000000.0999")


def test_sql_expressions_on_money_stay_exact(engine):
    with engine.begin() as conn:
        _tax_adjustments(conn, [Decimal("0.10"), Decimal("0.20"), Decimal("0.30")])
    t = db.tax_adjustments
    with engine.connect() as conn:
        # literals are bound as money (units on SQLite), so comparisons mean what they say
        assert conn.execute(select(func.count()).where(t.c.amount > Decimal("0.15"))).scalar_one() == 2
        assert conn.execute(select(func.count()).where(t.c.amount.between(Decimal("0.1"), Decimal("0.2")))
                            ).scalar_one() == 2
        assert conn.execute(select(func.coalesce(func.sum(t.c.amount), 0)).where(t.c.code == "none")
                            ).scalar_one() == Decimal(0)
        total, plus, triple = conn.execute(select(
            func.sum(t.c.amount), func.sum(t.c.amount + Decimal("0.05")), func.sum(t.c.amount * 3))).one()
    assert (total, plus, triple) == (Decimal("0.6"), Decimal("0.75"), Decimal("1.8"))
    with pytest.raises(TypeError, match="never divide"):
        select(t.c.amount / 2)
    with pytest.raises(TypeError, match="multiply money only by an int"):
        select(t.c.amount * Decimal("1.5"))


@pytest.mark.parametrize("value, error", [
    (Decimal("0.00001"), "more than 4 decimals"),
    (Decimal("100000000000000"), "does not fit"),
    (Decimal("NaN"), "does not fit"),
    (0.1, "float"),
])
def test_amounts_that_would_be_rounded_are_refused(engine, value, error):
    with pytest.raises(StatementError, match=error), engine.begin() as conn:
        _tax_adjustments(conn, [value])
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(db.tax_adjustments)).scalar_one() == 0


def test_sqlite_stores_integer_units_not_floats(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'money.db'}")
    db.create_schema(engine)
    LocalErp(engine).post_journal(_journal("settlement:amazon:big", BIG))
    with engine.connect() as conn:
        raw = conn.exec_driver_sql(
            "SELECT typeof(total_debit), total_debit, printf('%.10f', total_debit / 10000.0), "
            "typeof(sum(total_credit)), sum(total_credit) FROM erp_journals").one()
        declared = {r[1]: r[2] for r in conn.exec_driver_sql("PRAGMA table_info(erp_journals)")}
    engine.dispose()
    assert raw[:2] == ("integer", 109824625900)  # 10982462.59 in 1/10000 units; today: ('real', 10982462.59)
    assert raw[3:] == ("integer", 109824625900)
    assert declared["total_debit"] == declared["total_credit"] == "BIGINT"


def test_a_float_left_in_a_sqlite_money_column_is_an_error_not_a_guess(tmp_path):
    """A REAL read through the new type would be 10000 times too small if taken as units: refused, naming the
    migration."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'money.db'}")
    db.create_schema(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO tax_adjustments (code, original_code, currency, amount, status, created_at) "
            "VALUES ('a', 'b', 'USD', 10982462.59, 'committed', '2026-01-01 00:00:00.000000')")
    with pytest.raises(ValueError, match="0006"), engine.connect() as conn:
        conn.execute(select(db.tax_adjustments.c.amount)).all()
    engine.dispose()


def test_conversion_helpers():
    assert money_to_units(BIG) == 109824625900
    assert money_to_units("-0.0001") == -1
    assert money_to_units(Decimal("1.50000")) == 15000  # trailing zeros are exact
    assert money_decimal(7) == Decimal(7)
    with pytest.raises(TypeError):
        money_decimal(True)
    assert ExactMoney().compare_values(Decimal("1.0"), Decimal("1.0000"))
