"""Prometheus alert rules for the business SLOs, built from the settings (`ObservabilitySettings.slo_*`).

`retailflow ops alert-rules [--out FILE]` writes them; `deploy/prometheus/alerts.yml` is what the default settings
give (tests/unit/test_alert_rules.py fails if it drifts, and runs `promtool test rules` on
`deploy/prometheus/alerts_test.yml`). Each alert's runbook is the section of docs/operations.md named after it.

The file is written without a YAML library (PyYAML is a dev dependency only): every scalar is a JSON string,
which YAML reads as a double-quoted scalar.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from runtime.settings import ObservabilitySettings

GROUP = "retailflow-business-slos"


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_seconds: float
    severity: str
    summary: str
    description: str
    labels: dict[str, str] = field(default_factory=dict)

    def rule(self, runbook_base: str) -> dict:
        rule: dict = {"alert": self.name, "expr": self.expr}
        if self.for_seconds > 0:
            rule["for"] = duration(self.for_seconds)
        rule["labels"] = {"severity": self.severity, "team": "retail-ops", **self.labels}
        rule["annotations"] = {"summary": self.summary, "description": self.description,
                               "runbook_url": f"{runbook_base}#{self.name.lower()}"}
        return rule


def duration(seconds: float) -> str:
    """A Prometheus duration: 4h, 15m, 90s."""
    s = int(round(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size and s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


def number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _quantile(metric: str, by: str, window: str, q: float) -> str:
    return f"histogram_quantile({number(q)}, sum by (le, {by}) (rate({metric}_bucket[{window}])))"


def build_alerts(s: ObservabilitySettings) -> list[Alert]:
    q, pct = s.slo_quantile, f"p{number(s.slo_quantile * 100)}"
    wait = s.slo_alert_for_seconds
    return [
        Alert("RetailflowOrderIngestionSlow",
              f"{_quantile('retailflow_order_ingestion_seconds', 'channel', '10m', q)} > "
              f"{number(s.slo_order_ingestion_seconds)}", wait, "warning",
              "Orders from {{ $labels.channel }} take long to start",
              f"{pct} of webhook received → order workflow started is {{{{ $value | humanizeDuration }}}} on "
              f"{{{{ $labels.channel }}}} (SLO {duration(s.slo_order_ingestion_seconds)}, last 10m)."),
        Alert("RetailflowErpBookingSlow",
              f"{_quantile('retailflow_order_erp_booking_seconds', 'channel', '30m', q)} > "
              f"{number(s.slo_erp_booking_seconds)}", wait, "warning",
              "Orders from {{ $labels.channel }} reach the ERP late",
              f"{pct} of order started → ERP sales order booked is {{{{ $value | humanizeDuration }}}} on "
              f"{{{{ $labels.channel }}}} (SLO {duration(s.slo_erp_booking_seconds)}, last 30m)."),
        Alert("RetailflowInventoryPublicationSlow",
              f"{_quantile('retailflow_inventory_publication_seconds', 'channel', '15m', q)} > "
              f"{number(s.slo_inventory_publication_seconds)}", wait, "warning",
              "Availability reaches {{ $labels.channel }} late",
              f"{pct} of availability publication → {{{{ $labels.channel }}}} acknowledged is "
              f"{{{{ $value | humanizeDuration }}}} (SLO {duration(s.slo_inventory_publication_seconds)}, last 15m); "
              "the channel may sell stock that is gone."),
        Alert("RetailflowInventoryPublicationsFailing",
              "sum by (channel) (increase(retailflow_inventory_publications_total{outcome=\"failed\"}[15m])) > 0 "
              "unless sum by (channel) (increase(retailflow_inventory_publications_total{outcome=\"published\"}"
              "[15m])) > 0", wait, "critical",
              "No availability publication to {{ $labels.channel }} succeeds",
              "Every availability publication to {{ $labels.channel }} in the last 15m failed: the channel shows "
              "stale stock."),
        Alert("RetailflowShipmentConfirmationSlow",
              f"{_quantile('retailflow_shipment_confirmation_seconds', 'channel', '1h', q)} > "
              f"{number(s.slo_shipment_confirmation_seconds)}", wait, "warning",
              "Shipments reach {{ $labels.channel }} late",
              f"{pct} of warehouse shipped → {{{{ $labels.channel }}}} confirmed is "
              f"{{{{ $value | humanizeDuration }}}} (SLO {duration(s.slo_shipment_confirmation_seconds)}, last 1h): "
              "buyers wait for tracking."),
        Alert("RetailflowParkedRunTooOld",
              f"max by (kind, reason) (retailflow_parked_run_oldest_age_seconds) > "
              f"{number(s.slo_parked_run_age_seconds)}", 0, "warning",
              "A parked {{ $labels.kind }} run ({{ $labels.reason }}) waits too long for an analyst",
              f"The oldest {{{{ $labels.kind }}}} run parked at {{{{ $labels.reason }}}} has waited "
              f"{{{{ $value | humanizeDuration }}}} (SLO {duration(s.slo_parked_run_age_seconds)})."),
        Alert("RetailflowParkedRunsPiling",
              f"sum by (kind) (retailflow_parked_runs) > {s.slo_parked_runs}", 900, "warning",
              "{{ $value }} {{ $labels.kind }} runs wait for an analyst",
              f"More than {s.slo_parked_runs} {{{{ $labels.kind }}}} runs are parked (for 15m): a systematic "
              "cause (a SKU mapping, an account, a partner) rather than single bad orders."),
        Alert("RetailflowUnmatchedSettlementLines",
              f"sum by (provider) (retailflow_settlement_unmatched_lines) > {s.slo_unmatched_settlement_lines}",
              6 * 3600, "warning",
              "{{ $value }} settlement lines from {{ $labels.provider }} are unmatched",
              f"More than {s.slo_unmatched_settlement_lines} lines of {{{{ $labels.provider }}}} settlements have "
              "been in open exceptions for 6h: the payout cannot be booked in full."),
        Alert("RetailflowQuarantineRising",
              f"sum by (source) (increase(retailflow_quarantined_total[1h])) > {number(s.slo_quarantined_per_hour)}",
              0, "warning",
              "{{ $labels.source }} deliveries are being quarantined",
              f"{{{{ $value }}}} {{{{ $labels.source }}}} deliveries were quarantined in the last hour "
              f"(threshold {number(s.slo_quarantined_per_hour)}): a secret, a mapping or a partner changed."),
        Alert("RetailflowQuarantineBacklog",
              f"sum by (source) (retailflow_quarantine_open) > {s.slo_quarantine_open}", 1800, "warning",
              "{{ $value }} {{ $labels.source }} deliveries wait in quarantine",
              f"More than {s.slo_quarantine_open} quarantined {{{{ $labels.source }}}} deliveries are not "
              "resolved (for 30m): fix the cause and replay them."),
        Alert("RetailflowPartnerBreakerOpen",
              "max by (partner) (retailflow_partner_breaker_state) >= 1", s.slo_breaker_open_seconds, "critical",
              "The circuit breaker to {{ $labels.partner }} is open",
              f"Calls to {{{{ $labels.partner }}}} have been refused by its circuit breaker for "
              f"{duration(s.slo_breaker_open_seconds)}: work for it waits (and retries when it closes)."),
        Alert("RetailflowNegativeFreeStock",
              "retailflow_inventory_negative_free_rows > 0", 900, "critical",
              "Stock promised that is not there",
              "{{ $value }} item/location rows have had negative free stock for 15m: units sold or reserved "
              "that are not on hand."),
    ]


def build_rules(settings: ObservabilitySettings) -> dict:
    return {"groups": [{"name": GROUP, "rules": [a.rule(settings.alerts_runbook_base_url)
                                                 for a in build_alerts(settings)]}]}


def render_rules(settings: ObservabilitySettings) -> str:
    """The rules file (YAML)."""
    out = ["# Generated by `retailflow ops alert-rules` from the settings (runtime/alerts.py); do not edit by hand.",
           "# What each alert means and what to do: docs/operations.md", "groups:"]
    for group in build_rules(settings)["groups"]:
        out.append(f"  - name: {_q(group['name'])}")
        out.append("    rules:")
        for rule in group["rules"]:
            out.append(f"      - alert: {_q(rule['alert'])}")
            out.append(f"        expr: {_q(rule['expr'])}")
            if "for" in rule:
                out.append(f"        for: {rule['for']}")
            for key in ("labels", "annotations"):
                out.append(f"        {key}:")
                out.extend(f"          {k}: {_q(v)}" for k, v in rule[key].items())
    return "\n".join(out) + "\n"


def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)
