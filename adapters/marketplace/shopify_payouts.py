"""Shopify Payments payouts → canonical `Settlement` and `SettlementLine`s, streamed.

Shopify's published samples (tests/fixtures/shopify/rest_*_shopify_api_js_2026-07.json, from Shopify's own
library tests) and the documented REST Admin API shape; adapters/marketplace/shopify_payouts_api.py fetches them
(`GET /admin/api/<version>/shopify_payments/payouts/{id}.json` → `{"payout": {"id", "status", "date", "currency",
"amount", "summary": {...}}}` and `GET .../shopify_payments/balance/transactions.json?payout_id={id}` →
`{"transactions": [{"id", "type", "test", "payout_id", "payout_status", "currency", "amount", "fee", "net",
"source_id", "source_type", "source_order_id", "source_order_transaction_id", "processed_at"}]}`; amounts are
decimal strings, ids are integers above 2^53 (kept exact, never floats).

A report file is one JSON object holding both: `{"payout": {...}, "transactions": [...]}` (the payout first). It is
read incrementally: the transactions array is decoded one element at a time from the file object.

Each balance transaction becomes up to two lines: its gross `amount` (amount-type = the transaction type,
description `amount`) and its `fee` (description `fee`, negated: the fee is taken from the seller), so the lines of
a transaction add up to its `net`. `payout` transactions (the transfer itself) are not lines: the payout's amount is
the settlement's deposit.
"""

from __future__ import annotations

import codecs
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import IO, Any

from canonical.finance import Settlement, SettlementFileInvalid, SettlementLine, TransactionKind
from canonical.money import parse_decimal

PROVIDER = "shopify"
KINDS = {
    "charge": TransactionKind.ORDER, "refund": TransactionKind.REFUND, "dispute": TransactionKind.ADJUSTMENT,
    "reserve": TransactionKind.RESERVE, "reserved_funds": TransactionKind.RESERVE,
    "adjustment": TransactionKind.ADJUSTMENT, "credit": TransactionKind.ADJUSTMENT,
    "debit": TransactionKind.ADJUSTMENT, "application_fee_refund": TransactionKind.FEE,
    "payout_failure": TransactionKind.OTHER, "payout_cancellation": TransactionKind.OTHER,
}
SKIPPED_TYPES = frozenset({"payout"})
_CHUNK = 64 * 1024
_DECODER = json.JSONDecoder(parse_float=Decimal)


class _JsonStream:
    """A minimal incremental reader for `{"key": value, "array_key": [obj, obj, ...]}` documents. Bytes are
    decoded incrementally; every refusal names the line it is on."""

    def __init__(self, fileobj: IO) -> None:
        self._text = isinstance(fileobj, io.TextIOBase)
        self._f = fileobj
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self._buf = ""
        self._pos = 0
        self._eof = False
        self._lines_dropped = 0  # newlines in the part of the buffer already let go

    def line(self, pos: int | None = None) -> int:
        """The 1-based line of a buffer position (default: the current one)."""
        return self._lines_dropped + self._buf.count("\n", 0, self._pos if pos is None else pos) + 1

    def fail(self, message: str, pos: int | None = None) -> SettlementFileInvalid:
        line = self.line(pos)
        return SettlementFileInvalid(f"payout file line {line}: {message}", details={"line": line})

    def _fill(self) -> bool:
        if self._eof:
            return False
        raw = self._f.read(_CHUNK)
        if not raw:
            self._eof = True
        if self._text:
            chunk = raw
        else:
            try:
                chunk = self._decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as exc:
                line = self._lines_dropped + self._buf.count("\n") + raw[:max(exc.start, 0)].count(b"\n") + 1
                raise SettlementFileInvalid(f"payout file line {line}: not UTF-8", details={"line": line}) from None
        if not chunk:
            return False
        self._append(chunk)
        return True

    def _append(self, chunk: str) -> None:
        if self._pos > _CHUNK:
            self._lines_dropped += self._buf.count("\n", 0, self._pos)
            self._buf = self._buf[self._pos:]
            self._pos = 0
        self._buf += chunk

    def _peek(self) -> str:
        while True:
            while self._pos < len(self._buf) and self._buf[self._pos] in " \t\r\n":
                self._pos += 1
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._fill():
                return ""

    def expect(self, char: str) -> None:
        got = self._peek()
        if got != char:
            raise self.fail(f"expected {char!r}, found {got or 'end of file'!r}")
        self._pos += 1

    def accept(self, char: str) -> bool:
        if self._peek() == char:
            self._pos += 1
            return True
        return False

    def value(self) -> Any:
        self._peek()
        while True:
            try:
                obj, end = _DECODER.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                if self._fill():
                    continue
                raise self.fail(f"not valid JSON: {exc.msg}", exc.pos) from None
            except RecursionError:
                raise self.fail("nested deeper than the JSON parser allows") from None
            except ValueError as exc:  # a number of thousands of digits
                raise self.fail(f"not valid JSON: {exc}") from None
            if end == len(self._buf) and not self._eof and self._fill():
                continue  # a bare number may go on in the next chunk
            self._pos = end
            return obj

    def object_items(self) -> Iterator[tuple[str, Any]]:
        """Iterate the top-level object's keys; the caller consumes each value (`value()` or `array()`)."""
        self.expect("{")
        if self.accept("}"):
            return
        while True:
            key = self.value()
            if not isinstance(key, str):
                raise self.fail("object keys must be strings")
            self.expect(":")
            yield key, self
            if self.accept(","):
                continue
            self.expect("}")
            return

    def array(self) -> Iterator[Any]:
        self.expect("[")
        if self.accept("]"):
            return
        while True:
            yield self.value()
            if self.accept(","):
                continue
            self.expect("]")
            return


