"""Analysts' operations: list and find parked orders, resume with corrected data, audit trail, metrics,
correlation ids — on the dev server with the real API, worker and database."""

from __future__ import annotations

import csv
import io
import json

import pytest

from runtime.observability import HEADER_KEY

pytestmark = pytest.mark.integration


async def test_parked_order_is_listed_fixed_with_corrected_sku_and_audited(stack):
    body, oid = stack.order_body()
    bad = body.replace(b'"SKU2006-035"', b'"SKU2006-35"')  # a typo in the channel SKU
    resp = await stack.send_shopify(bad)
    assert resp.status_code == 202
    await stack.wait_status("shopify", oid, {"needs_attention"})

    # the status projection lists it (search attributes are eventually consistent; the projection is not)
    page = (await stack.http.get("/orders", params={"needs_attention": "true", "channel": "shopify"})).json()
    row = next(i for i in page["items"] if i["external_order_id"] == oid)
    assert row["status"] == "needs_attention" and row["order_number"] == "#9999"
    assert "SKU2006-35" in row["reason"] and "catalog import" in row["suggested_action"]
    parked = (await stack.http.get("/ops/needs-attention")).json()
    assert any(p["workflow_id"] == f"order:shopify:{oid}" and p["suggested_action"] for p in parked)

    # invalid actions are refused by the workflow's update validator, and leave no trace
    skip = await stack.http.post(f"/orders/shopify/{oid}/actions/skip", json={"actor": "ana", "reason": "meh"})
    assert skip.status_code == 409 and "cannot be skipped" in skip.json()["detail"]
    empty = await stack.http.post(f"/orders/shopify/{oid}/actions/resume", json={"actor": "ana", "reason": "x"})
    assert empty.status_code == 409 and "corrections" in empty.json()["detail"]

    fix = await stack.http.post(f"/orders/shopify/{oid}/actions/resume", json={
        "actor": "ana@example.com", "reason": "SKU typo in the storefront",
        "corrections": {"sku_corrections": {"SKU2006-35": "SKU2006-035"}}})
    assert fix.status_code == 202, fix.text
    view = await stack.wait_status("shopify", oid, {"completed"})
    assert any(s["name"] == "corrected_data" and "SKU2006-35 → SKU2006-035" in s["detail"] for s in view["steps"])
    done = (await stack.http.get("/orders", params={"status": "completed"})).json()
    assert any(i["external_order_id"] == oid for i in done["items"])

    audit = (await stack.http.get(f"/orders/shopify/{oid}/audit")).json()
    failed = [e for e in audit if e["kind"] == "step" and e["state"] == "failed"]
    assert failed and failed[0]["name"] == "resolve_skus" and failed[0]["error"].startswith("UnknownSku")
    update = next(e for e in audit if e["kind"] == "update")
    assert update["name"] == "resume" and update["actor"] == stack.admin_actor  # the key, not the body's "actor"
    assert update["reason"] == "SKU typo in the storefront"
    invoice = next(e for e in audit if e["name"] == "create_invoice")
    assert invoice["state"] == "completed" and invoice["output"]["invoice_id"].startswith("SINV-")
    assert audit[-1]["kind"] == "workflow" and audit[-1]["name"] == "completed"
    rejected = [e for e in audit if e["kind"] == "update" and e["input"].get("action") == "skip"]
    assert rejected == []  # validator rejections are not written to history

    text = (await stack.http.get(f"/orders/shopify/{oid}/audit", params={"format": "csv"})).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["kind"] == "workflow" and any(r["actor"] == stack.admin_actor for r in rows)


async def test_cancel_refused_after_shipment(stack):
    body, oid = stack.order_body()
    assert (await stack.send_shopify(body)).status_code == 202
    await stack.wait_status("shopify", oid, {"completed"})
    late = await stack.http.post(f"/orders/shopify/{oid}/actions/cancel", json={"actor": "a", "reason": "b"})
    assert late.status_code == 409


