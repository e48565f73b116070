"""tests/reliability.py: records appended as JSON lines, the report rendered from them (docs/reliability.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tests import reliability


@pytest.fixture
def records_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RETAILFLOW_RELIABILITY_DIR", str(tmp_path / "rel"))
    return tmp_path / "rel"


def test_record_appends_a_json_line_per_call(records_dir):
    reliability.record("faults/x::a", category="fault", injects="a SIGKILL", figures={"orders": 3, "lost": 0},
                       invariant="one of each", result="pass")
    reliability.record("faults/x::a", category="fault", injects="a SIGKILL", figures={"orders": 4, "lost": 1},
                       invariant="one of each", result="FAIL: 1 lost")
    (path,) = records_dir.glob("*.jsonl")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["figures"]["orders"] for e in lines] == [3, 4]
    assert lines[0]["category"] == "fault" and lines[0]["recorded_at"]


@pytest.mark.parametrize("bad", [
    {"category": "other"}, {"figures": {"orders": [1]}}, {"figures": {"ok": True}}, {"injects": ""},
])
def test_record_refuses_what_the_report_cannot_show(records_dir, bad):
    args = {"category": "fault", "injects": "x", "figures": {"orders": 1}, "invariant": "y", "result": "pass",
            **bad}
    with pytest.raises(ValueError):
        reliability.record("t", **args)
    assert not records_dir.exists() or not list(records_dir.glob("*.jsonl"))


def test_report_has_a_table_per_category_with_the_latest_record_of_each_test(records_dir):
    reliability.record("faults/k::kill", category="fault", injects="worker SIGKILLs | 5", result="FAIL: 2 lost",
                       figures={"orders": 150, "lost": 2, "doubled": 0, "seconds": 80.25}, invariant="all done")
    reliability.record("faults/k::kill", category="fault", injects="worker SIGKILLs | 5", result="pass",
                       figures={"orders": 150, "lost": 0, "doubled": 0, "500": 0, "seconds": 81.5},
                       invariant="all done")
    reliability.record("fuzz/mappers/shopify", category="bad-input", injects="mutated bodies", result="pass",
                       figures={"inputs": 1234, "5xx": 0, "rejected": 17}, invariant="4xx naming the field")
    text = reliability.render(reliability.load(records_dir), now=datetime(2026, 12, 2, 9, 30, tzinfo=UTC))
    assert "on 2026-12-02 09:30 UTC from 3 record(s) of 2 test(s)" in text and "`make reliability`" in text
    faults = text.index("## Faults (tests/faults/)")
    bad = text.index("## Bad input (tests/fuzz/)")
    kill_row = next(line for line in text.splitlines() if line.startswith("| `faults/k::kill`"))
    assert faults < text.index(kill_row) < bad
    # the latest record wins; figures in the report's order; a pipe in a cell is escaped
    assert "orders 150, 500 0, lost 0, doubled 0, seconds 81.5" in kill_row and "| pass |" in kill_row
    assert "worker SIGKILLs \\| 5" in kill_row and "FAIL" not in text
    assert "inputs 1,234, 5xx 0, rejected 17" in text
    assert "tests: 2, passed: 2, failed: 0" in text and "lost: 0, doubled: 0" in text


def test_a_failed_test_is_counted_and_a_bad_line_names_its_file(records_dir, tmp_path, capsys):
    reliability.record("faults/d::db", category="fault", injects="db cut", result="FAIL: 1 lost",
                       figures={"orders": 10, "lost": 1, "500": 2}, invariant="kept or 5xx")
    text = reliability.render(reliability.load(records_dir))
    assert "tests: 1, passed: 0, failed: 1" in text and "lost: 1" in text and "faults answered 500" in text
    out = tmp_path / "reliability.md"
    assert reliability.main(["--dir", str(records_dir), "--out", str(out)]) == 0
    assert out.read_text().startswith("# Reliability") and "faults/d::db" in out.read_text()
    (records_dir / "broken.jsonl").write_text('{"test_id": "x"}\n')
    assert reliability.main(["--dir", str(records_dir)]) == 2
    assert "broken.jsonl:1" in capsys.readouterr().err


def test_no_records_renders_a_page_that_says_so(tmp_path):
    assert reliability.main(["--dir", str(tmp_path / "none"), "--out", str(tmp_path / "r.md")]) == 0
    assert "No records: run the tests first." in (tmp_path / "r.md").read_text()
