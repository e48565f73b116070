"""The Prometheus alert rules (runtime/alerts.py → deploy/prometheus/alerts.yml) and the Grafana dashboard
(deploy/grafana/retailflow.json): generated from the settings, never drifting from the generator, unit-tested
with `promtool test rules` (skipped, saying why, where promtool is missing; `.ci/run` installs Debian's
prometheus package), every expression naming metrics the platform registers, every alert with its runbook."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY
from typer.testing import CliRunner

import runtime.observability  # noqa: F401 (registers the platform's metrics)
from runtime.alerts import build_alerts, build_rules, duration, render_rules
from runtime.settings import ObservabilitySettings

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULES_TEST = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "retailflow.json"
OPERATIONS = ROOT / "docs" / "operations.md"
METRIC = re.compile(r"\b(retailflow_[a-z0-9_]+)\b")


@pytest.fixture
def defaults(monkeypatch) -> ObservabilitySettings:
    """The default settings: no RETAILFLOW_* from the environment or a .env file."""
    for key in list(os.environ):
        if key.startswith("RETAILFLOW_"):
            monkeypatch.delenv(key)
    return ObservabilitySettings(_env_file=None)


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        reason = "promtool is not on PATH (Debian: apt-get install prometheus; .ci/run installs it)"
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    return path


def test_the_committed_rules_are_what_the_generator_writes(defaults):
    assert RULES.read_text() == render_rules(defaults), (
        "deploy/prometheus/alerts.yml drifted: run `retailflow ops alert-rules --out deploy/prometheus/alerts.yml`")
    assert yaml.safe_load(RULES.read_text()) == build_rules(defaults)  # the hand-written YAML reads back as built


def test_the_cli_writes_the_rules_from_the_environment(tmp_path, defaults, monkeypatch):
    from retailflow.cli import app

    out = tmp_path / "alerts.yml"
    monkeypatch.setenv("RETAILFLOW_SLO_ERP_BOOKING_SECONDS", "1800")
    result = CliRunner().invoke(app, ["ops", "alert-rules", "--out", str(out)])
    assert result.exit_code == 0, result.output
    [booking] = [r for r in yaml.safe_load(out.read_text())["groups"][0]["rules"]
                 if r["alert"] == "RetailflowErpBookingSlow"]
    assert booking["expr"].endswith("> 1800") and "SLO 30m" in booking["annotations"]["description"]
    printed = CliRunner().invoke(app, ["ops", "alert-rules"])
    assert printed.exit_code == 0 and printed.output == out.read_text()


def test_thresholds_and_for_come_from_the_settings(defaults):
    custom = defaults.model_copy(update={"slo_order_ingestion_seconds": 2.5, "slo_quantile": 0.99,
                                         "slo_parked_run_age_seconds": 3600.0, "slo_alert_for_seconds": 600.0,
                                         "slo_unmatched_settlement_lines": 12, "slo_breaker_open_seconds": 120.0,
                                         "alerts_runbook_base_url": "https://example.test/ops.md"})
    alerts = {a.name: a.rule(custom.alerts_runbook_base_url) for a in build_alerts(custom)}
    ingestion = alerts["RetailflowOrderIngestionSlow"]
    assert ingestion["expr"].startswith("histogram_quantile(0.99, ") and ingestion["expr"].endswith("> 2.5")
    assert ingestion["for"] == "10m" and "p99" in ingestion["annotations"]["description"]
    assert alerts["RetailflowParkedRunTooOld"]["expr"].endswith("> 3600")
    assert alerts["RetailflowUnmatchedSettlementLines"]["expr"].endswith("> 12")
    assert alerts["RetailflowPartnerBreakerOpen"]["for"] == "2m"
    assert ingestion["annotations"]["runbook_url"] == "https://example.test/ops.md#retailfloworderingestionslow"
    assert [duration(s) for s in (90, 300, 14400, 86400, 0.4)] == ["90s", "5m", "4h", "1d", "0s"]


def test_every_alert_has_labels_annotations_a_runbook_section_and_promtool_cases(defaults):
    tests = yaml.safe_load(RULES_TEST.read_text())["tests"]
    cases: dict[str, list[list]] = {}
    for group in tests:
        for case in group["alert_rule_test"]:
            cases.setdefault(case["alertname"], []).append(case.get("exp_alerts") or [])
    headings = {m.lower() for m in re.findall(r"^#{2,4} (Retailflow\w+)", OPERATIONS.read_text(), re.M)}
    for rule in build_rules(defaults)["groups"][0]["rules"]:
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"])
        assert rule["annotations"]["runbook_url"] == f"docs/operations.md#{name.lower()}"
        assert name.lower() in headings, f"docs/operations.md has no section for {name}"
        assert any(exp == [] for exp in cases.get(name, [])), f"no promtool case where {name} does not fire"
        assert any(exp for exp in cases.get(name, [])), f"no promtool case where {name} fires"


def _registered() -> set[str]:
    """Every sample name the platform's metrics expose (histograms' _bucket/_sum/_count, counters' _total)."""
    names = set(REGISTRY._names_to_collectors)  # prometheus_client keeps no public index of registered names
    return {n for n in names if n.startswith("retailflow_")}


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = []

    def walk(panels):
        for panel in panels:
            exprs.extend(t["expr"] for t in panel.get("targets", []) if "expr" in t)
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    return exprs