def _dt(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value).strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 date") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _money(value: Any) -> Decimal:
    if isinstance(value, Decimal):  # a JSON number: exact (parse_float=Decimal), still accepted
        return value
    return parse_decimal(value if value is not None else "0")


def _payout_id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip():
        raise ValueError(f"payout id must be an integer or a string, got {type(value).__name__}")
    return str(value).strip()


def _id(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


class ShopifyPayoutReader:
    """`settlement` is read on construction (the payout object must come before the transactions); iterating
    yields the lines of the payout's balance transactions."""

    def __init__(self, fileobj: IO, *, provider: str = PROVIDER) -> None:
        self.provider = provider
        self._stream = _JsonStream(fileobj)
        self._items = self._stream.object_items()
        self.line_count = 0
        self._transactions: Iterator[Any] | None = None
        payout = None
        for key, stream in self._items:
            if key == "payout":
                payout = stream.value()
                break
            if key == "transactions":
                raise SettlementFileInvalid("payout file: put the `payout` object before `transactions`")
            stream.value()  # ignore other keys
        if not isinstance(payout, dict):
            raise SettlementFileInvalid("payout file has no `payout` object")
        try:
            self.settlement = Settlement(
                provider=provider, settlement_id=_payout_id(payout.get("id")), deposit_date=_dt(payout.get("date")),
                total=_money(payout["amount"]), currency=payout["currency"])
        except (KeyError, ValueError, TypeError, ArithmeticError) as exc:
            raise self._stream.fail(f"payout object is invalid: {type(exc).__name__}: {exc}") from None
        self.status = payout.get("status")
        self.summary = payout.get("summary") or {}

    def __iter__(self) -> Iterator[SettlementLine]:
        for key, stream in self._items:
            if key != "transactions":
                stream.value()
                continue
            for n, txn in enumerate(stream.array(), start=1):
                if not isinstance(txn, dict):
                    raise stream.fail(f"transaction {n}: not an object")
                try:
                    yield from self._lines(txn)
                except (KeyError, ValueError, TypeError, AttributeError, ArithmeticError) as exc:
                    line = stream.line()
                    raise SettlementFileInvalid(
                        f"payout file line {line} (transaction {n}, id {str(txn.get('id'))[:40]}): "
                        f"{'missing ' if isinstance(exc, KeyError) else ''}{exc}",
                        details={"transaction": n, "line": line}) from None

    def _lines(self, txn: dict) -> Iterator[SettlementLine]:
        ttype = str(txn["type"]).strip().lower()
        if ttype in SKIPPED_TYPES:
            return
        payout_id = _id(txn.get("payout_id"))
        if payout_id is not None and payout_id != self.settlement.settlement_id:
            raise ValueError(f"belongs to payout {payout_id}, not {self.settlement.settlement_id}")
        currency = str(txn.get("currency") or self.settlement.currency).upper()
        if currency != self.settlement.currency:
            raise ValueError(f"in {currency}, the payout in {self.settlement.currency}")
        kind = KINDS.get(ttype, TransactionKind.OTHER)
        order_id = _id(txn.get("source_order_id"))
        common = dict(
            provider=self.provider, settlement_id=self.settlement.settlement_id, transaction_type=ttype, kind=kind,
            order_id=order_id, adjustment_id=_id(txn.get("source_id")) if kind != TransactionKind.ORDER else None,
            currency=currency, posted_at=_dt(txn.get("processed_at")), source_ref=_id(txn.get("id")),
        )
        amount, fee = _money(txn["amount"]), _money(txn.get("fee"))
        net = txn.get("net")
        if net is not None and _money(net) != amount - fee:
            raise ValueError(f"net {net} is not amount {amount} minus fee {fee}")
        self.line_count += 1
        yield SettlementLine(line_no=self.line_count, amount_type=ttype, amount_description="amount", amount=amount,
                             buyer_amount=kind in (TransactionKind.ORDER, TransactionKind.REFUND), **common)
        if fee != 0:
            self.line_count += 1
            yield SettlementLine(line_no=self.line_count, amount_type=ttype, amount_description="fee", amount=-fee,
                                 **common)


def read_payout(fileobj: IO, *, provider: str = PROVIDER) -> ShopifyPayoutReader:
    return ShopifyPayoutReader(fileobj, provider=provider)


def sniff(head: bytes) -> bool:
    return b'"payout"' in head[:4096]
