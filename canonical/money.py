"""Money: a Decimal amount with an ISO-4217 currency, rounded half-even to the currency's minor unit."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, field_validator, model_validator

# ISO 4217 minor units for the currencies that differ from 2, plus the common 2-digit ones we accept.
_MINOR_UNITS: dict[str, int] = {
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
}
_TWO_DIGIT = {
    "AED", "AUD", "BGN", "BRL", "CAD", "CHF", "CNY", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF", "IDR",
    "ILS", "INR", "MXN", "MYR", "NOK", "NZD", "PHP", "PLN", "RON", "SAR", "SEK", "SGD", "THB", "TRY",
    "TWD", "USD", "ZAR",
}
KNOWN_CURRENCIES = frozenset(_MINOR_UNITS) | _TWO_DIGIT


def currency_code(v: object) -> str:
    """A known ISO-4217 code, upper-cased; ValueError otherwise (for the models' currency validators)."""
    if not isinstance(v, str):  # `currency: {}` is no code (and a dict cannot even be looked up)
        raise ValueError(f"currency must be a 3-letter ISO-4217 code, got {type(v).__name__}")
    code = v.strip().upper()
    if code not in KNOWN_CURRENCIES:
        raise ValueError(f"unknown currency {v[:20]!r}")
    return code


def minor_units(currency: str) -> int:
    return minor_units_of(currency)


# Amounts the platform carries: up to 10^15 (a quadrillion) in any currency, exactly. Anything larger is no
# order, payout or refund; refusing it here keeps every later sum inside Decimal's 28 significant digits.
MAX_AMOUNT = Decimal(10) ** 15


def _out_of_range(amount: Decimal) -> str:
    size = f"about 10^{amount.adjusted()}" if amount.is_finite() else str(amount)
    return f"amount {size} is out of range (at most 10^15 in absolute value)"


def minor_units_of(currency: object) -> int:
    """`minor_units` for any value a payload may put where a currency belongs (`{}`, None, 42): 2 unless it is
    a code with other minor units. Never raises."""
    return _MINOR_UNITS.get(currency, 2) if isinstance(currency, str) else 2


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round half-even to the currency's minor unit; an amount beyond MAX_AMOUNT is a ValueError."""
    exp = Decimal(1).scaleb(-minor_units_of(currency))
    if not amount.is_finite() or amount.copy_abs() >= MAX_AMOUNT:
        raise ValueError(_out_of_range(amount))
    return amount.quantize(exp, rounding=ROUND_HALF_EVEN)


def parse_decimal(value: Any) -> Decimal:
    """Strict Decimal parsing: strings and ints and Decimals; floats are refused (money is never float).

    A decimal comma ("95,00", as EU marketplace reports write it) is accepted when it is the only separator.
    """
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool):
        raise ValueError("a boolean is not an amount")
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        raise ValueError(f"amount {value!r} is a float; money must be given as a string or Decimal")
    elif isinstance(value, str):
        text = value.strip()
        if "," in text and "." not in text:
            text = text.replace(",", ".")
        try:
            result = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"{value[:40]!r} is not a decimal amount") from None
    else:
        raise ValueError(f"{type(value).__name__} is not an amount")
    if not result.is_finite():
        raise ValueError(f"{str(value)[:40]!r} is not a finite amount")
    if result.copy_abs() >= MAX_AMOUNT:
        raise ValueError(_out_of_range(result))
    return result


DecimalAmount = Annotated[
    Decimal,
    BeforeValidator(parse_decimal),
    PlainSerializer(lambda d: str(d), return_type=str, when_used="json"),
]


class Money(BaseModel):
    """An amount in one currency. Arithmetic keeps the currency and refuses to mix currencies."""

    model_config = ConfigDict(frozen=True)

    amount: DecimalAmount
    currency: str

    @field_validator("currency", mode="before")
    @classmethod
    def _currency(cls, v: Any) -> str:
        if not isinstance(v, str) or len(v.strip()) != 3 or not v.strip().isalpha():
            raise ValueError(f"currency must be a 3-letter ISO-4217 code, got {type(v).__name__} {str(v)[:20]!r}")
        code = v.strip().upper()
        if code not in KNOWN_CURRENCIES:
            raise ValueError(f"unknown currency {code!r}")
        return code

    @model_validator(mode="after")
    def _round(self) -> Money:
        rounded = quantize(self.amount, self.currency)
        if rounded != self.amount or rounded.as_tuple().exponent != self.amount.as_tuple().exponent:
            object.__setattr__(self, "amount", rounded)
        return self

    @classmethod
    def of(cls, amount: Any, currency: str) -> Money:
        return cls(amount=amount, currency=currency)

    @classmethod
    def _exact(cls, amount: Decimal, currency: str) -> Money:
        """The result of arithmetic that keeps the minor unit — a sum, a difference, a negation or a whole multiple
        of amounts already in `currency`'s minor unit has their exponent, so there is nothing to round or check but
        the range: built without validating again (the hot path of every order total), validated (and refused)
        at MAX_AMOUNT and beyond."""
        if amount.copy_abs() >= MAX_AMOUNT:
            return cls(amount=amount, currency=currency)
        return cls.model_construct(amount=amount, currency=currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        """Validated once per currency (an unknown one is refused every time), then shared: Money is frozen."""
        zero = _ZEROS.get(currency) if cls is Money else None
        if zero is None:
            zero = cls(amount=Decimal(0), currency=currency)
            if cls is Money and zero.currency == currency:
                _ZEROS[currency] = zero
        return zero

    def _check(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise ValueError(f"currency mismatch: {self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._check(other)
        return Money._exact(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check(other)
        return Money._exact(self.amount - other.amount, self.currency)

    def __mul__(self, factor: int | Decimal) -> Money:
        if isinstance(factor, float):
            raise TypeError("multiply Money by int or Decimal, never float")
        if isinstance(factor, int):  # a whole multiple keeps the minor unit
            return Money._exact(self.amount * factor, self.currency)
        return Money(amount=self.amount * Decimal(factor), currency=self.currency)

    __rmul__ = __mul__

    def __neg__(self) -> Money:
        return Money._exact(-self.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._check(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._check(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self._check(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self._check(other)
        return self.amount >= other.amount

    @property
    def is_zero(self) -> bool:
        return self.amount == 0

    def allocate(self, weights: list[Decimal | int]) -> list[Money]:
        """Split into parts proportional to weights; the parts sum exactly to self (largest remainder)."""
        if not weights:
            return []
        total_weight = sum(Decimal(w) for w in weights)
        unit = Decimal(1).scaleb(-minor_units(self.currency))
        if total_weight == 0:
            return [Money.zero(self.currency) for _ in weights]
        raw = [self.amount * Decimal(w) / total_weight for w in weights]
        floored = [(r / unit).to_integral_value(rounding="ROUND_FLOOR") * unit for r in raw]
        remainder = int(((self.amount - sum(floored)) / unit).to_integral_value())
        order = sorted(range(len(raw)), key=lambda i: (raw[i] - floored[i]), reverse=True)
        for i in order[: max(remainder, 0)]:
            floored[i] += unit
        return [Money(amount=a, currency=self.currency) for a in floored]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


_ZEROS: dict[str, Money] = {}


def sum_money(items: list[Money], currency: str) -> Money:
    total = Money.zero(currency)
    for m in items:
        total = total + m
    return total
