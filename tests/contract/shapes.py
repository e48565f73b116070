"""Shape checks against published vendor payloads: same keys, same JSON types (int and float are one
"number"), recursing into objects and into the first element of arrays."""

from __future__ import annotations

from typing import Any


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    return type(value).__name__


def assert_shape(actual: Any, published: Any, path: str = "$") -> None:
    """Every key of `published` is in `actual` with the same JSON type (actual may have more keys)."""
    if isinstance(published, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {_kind(actual)}"
        for key, value in published.items():
            assert key in actual, f"{path}.{key} missing"
            assert_shape(actual[key], value, f"{path}.{key}")
    elif isinstance(published, list):
        assert isinstance(actual, list), f"{path}: expected an array, got {_kind(actual)}"
        if published and actual:
            for i, item in enumerate(actual):
                assert_shape(item, published[0], f"{path}[{i}]")
    elif published is not None:
        assert _kind(actual) == _kind(published), f"{path}: {_kind(actual)} where the vendor has {_kind(published)}"


def assert_keys_within(actual: dict, published: dict, extra: set[str], path: str = "$") -> None:
    """Request bodies: every key we send is one the vendor's example uses (or a documented extra), and the shared
    keys have the vendor's types."""
    unknown = set(actual) - set(published) - extra
    assert not unknown, f"{path}: keys not in the published request: {sorted(unknown)}"
    for key in set(actual) & set(published):
        a, p = actual[key], published[key]
        if isinstance(p, dict) and isinstance(a, dict):
            assert_keys_within(a, p, extra, f"{path}.{key}")
        elif isinstance(p, list) and isinstance(a, list) and p and isinstance(p[0], dict):
            for i, item in enumerate(a):
                assert_keys_within(item, p[0], extra, f"{path}.{key}[{i}]")
        else:
            assert _kind(a) == _kind(p), f"{path}.{key}: {_kind(a)} where the vendor has {_kind(p)}"
