"""Run `retailflow dev` as a subprocess on free ports, as `make run` would, and stop it with Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from retailflow.devstack import port_open
from tests.integration.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "retailflow")


@dataclass
class DevProcess:
    proc: subprocess.Popen
    data_dir: Path
    temporal_port: int
    ui_port: int
    api_port: int
    worker_metrics: int
    sdk_metrics: int
    env: dict
    output: str = ""
    ports: list[int] = field(default_factory=list)
    log_path: Path | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def admin_key(self) -> str:
        """The admin API key `retailflow dev` printed in its banner on the first start of its data dir."""
        key = _ADMIN_KEYS.get(self.data_dir)
        if key is None:
            text = self.log_path.read_text() if self.log_path else self.output
            match = re.search(r"admin API key\s+(rfk_\S+)", text)
            assert match, f"no admin key in the banner:\n{text[-3000:]}"
            key = _ADMIN_KEYS[self.data_dir] = match.group(1)
        return key

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    def send(self, path: str, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([CLI, "shopify", "send", *extra, path], cwd=ROOT,
                              env={**self.env, "RETAILFLOW_API_PORT": str(self.api_port),
                                   "RETAILFLOW_API_KEY": self.admin_key},
                              capture_output=True, text=True, timeout=60)


    def sandbox(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """A `retailflow-sandbox` command (the sandboxes' own entry point) against this stack."""
        return self.cli(*args, timeout=timeout, program=str(Path(CLI).with_name("retailflow-sandbox")))

    def cli(self, *args: str, timeout: float = 60, program: str | None = None) -> subprocess.CompletedProcess:
        """Another `retailflow` command (or `program`, e.g. `retailflow-sandbox`) against this stack (its API,
        Temporal and sandbox ports)."""
        return subprocess.run([program or CLI, *args], cwd=ROOT, env={
            **self.env, "RETAILFLOW_API_PORT": str(self.api_port), "RETAILFLOW_API_KEY": self.admin_key,
            "RETAILFLOW_TEMPORAL_ADDRESS": f"localhost:{self.temporal_port}"},
            capture_output=True, text=True, timeout=timeout)


_ADMIN_KEYS: dict[Path, str] = {}  # data dir → the admin key its first start printed


@contextmanager
def dev_process(tmp_path: Path, *args: str, database_url: str | None = None, **extra_env: str):
    """`retailflow dev --demo` (plus `args`, e.g. `--sandbox --profile vendors`) on free ports; the platform
    database is SQLite under the data dir unless `database_url` is given."""
    ports = [free_port() for _ in range(5)]
    temporal_port, ui_port, api_port, worker_metrics, sdk_metrics = ports
    env = {**os.environ, "RETAILFLOW_LOCAL_WMS_SHIP_AFTER_SECONDS": "1", "RETAILFLOW_LOG_JSON": "true",
           "RETAILFLOW_WORKER_METRICS_PORT": str(worker_metrics),
           "RETAILFLOW_TEMPORAL_SDK_METRICS_PORT": str(sdk_metrics), **extra_env}
    env.pop("RETAILFLOW_DATABASE_URL", None)
    if database_url:
        env["RETAILFLOW_DATABASE_URL"] = database_url
    data_dir = tmp_path / "data"
    log_path = tmp_path / "dev.log"  # a file, not a pipe: a chatty stack never blocks on a full pipe
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [CLI, "dev", "--demo", "--data-dir", str(data_dir), "--temporal-port", str(temporal_port),
             "--ui-port", str(ui_port), "--api-port", str(api_port), *args],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
        )
    dev = DevProcess(proc, data_dir, temporal_port, ui_port, api_port, worker_metrics, sdk_metrics, env,
                     ports=ports, log_path=log_path)
    try:
        deadline = time.monotonic() + 60
        # up when its banner is out (it names the API keys) and the API answers: a port that opens before the
        # banner is another process's (a free port taken meanwhile), not this stack's
        while not (("API keys" in log_path.read_text() or "admin API key" in log_path.read_text())
                   and port_open("127.0.0.1", api_port)):
            if proc.poll() is not None:
                raise AssertionError(f"retailflow dev exited early:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the API never came up:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield dev
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            dev.output = log_path.read_text()
            raise AssertionError(f"retailflow dev did not stop on Ctrl-C:\n{dev.output[-3000:]}") from None
        dev.output = log_path.read_text()
