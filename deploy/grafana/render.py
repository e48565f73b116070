"""Render the dashboard's panels (deploy/grafana/retailflow.json) from live /metrics scrapes into one static HTML
page, for a screenshot where no Grafana and no Prometheus run (docs/operations.md):

    .venv/bin/python deploy/grafana/render.py --url http://127.0.0.1:8000/metrics \
        --url http://127.0.0.1:9464/metrics --out /tmp/retailflow-dashboard.html
    chromium --headless --no-sandbox --window-size=1600,2400 --screenshot=docs/operations-dashboard.png \
        file:///tmp/retailflow-dashboard.html

It is not a PromQL engine: one scrape has no time range, so each panel shows the value since the process started
for its first metric, grouped by the panel's `by (...)` labels — a histogram panel its quantile over every
observation so far (from the cumulative buckets), a rate/increase panel the counter's total, a gauge panel the
gauge (summed or maxed as the expression says), and `> 0` drops zero rows.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import re
import urllib.request
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

DASHBOARD = Path(__file__).with_name("retailflow.json")
METRIC = re.compile(r"\b(retailflow_[a-z0-9_]+)\b")
BY = re.compile(r"\b(sum|max) by \(([^)]*)\)")


def scrape(urls: list[str]) -> list[tuple[str, dict[str, str], float]]:
    samples = []
    for url in urls:
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 (loopback scrape)
            text = resp.read().decode()
        for family in text_string_to_metric_families(text):
            samples.extend((s.name, dict(s.labels), s.value) for s in family.samples)
    return samples


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile over cumulative (le, count) pairs."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = q * buckets[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return prev_le
            return prev_le + (le - prev_le) * ((rank - prev_count) / (count - prev_count or 1))
        prev_le, prev_count = le, count
    return prev_le


def evaluate(expr: str, samples, q: float) -> list[tuple[str, float]]:
    names = METRIC.findall(expr)
    if not names:
        return []
    name = names[0]
    by_match = BY.search(expr)
    agg, by = (by_match.group(1), [b.strip() for b in by_match.group(2).split(",") if b.strip()]) if by_match \
        else ("sum", [])
    by = [b for b in by if b != "le"]
    rows: dict[tuple, float] = {}
    if "histogram_quantile" in expr:
        base = name.removesuffix("_bucket")
        groups: dict[tuple, dict[float, float]] = defaultdict(lambda: defaultdict(float))
        for n, labels, value in samples:
            if n == base + "_bucket":
                groups[tuple(labels.get(b, "") for b in by)][float(labels["le"])] += value
        for key, buckets in groups.items():
            v = quantile(q, list(buckets.items()))
            if v is not None:
                rows[key] = v
    else:
        for n, labels, value in samples:
            if n != name:
                continue
            if not all(labels.get(k) == v for k, v in re.findall(r'(\w+)="([^"]*)"', expr)):
                continue
            key = tuple(labels.get(b, "") for b in by)
            rows[key] = max(rows.get(key, value), value) if agg == "max" else rows.get(key, 0.0) + value
    out = [(" · ".join(k) or name, v) for k, v in sorted(rows.items())]
    if expr.rstrip().endswith("> 0"):
        out = [(k, v) for k, v in out if v > 0]
    return out


def fmt(value: float, unit: str) -> str:
    if unit == "s":
        if value < 1:
            return f"{value * 1000:.0f} ms"
        if value < 120:
            return f"{value:.1f} s"
        if value < 7200:
            return f"{value / 60:.1f} min"
        return f"{value / 3600:.1f} h"
    return f"{value:g}" if value == int(value) else f"{value:.2f}"


def render_panel(panel: dict, samples, q: float) -> str:
    unit = panel["fieldConfig"]["defaults"].get("unit", "short")
    mappings = {}
    for m in panel["fieldConfig"]["defaults"].get("mappings", []):
        mappings.update({float(k): v["text"] for k, v in m.get("options", {}).items()})
    steps = panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])
    rows = []
    for target in panel["targets"]:
        legend = target.get("legendFormat", "")
        prefix = legend.split("{{")[0].strip() if legend and legend != "__auto" else ""
        rows += [(f"{prefix} {k}".strip(), v) for k, v in evaluate(target["expr"], samples, q)]
    top = max([v for _, v in rows] + [1e-9])
    body = []
    for label, value in rows:
        color = "#73bf69"
        for step in steps:
            if step["value"] is not None and value >= step["value"]:
                color = {"red": "#f2495c", "orange": "#ff9830"}.get(step["color"], "#73bf69")
        text = mappings.get(value, fmt(value, unit))
        body.append(f'<div class="row"><span class="label">{html.escape(label)}</span>'
                    f'<span class="bar"><i style="width:{max(value / top, 0.01) * 100:.1f}%;background:{color}"></i>'
                    f'</span><span class="value">{html.escape(text)}</span></div>')
    if not body:
        body.append('<div class="nodata">No data</div>')
    g = panel["gridPos"]
    return (f'<section class="panel" style="grid-column:{g["x"] + 1}/span {g["w"]};grid-row:{g["y"] + 1}/span {g["h"]}"'
            f' title="{html.escape(panel.get("description", ""))}"><h3>{html.escape(panel["title"])}</h3>'
            + "".join(body) + "</section>")


def render(dashboard: dict, samples, urls: list[str], q: float) -> str:
    parts = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            g = panel["gridPos"]
            parts.append(f'<h2 style="grid-column:1/span 24;grid-row:{g["y"] + 1}">{html.escape(panel["title"])}</h2>')
        else:
            parts.append(render_panel(panel, samples, q))
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(dashboard['title'])}</title>
<style>
body{{background:#111217;color:#ccccdc;font:13px Inter,Helvetica,Arial,sans-serif;margin:16px}}
h1{{font-size:18px;margin:0 0 4px}} .sub{{color:#8e8e9e;margin-bottom:12px}}
.grid{{display:grid;grid-template-columns:repeat(24,1fr);grid-auto-rows:18px;gap:6px}}
h2{{font-size:14px;margin:6px 0 0;color:#d8d9da;border-bottom:1px solid #2c2d33}}
.panel{{background:#181b1f;border:1px solid #2c2d33;border-radius:3px;padding:8px;overflow:hidden}}
.panel h3{{font-size:12px;margin:0 0 8px;font-weight:500}}
.row{{display:flex;align-items:center;gap:6px;margin:3px 0}} .label{{width:42%;overflow:hidden;white-space:nowrap;text-overflow:ellipsis}}
.bar{{flex:1;background:#22252b;height:12px}} .bar i{{display:block;height:12px}}
.value{{width:70px;text-align:right;font-variant-numeric:tabular-nums}} .nodata{{color:#6e6e7e;margin-top:20px;text-align:center}}
</style></head><body><h1>{html.escape(dashboard['title'])}</h1>
<div class="sub">Rendered by deploy/grafana/render.py from {html.escape(', '.join(urls))} at {when}: values since each
process started (quantile {q:g} over all observations, counters as totals).</div>
<div class="grid">{''.join(parts)}</div></body></html>"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", action="append", required=True, help="a /metrics URL (repeatable)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quantile", type=float, default=0.95)
    parser.add_argument("--dashboard", type=Path, default=DASHBOARD)
    args = parser.parse_args(argv)
    dashboard = json.loads(args.dashboard.read_text())
    args.out.write_text(render(dashboard, scrape(args.url), args.url, args.quantile))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
