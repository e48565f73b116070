"""Drop-ship supplier invoices beyond the X12 happy path (activities/sourcing.py, adapters/supplier/edi.py):

- an EDIFACT supplier's INVOIC, matched to the ORDERS as we sent it (our copy read back with pydifact) and to its
  DESADVs exactly like an 810: posted once, a wrong total quarantined with the differences, a malformed INVOIC
  quarantined with the segment and position;
- a late invoice: an 810 / INVOIC that arrives after the order's last poll (its supplier shipped everything, the
  workflow stopped polling) is taken by the supplier inbox sweep (`sweep_supplier_invoices`, the activity of the
  scheduled SupplierInvoiceSweep workflow) and posted once; run in ActivityEnvironment and, once, as the workflow
  on the time-skipping server.

On the embedded ERP and the EDI adapter over a local drop folder, with the sandbox supplier ACME answering; the
platform database is SQLite, and PostgreSQL too when RETAILFLOW_TEST_DATABASE_URL is set (the `engine` fixture)."""

from __future__ import annotations

import concurrent.futures
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy import select
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.sourcing import (
    InvoiceSweepInput,
    NodeRelease,
    NodeReleaseInput,
    NodeReserveInput,
    SplitFulfillmentActivities,
)
from adapters.erp.local import LocalErp
from adapters.sql import supplier_invoices
from adapters.supplier import x12
from adapters.supplier.dropfolder import LocalDropFolder
from adapters.supplier.edi import EdiSupplierAdapter
from adapters.supplier.ledger import SqlEdiLedger
from canonical.kits import ComponentLine
from canonical.order import Address
from sandbox.edi_supplier import SandboxEdiSupplier, SupplierFaults, body_810, plan_for
from workflows.supplier_invoice_sweep import SupplierInvoiceSweep

AT = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
SHIP_TO = Address(name="Ada", line1="Unter den Linden 1", city="Berlin", postal_code="10117", country="DE")


def _world(engine, folder, syntax: str):
    erp = LocalErp(engine)
    erp.set_on_hand("PENDANT", "SUP-ACME", 9)
    edi = EdiSupplierAdapter(LocalDropFolder(folder), SqlEdiLedger(engine), our_id="RETAILFLOW", clock=lambda: AT,
                             edifact_partners=frozenset({"ACME"}) if syntax == "edifact" else frozenset())
    acts = SplitFulfillmentActivities(SimpleNamespace(erp=erp), suppliers={"edi": edi})  # type: ignore[arg-type]
    return acts, edi


def _release(acts, env, order: str = "order:shopify:3001", price: str = "49.90") -> NodeRelease:
    rel = NodeRelease(ref=f"{order}/ACME/2", node_id="ACME", kind="dropship", adapter="supplier:edi",
                      location="SUP-ACME", lines=[ComponentLine(line_id="3", item_code="PENDANT", quantity=2)])
    ref = env.run(acts.release_to_node, NodeReleaseInput(release=rel, order_ref=order, ship_to=SHIP_TO,
                                                         currency="EUR", unit_prices={"3": Decimal(price)}))
    return rel.model_copy(update={"release_id": ref.release_id, "state": "released"})


def _answer(folder, **faults) -> list[str]:
    return SandboxEdiSupplier(folder, supplier_id="ACME", faults=SupplierFaults(**faults), clock=lambda: AT
                              ).process_once()


def _payables(engine) -> list:
    with engine.connect() as conn:
        return list(conn.execute(select(supplier_invoices)))


def _one(drop: LocalDropFolder, suffix: str) -> str:
    [name] = [n for n in drop.list("inbound") if n.endswith(suffix)]
    return name


# -- EDIFACT INVOIC ------------------------------------------------------------------------------------------------

def test_an_edifact_invoic_is_matched_to_the_orders_as_sent_and_its_desadv_and_posted_once(engine, tmp_path):
    acts, edi = _world(engine, tmp_path / "drop", "edifact")
    env = ActivityEnvironment()
    rel = _release(acts, env)
    drop = edi.transport
    assert isinstance(drop, LocalDropFolder)
    [orders] = drop.list("outbound")
    assert orders.startswith("ORDERS_ACME_") and drop.get("outbound", orders).startswith(b"UNB+UNOC:3+RETAILFLOW+ACME")
    sent = edi.purchase_order(rel.release_id or "")  # our copy of the ORDERS, read back with pydifact
    assert sent is not None and [(ln.line_number, ln.item_code, ln.quantity, ln.unit_price) for ln in sent.lines] \
        == [("1", "PENDANT", 2, Decimal("49.90"))] and sent.currency == "EUR" and sent.ship_to.city == "Berlin"

    written = _answer(tmp_path / "drop")
    assert [n.rsplit("_", 1)[1] for n in written] == ["ORDRSP.edi", "DESADV.edi", "INVOIC.edi"]
    invoic = _one(drop, "_INVOIC.edi")
    updates = env.run(acts.poll_node, NodeReserveInput(release=rel))
    assert updates.acknowledged and updates.refusal is None
    assert [(ln.line_id, ln.quantity) for s in updates.shipments for ln in s.lines] == [("3", 2)]
    [payable] = _payables(engine)
    assert (payable.supplier_id, payable.po_number, payable.invoice_number, payable.currency) == (
        "ACME", rel.release_id, f"INV{rel.release_id}", "EUR")
    assert Decimal(str(payable.total)) == Decimal("99.80")
    assert invoic in drop.list("archive") and drop.list("inbound") == []
    env.run(acts.poll_node, NodeReserveInput(release=rel))
    assert len(_payables(engine)) == 1


