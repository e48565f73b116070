"""Vendor API versions and their documented sunset dates (pure: no I/O, no settings).

Each adapter declares the vendor API version(s) it speaks as a `VendorApiVersion`, with the date the vendor
documents as the end of support / removal (`sunset`) and the page that says so (`source`). `lifecycle()` turns a
declaration and a day into "ok", "warn" (the sunset is within `WARN_DAYS`) or "past" (on or after the sunset:
the vendor no longer serves or supports it). A vendor that documents no end date has `sunset=None`: "ok", and the
`note` says why there is no date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

WARN_DAYS = 90

Status = Literal["ok", "warn", "past"]


@dataclass(frozen=True)
class VendorApiVersion:
    vendor: str
    api: str
    version: str
    released: date | None
    sunset: date | None
    source: str
    note: str = ""


def days_left(v: VendorApiVersion, today: date) -> int | None:
    return None if v.sunset is None else (v.sunset - today).days


def lifecycle(v: VendorApiVersion, today: date, *, warn_days: int = WARN_DAYS) -> Status:
    """"past" on and after the sunset day, "warn" within `warn_days` days before it, else "ok"."""
    left = days_left(v, today)
    if left is None:
        return "ok"
    if left <= 0:
        return "past"
    if left <= warn_days:
        return "warn"
    return "ok"


def quarterly_sunset(version: str, *, months: int = 12) -> date:
    """Sunset of a date-named quarterly version ("YYYY-MM"), supported `months` after its release on the 1st
    (Shopify: each stable version is supported for a minimum of 12 months)."""
    try:
        year_s, month_s = version.split("-")
        year, month = int(year_s), int(month_s)
        released = date(year, month, 1)
    except ValueError:
        raise ValueError(f"not a YYYY-MM version: {version!r}") from None
    total = released.month - 1 + months
    return date(released.year + total // 12, total % 12 + 1, 1)


def quarterly_release(version: str) -> date:
    year_s, month_s = version.split("-")
    return date(int(year_s), int(month_s), 1)


def day(iso: str) -> date:
    """A documented date written as YYYY-MM-DD (for declarations in modules that do not import `date`)."""
    return date.fromisoformat(iso)
