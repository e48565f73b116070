"""Catalog import: `channel,channel_sku,item_code,name,location,on_hand,unit_price,currency` rows into the ERP."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, field_validator

from adapters.erp.local import LocalErp
from canonical.money import DecimalAmount, Money

HEADER = ["channel", "channel_sku", "item_code", "name", "location", "on_hand", "unit_price", "currency"]


class CatalogRow(BaseModel):
    channel: str = Field(min_length=1)
    channel_sku: str = Field(min_length=1)
    item_code: str = Field(min_length=1)
    name: str = Field(min_length=1)
    location: str = Field(min_length=1)
    on_hand: int = Field(ge=0)
    unit_price: DecimalAmount
    currency: str

    @field_validator("*", mode="before")
    @classmethod
    def _strip(cls, v):
        return v.strip() if isinstance(v, str) else v

    def price(self) -> Money:
        return Money.of(self.unit_price, self.currency)


@dataclass
class ImportReport:
    rows: int = 0
    items: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)


def parse_catalog(text: str) -> tuple[list[CatalogRow], list[str]]:
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or [f.strip() for f in reader.fieldnames] != HEADER:
        raise ValueError(f"catalog header must be exactly: {','.join(HEADER)} (got {reader.fieldnames})")
    rows, errors = [], []
    for lineno, raw in enumerate(reader, start=2):
        try:
            row = CatalogRow.model_validate(raw)
            row.price()
            rows.append(row)
        except (ValidationError, ValueError) as exc:
            msgs = exc.errors() if isinstance(exc, ValidationError) else [{"loc": (), "msg": str(exc)}]
            detail = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'row'}: {e['msg']}" for e in msgs)
            errors.append(f"line {lineno}: {detail}")
    return rows, errors


def import_catalog(erp: LocalErp, path: Path | str | None = None, *, text: str | None = None) -> ImportReport:
    """Validate every row first; import nothing if any row is bad (a half-imported catalog oversells)."""
    if text is None:
        text = Path(path).read_text(encoding="utf-8-sig")  # type: ignore[arg-type]
    rows, errors = parse_catalog(text)
    report = ImportReport(errors=errors)
    if errors:
        return report
    for row in rows:
        price = row.price()
        erp.upsert_item(row.item_code, row.name, price.amount, price.currency)
        erp.map_sku(row.channel, row.channel_sku, row.item_code)
        erp.set_on_hand(row.item_code, row.location, row.on_hand)
        report.rows += 1
        report.items.add(row.item_code)
    return report


DEMO_CATALOG = Path(__file__).with_name("demo_catalog.csv")