def test_an_edifact_invoic_that_does_not_add_up_is_quarantined_with_the_differences(engine, tmp_path):
    acts, edi = _world(engine, tmp_path / "drop", "edifact")
    env = ActivityEnvironment()
    rel = _release(acts, env)
    _answer(tmp_path / "drop")
    drop = edi.transport
    invoic = _one(drop, "_INVOIC.edi")  # type: ignore[arg-type]
    text = drop.get("inbound", invoic).decode()
    assert "MOA+77:99.80'" in text
    drop.put("inbound", invoic, text.replace("MOA+77:99.80'", "MOA+77:99.90'").encode())
    updates = env.run(acts.poll_node, NodeReserveInput(release=rel))
    assert updates.shipments and _payables(engine) == []
    assert invoic in drop.list("quarantine") and invoic not in drop.list("inbound")
    report = json.loads(drop.get("quarantine", f"{invoic}.error.json"))
    assert [d["kind"] for d in report["differences"]] == ["total"]
    assert "lines add up to 99.80, invoice states 99.90" in report["differences"][0]["detail"]
    assert report["partner"] == "ACME" and rel.release_id in report["error"]


def test_an_edifact_invoic_at_another_price_is_quarantined(engine, tmp_path):
    acts, edi = _world(engine, tmp_path / "drop", "edifact")
    env = ActivityEnvironment()
    rel = _release(acts, env)
    _answer(tmp_path / "drop")
    drop = edi.transport
    invoic = _one(drop, "_INVOIC.edi")  # type: ignore[arg-type]
    text = drop.get("inbound", invoic).decode()
    drop.put("inbound", invoic, text.replace("PRI+AAA:49.9'", "PRI+AAA:50.9'").replace(
        "MOA+77:99.80'", "MOA+77:101.80'").encode())
    env.run(acts.poll_node, NodeReserveInput(release=rel))
    assert _payables(engine) == []
    report = json.loads(drop.get("quarantine", f"{invoic}.error.json"))
    assert [d["kind"] for d in report["differences"]] == ["price"]
    assert "invoiced at 50.9, ordered at 49.9" in report["differences"][0]["detail"]


def test_a_malformed_edifact_invoic_is_quarantined_with_segment_and_position(engine, tmp_path):
    acts, edi = _world(engine, tmp_path / "drop", "edifact")
    env = ActivityEnvironment()
    rel = _release(acts, env)
    _answer(tmp_path / "drop")
    drop = edi.transport
    invoic = _one(drop, "_INVOIC.edi")  # type: ignore[arg-type]
    text = drop.get("inbound", invoic).decode()
    drop.put("inbound", invoic, text.replace("QTY+47:2:PCE'", "QTY+47:two:PCE'").encode())
    env.run(acts.poll_node, NodeReserveInput(release=rel))
    assert _payables(engine) == [] and invoic in drop.list("quarantine")
    report = json.loads(drop.get("quarantine", f"{invoic}.error.json"))
    lines = [ln for ln in text.splitlines() if ln]  # one segment a line; UNB is position 0
    assert (report["segment_id"], report["element_position"]) == ("QTY", 1)
    assert report["segment_position"] == next(i for i, ln in enumerate(lines) if ln.startswith("QTY+47"))
    assert "'two' is not a number" in report["error"]


# -- the late invoice: after the order's last poll -----------------------------------------------------------------

@pytest.mark.parametrize("syntax", ["x12", "edifact"])
def test_an_invoice_after_the_orders_last_poll_is_posted_once_by_the_sweep(engine, tmp_path, syntax):
    acts, edi = _world(engine, tmp_path / "drop", syntax)
    env = ActivityEnvironment()
    rel = _release(acts, env)
    _answer(tmp_path / "drop")
    drop = edi.transport
    invoice = _one(drop, "_810.x12" if syntax == "x12" else "_INVOIC.edi")  # type: ignore[arg-type]
    data = drop.get("inbound", invoice)
    drop.remove("inbound", invoice)  # the supplier invoices days after it shipped
    updates = env.run(acts.poll_node, NodeReserveInput(release=rel))
    assert updates.shipments  # everything shipped: the order's workflow stops polling this supplier
    assert _payables(engine) == [] and drop.list("inbound") == []

    drop.put("inbound", invoice, data)  # ... and nobody polls for it any more: the sweep does
    result = env.run(acts.sweep_supplier_invoices, InvoiceSweepInput(adapter="edi"))
    assert result.posted == [f"edi:{invoice}:INV{rel.release_id}"] and not (result.waiting or result.mismatched)
    [payable] = _payables(engine)
    assert (payable.po_number, Decimal(str(payable.total))) == (rel.release_id, Decimal("99.80"))
    assert invoice in drop.list("archive") and drop.list("inbound") == []
    # posted once: the same interchange again is a duplicate, the same invoice under a new one is the same payable
    drop.put("inbound", invoice, data)
    again = env.run(acts.sweep_supplier_invoices, InvoiceSweepInput())
    assert again.posted == [] and len(_payables(engine)) == 1


