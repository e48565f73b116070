"""The workflow sandbox passes every module through (runtime/workflow_sandbox.py): a workflow module is imported
once per worker process and shared by every run, so no workflow code may change module or class state, and — since
a passed-through module sees the real `datetime`, `time` and `random`, not the sandbox's restricted proxies — no
workflow code may call the clock, randomness, the file system or the network itself. Both are checked here over the
source of every module in workflows/; the workflow tests (tests/workflows) and the replay tests run the workflows
under the SDK's default sandbox, which refuses those calls at run time (tests/workflows/test_workflow_sandbox.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import worker as worker_module
from runtime.workflow_sandbox import RESTRICTIONS, workflow_runner

WORKFLOWS = sorted((Path(__file__).resolve().parents[2] / "workflows").glob("*.py"))
MUTATORS = {"append", "extend", "insert", "remove", "pop", "popitem", "clear", "update", "setdefault", "add",
            "discard", "sort", "reverse", "__setitem__", "__delitem__"}
MUTABLE_VALUES = (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)


def _module_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign | ast.AugAssign) else []
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
    return names


def _root(node: ast.AST) -> ast.AST:
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node


def shared_state_writes(source: str) -> list[str]:
    """Where code inside a function or method changes a module-level name's value, or a class body holds a
    mutable container that every instance would share."""
    tree = ast.parse(source)
    shared = _module_names(tree)
    found: list[str] = []
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for stmt in cls.body:
            value = stmt.value if isinstance(stmt, ast.Assign | ast.AnnAssign) else None
            if isinstance(value, MUTABLE_VALUES) or (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                                                     and value.func.id in {"list", "dict", "set", "bytearray"}):
                found.append(f"line {stmt.lineno}: class {cls.name} holds a mutable container every run shares")
    for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)):
        local = {a.arg for a in fn.args.args + fn.args.kwonlyargs + fn.args.posonlyargs}
        for node in ast.walk(fn):
            if isinstance(node, ast.Global | ast.Nonlocal):
                found.append(f"line {node.lineno}: {fn.name} declares {type(node).__name__.lower()} "
                             f"{', '.join(node.names)}")
            elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
                targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
                for t in targets:
                    root = _root(t)
                    if t is not root and isinstance(root, ast.Name) and root.id in shared and root.id not in local:
                        found.append(f"line {node.lineno}: {fn.name} writes into module-level {root.id}")
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS
                  and isinstance(_root(node.func.value), ast.Name)):
                root_name = _root(node.func.value).id  # type: ignore[attr-defined]
                if root_name in shared and root_name not in local:
                    found.append(f"line {node.lineno}: {fn.name} calls {root_name}….{node.func.attr}()")
    return found


# calls a workflow must make through `workflow` (workflow.now, workflow.uuid4, workflow.random, workflow.sleep)
FORBIDDEN_CALLS = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"),
                   ("time", "time"), ("time", "monotonic"), ("time", "perf_counter"), ("time", "sleep"),
                   ("uuid", "uuid1"), ("uuid", "uuid4"), ("asyncio", "sleep"), ("os", "getenv"), ("os", "urandom")}
FORBIDDEN_MODULES = {"random", "secrets", "os", "socket", "threading", "subprocess", "httpx", "requests", "sqlalchemy",
                     "psycopg", "sqlite3", "time", "uuid"}


def nondeterministic_calls(source: str) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in {"open", "input"}:
                found.append(f"line {node.lineno}: {f.id}()")
            elif isinstance(f, ast.Attribute):
                root = _root(f.value)
                if isinstance(root, ast.Name) and ((root.id, f.attr) in FORBIDDEN_CALLS or root.id in {"random", "os"}):
                    found.append(f"line {node.lineno}: {root.id}….{f.attr}()")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"line {node.lineno}: imports {m}" for m in mods if m.split(".")[0] in FORBIDDEN_MODULES]
    return found


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_modules_keep_no_state_between_runs(path: Path):
    assert shared_state_writes(path.read_text()) == []


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_modules_make_no_nondeterministic_calls(path: Path):
    assert nondeterministic_calls(path.read_text()) == []


def test_the_check_finds_nondeterministic_calls():
    found = nondeterministic_calls("import random\nfrom time import monotonic\nasync def run():\n"
                                   "    datetime.now()\n    asyncio.sleep(1)\n    open('x')\n    uuid.uuid4()\n"
                                   "    workflow.now()\n    await workflow.sleep(1)\n")
    assert found == ["line 1: imports random", "line 2: imports time", "line 4: datetime….now()",
                     "line 5: asyncio….sleep()", "line 6: open()", "line 7: uuid….uuid4()"]


def test_the_check_finds_shared_state():
    source = '''
CACHE = {}
SEEN = []
class W:
    buffer = []
    async def run(self, key):
        CACHE[key] = 1
        SEEN.append(key)
        W.buffer.append(key)
        local = []
        local.append(key)
def reset():
    global SEEN
    SEEN = []
'''
    found = shared_state_writes(source)
    assert any("class W holds a mutable container" in f for f in found)
    assert any("run writes into module-level CACHE" in f for f in found)
    assert any("run calls SEEN….append()" in f for f in found)
    assert any("run calls W….append()" in f for f in found)
    assert any("reset declares global SEEN" in f for f in found)
    assert not any("local" in f for f in found)


def test_workers_run_workflows_with_every_module_passed_through(monkeypatch):
    assert RESTRICTIONS.passthrough_all_modules and workflow_runner().restrictions is RESTRICTIONS
    built: list[dict] = []

    class Capture:
        def __init__(self, client, **config):
            built.append(config)

    class Client:
        def config(self):
            return {"interceptors": []}

    monkeypatch.setattr(worker_module, "Worker", Capture)
    monkeypatch.setattr(worker_module, "worker_activities", lambda adapters, settings=None: [])
    worker_module.build_worker(Client(), None, task_queue="q")  # type: ignore[arg-type]
    runner = built[0]["workflow_runner"]
    assert runner.restrictions.passthrough_all_modules
