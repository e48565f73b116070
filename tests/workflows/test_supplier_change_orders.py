"""Cancelling and changing a drop-ship release (activities/sourcing.py cancel_node_release / amend_node_release for
a `supplier:` node): an X12 860 in the drop folder, sent once however often the activity is retried, answered by
the sandbox supplier's 865 (and 997); refused once the supplier's 856 was read for the lines; the 865 rejecting a
change is quarantined with a report. On the embedded adapters in Temporal's ActivityEnvironment (no server)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.sourcing import (
    InvoiceSweepInput,
    NodeAmendInput,
    NodeRelease,
    NodeReleaseInput,
    NodeReserveInput,
    SplitFulfillmentActivities,
)
from adapters.erp.local import LocalErp
from adapters.sql import create_schema, make_engine
from adapters.supplier import x12
from adapters.supplier.dropfolder import LocalDropFolder
from adapters.supplier.edi import EdiSupplierAdapter
from adapters.supplier.ledger import SqlEdiLedger
from canonical.kits import ComponentLine
from canonical.order import Address
from sandbox.edi_supplier import SandboxEdiSupplier, SupplierFaults

AT = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
SHIP_TO = Address(name="Ada", line1="Unter den Linden 1", city="Berlin", postal_code="10117", country="DE")
ORDER = "order:shopify:3001"
LATE = SupplierFaults(late_856_rate=1.0, late_856_ticks=2)  # the 856 is held: the PO can still change


@pytest.fixture
def world(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    create_schema(engine)
    erp = LocalErp(engine)
    edi = EdiSupplierAdapter(LocalDropFolder(tmp_path / "drop"), SqlEdiLedger(engine), our_id="RETAILFLOW",
                             clock=lambda: AT)
    acts = SplitFulfillmentActivities(SimpleNamespace(erp=erp), suppliers={"edi": edi})  # type: ignore[arg-type]
    yield acts, edi, tmp_path / "drop"
    engine.dispose()


def _release(env: ActivityEnvironment, acts: SplitFulfillmentActivities, lines: list[ComponentLine]) -> NodeRelease:
    rel = NodeRelease(ref=f"{ORDER}/ACME/2", node_id="ACME", kind="dropship", adapter="supplier:edi",
                      location="SUP-ACME", lines=lines)
    ref = env.run(acts.release_to_node, NodeReleaseInput(release=rel, order_ref=ORDER, ship_to=SHIP_TO,
                                                         currency="EUR", unit_prices={"3": Decimal("49.90"),
                                                                                      "4": Decimal("12.00")}))
    return rel.model_copy(update={"release_id": ref.release_id, "state": "released"})


TWO = [ComponentLine(line_id="3", item_code="PENDANT", quantity=2),
       ComponentLine(line_id="4", item_code="SHADE", quantity=3)]


def _outbound_860s(drop: LocalDropFolder) -> list[str]:
    return [n for n in drop.list("outbound") if n.startswith("860_")]


def _body(drop: LocalDropFolder, box, name: str) -> list[str]:
    ix = x12.read_interchange(drop.get(box, name))
    return [seg.format().rstrip("~") for g in ix.groups for t in g.transactions for _, seg in t.segments]


def test_cancel_sends_one_860_and_the_supplier_accepts_and_ships_nothing(world):
    acts, edi, folder = world
    env, drop = ActivityEnvironment(), LocalDropFolder(folder)
    rel = _release(env, acts, TWO)
    supplier = SandboxEdiSupplier(folder, faults=LATE, clock=lambda: AT)
    supplier.process_once()  # 997 + 855; the 856 and 810 held
    assert env.run(acts.poll_node, NodeReserveInput(release=rel)).acknowledged

    assert env.run(acts.cancel_node_release, NodeReserveInput(release=rel)) is True
    assert env.run(acts.cancel_node_release, NodeReserveInput(release=rel)) is True  # a retried activity
    [sent] = _outbound_860s(drop)
    body = _body(drop, "outbound", sent)
    assert body[1].startswith(f"BCH*01*DS*{rel.release_id}**1*") and not any(s.startswith("POC") for s in body)
    isa13 = sent.split("_")[-1].split(".")[0]
    assert len(edi.ledger.about("outbound", rel.release_id or "", "860")) == 1 and isa13 != "000000001"

    written = supplier.process_once()
    assert [n.rsplit("_", 1)[-1] for n in written] == ["997.x12", "865.x12"]
    assert _body(drop, "inbound", written[1])[1].startswith(f"BCA*01*AT*{rel.release_id}**1")
    for _ in range(3):  # the held 856 and 810 were dropped: a cancelled PO does not ship
        assert not [n for n in supplier.process_once() if n.endswith(("_856.x12", "_810.x12"))]
    # no order polls a cancelled release: the invoice sweep takes the 865 (accepted: archived)
    swept = env.run(acts.sweep_supplier_invoices, InvoiceSweepInput())
    assert [s.rsplit(":", 1)[-1] for s in swept.change_accepted] == [rel.release_id] and not swept.change_rejected
    assert not [n for n in drop.list("inbound") if n.endswith("_865.x12")]


def test_a_change_sends_the_poc_lines_once_and_the_supplier_ships_what_is_left(world):
    acts, _, folder = world
    env, drop = ActivityEnvironment(), LocalDropFolder(folder)
    rel = _release(env, acts, TWO)
    supplier = SandboxEdiSupplier(folder, faults=LATE, clock=lambda: AT)
    supplier.process_once()
    env.run(acts.poll_node, NodeReserveInput(release=rel))

    keep = [ComponentLine(line_id="3", item_code="PENDANT", quantity=1)]  # line 3 down to 1, line 4 cancelled
    for _ in range(2):
        assert env.run(acts.amend_node_release, NodeAmendInput(release=rel, lines=keep)) is True
    [sent] = _outbound_860s(drop)
    body = _body(drop, "outbound", sent)
    assert body[1].startswith(f"BCH*04*DS*{rel.release_id}**1*")
    assert [s for s in body if s.startswith("POC")] == ["POC*1*QD*2*1*EA***BP*PENDANT", "POC*2*DI*3*0*EA***BP*SHADE"]

    answered = supplier.process_once()
    assert _body(drop, "inbound", answered[1])[1].startswith(f"BCA*04*AT*{rel.release_id}**1")
    amended = rel.model_copy(update={"lines": keep})  # as the workflow keeps it after the change
    updates = env.run(acts.poll_node, NodeReserveInput(release=amended))  # the 865 (accepted) taken
    assert updates.refusal is None and updates.shipments == []
    for _ in range(2):
        supplier.process_once()
    updates = env.run(acts.poll_node, NodeReserveInput(release=amended))
    [shipment] = updates.shipments
    assert [(s.line_id, s.channel_sku, s.quantity) for s in shipment.lines] == [("3", "PENDANT", 1)]

    # a second change (line 3 cancelled too, the PO now empty) is a cancellation, sequence 2; after the 856 it refuses
    with pytest.raises(ApplicationError) as refused:
        env.run(acts.amend_node_release, NodeAmendInput(release=amended, lines=[]))
    assert refused.value.type == "CannotCancel" and "has shipped (line 1: 1 unit(s)" in refused.value.message
    with pytest.raises(ApplicationError) as refused:
        env.run(acts.cancel_node_release, NodeReserveInput(release=amended))
    assert refused.value.type == "CannotCancel" and "has shipped" in refused.value.message
    assert len(_outbound_860s(drop)) == 0  # the sandbox took the first; nothing new was written


def test_after_the_856_a_change_below_what_shipped_is_refused_and_nothing_is_sent(world):
    acts, _, folder = world
    env, drop = ActivityEnvironment(), LocalDropFolder(folder)
    rel = _release(env, acts, TWO)
    SandboxEdiSupplier(folder, faults=SupplierFaults(), clock=lambda: AT).process_once()  # 855, 856, 810 at once
    assert env.run(acts.poll_node, NodeReserveInput(release=rel)).shipments
    with pytest.raises(ApplicationError) as refused:
        env.run(acts.amend_node_release, NodeAmendInput(release=rel, lines=TWO[:1]))
    assert refused.value.type == "CannotCancel"
    assert "shipped 3 unit(s) of line 2 (SHADE" in refused.value.message
    assert not _outbound_860s(drop)


def test_a_rejected_change_is_quarantined_with_a_report_not_a_refusal(world):
    acts, _, folder = world
    env, drop = ActivityEnvironment(), LocalDropFolder(folder)
    rel = _release(env, acts, TWO)
    supplier = SandboxEdiSupplier(folder, faults=SupplierFaults(late_856_rate=1.0, reject_change_rate=1.0),
                                  clock=lambda: AT)
    supplier.process_once()
    env.run(acts.poll_node, NodeReserveInput(release=rel))
    keep = [ComponentLine(line_id="3", item_code="PENDANT", quantity=2)]
    env.run(acts.amend_node_release, NodeAmendInput(release=rel, lines=keep))
    answered = supplier.process_once()
    assert _body(drop, "inbound", answered[1])[1].startswith(f"BCA*04*RJ*{rel.release_id}")
    updates = env.run(acts.poll_node, NodeReserveInput(release=rel.model_copy(update={"lines": keep})))
    assert updates.refusal is None  # the order is not told (no workflow event for it): an analyst is
    report = json.loads(drop.get("quarantine", f"{answered[1]}.error.json"))
    assert report["po_number"] == rel.release_id and report["sequence"] == 1 and report["status_code"] == "RJ"
    assert "ACMESUPPLY rejected the change (860 sequence 1)" in report["error"]  # its ISA06
    assert answered[1] not in drop.list("inbound")
    # the supplier keeps the line: its 856 still ships both lines, the cancelled one is not the order's any more
    for _ in range(2):
        supplier.process_once()
    [shipment] = env.run(acts.poll_node, NodeReserveInput(release=rel.model_copy(update={"lines": keep}))).shipments
    assert [(s.line_id, s.quantity) for s in shipment.lines] == [("3", 2)]


def test_an_edifact_supplier_gets_no_change_order_the_cancel_is_refused_with_what_to_do(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    create_schema(engine)
    edi = EdiSupplierAdapter(LocalDropFolder(tmp_path / "drop"), SqlEdiLedger(engine), our_id="RETAILFLOW",
                             edifact_partners=frozenset({"ACME"}), clock=lambda: AT)
    acts = SplitFulfillmentActivities(SimpleNamespace(erp=LocalErp(engine)),  # type: ignore[arg-type]
                                      suppliers={"edi": edi})
    env = ActivityEnvironment()
    rel = _release(env, acts, TWO)
    with pytest.raises(ApplicationError) as refused:
        env.run(acts.cancel_node_release, NodeReserveInput(release=rel))
    assert refused.value.type == "CannotCancel" and "no ORDCHG" in refused.value.message
    assert "ask the supplier to cancel it" in refused.value.message
    engine.dispose()