def test_the_sweep_waits_for_the_856_leaves_ship_notices_to_their_order_and_strangers_alone(engine, tmp_path):
    acts, edi = _world(engine, tmp_path / "drop", "x12")
    env = ActivityEnvironment()
    rel = _release(acts, env)
    _answer(tmp_path / "drop")
    drop = edi.transport
    notice, invoice = _one(drop, "_856.x12"), _one(drop, "_810.x12")  # type: ignore[arg-type]
    sent = edi.purchase_order(rel.release_id or "")
    assert sent is not None
    held = drop.get("inbound", notice)
    drop.remove("inbound", notice)
    result = env.run(acts.sweep_supplier_invoices, InvoiceSweepInput(adapter="edi"))
    assert result.waiting == [f"edi:{invoice}:INV{rel.release_id}"] and _payables(engine) == []
    assert invoice in drop.list("inbound")  # more invoiced than shipped: it waits for the 856

    drop.put("inbound", notice, held)
    result = env.run(acts.sweep_supplier_invoices, InvoiceSweepInput(adapter="edi"))
    assert len(result.posted) == 1 and len(_payables(engine)) == 1  # matched to the 856 in the same inbox
    assert notice in drop.list("inbound")  # the 856 and the 855 stay for the order's own poll
    assert env.run(acts.poll_node, NodeReserveInput(release=rel)).shipments

    # an invoice for a purchase order we never sent is left where it is
    stranger = sent.model_copy(update={"po_number": "RFNOSUCHPO000000"})
    data = x12.build_interchange(x12.Party("ZZ", "ACME"), x12.Party("ZZ", "RETAILFLOW"), 90, [
        ("810", body_810(plan_for(stranger, SupplierFaults()), AT))], at=AT)
    drop.put("inbound", "ACME_stranger_810.x12", data.encode())
    result = env.run(acts.sweep_supplier_invoices, InvoiceSweepInput(adapter="edi"))
    assert [u.split(": ")[1] for u in result.unmatched] == ["purchase order RFNOSUCHPO000000 is not one we sent"]
    assert "ACME_stranger_810.x12" in drop.list("inbound") and len(_payables(engine)) == 1


def test_an_invoice_number_posted_before_with_other_amounts_is_quarantined(engine, tmp_path):
    acts, edi = _world(engine, tmp_path / "drop", "x12")
    env = ActivityEnvironment()
    first = _release(acts, env, "order:shopify:3001")
    _answer(tmp_path / "drop")
    env.run(acts.poll_node, NodeReserveInput(release=first))
    assert len(_payables(engine)) == 1
    second = _release(acts, env, "order:shopify:3002", price="39.90")
    _answer(tmp_path / "drop")
    drop = edi.transport
    invoice = _one(drop, "_810.x12")  # type: ignore[arg-type]
    # the supplier reuses the first invoice's number for the second order: the payable is not rewritten
    text = drop.get("inbound", invoice).decode().replace(f"INV{second.release_id}", f"INV{first.release_id}")
    drop.put("inbound", invoice, text.encode())
    result = env.run(acts.sweep_supplier_invoices, InvoiceSweepInput(adapter="edi"))
    assert result.mismatched == [f"edi:{invoice}:INV{first.release_id}"] and len(_payables(engine)) == 1
    report = json.loads(drop.get("quarantine", f"{invoice}.error.json"))
    assert [d["kind"] for d in report["differences"]] == ["already_posted"]


async def test_the_scheduled_sweep_workflow_posts_a_late_invoice(ts_env, engine, tmp_path):
    acts, edi = _world(engine, tmp_path / "drop", "edifact")
    env = ActivityEnvironment()
    rel = _release(acts, env)
    _answer(tmp_path / "drop")
    drop = edi.transport
    invoic = _one(drop, "_INVOIC.edi")  # type: ignore[arg-type]
    data = drop.get("inbound", invoic)
    drop.remove("inbound", invoic)
    assert env.run(acts.poll_node, NodeReserveInput(release=rel)).shipments
    drop.put("inbound", invoic, data)
    queue = f"sweep-{uuid.uuid4().hex[:8]}"
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as executor:
        async with Worker(ts_env.client, task_queue=queue, workflows=[SupplierInvoiceSweep],
                          activities=[acts.sweep_supplier_invoices], activity_executor=executor):
            result = await ts_env.client.execute_workflow(SupplierInvoiceSweep.run, InvoiceSweepInput(adapter="edi"),
                                                          id=f"supplier-invoice-sweep-{queue}", task_queue=queue)
    assert result.posted == [f"edi:{invoic}:INV{rel.release_id}"]
    assert len(_payables(engine)) == 1 and invoic in drop.list("archive")
