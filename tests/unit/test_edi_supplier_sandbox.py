"""The sandbox EDI supplier (sandbox/edi_supplier.py) answering our adapter's 850 end to end through a drop folder
in a tmp directory: 997 + 855, then 856 and 810, and each deterministic fault (late 856, partial ship, rejected
line, malformed 856)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from adapters.erp.local import LocalErp
from adapters.sql import create_schema, make_engine
from adapters.supplier.base import Collected
from adapters.supplier.dropfolder import LocalDropFolder
from adapters.supplier.edi import EdiSupplierAdapter
from adapters.supplier.ledger import SqlEdiLedger
from canonical.order import Address
from canonical.supplier import (
    AckLineStatus,
    FunctionalAck,
    PoAcknowledgement,
    PoLine,
    PurchaseOrder,
    ShipNotice,
    SupplierInvoice,
    match_invoice,
)
from sandbox.edi_supplier import SandboxEdiSupplier, SupplierFaults, plan_for, process_once, run_in_thread

AT = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def _po(number: str = "PO2001") -> PurchaseOrder:
    return PurchaseOrder(
        po_number=number, supplier_id="ACMESUPPLY", order_ref="shopify:2001",
        ship_to=Address(name="Bo Chen", line1="9 Elm St", city="Austin", region="TX", postal_code="78759",
                        country="US"),
        lines=[PoLine(line_number="1", item_code="SKU-A", quantity=2, unit_price=Decimal("12.00")),
               PoLine(line_number="2", item_code="SKU-B", supplier_item="AC-B", quantity=5,
                      unit_price=Decimal("3.2575"))])


@pytest.fixture
def world(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    create_schema(engine)
    folder = tmp_path / "drop"
    adapter = EdiSupplierAdapter(LocalDropFolder(folder), SqlEdiLedger(engine), our_id="RETAILFLOW",
                                 clock=lambda: AT)
    yield adapter, folder, engine
    engine.dispose()


def _supplier(folder, **faults) -> SandboxEdiSupplier:
    return SandboxEdiSupplier(folder, faults=SupplierFaults(**faults), clock=lambda: AT)


def _docs(result: Collected, kind: type) -> list:
    return [d.document for d in result.documents if isinstance(d.document, kind)]


def _take(adapter: EdiSupplierAdapter, result: Collected) -> None:
    for d in result.documents:
        adapter.acknowledge(d.receipt)


def test_supplier_answers_an_850_like_a_supplier(world):
    adapter, folder, engine = world
    po = _po()
    sent = adapter.send_purchase_order(po)
    written = _supplier(folder).process_once()
    assert [n.rsplit("_", 1)[1] for n in written] == ["997.x12", "855.x12", "856.x12", "810.x12"]
    assert LocalDropFolder(folder).list("outbound") == []  # the supplier picked the 850 up

    result = adapter.collect()
    assert [d.document_type for d in result.documents] == ["997", "855", "856", "810"]
    assert result.quarantined == [] and len(result.acknowledgements_sent) == 3  # 855, 856, 810; never a 997
    [fa] = _docs(result, FunctionalAck)
    assert fa.accepted and fa.group_control == "1"
    record = adapter.ledger.get("outbound", "ACMESUPPLY", sent.interchange_control)
    assert record is not None and record.ack_status == "A"
    [ack] = _docs(result, PoAcknowledgement)
    assert (ack.po_number, ack.status_code) == ("PO2001", "AD")
    assert [(ln.line_number, ln.status, ln.quantity) for ln in ack.lines] == [
        ("1", AckLineStatus.ACCEPTED, 2), ("2", AckLineStatus.ACCEPTED, 5)]
    [notice] = _docs(result, ShipNotice)
    assert (notice.po_number, notice.carrier) == ("PO2001", "UPSN") and notice.tracking_number
    assert [(ln.line_number, ln.item_code, ln.quantity) for ln in notice.lines] == [("1", "SKU-A", 2),
                                                                                   ("2", "SKU-B", 5)]
    [invoice] = _docs(result, SupplierInvoice)
    assert invoice.total.amount == Decimal("40.29")  # 24.00 + 16.2875 invoiced as 16.29
    assert match_invoice(invoice, po, [notice]).matched

    erp = LocalErp(engine)
    payable = erp.post_supplier_invoice(invoice)
    assert erp.post_supplier_invoice(invoice) == payable  # posted once

    _take(adapter, result)
    assert adapter.collect().documents == []
    supplier = _supplier(folder)
    supplier.process_once()  # reads our 997s
    assert supplier._load()["acks_received"] == {"2": "A", "3": "A", "4": "A"}


def test_partial_ship_backorders_the_rest(world):
    adapter, folder, _ = world
    adapter.send_purchase_order(_po())
    _supplier(folder, partial_ship_rate=1.0).process_once()
    result = adapter.collect()
    [ack] = _docs(result, PoAcknowledgement)
    assert ack.status_code == "AC"
    assert [(ln.line_number, ln.status, ln.quantity) for ln in ack.lines] == [
        ("1", AckLineStatus.ACCEPTED, 2), ("2", AckLineStatus.ACCEPTED, 2), ("2", AckLineStatus.BACKORDERED, 3)]
    [notice] = _docs(result, ShipNotice)
    assert [(ln.line_number, ln.quantity) for ln in notice.lines] == [("1", 2), ("2", 2)]
    [invoice] = _docs(result, SupplierInvoice)
    assert [(ln.line_number, ln.quantity) for ln in invoice.lines] == [("1", 2), ("2", 2)]
    assert match_invoice(invoice, _po(), [notice]).matched  # what shipped is invoiced, not what was ordered


def test_rejected_line_is_neither_shipped_nor_invoiced(world):
    adapter, folder, _ = world
    adapter.send_purchase_order(_po())
    _supplier(folder, reject_line_rate=1.0).process_once()
    result = adapter.collect()
    [ack] = _docs(result, PoAcknowledgement)
    assert [(ln.line_number, ln.status, ln.code) for ln in ack.lines] == [
        ("1", AckLineStatus.REJECTED, "IR"), ("2", AckLineStatus.ACCEPTED, "IA")]
    [notice] = _docs(result, ShipNotice)
    [invoice] = _docs(result, SupplierInvoice)
    assert [ln.line_number for ln in notice.lines] == ["2"] and [ln.line_number for ln in invoice.lines] == ["2"]


def test_late_856_arrives_after_later_polls(world):
    adapter, folder, _ = world
    adapter.send_purchase_order(_po())
    supplier = _supplier(folder, late_856_rate=1.0, late_856_ticks=2)
    assert [n.rsplit("_", 1)[1] for n in supplier.process_once()] == ["997.x12", "855.x12"]
    first = adapter.collect()
    assert [d.document_type for d in first.documents] == ["997", "855"]
    _take(adapter, first)
    assert supplier.process_once() == []  # one poll later: still nothing
    late = supplier.process_once()
    assert [n.rsplit("_", 1)[1] for n in late] == ["856.x12", "810.x12"]
    second = adapter.collect()
    assert [d.document_type for d in second.documents] == ["856", "810"]
    controls = [d.receipt.interchange_control for d in first.documents + second.documents]
    assert controls == sorted(controls) and len(set(controls)) == 4  # the supplier's numbers stay monotonic


def test_malformed_856_is_quarantined_and_rejected(world):
    adapter, folder, _ = world
    adapter.send_purchase_order(_po())
    supplier = _supplier(folder, malformed_856_rate=1.0)
    supplier.process_once()
    result = adapter.collect()
    assert [d.document_type for d in result.documents] == ["997", "855", "810"]
    [q] = result.quarantined
    assert q.file_name.endswith("_856.x12") and q.segment_id == "SE"
    text = LocalDropFolder(folder).get("quarantine", q.file_name).decode()
    segments = [s.strip() for s in text.split("~") if s.strip()]
    assert q.segment_position == next(i for i, s in enumerate(segments) if s.startswith("SE*"))
    assert q.file_name + ".error.json" in LocalDropFolder(folder).list("quarantine")
    supplier.process_once()  # the supplier reads our rejecting 997 for its 856 group
    acks = supplier._load()["acks_received"]
    assert sorted(acks.values()) == ["A", "A", "R"]


def test_faults_are_deterministic_per_seed_and_po():
    faults = SupplierFaults(seed=7, late_856_rate=0.5, partial_ship_rate=0.5, reject_line_rate=0.5,
                            malformed_856_rate=0.5)
    plans = {n: plan_for(_po(n), faults).faults for n in (f"PO{i}" for i in range(40))}
    assert plans == {n: plan_for(_po(n), faults).faults for n in plans}  # same seed, same PO: same faults
    assert len({tuple(f) for f in plans.values()}) > 4  # and the rates spread them over the POs
    other = {n: plan_for(_po(n), SupplierFaults(**{**faults.__dict__, "seed": 8})).faults for n in plans}
    assert other != plans


def test_process_once_function_and_polling_thread(world):
    adapter, folder, _ = world
    adapter.send_purchase_order(_po("PO3001"))
    assert len(process_once(folder, clock=lambda: AT)) == 4
    adapter.send_purchase_order(_po("PO3002"))
    thread, stop = run_in_thread(folder, interval=0.05, clock=lambda: AT)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(LocalDropFolder(folder).list("inbound")) < 8:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(5)
    result = adapter.collect()
    assert sorted({d.document.po_number for d in result.documents if isinstance(d.document, ShipNotice)}) == [
        "PO3001", "PO3002"]


# -- the same exchange over SFTP (adapters/supplier/sftp.py against an in-process asyncssh SFTP server) -------------

@pytest.fixture
def sftp_server(tmp_path):
    """An SFTP server (asyncssh) chrooted to a directory: the supplier's side of the drop folder is that directory,
    so the sandbox supplier works on the server's disk while our adapter goes through SFTP."""
    import asyncio

    asyncssh = pytest.importorskip("asyncssh")
    root = tmp_path / "sftp-root"
    root.mkdir()
    host_key = asyncssh.generate_private_key("ssh-ed25519")

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            return (username, password) == ("edi", "s3cret")

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start():
        return await asyncssh.listen("127.0.0.1", 0, server_host_keys=[host_key], server_factory=Server,
                                     sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=str(root)))

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    port = server.sockets[0].getsockname()[1]
    try:
        yield root, port, host_key.export_public_key().decode().strip()
    finally:
        async def stop():
            server.close()
            await server.wait_closed()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_exchange_over_sftp(sftp_server, tmp_path):
    from adapters.supplier.dropfolder import ManagedFileTransport
    from adapters.supplier.sftp import SftpDropFolder, SftpSettings

    root, port, host_key = sftp_server
    settings = SftpSettings(host="127.0.0.1", port=port, username="edi", password="s3cret",
                            known_host_key=host_key)
    transport = SftpDropFolder(settings)
    assert isinstance(transport, ManagedFileTransport)
    engine = make_engine(f"sqlite:///{tmp_path / 'sftp.db'}")
    create_schema(engine)
    adapter = EdiSupplierAdapter(transport, SqlEdiLedger(engine), our_id="RETAILFLOW", clock=lambda: AT)
    try:
        sent = adapter.send_purchase_order(_po("PO4001"))
        assert (root / "outbound" / sent.file_name).is_file()
        assert not [p for p in (root / "outbound").iterdir() if p.name.startswith(".")]  # temp file renamed
        assert len(_supplier(root).process_once()) == 4
        result = adapter.collect()
        assert [d.document_type for d in result.documents] == ["997", "855", "856", "810"]
        _take(adapter, result)
        assert transport.list("inbound") == [] and transport.list("archive") == [
            f"{sent.file_name}.sent", *(d.receipt.file_name for d in result.documents)]  # our 850's copy first
        transport.remove("archive", "missing.x12")  # removing what is not there is fine
    finally:
        transport.close()
        engine.dispose()