def test_every_expression_names_a_registered_metric(defaults):
    registered = _registered()
    assert {"retailflow_order_ingestion_seconds_bucket", "retailflow_parked_runs",
            "retailflow_partner_breaker_state", "retailflow_quarantine_replays_total"} <= registered
    exprs = [r["expr"] for r in build_rules(defaults)["groups"][0]["rules"]] + _dashboard_exprs()
    used = set()
    for expr in exprs:
        names = set(METRIC.findall(expr))
        assert names, f"no retailflow metric in {expr!r}"
        assert names <= registered, f"{expr!r} names {sorted(names - registered)}, which nothing registers"
        used |= names
    # and the dashboard shows every business metric
    for name in ("retailflow_order_ingestion_seconds_bucket", "retailflow_order_erp_booking_seconds_bucket",
                 "retailflow_inventory_publication_seconds_bucket", "retailflow_shipment_confirmation_seconds_bucket",
                 "retailflow_parked_runs_by_reason", "retailflow_parked_run_oldest_age_seconds",
                 "retailflow_settlement_unmatched_lines", "retailflow_quarantined_total", "retailflow_quarantine_open",
                 "retailflow_quarantine_replays_total", "retailflow_partner_breaker_state",
                 "retailflow_webhooks_total", "retailflow_activity_failures_total", "retailflow_activity_retries_total",
                 "retailflow_shopify_cost_available"):
        assert name in set().union(*(METRIC.findall(e) for e in _dashboard_exprs())), f"no panel shows {name}"
    assert used


def test_the_dashboard_is_importable_grafana_json():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 39 and dashboard["uid"] and dashboard["title"]
    [ds] = [v for v in dashboard["templating"]["list"] if v["name"] == "DS_PROMETHEUS"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    ids = []

    def walk(panels):
        for panel in panels:
            ids.append(panel["id"])
            if panel["type"] != "row":
                assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
                assert panel["targets"] and panel["gridPos"]
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    assert len(ids) == len(set(ids))


def test_promtool_checks_and_unit_tests_the_rules(tmp_path, defaults):
    promtool = _promtool()
    check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    run = subprocess.run([promtool, "test", "rules", str(RULES_TEST)], capture_output=True, text=True, timeout=120,
                         cwd=RULES_TEST.parent)
    assert run.returncode == 0, run.stdout + run.stderr
    # rules from other settings are valid too
    custom = tmp_path / "custom.yml"
    custom.write_text(render_rules(defaults.model_copy(update={"slo_quantile": 0.99, "slo_alert_for_seconds": 0.0,
                                                               "slo_order_ingestion_seconds": 0.75})))
    check = subprocess.run([promtool, "check", "rules", str(custom)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
