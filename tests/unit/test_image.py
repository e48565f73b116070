"""The production image's file set runs: the Dockerfile's COPY lines, installed into a scratch folder as the
image installs them (`pip install .`), start `retailflow api --help` and `retailflow worker --help` and import
`api.app` and `worker` — with nothing of the repository on the path (no sandbox/, no bench/, no tests/).

No Docker engine is needed: the test copies what the Dockerfile copies, builds it without build isolation (no
download) and runs the interpreter with `-S`, so the development checkout's editable install is not on the path."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def dockerfile_copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY line, in order."""
    out = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.strip().upper().startswith("COPY "):
            words = shlex.split(line.strip())[1:]
            assert not any(w.startswith("--") for w in words), f"unsupported COPY option in {line!r}"
            out.append((words[:-1], words[-1]))
    return out


def dockerignored() -> list[str]:
    return [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip()]


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    scratch = tmp_path_factory.mktemp("image")
    app = scratch / "app"
    app.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "*.db")
    for sources, dest in dockerfile_copies():
        target = app / dest
        for src in sources:
            path = ROOT / src
            if path.is_dir():
                shutil.copytree(path, target, ignore=ignore)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target / path.name)
    site = scratch / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(app)], check=True, cwd=scratch, timeout=300)
    return site


def run_in_image(site: Path, code: str) -> subprocess.CompletedProcess:
    """`python -S`: no site processing, so the checkout's editable install (a .pth file) is not on the path; the
    dependencies come from the virtualenv's site-packages, the product from the scratch install."""
    deps = sysconfig.get_paths()["purelib"]
    env = {"PYTHONPATH": f"{site}:{deps}", "PATH": "/usr/bin:/bin", "HOME": str(site.parent),
           "RETAILFLOW_DATA_DIR": str(site.parent / "data")}
    return subprocess.run([sys.executable, "-S", "-c", code], cwd=site.parent, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_image_copies_the_product_path_and_nothing_else():
    copied = {Path(src).parts[0] for sources, _ in dockerfile_copies() for src in sources}
    for package in ("canonical", "adapters", "activities", "workflows", "runtime", "starters", "api", "retailflow"):
        assert package in copied, f"the Dockerfile does not copy {package}/"
    assert {"worker.py", "pyproject.toml"} <= copied
    assert not copied & {"sandbox", "bench", "tests", "docs"}
    assert {"tests", "bench"} <= set(dockerignored())


@pytest.mark.parametrize("command", ["api", "worker"])
def test_the_image_cli_starts(image, command):
    code = ("import sys, importlib.metadata as md\n"
            "(ep,) = md.entry_points(group='console_scripts', name='retailflow')\n"
            "assert md.distribution('retailflow').locate_file('').as_posix().startswith(%r), 'not the image'\n"
            f"sys.argv = ['retailflow', {command!r}, '--help']\n"
            "ep.load()()\n") % str(image)
    done = run_in_image(image, code)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Usage" in done.stdout


def test_the_image_imports_the_api_and_the_worker_and_has_no_sandbox(image):
    code = ("import importlib.util, api.app, worker\n"
            f"assert api.app.__file__.startswith({str(image)!r}), api.app.__file__\n"
            f"assert worker.__file__.startswith({str(image)!r}), worker.__file__\n"
            "assert importlib.util.find_spec('sandbox') is None, 'sandbox/ reached the image'\n"
            "app = api.app.create_app()\n"
            "assert any(getattr(r, 'path', '') == '/healthz' for r in app.routes)\n"
            "print('ok')\n")
    done = run_in_image(image, code)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