def test_sftp_refuses_an_unknown_host_key(sftp_server):
    import asyncssh
    import paramiko

    from adapters.supplier.sftp import SftpDropFolder, SftpSettings

    _, port, _ = sftp_server
    wrong = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()  # not the server's key
    transport = SftpDropFolder(SftpSettings(host="127.0.0.1", port=port, username="edi", password="s3cret",
                                            known_host_key=wrong))
    with pytest.raises(paramiko.SSHException):
        transport.list("inbound")
    with pytest.raises(ValueError, match="host key"):
        SftpDropFolder(SftpSettings(host="127.0.0.1", username="edi"))


def test_supplier_invoice_posted_once_as_an_erpnext_purchase_invoice(world):
    """The sandbox supplier's 810, matched, posted to ERPNext (the sandbox) as a Purchase Invoice: once per
    supplier invoice number; the same number with other amounts is refused."""
    import httpx

    from canonical.supplier import PayableConflict
    from sandbox.common import ServedApp
    from sandbox.erpnext import create_app
    from tests.contract.test_erpnext import API_KEY, API_SECRET, erp_on

    adapter, folder, _ = world
    po = _po("PO5001")
    adapter.send_purchase_order(po)
    _supplier(folder, partial_ship_rate=1.0).process_once()
    result = adapter.collect()
    [invoice] = _docs(result, SupplierInvoice)
    assert match_invoice(invoice, po, _docs(result, ShipNotice)).matched
    with ServedApp(create_app(api_key=API_KEY, api_secret=API_SECRET)) as served:
        erp = erp_on(served.base_url)
        for code in ("SKU-A", "SKU-B"):
            erp.insert("Item", {"item_code": code}, submit=False)
        name = erp.post_supplier_invoice(invoice)
        assert name.startswith("ACC-PINV-") and erp.post_supplier_invoice(invoice) == name
        doc = erp.get_doc("Purchase Invoice", name)
        assert (doc["supplier"], doc["bill_no"], doc["docstatus"]) == ("ACMESUPPLY", "INVPO5001", 1)
        assert Decimal(str(doc["grand_total"])) == invoice.total.amount == Decimal("30.52")  # 24.00 + 2 x 3.2575
        other = invoice.model_copy(update={"total": invoice.total + invoice.total})
        with pytest.raises(PayableConflict):
            erp.post_supplier_invoice(other)
        rows = httpx.get(f"{served.base_url}/api/resource/Purchase Invoice",
                         headers={"Authorization": f"token {API_KEY}:{API_SECRET}"}).json()["data"]
        assert len(rows) == 1
