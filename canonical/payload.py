"""Parsing a vendor's JSON body, once, for every mapper: strict enough that nothing hostile gets past it.

`loads` accepts only what every later step can carry (the canonical models, the platform database, Temporal
payloads, JSON answers): UTF-8 text, standard JSON (no `NaN` / `Infinity`), integers of sane length, numbers
with fractions as exact Decimals, strings that are valid Unicode (a lone surrogate such as `"\\ud800"` is legal
JSON syntax but no text), nesting no deeper than a vendor ever sends. Anything else is a `PayloadInvalid`
naming where it is (the byte position, the line and column, or the field's path)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from canonical.errors import PayloadInvalid

MAX_DEPTH = 64  # vendors' payloads nest a handful of levels; a deeper body is an attack, not an order
MAX_NUMBER_DIGITS = 100


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _number(text: str) -> Decimal:
    if len(text) > MAX_NUMBER_DIGITS:
        raise ValueError(f"a number of {len(text)} characters")
    return Decimal(text)


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits")
    return int(text)


def field_path(path: tuple) -> str:
    return ".".join(str(p) for p in path) or "(the body)"


def check_tree(value: Any, *, error: type[PayloadInvalid] = PayloadInvalid, what: str = "body",
               max_depth: int = MAX_DEPTH, text: str | None = None) -> None:
    """Walk a parsed document (iteratively: no recursion to exhaust): refuse nesting deeper than `max_depth` and
    strings or keys that are not valid Unicode, naming the field. `text`: the JSON text it was parsed from — a
    lone surrogate can only come from a `\\uD800`-`\\uDFFF` escape, so without one the strings need no check. The
    first walk keeps only depths; a document it refuses is walked again with paths, for the message."""
    strings = text is None or _SURROGATE_ESCAPE.search(text) is not None
    depths: list[tuple[Any, int]] = [(value, 0)]
    while depths:
        node, depth = depths.pop()
        if depth > max_depth:
            break
        if isinstance(node, dict):
            if strings and not all(_valid(k) for k in node):
                break
            depths.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            depths.extend((child, depth + 1) for child in node)
        elif strings and isinstance(node, str) and not _valid(node):
            break
    else:
        return
    _check_tree_with_paths(value, error, what, max_depth)


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _valid(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_tree_with_paths(value: Any, error: type[PayloadInvalid], what: str, max_depth: int) -> None:
    stack: list[tuple[Any, tuple]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if len(path) > max_depth:
            raise error(f"{what} is nested more than {max_depth} levels deep (at {field_path(path[:8])}…)")
        if isinstance(node, str):
            _unicode(node, path, error, what)
        elif isinstance(node, dict):
            for key, child in node.items():
                _unicode(key, (*path, "<key>"), error, what)
                stack.append((child, (*path, key)))
        elif isinstance(node, list):
            stack.extend((child, (*path, i)) for i, child in enumerate(node))


def _unicode(text: str, path: tuple, error: type[PayloadInvalid], what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise error(f"{what} field {field_path(path)}: not valid Unicode (a lone surrogate "
                    f"{text[exc.start]!r} at character {exc.start})") from None


def loads(body: bytes | str, *, error: type[PayloadInvalid] = PayloadInvalid, what: str = "body",
          max_depth: int = MAX_DEPTH) -> Any:
    """Parse a JSON body strictly (see the module docstring); `error` is the mapper's PayloadInvalid subclass."""
    if isinstance(body, bytes | bytearray | memoryview):
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(f"{what} is not UTF-8: byte 0x{bytes(body)[exc.start]:02x} at position {exc.start}") from None
    else:
        text = body
    try:
        value = json.loads(text, parse_float=_number, parse_int=_int, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise error(f"{what} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:  # the parser's own stack: nested thousands deep
        raise error(f"{what} is nested more than {max_depth} levels deep") from None
    except ValueError as exc:  # NaN / Infinity, a number of thousands of digits
        raise error(f"{what} is not JSON the platform takes: {exc}") from None
    check_tree(value, error=error, what=what, max_depth=max_depth, text=text)
    return value


def describe(exc: ValidationError, limit: int = 5) -> str:
    """A pydantic ValidationError as `field.path: message; …` (the input values are not repeated)."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:limit]:
        parts.append(f"{'.'.join(str(p) for p in err['loc']) or '(the object)'}: {err['msg']}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


class mapping:  # noqa: N801 (used as `with mapping(...)`, like contextlib's helpers)
    """Map a payload inside this block: a canonical model refusing it becomes `error` naming the fields, and a
    payload of the wrong shape (a list where an object belongs, `{}` where a number does) becomes `error` too,
    so a mapper raises its PayloadInvalid and nothing else. Never swallows: every exception leaves the block."""

    def __init__(self, error: type[PayloadInvalid], what: str) -> None:
        self.error, self.what = error, what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc is None or isinstance(exc, PayloadInvalid):
            return
        if isinstance(exc, ValidationError):
            raise self.error(f"{self.what}: {describe(exc)}") from None
        if isinstance(exc, TypeError | AttributeError | KeyError | IndexError | ValueError | ArithmeticError):
            raise self.error(f"{self.what}: unexpected payload shape: {type(exc).__name__}: {exc}") from None