async def test_correlation_id_follows_the_webhook_into_activities_and_metrics_count(stack):
    body, oid = stack.order_body()
    resp = await stack.http.post("/webhooks/shopify", content=body, headers={
        "Content-Type": "application/json", "X-Shopify-Topic": "orders/create", "X-Shopify-Webhook-Id": oid,
        "X-Shopify-Hmac-Sha256": __import__("adapters.marketplace.shopify", fromlist=["x"]).compute_hmac(
            body, stack.settings.shopify_webhook_secret.get_secret_value()),
        "X-Correlation-Id": f"corr-{oid}"})
    assert resp.status_code == 202 and resp.headers["X-Correlation-Id"] == f"corr-{oid}"
    await stack.wait_status("shopify", oid, {"completed"})
    history = await stack.client.get_workflow_handle(f"order:shopify:{oid}").fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    assert json.loads(started.header.fields[HEADER_KEY].data) == f"corr-{oid}"
    scheduled = [e.activity_task_scheduled_event_attributes for e in history.events if e.HasField(
        "activity_task_scheduled_event_attributes")]
    assert scheduled and all(json.loads(a.header.fields[HEADER_KEY].data) == f"corr-{oid}" for a in scheduled)

    dup = await stack.send_shopify(body, webhook_id=oid)
    assert dup.json()["duplicate"] is True
    metrics = (await stack.http.get("/metrics")).text
    assert 'retailflow_webhook_duplicates_total{source="shopify"}' in metrics
    assert 'retailflow_order_milestone_seconds_count{channel="shopify",milestone="completed"}' in metrics


async def test_cli_bulk_retry_by_visibility_query_and_csv_audit(stack, tmp_path):
    import asyncio as aio
    import os
    import subprocess
    import sys
    from pathlib import Path

    cli = str(Path(sys.executable).parent / "retailflow")
    ids = []
    for _ in range(2):
        body, oid = stack.order_body()
        assert (await stack.send_shopify(body.replace(b'"SKU2006-035"', b'"SKU-BULK-1"'))).status_code == 202
        ids.append(oid)
    for oid in ids:
        await stack.wait_status("shopify", oid, {"needs_attention"})
    viewer = stack.key("viewer", name="vic")
    analyst = stack.key("analyst", name="ana")
    env = {**os.environ, "RETAILFLOW_TEMPORAL_ADDRESS": stack.client.service_client.config.target_host,
           "RETAILFLOW_DATABASE_URL": stack.settings.effective_database_url, "RETAILFLOW_API_KEY": analyst}
    if stack.engine.dialect.name == "postgresql":  # the test's schema of its own, for the CLI's connection too
        with stack.engine.connect() as conn:
            env["PGOPTIONS"] = f"-csearch_path={conn.exec_driver_sql('SHOW search_path').scalar_one()}"
    query = f'NeedsAttention = true AND Skus = "SKU-BULK-1" AND TaskQueue = "{stack.settings.task_queue}"'

    async def run(*args: str, key: str | None = analyst) -> subprocess.CompletedProcess:
        run_env = {k: v for k, v in env.items() if k != "RETAILFLOW_API_KEY"}
        if key is not None:
            run_env["RETAILFLOW_API_KEY"] = key
        return await aio.to_thread(subprocess.run, [cli, "ops", *args], env=run_env, capture_output=True,
                                   text=True, timeout=60)

    # the actor is the key's principal: no key, or a viewer's, retries nothing
    for key, why in ((None, "RETAILFLOW_API_KEY"), (viewer, "role viewer"), ("rfk_nope_nope", "not an active key")):
        refused = await run("retry", "--query", query, "--reason", "bulk", key=key)
        assert refused.returncode == 1 and why in refused.stderr, refused.stdout + refused.stderr

    for _ in range(50):  # visibility is eventually consistent
        listed = await run("retry", "--query", query, "--reason", "bulk", "--dry-run")
        if all(f"order:shopify:{oid}" in listed.stdout for oid in ids):
            break
        await aio.sleep(0.2)
    assert all(f"order:shopify:{oid}" in listed.stdout for oid in ids), listed.stdout + listed.stderr

    stack.adapters.erp.map_sku("shopify", "SKU-BULK-1", "FURN-COFFEE-TABLE")
    done = await run("retry", "--query", query, "--reason", "mapped SKU-BULK-1")
    assert done.returncode == 0 and "retried 2 run(s)" in done.stdout, done.stdout + done.stderr
    for oid in ids:
        await stack.wait_status("shopify", oid, {"completed"})

    out = tmp_path / "audit.csv"
    audit = await run("audit", f"order:shopify:{ids[0]}", "--format", "csv", "--output", str(out))
    assert audit.returncode == 0, audit.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert any(r["kind"] == "update" and r["actor"] == "key:ana" and r["reason"] == "mapped SKU-BULK-1"
               for r in rows)
    generic = (await stack.http.get(f"/ops/audit/order:shopify:{ids[0]}")).json()
    assert [e["name"] for e in generic] == [r["name"] for r in rows]
