"""The per-node activities of split fulfillment (activities/sourcing.py SplitFulfillmentActivities) on the embedded
adapters: the ERP reservation per release key (a kit as its components), a warehouse node released through the WMS
role, a drop-ship node through the EDI supplier adapter (an 850 in the drop folder; the sandbox supplier's 855 and
856 read back as the acknowledgement and a shipment), each node's undo, the delivery posted against the node's
reservation. Run in Temporal's ActivityEnvironment (no server)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.sourcing import (
    NodeAmendInput,
    NodeDeliveryInput,
    NodeRelease,
    NodeReleaseInput,
    NodeReserveInput,
    SplitFulfillmentActivities,
    po_number,
)
from adapters.erp.local import LocalErp
from adapters.sql import create_schema, make_engine
from adapters.supplier.dropfolder import LocalDropFolder
from adapters.supplier.edi import EdiSupplierAdapter
from adapters.supplier.ledger import SqlEdiLedger
from adapters.wms.local import LocalWms
from canonical.kits import ComponentLine
from canonical.order import Address, Shipment, ShipmentLine
from sandbox.edi_supplier import SandboxEdiSupplier, SupplierFaults

AT = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
SHIP_TO = Address(name="Ada", line1="Unter den Linden 1", city="Berlin", postal_code="10117", country="DE")
ORDER = "order:shopify:2001"


@pytest.fixture
def world(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    create_schema(engine)
    erp = LocalErp(engine)
    for location, item, qty in (("WH-BER", "DESK-LAMP", 5), ("WH-BER", "LED-BULB", 20), ("SUP-ACME", "PENDANT", 9)):
        erp.set_on_hand(item, location, qty)
    wms = LocalWms(engine, ship_after_seconds=3600)
    edi = EdiSupplierAdapter(LocalDropFolder(tmp_path / "drop"), SqlEdiLedger(engine), our_id="RETAILFLOW",
                             clock=lambda: AT)
    adapters = SimpleNamespace(erp=erp, wms=wms)
    acts = SplitFulfillmentActivities(adapters, wms={"local": wms}, suppliers={"edi": edi})  # type: ignore[arg-type]
    yield acts, erp, tmp_path / "drop", engine
    engine.dispose()


def _warehouse() -> NodeRelease:
    return NodeRelease(ref=f"{ORDER}/WH-BER/1", node_id="WH-BER", kind="warehouse", adapter="wms:local",
                       location="WH-BER", lines=[
                           ComponentLine(line_id="1", item_code="DESK-LAMP", quantity=2, kit_item_code="DESK-SET",
                                         kit_quantity=2),
                           ComponentLine(line_id="1", item_code="LED-BULB", quantity=4, kit_item_code="DESK-SET",
                                         kit_quantity=2),
                           ComponentLine(line_id="2", item_code="LED-BULB", quantity=3)])


def _supplier() -> NodeRelease:
    return NodeRelease(ref=f"{ORDER}/ACME/2", node_id="ACME", kind="dropship", adapter="supplier:edi",
                       location="SUP-ACME", lines=[ComponentLine(line_id="3", item_code="PENDANT", quantity=2)])


def _reserved(erp: LocalErp, item: str, location: str) -> int:
    return erp.stock_levels(item)[location]["reserved"]


def test_a_warehouse_node_reserves_components_releases_through_the_wms_and_undoes(world):
    acts, erp, _, _ = world
    env = ActivityEnvironment()
    rel = _warehouse()
    reservation = env.run(acts.reserve_at_node, NodeReserveInput(release=rel))
    assert {(r.item_code, r.location, r.quantity) for r in reservation.lines} == {
        ("DESK-LAMP", "WH-BER", 2), ("LED-BULB", "WH-BER", 7)}  # the kit's components, never the kit
    assert (env.run(acts.reserve_at_node, NodeReserveInput(release=rel))).lines == reservation.lines  # by key
    assert _reserved(erp, "LED-BULB", "WH-BER") == 7

    ref = env.run(acts.release_to_node, NodeReleaseInput(release=rel, order_ref=ORDER, ship_to=SHIP_TO,
                                                               currency="EUR"))
    again = env.run(acts.release_to_node, NodeReleaseInput(release=rel, order_ref=ORDER, ship_to=SHIP_TO,
                                                                 currency="EUR"))
    assert ref.release_id.startswith("WMS-") and again.release_id == ref.release_id  # idempotent by the node's ref
    assert env.run(acts.amend_node_release, NodeAmendInput(release=rel, lines=rel.lines[:2])) is True
    assert env.run(acts.reduce_node_reservation, NodeAmendInput(release=rel, lines=rel.lines[:2])) == 3
    assert _reserved(erp, "LED-BULB", "WH-BER") == 4

    # one kit shipped as a kit: its components leave the node's reservation and stock
    shipment = Shipment(shipment_id="S-1", shipped_at=AT, lines=[ShipmentLine(line_id="1", channel_sku="DESK-SET",
                                                                              quantity=1)])
    env.run(acts.post_node_delivery, NodeDeliveryInput(release=rel, shipment=shipment))
    assert erp.stock_levels("DESK-LAMP")["WH-BER"] == {"on_hand": 4, "reserved": 1}
    assert erp.stock_levels("LED-BULB")["WH-BER"] == {"on_hand": 18, "reserved": 2}

    assert env.run(acts.cancel_node_release, NodeReserveInput(release=rel)) is True
    assert env.run(acts.release_node_stock, NodeReserveInput(release=rel)) is True
    assert _reserved(erp, "DESK-LAMP", "WH-BER") == 0 and _reserved(erp, "LED-BULB", "WH-BER") == 0


def test_a_drop_ship_node_gets_an_850_and_its_855_and_856_come_back_as_acknowledgement_and_shipment(world):
    acts, erp, folder, _ = world
    env = ActivityEnvironment()
    rel = _supplier()
    ref = env.run(acts.release_to_node, NodeReleaseInput(release=rel, order_ref=ORDER, ship_to=SHIP_TO,
                                                               currency="EUR", unit_prices={"3": Decimal("49.90")}))
    assert ref.release_id == po_number(rel.ref) and len(ref.release_id) <= 22
    [sent] = LocalDropFolder(folder).list("outbound")
    text = LocalDropFolder(folder).get("outbound", sent).decode()
    assert sent.startswith("850_ACME_") and f"BEG*00*DS*{ref.release_id}" in text and "PO1*1*2*EA*49.9" in text

    rel = rel.model_copy(update={"release_id": ref.release_id, "state": "released"})
    assert (env.run(acts.poll_node, NodeReserveInput(release=rel))).shipments == []  # nothing answered yet
    SandboxEdiSupplier(folder, faults=SupplierFaults(), clock=lambda: AT).process_once()
    updates = env.run(acts.poll_node, NodeReserveInput(release=rel))
    assert updates.acknowledged and updates.refusal is None
    [shipment] = updates.shipments
    assert shipment.shipment_id.startswith("ACME:") and shipment.tracking_number
    assert [(s.line_id, s.channel_sku, s.quantity) for s in shipment.lines] == [("3", "PENDANT", 2)]
    # the 855 and 856 were taken (archived), and the 810, matched and posted as a payable
    # (tests/workflows/test_supplier_invoices.py)
    left = env.run(acts.poll_node, NodeReserveInput(release=rel))
    assert not left.acknowledged and left.shipments == []
    archived = LocalDropFolder(folder).list("archive")
    assert any("855" in n for n in archived) and any("856" in n for n in archived)
    assert any(n.endswith("_810.x12") for n in archived) and not LocalDropFolder(folder).list("inbound")

    # once its 856 was read the purchase order is not withdrawn or changed (an 860 is sent before the 856 only:
    # tests/workflows/test_supplier_change_orders.py): refused, naming what shipped
    with pytest.raises(ApplicationError) as refused:
        env.run(acts.cancel_node_release, NodeReserveInput(release=rel))
    assert refused.value.type == "CannotCancel" and "has shipped (line 1: 2 unit(s)" in refused.value.message
    assert not [n for n in LocalDropFolder(folder).list("outbound") if n.startswith("860_")]
    with pytest.raises(ApplicationError) as refused:
        env.run(acts.amend_node_release, NodeAmendInput(release=rel, lines=[]))
    assert refused.value.type == "CannotCancel"


def test_a_rejected_line_in_the_855_is_a_refusal_of_that_line(world):
    acts, _, folder, _ = world
    env = ActivityEnvironment()
    rel = _supplier().model_copy(update={"lines": [ComponentLine(line_id="3", item_code="PENDANT", quantity=2),
                                                   ComponentLine(line_id="4", item_code="SHADE", quantity=1)]})
    ref = env.run(acts.release_to_node, NodeReleaseInput(release=rel, order_ref=ORDER, ship_to=SHIP_TO,
                                                               currency="EUR"))
    rel = rel.model_copy(update={"release_id": ref.release_id, "state": "released"})
    SandboxEdiSupplier(folder, faults=SupplierFaults(reject_line_rate=1.0), clock=lambda: AT).process_once()
    updates = env.run(acts.poll_node, NodeReserveInput(release=rel))
    # the sandbox refuses the first line (ACK IR): that line is refused, the other ships
    assert updates.refusal is not None and updates.refusal.line_ids == ["3"]
    assert updates.refusal.reason == f"ACME rejected purchase order {ref.release_id} line(s) 3 (855 AC)"
    assert [[(s.line_id, s.quantity) for s in sh.lines] for sh in updates.shipments] == [[("4", 1)]]


def test_a_node_whose_adapter_the_worker_lacks_refuses_so_the_order_is_re_sourced(world):
    acts, _, _, _ = world
    env = ActivityEnvironment()
    rel = _warehouse().model_copy(update={"adapter": "wms:shipstation"})
    with pytest.raises(ApplicationError) as refused:
        env.run(acts.release_to_node, NodeReleaseInput(release=rel, order_ref=ORDER, ship_to=SHIP_TO,
                                                             currency="EUR"))
    assert refused.value.type == "NodeRefused" and "wms:shipstation is not configured" in refused.value.message
    store = _warehouse().model_copy(update={"adapter": "pos:store", "kind": "store"})
    with pytest.raises(ApplicationError) as refused:
        env.run(acts.release_to_node, NodeReleaseInput(release=store, order_ref=ORDER, ship_to=SHIP_TO,
                                                             currency="EUR"))
    assert refused.value.type == "NodeRefused"
