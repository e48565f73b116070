"""Drop-ship suppliers wired into the worker (issue 20): RETAILFLOW_SUPPLIER_* settings, runtime.suppliers
build_suppliers (the EDI adapter over the local drop folder, default <data_dir>/edi, or SFTP), the worker's node
steps serving `supplier:edi` nodes with it, and the sandbox supplier answering from the same folder."""

from __future__ import annotations

from decimal import Decimal

import pytest

import worker
from activities.sourcing import NodeRelease, NodeReleaseInput, NodeReserveInput
from adapters.sql import create_schema, make_engine
from adapters.supplier.dropfolder import LocalDropFolder
from adapters.supplier.edi import EdiSupplierAdapter
from canonical.kits import ComponentLine
from canonical.order import Address
from runtime.registry import build_adapters
from runtime.settings import Settings
from runtime.suppliers import build_suppliers, supplier_drop_folder
from sandbox.stack import SandboxStack, start_edi_supplier

SHIP_TO = Address(name="Ada", line1="1 Main St", city="Louisville", region="KY", postal_code="40003", country="US")


@pytest.fixture
def engine(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path / 'rf.db'}")
    create_schema(eng)
    yield eng
    eng.dispose()


def test_the_drop_folder_defaults_to_the_data_dir_and_the_env_sets_the_edi_identity(tmp_path, monkeypatch):
    assert supplier_drop_folder(Settings(data_dir=tmp_path)) == tmp_path / "edi"
    assert supplier_drop_folder(Settings(data_dir=tmp_path, supplier_drop_folder=tmp_path / "x")) == tmp_path / "x"
    monkeypatch.setenv("RETAILFLOW_SUPPLIER_EDI_ID", "SHOPCO")
    monkeypatch.setenv("RETAILFLOW_SUPPLIER_PARTNER_QUALIFIERS", '{"ACME": "01"}')
    monkeypatch.setenv("RETAILFLOW_SUPPLIER_EDIFACT_PARTNERS", '["EUROPARTS"]')
    s = Settings()
    assert (s.supplier_edi_id, s.supplier_partner_qualifiers, s.supplier_edifact_partners) == (
        "SHOPCO", {"ACME": "01"}, ["EUROPARTS"])
    with pytest.raises(ValueError):
        Settings(supplier_edi_usage="X")


def test_build_suppliers_gives_the_edi_adapter_on_the_local_folder_or_refuses_sftp_without_a_host_key(tmp_path,
                                                                                                       engine):
    [(name, edi)] = build_suppliers(Settings(data_dir=tmp_path, supplier_edi_id="SHOPCO"), engine).items()
    assert name == "edi" and isinstance(edi, EdiSupplierAdapter) and edi.us.id == "SHOPCO"
    assert isinstance(edi.transport, LocalDropFolder) and edi.transport.root == tmp_path / "edi"
    with pytest.raises(ValueError, match="host key"):
        build_suppliers(Settings(data_dir=tmp_path, supplier_sftp_host="sftp.example.com",
                                 supplier_sftp_username="rf"), engine)


def test_the_worker_sends_a_drop_ship_node_its_850_and_the_sandbox_answers_from_the_same_folder(tmp_path, engine):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'rf.db'}", data_dir=tmp_path,
                        split_fulfillment_channels=["shopify"])
    acts = {fn.__name__: fn for fn in worker.sourcing_activities(build_adapters(settings, engine), settings)}
    rel = NodeRelease(ref="order:shopify:7/ACME/2", node_id="ACME", kind="dropship", adapter="supplier:edi",
                      location="SUP-ACME", lines=[ComponentLine(line_id="1", item_code="PENDANT", quantity=1)])
    ref = acts["release_to_node"](NodeReleaseInput(release=rel, order_ref="order:shopify:7", ship_to=SHIP_TO,
                                                   currency="USD", unit_prices={"1": Decimal("89.00")}))
    drop = LocalDropFolder(tmp_path / "edi")
    assert [n for n in drop.list("outbound") if n.startswith("850_ACME_")]
    thread, stop = start_edi_supplier(settings, interval=0.05)
    try:
        for _ in range(100):
            if [n for n in drop.list("inbound") if n.endswith("_810.x12")]:
                break
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(timeout=5)
    updates = acts["poll_node"](NodeReserveInput(release=rel.model_copy(update={"release_id": ref.release_id})))
    assert updates.acknowledged and [s.quantity for s in updates.shipments[0].lines] == [1]


def test_every_sandbox_includes_the_edi_supplier_but_a_chosen_few_do_not(tmp_path):
    assert SandboxStack(Settings(data_dir=tmp_path)).edi_supplier
    assert not SandboxStack(Settings(data_dir=tmp_path), ["shopify"]).edi_supplier
    assert not SandboxStack(Settings(data_dir=tmp_path, supplier_sftp_host="sftp.example.com")).edi_supplier
