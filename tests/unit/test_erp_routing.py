"""ERP coexistence (issue 21, part 2): routes by process and scope from a validated file, pinned per business key
in the platform database (SQLite and PostgreSQL), dual-run to a shadow ERPNext that never fails the order, the
parity verdicts and the Markdown report; the embedded ERP is the system of record, the ERPNext sandbox the shadow."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from activities.parity import ParityActivities
from adapters.erp.local import LocalErp
from adapters.erp.route_store import ErpRouteStore
from adapters.erp.routing import RoutingErp
from adapters.erp.shadow import SHADOW
from canonical.erp_routing import ErpRoute, ErpRoutingConfig, ParityDocument, ParityLine, compare_documents
from runtime.erp_routing import ErpRoutingError, build_routing_erp, load_routing, parse_routing
from runtime.settings import Settings
from sandbox.common import ServedApp
from sandbox.erpnext import create_app
from tests import dual_run as dr


@pytest.fixture(scope="module")
def served():
    with ServedApp(create_app(api_key=dr.API_KEY, api_secret=dr.API_SECRET)) as s:
        yield s


@pytest.fixture
def shadow(served):
    dr.seed_erpnext(served.base_url)
    erp = dr.shadow_erp(served.base_url)
    yield erp
    erp.close()


@pytest.fixture
def local(engine):
    erp = LocalErp(engine)
    dr.seed_local(erp)
    return erp


def router_for(engine, local, shadow, toml: str = dr.ROUTING_TOML, **kw) -> RoutingErp:
    import tomllib

    return RoutingErp({"legacy": local, "cloud": shadow}, parse_routing(tomllib.loads(toml)), ErpRouteStore(engine),
                      **kw)


# -- the routing file -----------------------------------------------------------------------------------------
def test_the_most_specific_rule_wins_store_before_legal_entity_before_the_default():
    config = ErpRoutingConfig.model_validate({
        "erps": {"legacy": {"adapter": "local"}, "cloud": {"adapter": "erpnext"}, "de": {"adapter": "erpnext"}},
        "route": [{"record": "legacy"},
                  {"process": "journals", "record": "legacy", "shadow": "cloud"},
                  {"legal_entity": "retail-de", "record": "de"},
                  {"process": "orders", "store": "shopify-de", "record": "cloud"}]})
    assert config.route_for("orders") == ErpRoute(record="legacy")
    assert config.route_for("journals") == ErpRoute(record="legacy", shadow="cloud")
    assert config.route_for("orders", store="shopify-de", legal_entity="retail-de") == ErpRoute(record="cloud")
    assert config.route_for("invoices", store="shopify-de", legal_entity="retail-de") == ErpRoute(record="de")
    assert config.route_for("journals", legal_entity="retail-de") == ErpRoute(record="de")
    with pytest.raises(ValueError, match="unknown ERP process"):
        config.route_for("payroll")


@pytest.mark.parametrize(("data", "message"), [
    ({"erps": {"a": {"adapter": "local"}}, "route": [{"process": "orders", "record": "a"}]},
     "no default route for process 'invoices'"),
    ({"erps": {"a": {"adapter": "local"}}, "route": [{"record": "b"}]}, "'b', which is not one of the erps"),
    ({"erps": {"a": {"adapter": "local"}, "b": {"adapter": "local"}}, "route": [{"record": "a", "shadow": "b"}]},
     "cannot mark documents as shadow"),
    ({"erps": {"a": {"adapter": "local"}}, "route": [{"record": "a", "shadow": "a"}]}, "is the system of record"),
    ({"erps": {"a": {"adapter": "local"}}, "route": [{"record": "a"}, {"record": "a"}]}, "two rules"),
    ({"erps": {"a": {"adapter": "sap"}}, "route": [{"record": "a"}]}, "erps.a.adapter"),
])
def test_a_routing_file_that_cannot_work_is_refused_in_one_line_naming_the_problem(data, message):
    with pytest.raises(ErpRoutingError, match=message) as err:
        parse_routing(data, source="erp_routing.toml")
    assert "\n" not in str(err.value) and str(err.value).startswith("erp_routing.toml: ")


def test_one_erp_is_the_record_of_a_store_cut_over_and_the_shadow_of_the_others(tmp_path, engine, served):
    from adapters.erp.erpnext import ErpNext
    from adapters.erp.shadow import ShadowErpNext

    dr.seed_erpnext(served.base_url)
    local = LocalErp(engine)
    dr.seed_local(local)
    toml = dr.ROUTING_TOML + '\n[[route]]\nprocess = "orders"\nstore = "shopify-de"\nrecord = "cloud"\n' \
        '\n[[route]]\nprocess = "invoices"\nstore = "shopify-de"\nrecord = "cloud"\n'
    settings = Settings(_env_file=None, erpnext_base_url=served.base_url, erpnext_api_key=dr.API_KEY,
                        erpnext_api_secret=dr.API_SECRET)
    router = build_routing_erp(settings, engine, load_routing(dr.write(tmp_path, toml)))
    record, shadow = router.erps["cloud"], router.shadows["cloud"]
    assert type(record) is ErpNext and record.holds is not None
    assert isinstance(shadow, ShadowErpNext) and shadow.holds is None
    base = dr.order(10)
    de = base.model_copy(update={"channel": "shopify-de", "lines": [  # the cloud ERP's item codes as SKUs
        line.model_copy(update={"channel_sku": line.channel_sku.removeprefix("SKU-")}) for line in base.lines]})
    dr.post_order(router, dr.order(11))  # dual-run: legacy + shadow in the cloud
    dr.post_order(router, de)  # cut over: the cloud ERP is its system of record
    assert router.store.pinned("orders", de.workflow_id) == ErpRoute(record="cloud")
    assert router.store.pinned("orders", dr.order(11).workflow_id) == ErpRoute(record="legacy", shadow="cloud")
    assert shadow.find("Sales Order", [["po_no", "=", dr.order(11).workflow_id]])["retailflow_shadow"] == 1
    assert "retailflow_shadow" not in record.find("Sales Order", [["po_no", "=", de.workflow_id]])
    assert local.booked_order(de.workflow_id) is None and router.store.shadow_failures() == []
    # an order counts for settlements from its system of record only, never from its shadow copy
    start, end = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
    booked = router.orders_booked_between("shopify", start, end, "USD")
    assert [b.order_id for b in booked] == [dr.order(11).external_order_id]
    router.close()


def test_the_router_is_built_from_the_file_with_the_erpnext_settings(tmp_path, engine, served):
    from adapters.erp.shadow import ShadowErpNext

    settings = Settings(_env_file=None, erpnext_base_url=served.base_url)
    router = build_routing_erp(settings, engine, load_routing(dr.write(tmp_path, dr.ROUTING_TOML)))
    from adapters.erp.base import ErpAdapter, SupplierPayables

    assert isinstance(router, ErpAdapter) and isinstance(router, SupplierPayables)  # the port the activities call
    assert isinstance(router, RoutingErp) and isinstance(router.erps["legacy"], LocalErp)
    assert isinstance(router.shadows["cloud"], ShadowErpNext) and router.shadows["cloud"].holds is None
    assert served.base_url in repr(router.shadows["cloud"].http)
    with pytest.raises(ErpRoutingError, match="no such file"):
        load_routing(tmp_path / "missing.toml")
    router.close()


# -- pinned routes (SQLite and PostgreSQL) --------------------------------------------------------------------
def test_the_first_post_pins_the_route_and_concurrent_first_posts_agree(engine):
    store = ErpRouteStore(engine)
    winners: list[ErpRoute] = []
    barrier = threading.Barrier(8)

    def first_post(n: int) -> None:
        barrier.wait()
        winners.append(store.pin("orders", "order:shopify:1", ErpRoute(record=f"erp{n}"), scope="test"))

    threads = [threading.Thread(target=first_post, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({w.record for w in winners}) == 1 and store.pinned("orders", "order:shopify:1") == winners[0]
    assert store.pin("orders", "order:shopify:1", ErpRoute(record="other"), scope="test") == winners[0]
    assert store.pinned("invoices", "order:shopify:1") is None  # per process


def test_a_split_orders_node_release_posts_where_its_order_is_pinned(engine, local, shadow):
    router = router_for(engine, local, shadow)
    o = dr.order(6)
    lines = router.resolve_skus(o)  # pinned: legacy + cloud
    router.config = parse_routing(__import__("tomllib").loads(dr.CUT_OVER_TOML))  # the file changed since
    router.reserve(f"{o.workflow_id}/WH-EAST/1", lines, allow_backorder=False)
    assert local.stock_levels(lines[0].item_code)["MAIN"]["reserved"] > 0  # on the legacy ERP, like its order
    assert router.store.pinned("orders", f"{o.workflow_id}/WH-EAST/1") is None


def test_cut_over_routes_new_orders_only_and_running_ones_finish_where_they_started(engine, local, shadow):
    before = router_for(engine, local, shadow)
    running = dr.order(1)
    before.resolve_skus(running)  # the run started (its first ERP step) before the cut-over
    done = dr.post_order(before, dr.order(2))

    after = router_for(engine, local, shadow, dr.CUT_OVER_TOML)  # the worker restarted with the new file
    dr.post_order(after, running)  # ... and the running order finishes on the legacy ERP, with its shadow
    new = dr.post_order(after, dr.order(3))

    assert local.booked_order(running.workflow_id) is not None and local.booked_order(new) is None
    assert shadow.booked_order(new) is not None  # the cloud ERP is the record for new orders now
    assert after.store.pinned("orders", running.workflow_id) == ErpRoute(record="legacy", shadow="cloud")
    assert after.store.pinned("orders", new) == ErpRoute(record="cloud")
    assert after.store.pinned("invoices", new) == ErpRoute(record="cloud")  # the invoice follows its order
    assert after.booked_order(done).erp_sales_order_id.startswith("SO")  # the embedded ERP's id: pinned legacy


def test_shadow_documents_are_marked_and_a_shadow_failure_never_fails_the_order(engine, local, shadow, served):
    router = router_for(engine, local, shadow)
    key = dr.post_order(router, dr.order(4))
    so = shadow.find("Sales Order", [["po_no", "=", key]])
    inv = shadow.find("Sales Invoice", [["retailflow_ref", "=", key]])
    assert so[SHADOW] == 1 and inv[SHADOW] == 1 and "SHADOW" in so["remarks"]

    # the shadow ERP knows no such SKU: the order still books on the record, the failure is recorded
    local.upsert_item("NEW-ITEM", "New", Decimal("5"), "USD")
    local.map_sku("shopify", "SKU-NEW", "NEW-ITEM")
    local.set_on_hand("NEW-ITEM", "MAIN", 10)
    o = dr.order(5).model_copy(update={"lines": [dr.order(5).lines[0].model_copy(update={"channel_sku": "SKU-NEW"})]})
    lines = router.resolve_skus(o)
    router.reserve(o.workflow_id, lines, allow_backorder=False)
    ref = router.create_sales_order(o.workflow_id, o, lines, dr.tax_for(o))
    assert ref.erp_sales_order_id.startswith("SO") and local.booked_order(o.workflow_id) is not None
    failures = router.store.shadow_failures("orders", o.workflow_id)
    assert [(f["operation"], f["shadow_erp"]) for f in failures] == [("create_sales_order", "cloud")]
    assert "SKU-NEW" in failures[0]["error"]
    outcome = ParityActivities.check_one(router, "orders", o.workflow_id, "run-1")
    assert outcome.status == "different" and outcome.differences[0].field == "document"
    assert outcome.shadow_failures and "create_sales_order" in outcome.shadow_failures[0]


def test_twenty_orders_in_dual_run_are_equal_and_a_changed_tax_line_is_reported(engine, local, shadow, served):
    router = router_for(engine, local, shadow)
    keys = [dr.post_order(router, dr.order(n)) for n in range(20)]
    assert sorted(router.store.keys_to_check("orders", since=_long_ago())) == sorted(keys)
    outcomes = [ParityActivities.check_one(router, "orders", k, "run-1") for k in keys]
    assert [o.status for o in outcomes] == ["equal"] * 20, [o.differences for o in outcomes if o.differences]
    invoices = [ParityActivities.check_one(router, "invoices", k, "run-1") for k in keys]
    assert [o.status for o in invoices] == ["equal"] * 20
    assert router.store.keys_to_check("orders", since=_long_ago()) == []  # settled: not compared again

    dr.change_shadow_tax(served.app, keys[7], Decimal("1.00"))
    outcome = ParityActivities.check_one(router, "orders", keys[7], "run-2")
    assert outcome.status == "different"
    fields = {d.field: (d.record, d.shadow) for d in outcome.differences}
    rec_tax = outcome.record.tax_total
    assert fields["tax_total"] == (str(rec_tax), str(rec_tax + Decimal("1.00")))
    assert set(fields) == {"tax_total", "grand_total"}
    row = router.store.parity("orders", status="different")[0]
    assert row["business_key"] == keys[7] and row["record_document"]["erp"] == "legacy"
    assert row["shadow_document"]["erp"] == "cloud" and row["shadow_document"]["shadow"] is True
    summary = router.store.parity_by_day("orders")
    assert [(s["equal"], s["different"]) for s in summary] == [(19, 1)]


def test_a_credit_note_follows_its_order_to_both_erps_and_compares_equal(engine, local, shadow):
    from adapters.erp.documents import read_document
    from canonical.money import Money
    from canonical.returns import CreditNote, CreditNoteLine

    router = router_for(engine, local, shadow)
    key = dr.post_order(router, dr.order(8))
    so = read_document("legacy", local, "orders", key)
    l2 = next(line for line in so.lines if line.line_id == "L2")
    lines = [CreditNoteLine(line_id="L2", quantity=1, net=Money.of(l2.net, "USD"), tax=Money.of(l2.tax, "USD")),
             CreditNoteLine(line_id="L1", quantity=0, net=Money.of("2.00", "USD"), tax=Money.of("0.15", "USD"))]
    net = l2.net + Decimal("2.00")
    tax = l2.tax + Decimal("0.15")
    note = CreditNote(external_ref=f"return:shopify:R8:{key}", order_external_ref=key, currency="USD", lines=lines,
                      net_total=Money.of(net, "USD"), tax_total=Money.of(tax, "USD"), total=Money.of(net + tax, "USD"))
    router.create_credit_note(note)
    assert router.store.pinned("credit_notes", note.external_ref) == ErpRoute(record="legacy", shadow="cloud")
    assert router.store.shadow_failures() == []
    outcome = ParityActivities.check_one(router, "credit_notes", note.external_ref, "run-1")
    assert outcome.status == "equal", outcome.differences
    assert outcome.shadow.grand_total == net + tax and outcome.shadow.shadow
    assert {(x.line_id, x.quantity) for x in outcome.shadow.lines} == {("L1", 0), ("L2", 1)}
    router.cancel_credit_note(note.external_ref)  # cancelled on both: still equal
    assert ParityActivities.check_one(router, "credit_notes", note.external_ref, "run-2").status == "equal"


def test_a_journal_routes_by_its_legal_entity_and_compares_per_account(engine, local, shadow):
    from datetime import date

    from canonical.finance import JournalDimensions, JournalEntry, JournalLine

    toml = dr.ROUTING_TOML + '\n[[route]]\nprocess = "journals"\nlegal_entity = "retail-de"\nrecord = "legacy"\n' \
        'shadow = "cloud"\n'
    router = router_for(engine, local, shadow, toml)
    dims = JournalDimensions(channel="amazon", legal_entity="retail-de", currency="USD")

    def journal(ref: str, fee: str) -> JournalEntry:
        return JournalEntry(external_ref=ref, posting_date=date(2026, 12, 1), currency="USD", lines=[
            JournalLine(account="1010", debit=Decimal("95.00"), dimensions=dims),
            JournalLine(account="6100", debit=Decimal(fee), dimensions=dims),
            JournalLine(account="4000", credit=Decimal("95.00") + Decimal(fee), dimensions=dims)])

    router.post_journal(journal("settlement:amazon:1", "5.00"))
    assert router.store.pinned("journals", "settlement:amazon:1") == ErpRoute(record="legacy", shadow="cloud")
    outcome = ParityActivities.check_one(router, "journals", "settlement:amazon:1", "run-1")
    assert outcome.status == "equal", outcome.differences
    assert [(x.line_id, x.net) for x in outcome.shadow.lines] == [
        ("1010", Decimal("95.00")), ("4000", Decimal("-100.00")), ("6100", Decimal("5.00"))]
    other = journal("settlement:amazon:2", "5.00").model_copy(update={"lines": [
        line.model_copy(update={"dimensions": dims.model_copy(update={"legal_entity": "main"})})
        for line in journal("settlement:amazon:2", "5.00").lines]})
    router.post_journal(other)  # another legal entity: the default route, no shadow
    assert router.store.pinned("journals", "settlement:amazon:2") == ErpRoute(record="legacy")


def test_compare_documents_names_each_difference():
    def doc(**kw) -> ParityDocument:
        base = {"process": "orders", "business_key": "k", "erp": "a", "document_id": "SO1", "status": "open",
                "currency": "USD", "net_total": Decimal("10"), "tax_total": Decimal("1"), "grand_total": Decimal("11"),
                "lines": [ParityLine(line_id="L1", item_code="X", quantity=1, net=Decimal("10"), tax=Decimal("1"))],
                "dimensions": {"channel": "shopify"}}
        return ParityDocument.model_validate({**base, **kw})

    assert compare_documents(doc(), doc(erp="b", document_id="SAL-1", status="To Deliver and Bill",
                                        net_total=Decimal("10.00"))) == []
    diffs = compare_documents(doc(), doc(lines=[ParityLine(line_id="L1", item_code="Y", quantity=2, net=Decimal("10"),
                                                           tax=Decimal("1"))], dimensions={"channel": "amazon"},
                                         status="cancelled"))
    assert [d.field for d in diffs] == ["status", "line L1 item_code", "line L1 quantity", "dimension channel"]
    assert [d.field for d in compare_documents(doc(), None)] == ["document"]


def _long_ago():
    from datetime import UTC, datetime

    return datetime(2000, 1, 1, tzinfo=UTC)
