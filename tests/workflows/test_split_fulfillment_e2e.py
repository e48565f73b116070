"""A split order end to end on the time-skipping server with the real activities and the embedded adapters: the
ledger and ERP on the platform database, the local WMS for the warehouse node, the EDI supplier adapter with a
drop folder for the drop-ship node, and the sandbox supplier answering the 850 with 855, 856 and 810. The order
completes with one channel confirmation per node, each node's stock is taken from its own reservation, and the
810 is matched to the purchase order and its 856 and posted once as a payable."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from temporalio.worker import Worker

from activities.ops import OpsActivities
from activities.orders import OrderActivities
from activities.sourcing import SourcingActivities, SplitFulfillmentActivities
from adapters.sql import supplier_invoices
from adapters.sql import wms as wms_tables
from adapters.supplier.dropfolder import LocalDropFolder
from adapters.supplier.edi import EdiSupplierAdapter
from adapters.supplier.ledger import SqlEdiLedger
from canonical.fulfillment import OrderFulfillmentInput
from canonical.money import Money
from canonical.order import Address, Order, OrderLine, OrderStatus, Shipment, ShipmentLine
from runtime.registry import build_adapters
from runtime.settings import Settings
from sandbox.edi_supplier import process_once
from tests.workflows.test_split_fulfillment import NETWORK
from workflows.order_fulfillment import OrderFulfillment

ADDRESS = Address(name="Ada", line1="Unter den Linden 1", city="Berlin", postal_code="10117", country="DE")
ITEMS = {"DESK-LAMP": "39.00", "LED-BULB": "4.50", "FLOOR-LAMP": "129.00", "PENDANT-ACME": "89.00"}


async def _until(handle, predicate, what: str, timeout: float = 30):
    deadline = asyncio.get_running_loop().time() + timeout
    view = None
    while asyncio.get_running_loop().time() < deadline:
        view = await handle.query(OrderFulfillment.status)
        if predicate(view):
            return view
        await asyncio.sleep(0.1)
    raise AssertionError(f"never reached {what}; last {view.status if view else None}: {view.reason if view else ''}")


async def test_a_split_order_completes_through_the_warehouse_and_the_edi_supplier(ts_env, engine, tmp_path):
    adapters = build_adapters(Settings(), engine)
    erp = adapters.erp
    for item, price in ITEMS.items():
        erp.upsert_item(item, item.title(), Decimal(price), "EUR")  # type: ignore[attr-defined]
        erp.map_sku("shopify", item, item)  # type: ignore[attr-defined]
    for location, item, qty in (("WH-BER", "DESK-LAMP", 12), ("WH-BER", "LED-BULB", 40), ("WH-BER", "FLOOR-LAMP", 3),
                                ("SUP-ACME", "PENDANT-ACME", 200)):
        erp.set_on_hand(item, location, qty)  # type: ignore[attr-defined]
    folder = tmp_path / "drop"
    edi = EdiSupplierAdapter(LocalDropFolder(folder), SqlEdiLedger(engine), our_id="RETAILFLOW")
    assert adapters.inventory is not None and adapters.projection is not None
    activities = [*OrderActivities(adapters).all(), *SourcingActivities(adapters.inventory, NETWORK).all(),
                  *SplitFulfillmentActivities(adapters, wms={"local": adapters.wms}, suppliers={"edi": edi}).all(),
                  *OpsActivities(adapters.projection).all()]
    order = Order(channel="shopify", external_order_id=uuid.uuid4().hex[:12], order_number="#3001",
                  created_at=datetime.now(UTC), currency="EUR", taxes_included=False, shipping_address=ADDRESS,
                  lines=[OrderLine(line_id=str(i), channel_sku=sku, quantity=q, unit_price=Money.of(ITEMS[sku], "EUR"))
                         for i, (sku, q) in enumerate((("DESK-LAMP", 1), ("LED-BULB", 4), ("FLOOR-LAMP", 1),
                                                       ("PENDANT-ACME", 1)), start=1)])
    wf = order.workflow_id
    queue = f"split-e2e-{uuid.uuid4()}"
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as executor:
        async with Worker(ts_env.client, task_queue=queue, workflows=[OrderFulfillment], activities=activities,
                          activity_executor=executor):
            handle = await ts_env.client.start_workflow(
                OrderFulfillment.run, OrderFulfillmentInput(order=order, split_fulfillment=True), id=wf,
                task_queue=queue)
            await _until(handle, lambda v: v.status == OrderStatus.RELEASED, "released")
            split = await handle.query(OrderFulfillment.sourcing)
            assert [(r.node_id, r.line_ids, r.state) for r in split.releases] == [
                ("WH-BER", ["1", "2", "3"], "released"), ("ACME", ["4"], "released")]
            # each node has its own reservation, at its own location
            assert erp.stock_levels("LED-BULB")["WH-BER"]["reserved"] == 4  # type: ignore[attr-defined]
            assert erp.stock_levels("PENDANT-ACME")["SUP-ACME"]["reserved"] == 1  # type: ignore[attr-defined]
            # the warehouse got its request under the node's reference, the supplier an 850
            with engine.connect() as conn:
                refs = [r.external_ref for r in conn.execute(select(wms_tables.wms_requests.c.external_ref))]
            assert refs == [f"{wf}/WH-BER/1"]
            [po_file] = LocalDropFolder(folder).list("outbound")
            assert po_file.startswith("850_ACME_")

            process_once(folder)  # the supplier answers: 997, 855, 856, 810
            await handle.signal(OrderFulfillment.shipment, Shipment(
                shipment_id="WH-BER-1", carrier="DHL", tracking_number="JJD0001", shipped_at=datetime.now(UTC),
                lines=[ShipmentLine(line_id=i, channel_sku=s, quantity=q)
                       for i, s, q in (("1", "DESK-LAMP", 1), ("2", "LED-BULB", 4), ("3", "FLOOR-LAMP", 1))]))
            await _until(handle, lambda v: v.status == OrderStatus.PARTIALLY_SHIPPED, "partially shipped")
            await ts_env.sleep(timedelta(minutes=16))  # the next poll reads the supplier's 855 and 856
            result = await handle.result()
            view = await handle.query(OrderFulfillment.status)

    assert result.status == OrderStatus.COMPLETED and result.invoice_id
    confirmations = [u for u in adapters.marketplace.updates("shopify", order.external_order_id)  # type: ignore[attr-defined]
                     if u["kind"] == "shipment"]
    assert len(confirmations) == 2
    assert [s.shipment_id.split(":")[0] for s in view.shipments] == ["WH-BER-1", "ACME"]
    assert view.shipped_quantities == {"1": 1, "2": 4, "3": 1, "4": 1}
    # every node's units left its own stock and reservation
    assert erp.stock_levels("LED-BULB")["WH-BER"] == {"on_hand": 36, "reserved": 0}  # type: ignore[attr-defined]
    assert erp.stock_levels("PENDANT-ACME")["SUP-ACME"] == {"on_hand": 199, "reserved": 0}  # type: ignore[attr-defined]
    inbound = LocalDropFolder(folder).list("inbound")
    assert not [n for n in inbound if "810" in n or "855" in n or "856" in n], inbound
    # the 810 was matched to the PO and its 856 in the same poll, and posted once as a payable
    with engine.connect() as conn:
        [payable] = conn.execute(select(supplier_invoices)).all()
    assert payable.supplier_id == "ACMESUPPLY" and payable.po_number == split.releases[1].release_id
    assert Decimal(str(payable.total)) == Decimal("89.00")
