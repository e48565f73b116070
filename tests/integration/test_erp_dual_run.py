"""ERP dual-run on the dev server (issue 21, part 2): `retailflow dev --sandbox` with a routing file
(RETAILFLOW_ERP_ROUTING_FILE) that keeps the embedded ERP the system of record and posts orders and invoices in
shadow to the ERPNext sandbox. Shopify webhooks go through the real intake; each order completes, its sales order
and invoice are in both ERPs (marked shadow in ERPNext, read through ERPNext's API); a ParityCheck started on the
finance queue (and one by `retailflow erp parity-check --wait`) finds them equal; `GET /erp/parity` and
`retailflow erp parity-report` say so."""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import httpx
import pytest

from retailflow.devstack import port_open
from runtime.settings import Settings
from tests.integration.conftest import free_port
from tests.integration.devproc import dev_process
from tests.integration.test_vendor_profile import api_json, database_url, order_done, wait_for

pytestmark = pytest.mark.integration

SAMPLE = "tests/fixtures/shopify/webhook_orders_create_sample_v2024.json"
ROUTING = """
[erps.legacy]
adapter = "local"
[erps.cloud]
adapter = "erpnext"

[[route]]
record = "legacy"
[[route]]
process = "orders"
record = "legacy"
shadow = "cloud"
[[route]]
process = "invoices"
record = "legacy"
shadow = "cloud"
"""


async def _parity_check(temporal_port: int, process: str):
    from runtime.cluster import connect_client
    from workflows.parity_check import ParityCheck, ParityCheckInput

    settings = Settings(_env_file=None, temporal_address=f"localhost:{temporal_port}")
    client = await connect_client(settings)
    return await client.execute_workflow(ParityCheck.run, ParityCheckInput(process=process),
                                         id=f"parity-check:{process}:{uuid.uuid4().hex[:8]}",
                                         task_queue=settings.queue_for("finance"))


def test_orders_post_to_both_erps_and_the_parity_check_finds_them_equal(tmp_path, engine):
    routing = tmp_path / "erp_routing.toml"
    routing.write_text(ROUTING)
    ports = {name: free_port() for name in ("avatax", "erpnext", "shopify", "amazon", "shipstation")}
    erpnext = f"http://127.0.0.1:{ports['erpnext']}"
    with dev_process(tmp_path, "--sandbox", database_url=database_url(engine),
                     RETAILFLOW_SANDBOX_PORTS=json.dumps(ports), RETAILFLOW_ERP_ROUTING_FILE=str(routing),
                     RETAILFLOW_ERPNEXT_BASE_URL=erpnext) as dev:
        order_ids = []
        for _ in range(3):
            sent = dev.send(SAMPLE, "--as-new-order")
            assert sent.returncode == 0, sent.stdout + sent.stderr
            order_ids.append(re.search(r'"order:shopify:(\d+)"', sent.stdout).group(1))
        for oid in order_ids:
            order_done(dev, "shopify", oid)
        s = Settings(_env_file=None)
        auth = {"Authorization": f"token {s.erpnext_api_key}:{s.erpnext_api_secret.get_secret_value()}"}
        for oid in order_ids:
            ref = f"order:shopify:{oid}"
            sos = httpx.get(f"{erpnext}/api/resource/Sales Order", headers=auth, params={
                "filters": json.dumps([["po_no", "=", ref]]), "fields": json.dumps(["*"])}).json()["data"]
            assert len(sos) == 1 and sos[0]["retailflow_shadow"] == 1, sos
            local = api_json(dev, f"/erp/sales-orders?external_ref={ref}")
            assert local and local[0]["status"] == "invoiced"
        result = asyncio.run(_parity_check(dev.temporal_port, "invoices"))
        assert (result.checked, result.equal, result.different) == (3, 3, 0), result
        checked = dev.cli("erp", "parity-check", "--process", "orders", "--wait", timeout=120)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "3 compared: 3 equal, 0 accepted, 0 left different, 0 not posted yet" in checked.stdout
        parity = wait_for("parity", lambda: api_json(dev, "/erp/parity?process=orders"),
                          lambda p: p is not None and p["days"] and p["days"][0]["equal"] == 3)
        assert parity["unchecked"] == 0 and {r["business_key"] for r in parity["results"]} == {
            f"order:shopify:{oid}" for oid in order_ids}
        report = dev.cli("erp", "parity-report", "--process", "orders")
        assert report.returncode == 0, report.stdout + report.stderr
        assert "3 business key(s) compared: 3 equal, 0 different, 0 accepted." in report.stdout
    assert dev.proc.returncode == 0, dev.output[-3000:]
    assert "Traceback" not in dev.output, dev.output[-5000:]
    for port in [*dev.ports, *ports.values()]:
        assert not port_open("127.0.0.1", port), f"port {port} still open after Ctrl-C"
