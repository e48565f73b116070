"""Reliability records and the report built from them (docs/reliability.md).

Every fault test (tests/faults/) and bad-input test (tests/fuzz/) ends by calling `record(...)` with the figures it
measured; each call appends one JSON line to `$RETAILFLOW_RELIABILITY_DIR` (default `.data/reliability/`), one
file per process. `python -m tests.reliability --out docs/reliability.md` renders every record found there: a
table per category (the latest record of each test), what it injects, its figures, the invariant it checks and
its result, with the command that regenerates the page and the date. `make reliability` runs both tiers with a
fresh records directory, then renders.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

CATEGORIES = {"fault": "Faults (tests/faults/)", "bad-input": "Bad input (tests/fuzz/)"}
COMMAND = "make reliability"
# the figures shown first, in this order, when a test records them; any other figure follows, by name
FIGURE_ORDER = ("orders", "deliveries", "faults", "inputs", "duplicates", "acked", "5xx", "500", "lost", "doubled")


def records_dir() -> Path:
    return Path(os.environ.get("RETAILFLOW_RELIABILITY_DIR") or ".data/reliability")


def record(test_id: str, *, category: str, injects: str, figures: dict[str, int | float | str], invariant: str,
           result: str) -> dict:
    """Append one record (a JSON line) for `test_id`; returns it. `category` is "fault" or "bad-input"."""
    if category not in CATEGORIES:
        raise ValueError(f"category must be one of {', '.join(CATEGORIES)}, not {category!r}")
    if not test_id or not injects or not invariant or not result:
        raise ValueError("test_id, injects, invariant and result must be given")
    bad = {k: v for k, v in figures.items() if not isinstance(v, int | float | str) or isinstance(v, bool)}
    if bad:
        raise ValueError(f"figures must be numbers or strings: {bad}")
    entry = {"test_id": test_id, "category": category, "injects": injects, "figures": dict(figures),
             "invariant": invariant, "result": result, "recorded_at": datetime.now(UTC).isoformat(timespec="seconds")}
    directory = records_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / f"records-{os.getpid()}.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")
    return entry


def load(directory: Path) -> list[dict]:
    """Every record under `directory` (all *.jsonl files), oldest first; a line that is not a record is an error
    naming the file and line."""
    out: list[dict] = []
    for path in sorted(directory.glob("*.jsonl")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                entry["test_id"], entry["category"], entry["figures"]  # noqa: B018 - presence check
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{n}: not a reliability record ({exc})") from None
            out.append(entry)
    return sorted(out, key=lambda e: e.get("recorded_at", ""))


def latest(records: Iterable[dict]) -> list[dict]:
    """The last record of each test, in the order the tests first appear."""
    by_id: dict[str, dict] = {}
    for entry in records:
        by_id.pop(entry["test_id"], None)
        by_id[entry["test_id"]] = entry
    return sorted(by_id.values(), key=lambda e: e["test_id"])


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _figure(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_figures(figures: dict) -> str:
    names = [n for n in FIGURE_ORDER if n in figures] + sorted(n for n in figures if n not in FIGURE_ORDER)
    return ", ".join(f"{n} {_figure(figures[n])}" for n in names)


def _total(rows: list[dict], name: str) -> int:
    return sum(int(r["figures"][name]) for r in rows if isinstance(r["figures"].get(name), int | float))


def render(records: list[dict], *, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    rows = latest(records)
    lines = ["# Reliability", "",
             f"Rendered on {now:%Y-%m-%d %H:%M} UTC from {len(records)} record(s) of "
             f"{len(rows)} test(s). Regenerate it with `{COMMAND}` (runs `tests/fuzz` and `tests/faults` with a fresh "
             "records directory, then `python -m tests.reliability --out docs/reliability.md`). Each test records "
             "the figures it measured with `tests.reliability.record(...)`; nothing here is typed by hand.", ""]
    if not rows:
        lines += ["No records: run the tests first.", ""]
    failed = [r for r in rows if not str(r["result"]).startswith("pass")]
    bad_input = [r for r in rows if r["category"] == "bad-input"]
    faults = [r for r in rows if r["category"] == "fault"]
    lines += ["## Summary", "",
              f"- tests: {len(rows)}, passed: {len(rows) - len(failed)}, failed: {len(failed)}",
              f"- lost: {_total(rows, 'lost')}, doubled: {_total(rows, 'doubled')}",
              f"- bad input answered 5xx: {_total(bad_input, '5xx')}; faults answered 500 (an error the sender "
              f"cannot act on; a 503 with Retry-After is the answer asked for during an outage): "
              f"{_total(faults, '500')}", ""]
    known = list(CATEGORIES) + sorted({r["category"] for r in rows} - set(CATEGORIES))
    for category in known:
        group = [r for r in rows if r["category"] == category]
        if not group:
            lines += [f"## {CATEGORIES.get(category, category)}", "", "No records of this category in this run.", ""]
            continue
        lines += [f"## {CATEGORIES.get(category, category)}", "",
                  "| test | injects | figures | invariant checked | result |", "| --- | --- | --- | --- | --- |"]
        for r in group:
            lines.append(f"| `{_cell(r['test_id'])}` | {_cell(r.get('injects', ''))} | "
                         f"{_cell(format_figures(r['figures']))} | {_cell(r.get('invariant', ''))} | "
                         f"{_cell(r.get('result', ''))} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=None, help="records directory (default $RETAILFLOW_RELIABILITY_DIR "
                                                                "or .data/reliability)")
    parser.add_argument("--out", type=Path, default=None, help="write the report here (default: stdout)")
    args = parser.parse_args(argv)
    directory = args.dir or records_dir()
    try:
        records = load(directory) if directory.exists() else []
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    text = render(records) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out} from {len(records)} record(s) in {directory}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
