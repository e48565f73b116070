"""Error answers that hold whatever the request held.

FastAPI's own 422 echoes each invalid field's input; an input the JSON answer cannot carry made that answer a
500 (a lone surrogate `"\\ud800"` is not encodable as UTF-8; `NaN`, which Python's JSON parser accepts, is not
valid JSON out; a 2 MB string or a 900-deep array is echoed whole). `validation_error` answers the same 422 —
`{"detail": [{"type", "loc", "msg", "input"}]}`, naming each field — with every echoed input made printable,
bounded in size and depth. `too_deep` answers a request nested past what the parser or a validator can walk
(RecursionError) with 400, naming the reason; the webhook intake refuses such bodies itself (canonical/payload.py).
A NUL character, which PostgreSQL text cannot hold, in the path or a query parameter is a 422 naming it, and in a
body the database refused, a 422 too (`nul_in_path_or_query`, `unstorable_value`). `install(app)` registers these;
nothing else is caught here, so a real bug still surfaces as a 500."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from canonical.errors import printable

ECHO_CHARS = 200  # of an invalid input shown back
ECHO_DEPTH = 4
ECHO_ITEMS = 20
MAX_ERRORS = 50


def echo(value: Any, depth: int = 0) -> Any:
    """A JSON-safe, bounded copy of an invalid input (iterates no deeper than ECHO_DEPTH)."""
    if value is None or isinstance(value, bool | int):
        return value if not isinstance(value, int) or abs(value) < 10 ** 30 else printable(value, 40)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # NaN / Infinity are no JSON
    if isinstance(value, str):
        return printable(value, ECHO_CHARS)
    if isinstance(value, bytes | bytearray):
        return printable(bytes(value[:ECHO_CHARS]).decode("utf-8", "backslashreplace"), ECHO_CHARS)
    if depth >= ECHO_DEPTH:
        return "…"
    if isinstance(value, dict):
        items = list(value.items())
        out = {printable(k, 100): echo(v, depth + 1) for k, v in items[:ECHO_ITEMS]}
        if len(items) > ECHO_ITEMS:
            out["…"] = f"{len(items) - ECHO_ITEMS} more keys"
        return out
    if isinstance(value, list | tuple | set | frozenset):
        seq = list(value)
        return [echo(v, depth + 1) for v in seq[:ECHO_ITEMS]] + (
            [f"… {len(seq) - ECHO_ITEMS} more items"] if len(seq) > ECHO_ITEMS else [])
    return printable(repr(value), ECHO_CHARS)


def _error(err: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": err.get("type"), "loc": [echo(p) for p in err.get("loc", ())],
                           "msg": printable(err.get("msg", ""), 1000)}
    if "input" in err:
        out["input"] = echo(err["input"])
    if err.get("ctx"):
        out["ctx"] = {printable(k, 100): echo(v if isinstance(v, str | int | float | bool | None) else str(v))
                      for k, v in err["ctx"].items()}
    return out


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    detail = [_error(e) for e in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        detail.append({"type": "too_many_errors", "loc": [], "msg": f"and {len(errors) - MAX_ERRORS} more errors"})
    return JSONResponse({"detail": detail}, status_code=422)


async def too_deep(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": "the request is nested too deeply to be read (JSON objects or arrays within "
                                   "each other hundreds of levels deep)"}, status_code=400)


NUL = "\x00"


def _nul_detail(loc: list[str]) -> dict:
    return {"type": "nul_character", "loc": loc, "msg": "a NUL character (\\u0000) cannot be stored or matched",
            "input": None}


def nul_in_path_or_query(request: Request) -> JSONResponse | None:
    """A NUL character in the path or a query parameter is refused with 422 naming it: PostgreSQL text cannot hold
    one (the query would fail with a DataError, a 500). None: the request has none."""
    if NUL in request.url.path:
        return JSONResponse({"detail": [_nul_detail(["path"])]}, status_code=422)
    bad = [name for name, value in request.query_params.multi_items() if NUL in name or NUL in value]
    if bad:
        return JSONResponse({"detail": [_nul_detail(["query", printable(n, ECHO_CHARS)]) for n in bad[:MAX_ERRORS]]},
                            status_code=422)
    return None


class NulGuard:
    """A plain ASGI middleware (no per-request task and streams, as an `http` middleware has): only a request whose
    path or raw query string may hold a NUL (`%00`) is looked at by `nul_in_path_or_query`."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            query = scope.get("query_string") or b""
            if NUL in scope.get("path", "") or b"%00" in query or b"\x00" in query:
                answer = nul_in_path_or_query(Request(scope, receive))
                if answer is not None:
                    await answer(scope, receive, send)
                    return
        await self.app(scope, receive, send)


async def unstorable_value(request: Request, exc: Exception) -> JSONResponse:
    """The database refused a value the request carried (a NUL character in a JSON string, on PostgreSQL): 422.
    Any other data error is a bug and stays a 500."""
    if NUL in str(getattr(exc, "orig", exc)) or "0x00" in str(exc):
        return JSONResponse({"detail": [_nul_detail(["body"])]}, status_code=422)
    return JSONResponse({"detail": "internal error"}, status_code=500)


def install(app: FastAPI) -> None:
    from sqlalchemy.exc import DataError

    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(RecursionError, too_deep)
    app.add_exception_handler(DataError, unstorable_value)
    app.add_middleware(NulGuard)
