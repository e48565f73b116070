"""A split order on the dev server with the real worker composition (issue 20): the Shopify webhook, the API's
starter (split fulfillment switched on for the channel), the worker's sourcing and node activities built by
worker.sourcing_activities (the local WMS for the warehouse node, the EDI supplier adapter over the drop folder of
RETAILFLOW_SUPPLIER_DROP_FOLDER for the drop-ship node), the embedded WMS shipper and the sandbox supplier polling
the same folder, as `retailflow dev --sandbox` runs it (sandbox.stack.start_edi_supplier).

The workflow reads a supplier's answers every RETAILFLOW_SUPPLIER_POLL_SECONDS (15 minutes by default, taken by the
order when it starts); here every 5 s, on the dev server in real time."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import pytest_asyncio
from sqlalchemy import select

from adapters.sql import supplier_invoices
from adapters.sql.edi import edi_interchanges
from adapters.supplier import x12
from adapters.supplier.dropfolder import LocalDropFolder
from canonical.order import Address, order_workflow_id
from canonical.supplier import PoLine, PurchaseOrder
from sandbox.edi_supplier import SupplierFaults, _break_segment_count, body_856, plan_for
from sandbox.stack import start_edi_supplier
from tests.integration.conftest import _running_stack
from workflows.order_fulfillment import OrderFulfillment

pytestmark = pytest.mark.integration

POLL = 5  # seconds between the order's reads of the supplier's answers (RETAILFLOW_SUPPLIER_POLL_SECONDS)
NETWORK = """
[[node]]
id = "WH-MAIN"
kind = "warehouse"
location = "MAIN"
adapter = "wms:local"
channels = ["*"]
ship_to = ["*"]
capacity_per_day = 1000
cutoff = 15:00:00
time_zone = "America/New_York"
cost_per_shipment = { amount = "5.00", currency = "USD" }
rank = 1

[[node]]
id = "ACME"
kind = "dropship"
location = "SUP-ACME"
adapter = "supplier:edi"
channels = ["*"]
ship_to = ["*"]
capacity_per_day = 1000
cutoff = 14:00:00
time_zone = "America/New_York"
cost_per_shipment = { amount = "9.00", currency = "USD" }
rank = 2

