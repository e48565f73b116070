"""`retailflow dev` (`make run`) on a terminal that closes: the hangup stops everything as Ctrl-C does — the worker,
the API, the Web UI and the Temporal dev server — so no process is orphaned and the next `make run` starts.

The stack runs on a pseudo-terminal it has as its controlling terminal, in its own session, as in a terminal
window; closing the terminal's master side is what closing the window does (the kernel sends SIGHUP, and every
later write to the terminal fails)."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import subprocess
import termios
import threading
import time
from pathlib import Path

import pytest

from retailflow.devstack import port_open
from tests.integration.conftest import free_port
from tests.integration.devproc import CLI, ROOT

pytestmark = pytest.mark.integration


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _controlling_tty() -> None:  # in the child, after setsid (start_new_session): the pty becomes its terminal
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def test_closing_the_terminal_stops_the_whole_stack(tmp_path):
    ports = [free_port() for _ in range(5)]
    temporal_port, ui_port, api_port, worker_metrics, sdk_metrics = ports
    env = {**os.environ, "RETAILFLOW_LOG_JSON": "true", "RETAILFLOW_WORKER_METRICS_PORT": str(worker_metrics),
           "RETAILFLOW_TEMPORAL_SDK_METRICS_PORT": str(sdk_metrics), "TERM": "xterm"}
    env.pop("RETAILFLOW_DATABASE_URL", None)
    data_dir = tmp_path / "data"
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [CLI, "dev", "--data-dir", str(data_dir), "--temporal-port", str(temporal_port), "--ui-port", str(ui_port),
         "--api-port", str(api_port)],
        cwd=ROOT, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        preexec_fn=_controlling_tty)
    os.close(slave)
    output = bytearray()
    reading = threading.Event()
    reading.set()

    def drain() -> None:  # the terminal's screen: read what the stack writes, so it never blocks on a full pty
        while reading.is_set():
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    return
                if not chunk:
                    return
                output.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    temporal: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while not (port_open("127.0.0.1", api_port) and b"retailflow is running" in output):
            assert proc.poll() is None, f"retailflow dev exited early:\n{output.decode(errors='replace')[-3000:]}"
            assert time.monotonic() < deadline, f"the stack never came up:\n{output.decode(errors='replace')[-3000:]}"
            time.sleep(0.3)
        temporal = [pid for pid in _children(proc.pid)
                    if b"start-dev" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(temporal) == 1, "no Temporal dev server under retailflow dev"
        assert all(port_open("127.0.0.1", p) for p in (temporal_port, ui_port, api_port))

        reading.clear()  # close the terminal window
        reader.join(timeout=5)
        os.close(master)
        master = -1

        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail("retailflow dev did not stop after the hangup")
        assert code == 0, f"retailflow dev ended with {code} (-{int(signal.SIGHUP)} is SIGHUP's default: no cleanup)"
        deadline = time.monotonic() + 15
        while any(_alive(pid) for pid in temporal) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in temporal), "the Temporal dev server was orphaned"
        for port in ports[:3]:
            assert not port_open("127.0.0.1", port), f"port {port} still open after the hangup"
    finally:
        reading.clear()
        if master >= 0:
            os.close(master)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in temporal:  # never leave a server behind, even when the test fails
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)
