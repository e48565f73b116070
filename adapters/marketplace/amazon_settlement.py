"""Amazon settlement reports (flat file, tab-separated) → canonical `Settlement` and `SettlementLine`s, streamed.

`GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE_V2` has 23 columns (settlement-id … quantity-purchased); every row
carries an amount-type, an amount-description and an amount. The first data row carries the settlement's
totals (settlement-id, start and end date, deposit-date, total-amount, currency) and no transaction.
The retired V1 layout (`GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE`, 36 columns: price-type/price-amount,
item-related-fee-type/amount, promotion-…, other-fee-…) is read too, each amount column becoming one line,
so older reports reconcile the same way.

EU marketplaces write amounts with a decimal comma (`95,00`) and dates as `DD.MM.YYYY`; both are accepted.
The reader never holds the file: it iterates rows from the file object.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO

from canonical.finance import Settlement, SettlementFileInvalid, SettlementLine, TransactionKind
from canonical.money import parse_decimal

PROVIDER = "amazon"
V2_COLUMNS = (
    "settlement-id", "settlement-start-date", "settlement-end-date", "deposit-date", "total-amount", "currency",
    "transaction-type", "order-id", "merchant-order-id", "adjustment-id", "shipment-id", "marketplace-name",
    "amount-type", "amount-description", "amount", "fulfillment-id", "posted-date", "posted-date-time",
    "order-item-code", "merchant-order-item-id", "merchant-adjustment-item-id", "sku", "quantity-purchased",
)
# V1: (type column, amount column) → the V2 amount-type the amount becomes
V1_AMOUNTS = (
    ("price-type", "price-amount", "ItemPrice"),
    ("item-related-fee-type", "item-related-fee-amount", "ItemFees"),
    ("shipment-fee-type", "shipment-fee-amount", "ShipmentFees"),
    ("order-fee-type", "order-fee-amount", "OrderFees"),
    ("promotion-type", "promotion-amount", "Promotion"),
    ("direct-payment-type", "direct-payment-amount", "DirectPayment"),
    ("other-fee-reason-description", "other-fee-amount", "other-transaction"),
    (None, "misc-fee-amount", "MiscFee"),
    (None, "other-amount", "other-transaction"),
)
BUYER_AMOUNT_TYPES = frozenset({"itemprice", "promotion"})  # what the buyer paid (or got back): matched to orders
MAX_QUANTITY = 10 ** 9
RESERVE_WORDS = ("reserve amount", "reserve balance")

_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S %Z", "%Y-%m-%d %H:%M:%S", "%d.%m.%Y %H:%M:%S %Z", "%d.%m.%Y %H:%M:%S",
                 "%d.%m.%Y", "%m/%d/%y", "%m/%d/%Y", "%Y-%m-%d", "%d/%m/%Y %H:%M:%S %Z")


@functools.lru_cache(maxsize=8192)
def parse_amazon_datetime(value: str) -> datetime | None:
    """Amazon's dates in every format its reports use, as UTC. Cached: a settlement repeats the same few
    timestamps on thousands of lines, and the `strptime` fallback was its slowest per-line cost."""
    text = (value or "").strip()
    if not text:
        return None
    # `2026-01-05 10:00:00 UTC` is ISO apart from the zone name
    iso = text[:-4] if text.endswith((" UTC", " GMT")) else text
    parsed: datetime | None
    try:
        parsed = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
        for fmt in _DATE_FORMATS:
            try:
                parsed = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        if parsed is None:
            raise ValueError(f"{value[:40]!r} is not a date Amazon writes") from None
    try:
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00
        raise ValueError(f"{value[:40]!r} is out of range") from None


def transaction_kind(transaction_type: str, amount_type: str, description: str, order_id: str | None
                     ) -> TransactionKind:
    t = transaction_type.strip().lower()
    d = f"{amount_type} {description}".lower()
    if any(w in d for w in RESERVE_WORDS):
        return TransactionKind.RESERVE
    if t == "order":
        return TransactionKind.ORDER
    if t in ("refund", "chargeback refund", "a-to-z guarantee claim", "safe-t reimbursement"):
        return TransactionKind.REFUND
    if t in ("adjustment",) or "reimburse" in d:
        return TransactionKind.ADJUSTMENT
    if t in ("servicefee", "other-transaction", "couponredemptionfee", "lightning deal fee") or not order_id:
        return TransactionKind.FEE
    return TransactionKind.ADJUSTMENT


def _text(fileobj: IO) -> Iterator[str]:
    """The report's lines as text. Bytes are decoded line by line (not in buffered chunks), so a line that is not
    UTF-8 is refused with its line number."""
    if isinstance(fileobj, io.TextIOBase):
        yield from fileobj
        return
    for n, raw in enumerate(fileobj, start=1):
        if n == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SettlementFileInvalid(f"row {n}: not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})",
                                        details={"row": n}) from None


class AmazonSettlementReader:
    """Reads the header and the totals row on construction (`settlement`); iterating yields the lines."""

    provider = PROVIDER

    def __init__(self, fileobj: IO, *, provider: str = PROVIDER) -> None:
        self.provider = provider
        self._rows = csv.reader(_text(fileobj), delimiter="\t", quoting=csv.QUOTE_NONE)
        self._row_no = 0
        try:
            header = next(self._rows)
        except StopIteration:
            raise SettlementFileInvalid("the settlement report is empty") from None
        except (UnicodeDecodeError, csv.Error) as exc:
            raise SettlementFileInvalid(f"the settlement report cannot be read: {exc}") from None
        self._row_no = 1
        self.columns = [c.strip().lower() for c in header]
        self._index = {name: i for i, name in enumerate(self.columns)}
        if "settlement-id" not in self._index:
            raise SettlementFileInvalid("not an Amazon settlement flat file: no settlement-id column")
        if "amount" in self._index and "amount-type" in self._index:
            self.version = "V2"
            missing = [c for c in V2_COLUMNS if c not in self._index]
            if missing:
                raise SettlementFileInvalid(f"settlement flat file V2 lacks column(s): {', '.join(missing)}")
        elif "price-amount" in self._index:
            self.version = "V1"
        else:
            raise SettlementFileInvalid("unknown settlement flat file layout (neither V2 `amount` nor V1 "
                                        "`price-amount` columns)")
        self.settlement = self._totals()
        self.line_count = 0

    # -- rows ---------------------------------------------------------------------------------------------
    def _next(self) -> list[str] | None:
        try:
            row = next(self._rows)
        except StopIteration:
            return None
        except (UnicodeDecodeError, csv.Error) as exc:
            raise SettlementFileInvalid(f"row {self._row_no + 1}: cannot be read: {exc}") from None
        self._row_no += 1
        return row

    def _get(self, row: list[str], name: str) -> str:
        i = self._index.get(name)
        return row[i].strip() if i is not None and i < len(row) else ""

    def _fail(self, message: str) -> SettlementFileInvalid:
        return SettlementFileInvalid(f"row {self._row_no}: {message}", details={"row": self._row_no})

    def _totals(self) -> Settlement:
        row = self._next()
        while row is not None and not any(cell.strip() for cell in row):
            row = self._next()
        if row is None:
            raise SettlementFileInvalid("the settlement report has no totals row")
        if not self._get(row, "total-amount") or self._get(row, "transaction-type"):
            raise self._fail("the first data row must carry the settlement totals (total-amount, no transaction)")
        try:
            currency = self._get(row, "currency")
            return Settlement(
                provider=self.provider, settlement_id=self._get(row, "settlement-id"),
                period_start=parse_amazon_datetime(self._get(row, "settlement-start-date")),
                period_end=parse_amazon_datetime(self._get(row, "settlement-end-date")),
                deposit_date=parse_amazon_datetime(self._get(row, "deposit-date")),
                total=parse_decimal(self._get(row, "total-amount")),
                currency=currency,
            )
        except ValueError as exc:
            raise self._fail(f"invalid settlement totals: {exc}") from None

    def __iter__(self) -> Iterator[SettlementLine]:
        settlement = self.settlement
        while True:
            row = self._next()
            if row is None:
                return
            if not any(cell.strip() for cell in row):
                continue
            sid = self._get(row, "settlement-id")
            if not sid:  # every row of a report carries its settlement id: anything else is garbage
                raise self._fail("no settlement-id (not a settlement row)")
            if sid != settlement.settlement_id:
                raise self._fail(f"belongs to settlement {sid[:40]!r}, not {settlement.settlement_id}")
            if len(row) > len(self.columns) and any(cell.strip() for cell in row[len(self.columns):]):
                raise self._fail(f"{len(row)} cells, the header has {len(self.columns)} columns")
            for amount_type, description, amount in self._amounts(row):
                yield self._line(row, amount_type, description, amount)

    def _amounts(self, row: list[str]) -> Iterator[tuple[str, str, str]]:
        if self.version == "V2":
            amount = self._get(row, "amount")
            if not amount:
                raise self._fail("no amount (every V2 row has amount-type, amount-description and amount)")
            yield self._get(row, "amount-type"), self._get(row, "amount-description"), amount
            return
        found = False
        for type_col, amount_col, amount_type in V1_AMOUNTS:
            amount = self._get(row, amount_col)
            if amount:
                found = True
                description = self._get(row, type_col) if type_col else amount_col.removesuffix("-amount")
                yield amount_type, description, amount
        if not found:  # a row without amounts (V1 writes them) posts nothing, but what it says must still parse
            self._check_fields(row)

    def _check_fields(self, row: list[str]) -> tuple[int | None, datetime | None]:
        """The row's quantity and posting time, checked (a ValueError names the field)."""
        text = self._get(row, "quantity-purchased")
        try:
            quantity = int(text) if text else None
        except ValueError:
            raise self._fail(f"quantity-purchased {text[:40]!r} is not a whole number") from None
        if quantity is not None and abs(quantity) > MAX_QUANTITY:
            raise self._fail(f"quantity-purchased {text[:40]} is out of range")
        posted = self._get(row, "posted-date-time") or self._get(row, "posted-date")
        try:
            return quantity, parse_amazon_datetime(posted)
        except (ValueError, OverflowError) as exc:
            raise self._fail(f"posted-date: {exc}") from None

    def _line(self, row: list[str], amount_type: str, description: str, amount_text: str) -> SettlementLine:
        self.line_count += 1
        try:
            order_id = self._get(row, "order-id") or None
            transaction_type = self._get(row, "transaction-type")
            kind = transaction_kind(transaction_type, amount_type, description, order_id)
            quantity, posted = self._check_fields(row)
            return SettlementLine(
                provider=self.provider, settlement_id=self.settlement.settlement_id, line_no=self.line_count,
                transaction_type=transaction_type, kind=kind, order_id=order_id,
                merchant_order_id=self._get(row, "merchant-order-id") or None,
                adjustment_id=self._get(row, "adjustment-id") or None,
                shipment_id=self._get(row, "shipment-id") or None,
                marketplace=self._get(row, "marketplace-name") or None, sku=self._get(row, "sku") or None,
                quantity=quantity, amount_type=amount_type,
                amount_description=description, amount=parse_decimal(amount_text),
                currency=self.settlement.currency, posted_at=posted,
                buyer_amount=kind in (TransactionKind.ORDER, TransactionKind.REFUND)
                and amount_type.lower() in BUYER_AMOUNT_TYPES,
                source_ref=self._get(row, "order-item-code") or self._get(row, "merchant-adjustment-item-id") or None,
            )
        except ValueError as exc:
            raise self._fail(str(exc).splitlines()[-1] if "\n" in str(exc) else str(exc)) from None


def read_settlement(fileobj: IO, *, provider: str = PROVIDER) -> AmazonSettlementReader:
    return AmazonSettlementReader(fileobj, provider=provider)


def sniff(head: bytes) -> bool:
    """True when the first bytes look like an Amazon settlement flat file."""
    first = head.split(b"\n", 1)[0].lstrip(b"\xef\xbb\xbf").lower()
    return b"settlement-id\t" in first
