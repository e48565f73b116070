"""What import-linter (`make test`, contracts in pyproject.toml) cannot see: worker.py is a module, not a
package, so it cannot be one of its roots. Here it is held to its place in the layers by reading its imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# worker.py sits with api/ above starters/: it may import those below it, never the API, the shell or sandboxes
ALLOWED = {"canonical", "adapters", "activities", "workflows", "runtime", "starters"}
FORBIDDEN = {"api", "retailflow", "sandbox", "bench", "tests"}


def top_level_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):  # function-level imports too
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_worker_imports_only_the_layers_below_it():
    imported = top_level_imports(ROOT / "worker.py")
    assert not imported & FORBIDDEN, f"worker.py imports {sorted(imported & FORBIDDEN)}"


def test_the_checker_sees_a_forbidden_import(tmp_path):
    bad = tmp_path / "worker.py"
    bad.write_text("def f():\n    from api.app import create_app\n")
    assert "api" in top_level_imports(bad) & FORBIDDEN


@pytest.mark.parametrize("wf", __import__("worker").WORKFLOWS, ids=lambda wf: wf.__name__)
def test_every_workflow_is_registered_under_its_class_name(wf):
    """worker.workflow_queues maps type names to queues by class name (no private SDK lookups)."""
    from temporalio import workflow

    assert workflow._Definition.must_from_class(wf).name == wf.__name__  # the test may use SDK internals
