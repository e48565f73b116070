"""`retailflow simulate peak --profile ci` end to end (issue 19): the whole platform on the vendor sandboxes, a
steady rate then 10× through the real intake, ERPNext throttling at a fixed quota, Shopify's Admin API down for a
window, a scarce hot item; the report's invariants come from the records (Temporal, ERPNext, ShipStation,
Shopify). A few minutes on 2 cores; bounded by the profile's counts and drain timeout."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("retailflow"))


def test_the_ci_peak_loses_nothing_doubles_nothing_oversells_nothing(tmp_path):
    report, per_order = tmp_path / "peak.md", tmp_path / "orders.json"
    run = subprocess.run([CLI, "simulate", "peak", "--profile", "ci", "--quiet", "--data-dir", str(tmp_path / "data"),
                          "--report", str(report), "--json", str(per_order)],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    text = report.read_text() if report.exists() else ""
    log = (tmp_path / "data" / "stack.log")
    assert run.returncode == 0, f"{run.stdout[-4000:]}\n{run.stderr[-3000:]}\n{log.read_text()[-3000:] if log.exists() else ''}"
    for invariant in ("lost", "doubled", "oversold"):
        assert re.search(rf"\| {invariant} \(.*\| \*\*0\*\*", text), text
    orders = json.loads(per_order.read_text())
    assert len(orders) == 114 and {o["channel"] for o in orders} == {"shopify", "amazon"}
    assert all(o["status"] == "COMPLETED" or o["needs_attention"] for o in orders)
    assert sum(o["status"] == "COMPLETED" for o in orders) >= 40  # the hot item's units went out
    # the faults happened and were met: ERPNext refused beyond its quota, Shopify was down, its breaker tripped
    quota = re.search(r"(\d+) of (\d+) requests answered 429", text)
    assert quota and int(quota.group(1)) > 0, text
    assert re.search(r"shopify answers 503 from 25 s for 20 s: [1-9]\d* requests refused", text), text
    assert re.search(r"retailflow-channels: [1-9]\d* trip\(s\), now closed", text), text
    assert "Inventory publication delay" in text and "shopify p50" in text
