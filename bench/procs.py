"""Processes the benchmarks start: the Temporal dev server (in memory or on SQLite), bench workers, the API,
load generators; and their resource use read from /proc (no psutil needed)."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from runtime.settings import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MiB (VmRSS from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size of a process so far in MiB (VmHWM from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def system_busy_seconds() -> float:
    """CPU seconds every core of the machine has been busy since boot (/proc/stat, all but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK  # user nice system idle iowait irq softirq steal


def own_cpu_seconds() -> float:
    """CPU seconds of this process and of every child it has reaped (the servers, workers, loaders it ran)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _die_with_parent() -> None:
    """preexec: the child gets SIGTERM when the bench process dies (even by SIGKILL), so nothing is left over."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


PYCACHE = Path(os.environ.get("TMPDIR", "/tmp")) / "retailflow-bench-pycache"


def python_env(**extra: str) -> dict[str, str]:
    """The environment of every Python process the bench starts. Bytecode is cached in a directory of the bench's
    own (`PYCACHE`, outside the repository) whatever the caller's `PYTHONDONTWRITEBYTECODE`, so a run measures
    warm processes the same way on every machine; the `no-bytecode` experiment turns the cache off."""
    env = dict(os.environ)
    if "no-bytecode" in env.get("RETAILFLOW_BENCH_EXPERIMENTS", "").split(","):
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env.update({"PYTHONPATH": str(ROOT), "RETAILFLOW_WORKER_METRICS_PORT": "0",
                "RETAILFLOW_TEMPORAL_SDK_METRICS_PORT": "0", "RETAILFLOW_LOG_LEVEL": "WARNING",
                "RETAILFLOW_LOG_JSON": "true"})
    env.update(extra)
    return env


@dataclass
class TemporalServer:
    proc: subprocess.Popen
    port: int
    mode: str  # "in-memory" or "sqlite"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop(self.proc)


def temporal_cli() -> str:
    candidate = Path(sys.executable).parent / "temporal"
    if candidate.exists():
        return str(candidate)
    from worker import temporal_cli_path

    return temporal_cli_path()


def start_temporal(workdir: Path, *, persistent: bool, timeout: float = 60) -> TemporalServer:
    """`temporal server start-dev` headless on a free port, search attributes registered; SQLite file in
    `workdir` when `persistent`, else in memory."""
    port = free_port()
    cmd = [temporal_cli(), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port), "--headless",
           "--http-port", str(free_port()), "--metrics-port", str(free_port()), "--log-level", "error"]
    if persistent:
        cmd += ["--db-filename", str(workdir / f"temporal-{port}.db")]
    for name, kind in SEARCH_ATTRIBUTES.items():
        cmd += ["--search-attribute", f"{name}={kind}"]
    log = open(workdir / f"temporal-{port}.log", "ab")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=_die_with_parent)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"temporal dev server exited ({proc.returncode}); see {log.name}")
        if port_open(port):
            return TemporalServer(proc, port, "sqlite" if persistent else "in-memory")
        time.sleep(0.2)
    stop(proc)
    raise RuntimeError(f"temporal dev server did not listen on {port} within {timeout}s")


def py_spy() -> str | None:
    """The py-spy binary next to this interpreter (the `py-spy` package), if installed."""
    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.exists() else None


def spawn(args: list[str], logfile: Path, **env: str) -> subprocess.Popen:
    """A Python module of this repo in a subprocess (its own session, so it can be stopped alone); its stdout
    lines are queued for `wait_line`, its stderr goes to `logfile`."""
    out = open(logfile, "ab")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=python_env(**env), stdout=subprocess.PIPE,
                            stderr=out, start_new_session=True, text=True, preexec_fn=_die_with_parent)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    _LINES[proc.pid] = lines
    return proc


_LINES: dict[int, queue.Queue] = {}


def wait_line(proc: subprocess.Popen, expect: str, timeout: float = 60) -> str:
    """The rest of the first stdout line starting with `expect` (bench modules print READY/RESULT lines)."""
    lines = _LINES[proc.pid]
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"{proc.args} did not print {expect!r} within {timeout:.0f}s")
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            continue
        if line is None:
            raise RuntimeError(f"{proc.args} exited ({proc.wait()}) before printing {expect!r}")
        if line.startswith(expect):
            return line[len(expect):].strip()


def run_json(args: list[str], logfile: Path, timeout: float, **env: str) -> dict:
    """Run a bench module to completion; its last `RESULT {json}` line is the result."""
    proc = spawn(args, logfile, **env)
    try:
        return json.loads(wait_line(proc, "RESULT ", timeout=timeout))
    finally:
        stop(proc, timeout=10)


class Profiler:
    """`py-spy record` attached to a running process (all its threads, 100 Hz, raw collapsed stacks) from its
    creation to `stop`, so only the measured window is sampled, not the process's start-up. With `gil`, only
    samples of the thread holding the GIL are kept: where the process spends CPU in Python; without, every
    running thread, including one blocked in a C call (an fsync, a SQLite lock) — where it spends wall time."""

    def __init__(self, pid: int, out: Path, *, gil: bool = False) -> None:
        spy = py_spy()
        if spy is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        self.out = out
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "100", "--nonblocking",
             *(["--gil"] if gil or os.environ.get("BENCH_PYSPY_GIL") else []),
             "--output", str(out)], stdout=subprocess.DEVNULL, stderr=open(f"{out}.log", "ab"),  # noqa: SIM115
            start_new_session=True, preexec_fn=_die_with_parent)
        time.sleep(0.5)  # attached
        if self.proc.poll() is not None:
            raise RuntimeError(f"py-spy could not attach to {pid}; see {out}.log")

    def stop(self) -> float:
        """Stop sampling (py-spy writes its output on SIGINT); the seconds sampled."""
        seconds = time.monotonic() - self.t0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return seconds


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
