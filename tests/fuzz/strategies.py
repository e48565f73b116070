"""Hypothesis strategies for bad input, built from the published vendor fixtures (tests/fixtures).

A mutation takes a fixture document, picks one place in it (any key of any object, any element of any array,
the document itself) and either deletes it or replaces it with a hostile value: a wrong type, a missing value,
a huge / negative / non-finite number, `{}` where a currency code belongs, a lone surrogate, an out-of-range
date, deep nesting, or arbitrary JSON. `raw_bodies` adds bytes that are not JSON at all (truncated, not UTF-8,
a BOM, random bytes). The document round-trips through `to_json` so the HTTP tests send exactly what a hostile
sender would put on the wire (`\\ud800` escapes, `NaN`, integers of hundreds of digits)."""

from __future__ import annotations

import copy
import json
import os
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from tests.conftest import fixture_bytes

# Every fuzz test runs a fixed number of derandomized examples (the same inputs on every run: CI is
# deterministic), with no deadline (a slow CI machine is not a failure) and no example database.
# Shrinking runs only when a test fails; RETAILFLOW_FUZZ_SHRINK=0 skips it (and the slow "explain" phase) to see
# every failure at once while fixing them.
_PHASES = ([Phase.explicit, Phase.reuse, Phase.generate] if os.environ.get("RETAILFLOW_FUZZ_SHRINK") == "0"
           else [Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink])
FUZZ = settings(max_examples=50, derandomize=True, deadline=None, database=None, phases=_PHASES,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])


def fixture_json(*parts: str) -> Any:
    return json.loads(fixture_bytes(*parts), parse_float=Decimal)


def deep(depth: int, leaf: Any = 1) -> Any:
    """`[[[...leaf...]]]` `depth` levels deep, without recursion."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


OUT_OF_RANGE_DATES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "10000-01-01T00:00:00Z",
                      "2024-02-30T10:00:00Z", "2024-13-01", "0000-00-00T00:00:00Z", "-2024-01-01T00:00:00Z",
                      "2024-01-01T25:61:00Z", "9999-12-31", "0001-01-01", "2024-01-01T00:00:00+24:00"]
HOSTILE_SCALARS: list[Any] = [
    None, True, False, 0, -1, -(2 ** 63), 2 ** 64, 10 ** 400, -(10 ** 400), 1.5, -0.0, 1e308, -1e308,
    float("nan"), float("inf"), float("-inf"), Decimal("1E+400"), Decimal("-1E-400"), Decimal("NaN"),
    "", " ", "x", "USD", "usd", "XXX", "12", "-12.345", "1e400", "NaN", "Infinity", "\ud800", "a\udfffb",
    "\x00", "\u202e", "💥" * 3, "😀\ud83d", "A" * 10_000, "null", "[]", "{}", *OUT_OF_RANGE_DATES,
]
HOSTILE_CONTAINERS: list[Any] = [{}, [], [{}], {"": None}, {"currency": {}}, {"amount": {}}, deep(60),
                                 {"a": deep(40, {})}]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
hostile_values = st.one_of(st.sampled_from(HOSTILE_SCALARS), st.sampled_from(HOSTILE_CONTAINERS), json_values)


def paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON document: the root, each key of each object, each element of each array."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += paths(v, (*prefix, i))
    return out


def _set(doc: Any, path: tuple, value: Any, *, delete: bool) -> Any:
    if not path:
        return value
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


@st.composite
def mutated(draw, doc: Any, *, pinned: tuple[tuple, ...] = (), times: int = 2) -> Any:
    """`doc` with one to `times` places deleted or replaced by hostile values. `pinned` paths (e.g. the event
    type that routes the delivery) are never the target, so the mutation reaches the code behind them."""
    out = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, times))):
        candidates = [p for p in paths(out)
                      if not any(q[:len(p)] == p or p[:len(q)] == q for q in pinned)]
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        delete = bool(path) and draw(st.booleans()) and draw(st.booleans())  # deletions a quarter of the time
        out = _set(out, path, None if delete else copy.deepcopy(draw(hostile_values)), delete=delete)
    return out


def to_json(doc: Any) -> bytes:
    """On the wire: ASCII JSON (lone surrogates travel as `\\ud800` escapes), NaN/Infinity as the literals
    Python's and many senders' encoders write, Decimals as JSON numbers of any size."""
    numbers: dict[str, str] = {}

    def mark(value: Any) -> Any:
        if isinstance(value, Decimal):
            key = f"__decimal_{len(numbers)}__"
            numbers[key] = "NaN" if value.is_nan() else str(value)
            return key
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    text = json.dumps(mark(doc), allow_nan=True, ensure_ascii=True)
    for key, number in numbers.items():
        text = text.replace(f'"{key}"', number)
    return text.encode("ascii")


NESTED_100K = b"[" * 100_000 + b"]" * 100_000
NESTED_100K_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000


@st.composite
def raw_bodies(draw, valid: bytes) -> bytes:
    """Bytes a broken or hostile sender posts: the valid body truncated or with bytes flipped, not UTF-8
    (latin-1, UTF-16, a stray 0xff), with a BOM, nested 100,000 deep, or random."""
    kind = draw(st.sampled_from(["truncate", "flip", "latin1", "utf16", "ff", "bom", "nested", "random", "empty"]))
    if kind == "truncate":
        return valid[:draw(st.integers(0, max(len(valid) - 1, 0)))]
    if kind == "flip":
        i = draw(st.integers(0, max(len(valid) - 1, 0)))
        return valid[:i] + bytes([draw(st.integers(0, 255))]) + valid[i + 1:]
    if kind == "latin1":
        return valid.replace(b'"', b'"\xe9', 1)
    if kind == "utf16":
        return valid.decode("utf-8", "replace").encode("utf-16")
    if kind == "ff":
        return b"\xff" + valid
    if kind == "bom":
        return b"\xef\xbb\xbf" + valid
    if kind == "nested":
        return draw(st.sampled_from([NESTED_100K, NESTED_100K_OBJECT]))
    if kind == "empty":
        return b""
    return draw(st.binary(max_size=200))
