"""A drop-ship supplier's invoice (810) taken by `poll_node` (activities/sourcing.py): matched to the purchase order
as we sent it (our copy of the 850) and to every 856 of it, posted once as a payable through the ERP's
SupplierPayables; one that invoices more than shipped waits for the 856; any other difference is quarantined with
the differences. Run in Temporal's ActivityEnvironment on the embedded ERP and the EDI adapter."""

from __future__ import annotations

import json
from decimal import Decimal

from sqlalchemy import select
from temporalio.testing import ActivityEnvironment

from activities.sourcing import NodeReleaseInput, NodeReserveInput
from adapters.sql import supplier_invoices
from adapters.supplier.dropfolder import LocalDropFolder
from sandbox.edi_supplier import SandboxEdiSupplier, SupplierFaults
from tests.workflows.test_split_fulfillment_activities import AT, ORDER, SHIP_TO, _supplier, world  # noqa: F401


def _released(acts, env):
    rel = _supplier()
    ref = env.run(acts.release_to_node, NodeReleaseInput(release=rel, order_ref=ORDER, ship_to=SHIP_TO,
                                                         currency="EUR", unit_prices={"3": Decimal("49.90")}))
    return rel.model_copy(update={"release_id": ref.release_id, "state": "released"})


def _payables(engine) -> list:
    with engine.connect() as conn:
        return list(conn.execute(select(supplier_invoices)))


def _answered(folder) -> tuple[LocalDropFolder, str, str]:
    SandboxEdiSupplier(folder, supplier_id="ACME", faults=SupplierFaults(), clock=lambda: AT).process_once()
    drop = LocalDropFolder(folder)
    [notice] = [n for n in drop.list("inbound") if n.endswith("_856.x12")]
    [invoice] = [n for n in drop.list("inbound") if n.endswith("_810.x12")]
    return drop, notice, invoice


def test_a_matched_invoice_is_posted_once_as_a_payable(world):  # noqa: F811
    acts, _, folder, engine = world
    env = ActivityEnvironment()
    rel = _released(acts, env)
    drop, _, invoice = _answered(folder)
    assert env.run(acts.poll_node, NodeReserveInput(release=rel)).shipments
    [payable] = _payables(engine)
    assert (payable.supplier_id, payable.po_number, payable.currency) == ("ACME", rel.release_id, "EUR")
    assert Decimal(str(payable.total)) == Decimal("99.80")
    assert invoice in drop.list("archive") and invoice not in drop.list("inbound")
    env.run(acts.poll_node, NodeReserveInput(release=rel))
    assert len(_payables(engine)) == 1


def test_an_invoice_arriving_after_its_856_is_matched_to_the_856_taken_before(world):  # noqa: F811
    acts, _, folder, engine = world
    env = ActivityEnvironment()
    rel = _released(acts, env)
    drop, notice, invoice = _answered(folder)
    data = drop.get("inbound", invoice)
    drop.remove("inbound", invoice)  # the 810 comes a day later
    assert env.run(acts.poll_node, NodeReserveInput(release=rel)).shipments
    assert notice in drop.list("archive") and _payables(engine) == []
    drop.put("inbound", invoice, data)
    env.run(acts.poll_node, NodeReserveInput(release=rel))
    assert len(_payables(engine)) == 1


def test_an_invoice_before_its_856_waits_and_one_that_does_not_add_up_is_quarantined(world):  # noqa: F811
    acts, _, folder, engine = world
    env = ActivityEnvironment()
    rel = _released(acts, env)
    drop, notice, invoice = _answered(folder)
    held = drop.get("inbound", notice)
    drop.remove("inbound", notice)  # the 856 is late: the invoice has more than has shipped
    env.run(acts.poll_node, NodeReserveInput(release=rel))
    assert invoice in drop.list("inbound") and _payables(engine) == []
    # the supplier's 810 states another total than its lines add up to
    text = drop.get("inbound", invoice).decode()
    drop.put("inbound", invoice, text.replace("TDS*9980", "TDS*9990").encode())
    drop.put("inbound", notice, held)
    updates = env.run(acts.poll_node, NodeReserveInput(release=rel))
    assert updates.shipments and _payables(engine) == []
    assert invoice in drop.list("quarantine") and invoice not in drop.list("inbound")
    report = json.loads(drop.get("quarantine", f"{invoice}.error.json"))
    assert [d["kind"] for d in report["differences"]] == ["total"]
    assert report["partner"] == "ACME" and rel.release_id in report["error"]
