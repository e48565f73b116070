"""Analysts' operations: list and find parked orders, resume with corrected data, audit trail, metrics,
correlation ids — on the dev server with the real API, worker and database."""

from __future__ import annotations

import csv
import io
import json

import pytest

from retailflow.observability import HEADER_KEY

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
    assert update["name"] == "act" and update["actor"] == "ana@example.com"
    assert update["reason"] == "SKU typo in the storefront"
    invoice = next(e for e in audit if e["name"] == "create_invoice")
    assert invoice["state"] == "completed" and invoice["output"]["invoice_id"].startswith("SINV-")
    assert audit[-1]["kind"] == "workflow" and audit[-1]["name"] == "completed"
    rejected = [e for e in audit if e["kind"] == "update" and e["input"].get("action") == "skip"]
    assert rejected == []  # validator rejections are not written to history

    text = (await stack.http.get(f"/orders/shopify/{oid}/audit", params={"format": "csv"})).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["kind"] == "workflow" and any(r["actor"] == "ana@example.com" for r in rows)


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
