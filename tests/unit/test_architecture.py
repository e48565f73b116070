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


VENDORS = ("amazon", "shopify", "square", "shipstation", "avalara", "avatax", "erpnext")


@pytest.mark.parametrize("layer", ["workflows", "activities"])
def test_no_vendor_name_in_the_workflows_or_the_activities(layer):
    """Vendors live in adapters/ (and their settings in runtime/): a workflow or activity that names one has
    taken a vendor rule the adapter should own."""
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
             for path in sorted((ROOT / layer).rglob("*.py"))
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if any(v in line.lower() for v in VENDORS)]
    assert not found, "\n".join(found)


def test_activities_the_runbook_routes_are_registered_under_their_method_names(tmp_path):
    """The Runbook routes a step to a partner queue by `activity.__name__` (no SDK internals), so every
    activity a parking workflow runs must be registered under its method's name."""
    from temporalio import activity

    from adapters.sql import make_engine
    from runtime.registry import build_adapters
    from runtime.settings import Settings
    from worker import worker_activities

    settings = Settings(_env_file=None, data_dir=tmp_path)
    engine = make_engine(f"sqlite:///{tmp_path / 'rf.db'}")  # built, never connected: nothing runs here
    acts = worker_activities(build_adapters(settings, engine), settings)
    poll = {"list_channel_orders", "start_channel_order", "cancel_channel_order"}  # the poll does not park
    mismatched = [(activity._Definition.must_from_callable(a).name, a.__name__) for a in acts
                  if activity._Definition.must_from_callable(a).name not in poll
                  and activity._Definition.must_from_callable(a).name != a.__name__]
    assert not mismatched