[[policy]]
channel = "shopify"
nodes = ["WH-MAIN", "ACME"]
allow_split = true
max_splits = 1
"""


@pytest_asyncio.fixture
async def split_stack(dev_env, engine, tmp_path):
    network = tmp_path / "fulfillment.toml"
    network.write_text(NETWORK)
    async with _running_stack(dev_env, engine, data_dir=tmp_path, split_fulfillment_channels=["shopify"],
                              fulfillment_network_file=network, supplier_poll_seconds=POLL) as stack:
        thread, stop = start_edi_supplier(stack.settings, interval=0.5)
        try:
            yield stack
        finally:
            stop.set()
            thread.join(timeout=10)


def _malformed_856() -> tuple[bytes, int]:
    """A ship notice from ACME for a PO of nobody, its SE01 one off (as the sandbox's malformed-856 fault writes
    it); returns the file and the position of its SE segment (ISA is 0)."""
    po = PurchaseOrder(po_number="RF00000000000BAD01", supplier_id="ACME", currency="USD",
                       ship_to=Address(name="X", line1="1 Main St", city="Louisville", postal_code="40003",
                                       region="KY", country="US"),
                       lines=[PoLine(line_number="1", item_code="FURN-COFFEE-TABLE", quantity=1,
                                     unit_price=Decimal("119.99"))])
    now = datetime.now(UTC)
    text = x12.build_interchange(x12.Party("ZZ", "ACME"), x12.Party("ZZ", "RETAILFLOW"), 900000001,
                                 [("856", body_856(plan_for(po, SupplierFaults()), now, "UPSN"))], at=now)
    broken = _break_segment_count(text)
    position = next(i for i, seg in enumerate(broken.split("\n")) if seg.startswith("SE" + x12.ELEMENT_SEPARATOR))
    return broken.encode("ascii"), position


@pytest.mark.timeout(600)
async def test_a_split_order_ships_from_the_warehouse_and_the_edi_supplier_on_the_dev_server(split_stack, engine,
                                                                                             tmp_path):
    stack = split_stack
    erp = stack.adapters.erp
    erp.set_on_hand("FURN-COFFEE-TABLE", "MAIN", 0)  # only the supplier has it
    erp.set_on_hand("FURN-COFFEE-TABLE", "SUP-ACME", 50)
    drop = LocalDropFolder(tmp_path / "edi")  # the default: <data_dir>/edi
    bad, se_position = _malformed_856()
    drop.put("inbound", "ACME_900000001_856.x12", bad)

    body, ext = stack.order_body()
    assert (await stack.send_shopify(body)).status_code in (200, 202)
    await stack.wait_status("shopify", ext, {"partially_shipped"}, timeout=60)
    handle = stack.client.get_workflow_handle(order_workflow_id("shopify", ext))
    split = await handle.query(OrderFulfillment.sourcing)  # the Web UI's *Queries* → sourcing
    assert [(r.node_id, r.adapter, r.location) for r in split.releases] == [
        ("WH-MAIN", "wms:local", "MAIN"), ("ACME", "supplier:edi", "SUP-ACME")]
    assert [r.state for r in split.releases] in (["shipped", "released"], ["shipped", "acknowledged"])
    assert split.summary and "ACME" in split.summary

    with engine.connect() as conn:
        [sent] = conn.execute(select(edi_interchanges).where(edi_interchanges.c.direction == "outbound",
                                                             edi_interchanges.c.transaction_sets == "850")).all()
    assert sent.partner == "ACME" and sent.file_name.startswith("850_ACME_")
    po_number = sent.reference
    assert drop.list("archive").count(f"{sent.file_name}.sent") == 1  # our copy, for invoice matching

    # the first supplier poll is POLL seconds after the release, in real time on the dev server
    done = await stack.wait_status("shopify", ext, {"completed"}, timeout=POLL * 4 + 240)
    assert done["status"] == "completed"

    confirmations = [u for u in stack.adapters.marketplace.updates("shopify", ext)
                     if u["kind"] == "shipment"]
    assert len(confirmations) == 2, confirmations
    with engine.connect() as conn:
        inbound = conn.execute(select(edi_interchanges).where(edi_interchanges.c.direction == "inbound",
                                                              edi_interchanges.c.reference == po_number)).all()
        payables = conn.execute(select(supplier_invoices)).all()
    assert sorted(r.transaction_sets for r in inbound) == ["810", "855", "856"]
    assert all(r.processed_at is not None and r.ack_status == "A" for r in inbound)  # taken once, 997 sent
    archived = drop.list("archive")
    assert all(r.file_name in archived for r in inbound)
    assert not [n for n in drop.list("inbound") if not n.startswith(".")]
    # the invoice matched its PO and its 856, posted once as a payable
    [payable] = payables
    assert payable.po_number == po_number and payable.supplier_id == "ACME"
    assert Decimal(str(payable.total)) == Decimal("119.99") and payable.currency == "USD"
    # the malformed 856 was quarantined with its position, and rejected in a 997 to ACME
    assert "ACME_900000001_856.x12" in drop.list("quarantine")
    report = json.loads(drop.get("quarantine", "ACME_900000001_856.x12.error.json"))
    assert (report["segment_id"], report["segment_position"]) == ("SE", se_position)


STORE_NETWORK = """
[[node]]
id = "STORE-1"
kind = "store"
location = "STORE-1"
adapter = "wms:local"
channels = ["*"]
ship_to = ["*"]
capacity_per_day = 40
cutoff = 17:00:00
time_zone = "America/New_York"
cost_per_shipment = { amount = "3.00", currency = "USD" }
rank = 1

[[node]]
id = "WH-MAIN"
kind = "warehouse"
location = "MAIN"
adapter = "wms:local"
channels = ["*"]
ship_to = ["*"]
capacity_per_day = 1000
cutoff = 15:00:00
time_zone = "America/New_York"
cost_per_shipment = { amount = "5.00", currency = "USD" }
rank = 2

