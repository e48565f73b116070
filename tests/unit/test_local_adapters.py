"""The embedded ERP, tax engine and WMS on SQLite and PostgreSQL: idempotent by external reference, stock kept
right through reserve / release / delivery, tax priced for tax-exclusive and VAT-inclusive prices, catalog
import all-or-nothing."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from adapters import sql as db
from adapters.erp.local import LocalErp
from adapters.sql import seed_tax_rates
from adapters.tax.local import LocalTax
from adapters.wms.local import LocalWms
from canonical.errors import CannotCancel, InvalidAddress, InvalidOrder, OutOfStock, TaxRejected, UnknownSku
from canonical.fulfillment import ResolvedLine
from canonical.money import Money
from canonical.order import Address, Customer, Order, OrderLine, Shipment, ShipmentLine, ShippingLine
from retailflow.catalog import import_catalog

NOW = datetime(2026, 11, 1, tzinfo=UTC)
KY = Address(line1="1 Main", city="Louisville", region="KY", postal_code="40202", country="US")
DE = Address(line1="Hauptstr. 1", city="Berlin", postal_code="10115", country="DE")
KEY = "order:shopify:1001"


def _order(address: Address = KY, *, included: bool = False, currency: str = "USD", qty: int = 2,
           shipping: str | None = "10.00", exempt: bool = False) -> Order:
    return Order(channel="shopify", external_order_id="1001", created_at=NOW, currency=currency,
                 taxes_included=included, shipping_address=address, customer=Customer(tax_exempt=exempt),
                 lines=[OrderLine(line_id="L1", channel_sku="CHAIR-RED", quantity=qty,
                                  unit_price=Money.of("25.00", currency))],
                 shipping_lines=[ShippingLine(title="Ground", price=Money.of(shipping, currency))] if shipping else [])


@pytest.fixture
def erp(engine):
    erp = LocalErp(engine)
    erp.upsert_item("CHAIR", "Chair", Decimal("25.00"), "USD")
    erp.map_sku("shopify", "CHAIR-RED", "CHAIR")
    erp.set_on_hand("CHAIR", "MAIN", 5)
    return erp


@pytest.fixture
def tax(engine):
    seed_tax_rates(engine)
    return LocalTax(engine)


def _resolved(qty: int = 2) -> list[ResolvedLine]:
    return [ResolvedLine(line_id="L1", channel_sku="CHAIR-RED", item_code="CHAIR", quantity=qty)]


def _count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


# -- ERP ------------------------------------------------------------------------------------------------------
def test_resolve_skus_maps_channel_skus_and_names_the_unknown_ones(erp):
    assert erp.resolve_skus(_order()) == _resolved()
    bad = _order().model_copy(update={"lines": [OrderLine(line_id="L9", channel_sku="NOPE", quantity=1,
                                                          unit_price=Money.of("1", "USD"))]})
    with pytest.raises(UnknownSku, match="NOPE"):
        erp.resolve_skus(bad)


def test_reserve_is_idempotent_and_release_gives_the_stock_back(erp):
    first = erp.reserve(KEY, _resolved(2), allow_backorder=False)
    again = erp.reserve(KEY, _resolved(2), allow_backorder=False)  # a retried activity
    assert first == again and erp.stock_levels("CHAIR")["MAIN"]["reserved"] == 2
    assert erp.release_reservation(KEY) is True
    assert erp.release_reservation(KEY) is False
    assert erp.stock_levels("CHAIR")["MAIN"]["reserved"] == 0


def test_reserve_refuses_what_is_not_there_unless_backorders_are_allowed(erp):
    with pytest.raises(OutOfStock, match="CHAIR short by 2"):
        erp.reserve(KEY, _resolved(7), allow_backorder=False)
    assert erp.stock_levels("CHAIR")["MAIN"]["reserved"] == 0  # nothing half-reserved
    res = erp.reserve(KEY, _resolved(7), allow_backorder=True)
    assert sum(r.quantity for r in res.lines) == 5 and sum(r.backordered for r in res.lines) == 2


def test_a_node_reservation_holds_the_units_at_the_node_location_only(erp):
    erp.set_on_hand("CHAIR", "STORE-7", 3)  # MAIN has more free (5): without a location MAIN would be chosen
    at_store = erp.reserve(KEY, _resolved(2), allow_backorder=False, location="STORE-7")
    assert [(r.location, r.quantity) for r in at_store.lines] == [("STORE-7", 2)]
    levels = erp.stock_levels("CHAIR")
    assert (levels["STORE-7"]["reserved"], levels["MAIN"]["reserved"]) == (2, 0)
    # the store has 1 left: 2 more cannot come from MAIN's 5 when the node is the store
    with pytest.raises(OutOfStock, match="at STORE-7: CHAIR short by 1"):
        erp.reserve(f"{KEY}/b", _resolved(2), allow_backorder=False, location="STORE-7")
    assert erp.stock_levels("CHAIR")["MAIN"]["reserved"] == 0
    waiting = erp.reserve(f"{KEY}/c", _resolved(3), allow_backorder=True, location="STORE-7")
    assert [(r.location, r.quantity, r.backordered) for r in waiting.lines] == [("STORE-7", 1, 2)]


def test_concurrent_reservations_never_oversell(erp, engine):
    results: list[str] = []

    def take(i: int) -> None:
        try:
            erp.reserve(f"order:shopify:c{i}", _resolved(1), allow_backorder=False)
            results.append("ok")
        except OutOfStock:
            results.append("out")

    threads = [threading.Thread(target=take, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 5 and results.count("out") == 7
    assert erp.stock_levels("CHAIR")["MAIN"]["reserved"] == 5


def test_sales_order_is_booked_once_whatever_is_retried(erp, engine, tax):
    quote = tax.quote(KEY, _order())
    so1 = erp.create_sales_order(KEY, _order(), _resolved(), quote)
    so2 = erp.create_sales_order(KEY, _order(), _resolved(), quote)
    assert so1 == so2 and _count(engine, db.sales_orders) == 1
    [listed] = erp.list_sales_orders(external_ref=KEY)
    # 2 × 25.00 + 10.00 shipping, KY 6 % on goods and shipping
    assert Decimal(listed["net_total"]) == Decimal("60.00")
    assert Decimal(listed["tax_total"]) == Decimal("3.60") and Decimal(listed["grand_total"]) == Decimal("63.60")


def test_delivery_consumes_the_reservation_once_and_invoice_is_issued_once(erp, engine, tax):
    erp.reserve(KEY, _resolved(2), allow_backorder=False)
    erp.create_sales_order(KEY, _order(), _resolved(), tax.quote(KEY, _order()))
    shipment = Shipment(shipment_id="S1", shipped_at=NOW, lines=[ShipmentLine(line_id="L1", channel_sku="CHAIR-RED",
                                                                              quantity=2)])
    erp.post_delivery(KEY, shipment, _resolved())
    erp.post_delivery(KEY, shipment, _resolved())  # the same shipment event again
    level = erp.stock_levels("CHAIR")["MAIN"]
    assert (level["on_hand"], level["reserved"]) == (3, 0)
    inv1, inv2 = erp.create_invoice(KEY), erp.create_invoice(KEY)
    assert inv1 == inv2 and inv1.total == Money.of("63.60", "USD") and _count(engine, db.invoices) == 1
    with pytest.raises(CannotCancel):
        erp.cancel_sales_order(KEY)


def test_delivery_of_something_not_ordered_is_refused(erp, tax):
    shipment = Shipment(shipment_id="S1", shipped_at=NOW, lines=[ShipmentLine(channel_sku="OTHER", quantity=1)])
    with pytest.raises(InvalidOrder, match="OTHER"):
        erp.post_delivery(KEY, shipment, _resolved())


def test_cancelled_sales_order_cannot_be_invoiced(erp, tax):
    erp.create_sales_order(KEY, _order(), _resolved(), tax.quote(KEY, _order()))
    assert erp.cancel_sales_order(KEY) is True and erp.cancel_sales_order(KEY) is False
    with pytest.raises(InvalidOrder, match="cancelled"):
        erp.create_invoice(KEY)


# -- tax --------------------------------------------------------------------------------------------------
def test_tax_on_top_for_us_state_rates(tax):
    quote = tax.quote(KEY, _order())
    assert quote.jurisdiction == "Kentucky sales tax"
    assert quote.lines[0].tax == Money.of("3.00", "USD") and quote.shipping_tax == Money.of("0.60", "USD")
    assert quote.total_tax == Money.of("3.60", "USD")


def test_vat_included_prices_extract_the_tax_from_the_gross(tax):
    quote = tax.quote(KEY, _order(DE, included=True, currency="EUR", shipping=None))
    # 50.00 gross at 19 % → 42.02 net + 7.98 VAT
    assert quote.lines[0].tax == Money.of("7.98", "EUR") and quote.lines[0].taxable_amount == Money.of("42.02", "EUR")
    assert quote.taxes_included and quote.total_tax == Money.of("7.98", "EUR")


def test_exempt_customers_and_places_without_nexus_pay_no_tax(tax):
    assert tax.quote("t1", _order(exempt=True)).total_tax == Money.zero("USD")
    nowhere = Address(line1="x", city="y", postal_code="1", region="ZZ", country="US")
    quote = tax.quote("t2", _order(nowhere))
    assert quote.total_tax == Money.zero("USD") and "no nexus" in quote.jurisdiction


def test_tax_quote_is_idempotent_commit_once_and_void_blocks_commit(tax):
    assert tax.quote(KEY, _order()) == tax.quote(KEY, _order(qty=5))  # the first quote stands on retry
    tax.commit(KEY)
    tax.commit(KEY)
    assert tax.status(KEY) == "committed"
    tax.quote("t-void", _order())
    assert tax.void("t-void") is True and tax.void("t-void") is False
    with pytest.raises(TaxRejected, match="voided"):
        tax.commit("t-void")
    with pytest.raises(TaxRejected, match="no tax transaction"):
        tax.commit("never-quoted")


def test_tax_needs_an_address(tax):
    with pytest.raises(InvalidAddress):
        tax.quote("t3", _order().model_copy(update={"shipping_address": None}))


# -- WMS ------------------------------------------------------------------------------------------------
def test_wms_release_is_idempotent_and_cancel_is_refused_once_shipping(engine):
    LocalErp(engine).set_on_hand("CHAIR", "MAIN", 2)  # the warehouse ships what is there (issue 17)
    wms = LocalWms(engine, ship_after_seconds=0)
    r1 = wms.release(KEY, _resolved(), KY)
    assert wms.release(KEY, _resolved(), KY) == r1 and _count(engine, db.wms_requests) == 1
    [claimed] = wms.claim_due()
    assert claimed["external_ref"] == KEY
    event = LocalWms.shipment_event(claimed)
    assert event["shipment"]["lines"] == [{"line_id": "L1", "channel_sku": "CHAIR-RED", "quantity": 2}]
    with pytest.raises(CannotCancel):
        wms.cancel_release(KEY)
    wms2 = LocalWms(engine, ship_after_seconds=3600)
    wms2.release("order:shopify:2", _resolved(), KY)
    assert all(c["external_ref"] != "order:shopify:2" for c in wms2.claim_due())  # not due for an hour
    assert wms2.cancel_release("order:shopify:2") is True and wms2.cancel_release("order:shopify:2") is False


# -- catalog --------------------------------------------------------------------------------------------
def test_catalog_import_upserts_and_a_bad_row_imports_nothing(engine):
    erp = LocalErp(engine)
    header = "channel,channel_sku,item_code,name,location,on_hand,unit_price,currency\n"
    report = import_catalog(erp, text=header + "shopify,A-1,ITEM-A,Lamp,MAIN,4,19.99,USD\n"
                                               "shopify,B-1,ITEM-B,Desk,MAIN,2,149.00,USD\n")
    assert report.errors == [] and report.rows == 2
    assert erp.stock_levels("ITEM-A")["MAIN"]["on_hand"] == 4
    report = import_catalog(erp, text=header + "shopify,A-1,ITEM-A,Lamp,MAIN,9,19.99,USD\n"
                                               "shopify,C-1,ITEM-C,Rug,MAIN,-1,abc,USD\n")
    assert report.rows == 0 and len(report.errors) == 1 and report.errors[0].startswith("line 3")
    assert erp.stock_levels("ITEM-A")["MAIN"]["on_hand"] == 4  # the good row was not applied either
    with pytest.raises(ValueError, match="header"):
        import_catalog(erp, text="sku,qty\nA,1\n")


# -- lines cancelled before shipment ------------------------------------------------------------------
def test_amending_documents_for_cancelled_lines_is_idempotent_and_refused_once_too_late(erp, engine, tax):
    wms = LocalWms(engine, ship_after_seconds=3600)
    erp.reserve(KEY, _resolved(2), allow_backorder=False)
    erp.create_sales_order(KEY, _order(), _resolved(2), tax.quote(KEY, _order()))
    wms.release(KEY, _resolved(2), KY)

    smaller = _order(qty=1)
    quote = tax.requote(KEY, smaller)
    assert quote.total_tax == Money.of("2.10", "USD")  # 6 % of 25.00 + 10.00 shipping
    assert tax.requote(KEY, smaller) == quote
    assert wms.amend_release(KEY, _resolved(1)) is True and wms.amend_release(KEY, _resolved(1)) is False
    assert wms.get(KEY)["lines"][0]["quantity"] == 1
    assert erp.amend_sales_order(KEY, smaller, _resolved(1), quote) is True
    assert erp.amend_sales_order(KEY, smaller, _resolved(1), quote) is False
    [so] = erp.list_sales_orders(external_ref=KEY)
    assert (Decimal(so["net_total"]), Decimal(so["tax_total"]), Decimal(so["grand_total"])) == (
        Decimal("35.00"), Decimal("2.10"), Decimal("37.10"))
    assert erp.reduce_reservation(KEY, _resolved(1)) == 1 and erp.reduce_reservation(KEY, _resolved(1)) == 0
    assert erp.stock_levels("CHAIR")["MAIN"]["reserved"] == 1
    assert erp.release_reservation(KEY) is True and erp.stock_levels("CHAIR")["MAIN"]["reserved"] == 0

    with engine.begin() as conn:
        conn.execute(db.wms_requests.update().values(status="shipping"))
    with pytest.raises(CannotCancel):
        wms.amend_release(KEY, _resolved(1))
    erp.create_invoice(KEY)
    with pytest.raises(CannotCancel):
        erp.amend_sales_order(KEY, smaller, _resolved(1), quote)
    tax.commit(KEY)
    with pytest.raises(TaxRejected, match="committed"):
        tax.requote(KEY, smaller)


def test_reduce_reservation_drops_backorders_before_reserved_units(erp):
    erp.reserve(KEY, _resolved(7), allow_backorder=True)  # 5 reserved + 2 backordered
    assert erp.reduce_reservation(KEY, _resolved(6)) == 0  # one backorder dropped, stock untouched
    assert erp.stock_levels("CHAIR")["MAIN"]["reserved"] == 5
    assert erp.reduce_reservation(KEY, _resolved(3)) == 2
    assert erp.stock_levels("CHAIR")["MAIN"]["reserved"] == 3


def test_sales_order_lines_carry_what_was_really_paid_so_credits_never_exceed_it(erp, tax):
    """Order-level discounts are shared out over the lines and VAT is taken out of VAT-style prices: a line's
    net + tax is what the customer paid for it, and the lines add up to the order."""
    from canonical.order import Discount

    erp.upsert_item("LAMP", "Lamp", Decimal("15.00"), "EUR")
    erp.map_sku("shopify", "LAMP-1", "LAMP")
    base = _order(DE, included=True, currency="EUR", shipping=None)
    order = base.model_copy(update={
        "lines": [*base.lines, OrderLine(line_id="L2", channel_sku="LAMP-1", quantity=1,
                                         unit_price=Money.of("15.00", "EUR"))],
        "order_discounts": [Discount(code="TEN", amount=Money.of("10.00", "EUR"))]})
    resolved = erp.resolve_skus(order)
    quote = tax.quote("vat-1", order)
    erp.create_sales_order("vat-1", order, resolved, quote)
    [so] = erp.list_sales_orders(external_ref="vat-1")
    nets = [Decimal(line["net"]) for line in so["lines"]]
    taxes = [Decimal(line["tax"]) for line in so["lines"]]
    paid = Decimal("65.00") - Decimal("10.00")  # gross, VAT included, after the order discount
    assert sum(nets) + sum(taxes) == paid == Decimal(so["grand_total"])
    assert sum(nets) == Decimal(so["net_total"]) and sum(taxes) == Decimal(so["tax_total"])
    # 50.00 of 65.00 carries 7.69 of the discount: 42.31 gross → 35.55 net + 6.76 VAT
    assert (nets[0], taxes[0]) == (Decimal("35.55"), Decimal("6.76"))
