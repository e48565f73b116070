"""`retailflow dev --profile vendors` (`make run-vendors`) on a data folder `make run` used says so at start, in one
line: what will happen (the sample order is a duplicate) and how to start fresh; a fresh or same-profile folder
says nothing. Each profile marks the data dir it ran on (retailflow/devstack.py)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from retailflow.devstack import PROFILE_MARKER, mark_profile, profile_note

CLI = str(Path(sys.executable).parent / "retailflow")


def test_a_profile_switch_on_one_data_dir_is_said_and_a_fresh_one_is_not(tmp_path):
    data = tmp_path / ".data"
    assert profile_note(data, "vendors") is None and profile_note(data, "embedded") is None  # fresh
    mark_profile(data, "embedded")
    assert profile_note(data, "embedded") is None
    note = profile_note(data, "vendors")
    assert note is not None and "\n" not in note
    assert note.startswith(f"note: {data} was used before by `make run`: ")
    assert "duplicate" in note and f"--data-dir {data}-vendors" in note and f"`rm -rf {data}`" in note
    mark_profile(data, "vendors")
    mark_profile(data, "vendors")
    assert (data / PROFILE_MARKER).read_text() == "embedded\nvendors\n"
    assert "by `make run`" in profile_note(data, "vendors")  # still: the embedded run's orders are there
    assert "by the vendors profile" in profile_note(data, "embedded")


def test_a_data_dir_from_before_the_marker_counts_as_make_run(tmp_path):
    data = tmp_path / ".data"
    data.mkdir()
    (data / "temporal.db").write_bytes(b"")
    assert "by `make run`" in profile_note(data, "vendors")
    mark_profile(data, "vendors")
    assert (data / PROFILE_MARKER).read_text() == "embedded\nvendors\n"


def test_make_run_vendors_prints_the_note_first_on_a_used_data_dir(tmp_path):
    data = tmp_path / ".data"
    mark_profile(data, "embedded")
    with socket.socket() as busy:  # the Temporal port taken: the command stops right after its first lines
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        done = subprocess.run([CLI, "dev", "--profile", "vendors", "--data-dir", str(data),
                               "--temporal-port", str(busy.getsockname()[1])],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "RETAILFLOW_LOG_JSON": "true"})
    assert done.returncode == 1, done.stdout + done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith(f"note: {data} was used before by `make run`: ") and "duplicate" in first
    assert "already in use" in done.stderr
    assert (data / PROFILE_MARKER).read_text() == "embedded\n"  # a start that failed marks nothing
