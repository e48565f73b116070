"""Profiles: py-spy's raw (collapsed-stack) output turned into the summary the report renders.

A collapsed stack is one line per distinct stack, root first, with its sample count at the end:
`main (worker.py:10);run (x.py:20);leaf (y.py:30) 7`. py-spy samples every thread that is running Python code
(idle threads — waiting on a lock, a queue, a socket — are left out without `--idle`), so the counts are
CPU-ish samples. A function is labelled `path:function`, the path relative to the repository or to
site-packages, the same labels as `bench.sampler`."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_MARKERS = ("site-packages/", "lib/python3.11/", "lib/python3.12/", "lib/python3.13/")
# leaves where a thread waits rather than works; py-spy's idle detection misses some of them (a thread blocked
# in C without a syscall py-spy recognises), so these stacks are counted as idle here
IDLE_LEAVES = frozenset({
    "concurrent/futures/thread.py:_worker", "selectors.py:EpollSelector.select", "threading.py:Condition.wait",
    "threading.py:Event.wait", "queue.py:Queue.get", "threading.py:Thread._wait_for_tstate_lock",
    "threading.py:Thread.join", "asyncio/base_events.py:BaseEventLoop._run_once",
})


# the report's breakdown: share of samples with any frame of the group on the stack (groups overlap)
GROUPS = {
    "platform activities and adapters (activities/, adapters/)": ("activities/", "adapters/"),
    "platform canonical models (canonical/)": ("canonical/",),
    "platform workflows (workflows/)": ("workflows/",),
    "platform API (api/)": ("api/",),
    "platform shell (retailflow/: database, observability)": ("retailflow/",),
    "SQLAlchemy + sqlite3": ("sqlalchemy/", "sqlite3/"),
    "pydantic": ("pydantic/", "pydantic_core/"),
    "Temporal workflow sandbox": ("temporalio/worker/workflow_sandbox/",),
    "Temporal SDK (all of it)": ("temporalio/",),
    "HTTP server (uvicorn, h11, starlette, fastapi)": ("uvicorn/", "h11/", "starlette/", "fastapi/"),
    "module import / compile": ("<frozen importlib",),
}


PLATFORM = ("activities/", "adapters/", "api/", "canonical/", "workflows/", "retailflow/", "worker.py")
OUTSIDE_PLATFORM = "no platform frame on the stack (server, SDK, libraries)"


def label(frame: str, root: str = "") -> str:
    """`func (/abs/path/file.py:12)` → `path/file.py:func` (relative to the repository or site-packages)."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path, func = m.group("file"), m.group("func")
    for marker in _MARKERS:
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        if root and path.startswith(root.rstrip("/") + "/"):
            path = path[len(root.rstrip("/")) + 1:]
    return f"{path}:{func}"


def summarize_collapsed(text: str, root: str = "", top: int = 25, seconds: float | None = None) -> dict:
    """Samples by leaf function ("own") and by every function on the stack, counted once per stack ("total")."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    samples = idle = 0
    for line in text.splitlines():
        line = line.rstrip()
        if not line:
            continue
        stack, _, count_text = line.rpartition(" ")
        try:
            count = int(count_text)
        except ValueError:
            continue
        frames = [label(f, root) for f in stack.split(";") if f]
        if not frames:
            continue
        if frames[-1] in IDLE_LEAVES:
            idle += count
            continue
        samples += count
        own[frames[-1]] += count
        for name in set(frames):
            total[name] += count
        for group, prefixes in GROUPS.items():
            if any(f.startswith(prefixes) for f in frames):
                groups[group] += count
        if not any(f.startswith(PLATFORM) for f in frames):
            groups[OUTSIDE_PLATFORM] += count
    return {"tool": "py-spy", "seconds": seconds, "busy_samples": samples, "idle_samples": idle,
            "own": own.most_common(top), "total": total.most_common(top * 8), "groups": dict(groups)}


def summarize_file(path: Path, root: str = "", seconds: float | None = None) -> dict:
    return summarize_collapsed(Path(path).read_text(), root=root, seconds=seconds)


def share(summary: dict, prefix: str, key: str = "total") -> float:
    """Percent of the busy samples whose stack holds (key="total") or ends in (key="own") a function whose label
    starts with `prefix`."""
    busy = max(summary.get("busy_samples", 0), 1)
    return sum(c for name, c in summary.get(key, []) if name.startswith(prefix)) * 100 / busy