[[policy]]
channel = "shopify"
nodes = ["STORE-1", "WH-MAIN"]
allow_split = true
max_splits = 1
"""


@pytest_asyncio.fixture
async def store_stack(dev_env, engine, tmp_path):
    network = tmp_path / "fulfillment.toml"
    network.write_text(STORE_NETWORK)
    async with _running_stack(dev_env, engine, data_dir=tmp_path, split_fulfillment_channels=["shopify"],
                              fulfillment_network_file=network, local_wms_ship_after_seconds=15.0) as stack:
        yield stack


async def test_a_store_sale_that_takes_a_ship_from_store_orders_units_re_sources_it_to_the_warehouse(store_stack):
    stack = store_stack
    erp = stack.adapters.erp
    # an item of its own (InventorySync `inventory:{item}` of another test may still run on that test's queue),
    # sold online and at the store under the sample order's aviator SKU
    aviator_item = f"AVIATOR-{uuid.uuid4().hex[:8]}"
    erp.upsert_item(aviator_item, "Aviator sunglasses", Decimal("89.99"), "USD")
    erp.map_sku("shopify", "SKU2006-001", aviator_item)
    erp.map_sku("pos", "SKU2006-001", aviator_item)
    for item, qty in ((aviator_item, 1), ("FURN-LOUNGER", 2), ("FURN-COFFEE-TABLE", 2)):
        erp.set_on_hand(item, "STORE-1", qty)
        erp.set_on_hand(item, "MAIN", 0)  # the ERP reserves where most is free: only the store has stock now
    body, ext = stack.order_body()
    assert (await stack.send_shopify(body)).status_code in (200, 202)
    await stack.wait_status("shopify", ext, {"released"}, timeout=60)
    handle = stack.client.get_workflow_handle(order_workflow_id("shopify", ext))
    split = await handle.query(OrderFulfillment.sourcing)
    [release] = split.releases  # one node has every line: the store, cheaper than the warehouse
    assert (release.node_id, len(release.line_ids)) == ("STORE-1", 3)
    store_lines = release.line_ids
    assert erp.stock_levels(aviator_item)["STORE-1"]["reserved"] == 1
    erp.set_on_hand(aviator_item, "MAIN", 5)  # the warehouse has aviators again

    # the store sells its last aviator over the counter while the order waits for its pick
    resp = await stack.http.post("/inventory/events", json={"events": [{
        "source": "pos", "source_event_id": f"sale-{ext}", "kind": "sale", "sku": aviator_item,
        "location": "STORE-1", "quantity": 1, "occurred_at": datetime.now(UTC).isoformat()}]})
    assert resp.status_code in (200, 202), resp.text
    for _ in range(150):
        split = await handle.query(OrderFulfillment.sourcing)
        if any(r.node_id == "WH-MAIN" for r in split.releases):
            break
        await asyncio.sleep(0.2)
    moved = [r for r in split.releases if r.node_id == "WH-MAIN"]
    assert moved, split
    aviator = next(ln.line_id for r in split.releases for ln in r.lines if ln.item_code == aviator_item)
    assert [ln.item_code for ln in moved[0].lines] == [aviator_item]
    assert "STORE-1" in split.excluded
    store = next(r for r in split.releases if r.node_id == "STORE-1" and r.state not in ("cancelled", "refused"))
    assert sorted(store.line_ids) == sorted(i for i in store_lines if i != aviator)

    done = await stack.wait_status("shopify", ext, {"completed"}, timeout=120)
    assert done["status"] == "completed"
    confirmations = [u for u in stack.adapters.marketplace.updates("shopify", ext) if u["kind"] == "shipment"]
    assert len(confirmations) == 2
    assert erp.stock_levels(aviator_item)["MAIN"] == {"on_hand": 4, "reserved": 0}
    assert erp.stock_levels(aviator_item)["STORE-1"]["on_hand"] == 0
