"""`python -m bench [--quick] [--report docs/benchmarks.md]`: run the benchmarks and write the report.

The full run fits in about 14 minutes on 2 cores; `--quick` is a ~4 minute smoke run with small sizes."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import analysis, experiments, procs, report, scenarios


def _stop_on_sigterm() -> None:
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


async def run(cfg: scenarios.Config, workdir: Path, only: set[str], pg_url: str | None = None) -> dict:
    clock = scenarios.Clock(cfg.budget_seconds)
    results: dict = {"quick": cfg.quick, "orders": [], "intake": [], "profile": {}, "notes": [],
                     "config": dataclasses.asdict(cfg)}

    def want(name: str) -> bool:
        return not only or name in only

    async def guarded(name: str, coro):
        """One scenario's failure is reported, not fatal: the others still run and the report is written."""
        t0 = time.monotonic()
        try:
            return await coro
        except Exception as exc:
            log(f"{name} failed: {exc!r}")
            results["notes"].append(f"The {name} scenario failed in this run: `{type(exc).__name__}: {exc}`.")
            return None
        finally:
            results.setdefault("timings", {})[name] = time.monotonic() - t0
            log(f"{name}: {time.monotonic() - t0:.0f}s ({clock.elapsed:.0f}s elapsed)")

    for persistent in (False, True):
        if not any(want(x) for x in ("orders", "intake", "profile", "inventory")):
            break
        if persistent and not (want("orders") or want("intake")):
            break
        stack = scenarios.Stack(workdir, persistent=persistent)
        try:
            await stack.connect()
            if want("orders"):
                log(f"orders on the {stack.mode} server")
                # the persistent server is the slower one: one smaller round there keeps the run within its budget
                run_ = await guarded(f"orders ({stack.mode})", scenarios.order_throughput(
                    stack, cfg, 1 if persistent else None, cfg.persistent_orders if persistent else None,
                    payload_baseline=not persistent))
                if run_:
                    results["orders"].append(run_)
            if want("intake") and (not persistent or only):
                # the intake's goals are on the in-memory server; `--only intake` runs it on the SQLite one too
                log(f"intake on the {stack.mode} server")
                # the minimal-handler comparison: ABBA rounds on the in-memory server, one round on the slower one
                run_ = await guarded(f"intake ({stack.mode})", scenarios.intake(stack, cfg, 1 if persistent else None))
                if run_:
                    results["intake"].append(run_)
            if not persistent and cfg.profile and want("profile"):
                log("profiling the worker (orders) and the API (intake) with py-spy")
                worker = await guarded("worker profile", scenarios.worker_profile(stack, cfg))
                if worker:
                    results["profile"]["worker"] = worker
                api = await guarded("API profile", scenarios.intake_profile(stack, cfg))
                if api:
                    results["profile"]["api"] = api
            if not persistent and want("inventory"):
                log("inventory")
                results["inventory"] = await guarded("inventory", scenarios.inventory_scenario(stack, cfg))
        finally:
            stack.close()
    if want("settlement"):
        log(f"settlement reconciliation: {', '.join(f'{n:,}' for n in cfg.settlement_lines)} lines")
        settle = await guarded("settlement", scenarios.settlement(workdir, cfg, profile_small=cfg.profile
                                                                  and want("profile")))
        if settle:
            if "profile" in settle:
                results["profile"]["settlement"] = settle.pop("profile")
            results["settlement"] = settle
    if want("orders"):
        if pg_url:
            log("orders on a PostgreSQL platform database against a SQLite one (in-memory server)")
            results["platform_db"] = await guarded("orders (PostgreSQL vs SQLite)",
                                                   scenarios.platform_databases(workdir, cfg, pg_url))
            if results["platform_db"] is None:
                results["platform_db"] = {"skipped": "the scenario failed (see the notes)"}
        else:
            results["platform_db"] = {"skipped": "no PostgreSQL URL"}
    if want("footprint"):
        # a goal figure: its first level runs whatever the budget says (bench/scenarios.py, FOOTPRINT_FIRST_LEVEL_S)
        log(f"parked-run footprint: {', '.join(f'{n:,}' for n in cfg.parked)} open orders")
        results["footprint"] = await guarded("footprint", scenarios.footprint(workdir, cfg, clock))
    if want("scaling"):
        # last, on a server of its own: no goal rides on it, so it gets what the budget has left (levels are skipped)
        stack = scenarios.Stack(workdir / "scaling", persistent=False)
        try:
            await stack.connect()
            log("scaling")
            results["scaling"] = await guarded("scaling", scenarios.scaling(stack, cfg, clock))
        finally:
            stack.close()
    return results


def log(msg: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--report", type=Path, help="write the markdown report here (e.g. docs/benchmarks.md)")
    parser.add_argument("--quick", action="store_true", help="a ~4 minute smoke run with small sizes")
    parser.add_argument("--only", action="append", default=[],
                        choices=["orders", "intake", "profile", "inventory", "scaling", "settlement", "footprint"],
                        help="run only these scenarios (repeatable)")
    parser.add_argument("--parked", type=_sizes, help="open-order levels of the footprint, e.g. 1000,10000")
    parser.add_argument("--settlement-lines", type=_sizes, help="settlement sizes in lines, e.g. 100000,1000000")
    parser.add_argument("--experiment", action="append", default=[], choices=list(experiments.NAMES),
                        help="measure a proposed platform change without editing it (bench/experiments.py); "
                        "the report says so")
    parser.add_argument("--budget", type=float, help="the run's time budget in seconds (later parts shrink or are "
                        "skipped to fit; default 13 min, 4 min with --quick)")
    parser.add_argument("--postgres-url", default=os.environ.get("RETAILFLOW_BENCH_POSTGRES_URL"),
                        help="also run order throughput on a PostgreSQL platform database against a SQLite one: "
                        "a fresh database bench_<pid> is created on this server (the URL's own database is only "
                        "the maintenance connection) and dropped at the end; env RETAILFLOW_BENCH_POSTGRES_URL "
                        "(make bench passes RETAILFLOW_TEST_DATABASE_URL)")
    parser.add_argument("--json", type=Path, default=os.environ.get("RETAILFLOW_BENCH_JSON"),
                        help="also write the raw results as JSON (env RETAILFLOW_BENCH_JSON)")
    parser.add_argument("--from-json", type=Path, help="only render the report from results saved by --json")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, databases)")
    args = parser.parse_args(argv)
    _stop_on_sigterm()
    if args.from_json:
        results = json.loads(args.from_json.read_text())
        results.pop("pending", None), results.pop("findings", None), results.pop("bounds", None)
        results.pop("scaling_reasoning", None)
        return _write(results, args)
    if args.experiment:
        os.environ[experiments.ENV] = ",".join(args.experiment)
    cfg = scenarios.Config.make(args.quick)
    if args.parked:
        cfg.parked = args.parked
    if args.settlement_lines:
        cfg.settlement_lines = args.settlement_lines
    if args.budget:
        cfg.budget_seconds = args.budget
    t0 = time.monotonic()
    busy0, own0, load0 = procs.system_busy_seconds(), procs.own_cpu_seconds(), os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="retailflow-bench-"))
    log(f"work directory {workdir}")
    try:
        results = asyncio.run(run(cfg, workdir, set(args.only), args.postgres_url))
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    wall = time.monotonic() - t0
    busy, own = procs.system_busy_seconds() - busy0, procs.own_cpu_seconds() - own0
    results["load"] = {"wall_s": wall, "cores": os.cpu_count(), "busy_core_s": busy, "bench_core_s": own,
                       "other_core_s": max(busy - own, 0.0), "loadavg_start": load0, "loadavg_end": os.getloadavg()}
    results.update(machine=report.machine(), versions=report.versions(procs.temporal_cli()),
                   runtime_s=wall, date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                   command=_command(argv if argv is not None else sys.argv[1:]),
                   experiments=args.experiment)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return _write(results, args)


def _command(argv: list[str]) -> str:
    line = " ".join(["python -m bench", *argv])
    return "make bench" if argv[:2] == ["--report", "docs/benchmarks.md"] and len(argv) in (2, 4) else line


def _sizes(text: str) -> list[int]:
    return [int(x.replace("_", "")) for x in text.split(",") if x.strip()]


def _write(results: dict, args: argparse.Namespace) -> int:
    analysis.annotate(results)
    text = report.render(results)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(text)
        log(f"report written to {args.report}")
    else:
        print(text)
    for f in report.figures(results):
        if f.skipped:
            log(f"{f.mode:9} {f.name}: {f.verdict}")
            continue
        log(f"{f.mode:9} {f.name}: {f.value:.1f} {f.unit} vs {f.baseline or 0:.1f} → ratio "
            f"{(f.ratio or 0):.2f} ({f.verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
