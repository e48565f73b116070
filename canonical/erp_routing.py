"""ERP coexistence (issue 21, part 2): which ERP each process of each store or legal entity posts to, and the pure
parity rule that compares what two ERPs booked for one business key.

Routing is configuration (`erp_routing.toml`, docs/erp-migration.md): named ERPs, and rules that send a process
(`orders`, `invoices`, `credit_notes`, `journals`, `stock`, or `*`) of a scope (a store, a legal entity, or every one)
to a system of record and, in dual-run, to a shadow ERP as well. The most specific rule wins: a store's rule before
its legal entity's before the default; within one scope a rule for the process before a `*` rule.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from canonical.money import quantize

PROCESSES: tuple[str, ...] = ("orders", "invoices", "credit_notes", "journals", "stock")
Process = Literal["orders", "invoices", "credit_notes", "journals", "stock"]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ErpDefinition(_Strict):
    """One ERP the platform talks to. `erpnext` takes the RETAILFLOW_ERPNEXT_* settings; `base_url`, `company`,
    `warehouse` override them (a second site, or a shadow company on the same site)."""

    adapter: Literal["local", "erpnext"]
    base_url: str | None = None
    company: str | None = None
    warehouse: str | None = None


class ErpRoute(_Strict):
    """Where a business key posts: its system of record, and in dual-run the shadow ERP."""

    record: str
    shadow: str | None = None


class RouteRule(_Strict):
    process: Process | Literal["*"] = "*"
    store: str | None = Field(default=None, description="A store (its channel), e.g. shopify-de")
    legal_entity: str | None = None
    record: str
    shadow: str | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _one_scope(self) -> RouteRule:
        if self.store and self.legal_entity:
            raise ValueError("a rule names a store or a legal entity, not both")
        if self.shadow is not None and self.shadow == self.record:
            raise ValueError(f"rule for {self.process}: the shadow ERP is the system of record ({self.record})")
        return self

    def specificity(self) -> int:
        scope = 4 if self.store else 2 if self.legal_entity else 0
        return scope + (1 if self.process != "*" else 0)

    def matches(self, process: str, store: str | None, legal_entity: str | None) -> bool:
        if self.process not in ("*", process):
            return False
        if self.store is not None:
            return self.store == store
        if self.legal_entity is not None:
            return self.legal_entity == legal_entity
        return True


class ErpRoutingConfig(_Strict):
    """The routing file, validated: every rule names a configured ERP, a shadow is an ERP that marks its documents
    as shadow (ERPNext), and every process has a default route (a rule without store or legal entity)."""

    erps: dict[str, ErpDefinition] = Field(min_length=1)
    route: list[RouteRule] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> ErpRoutingConfig:
        for rule in self.route:
            for name in (rule.record, rule.shadow):
                if name is not None and name not in self.erps:
                    raise ValueError(f"rule for {rule.process} routes to {name!r}, which is not one of the erps "
                                     f"({', '.join(sorted(self.erps))})")
            if rule.shadow is not None and self.erps[rule.shadow].adapter != "erpnext":
                raise ValueError(f"shadow ERP {rule.shadow!r} is the embedded ERP: it shares the platform's stock and "
                                 "cannot mark documents as shadow; a shadow is an ERPNext site or company")
        seen: set[tuple[str, str | None, str | None]] = set()
        for rule in self.route:
            key = (rule.process, rule.store, rule.legal_entity)
            if key in seen:
                raise ValueError(f"two rules for process {rule.process!r} of the same scope "
                                 f"({rule.store or rule.legal_entity or 'default'})")
            seen.add(key)
        for process in PROCESSES:
            if not any(r.matches(process, None, None) and not r.store and not r.legal_entity for r in self.route):
                raise ValueError(f"no default route for process {process!r}: add a rule without store or "
                                 "legal_entity for it (or for '*')")
        return self

    def route_for(self, process: str, *, store: str | None = None, legal_entity: str | None = None) -> ErpRoute:
        if process not in PROCESSES:
            raise ValueError(f"unknown ERP process {process!r}; one of: {', '.join(PROCESSES)}")
        candidates = [r for r in self.route if r.matches(process, store, legal_entity)]
        best = max(candidates, key=RouteRule.specificity)  # a default exists for every process (validated)
        return ErpRoute(record=best.record, shadow=best.shadow)

    def shadow_erps(self) -> set[str]:
        return {r.shadow for r in self.route if r.shadow is not None}


# -- parity ---------------------------------------------------------------------------------------------------
class ParityLine(_Strict):
    line_id: str
    item_code: str
    quantity: int
    net: Decimal
    tax: Decimal


class ParityDocument(_Strict):
    """What one ERP booked for a business key, in terms both ERPs share (amounts in the document currency, shown to
    the currency's minor unit when they are exact to it: 12.5900 and 12.59 read alike, 12.595 stays itself)."""

    process: str
    business_key: str
    erp: str
    document_id: str
    status: str
    currency: str
    net_total: Decimal
    tax_total: Decimal
    grand_total: Decimal
    lines: list[ParityLine] = Field(default_factory=list)
    dimensions: dict[str, str] = Field(default_factory=dict)
    shadow: bool = False

    @model_validator(mode="before")
    @classmethod
    def _minor_units(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "currency" not in data:
            return data
        cur = str(data["currency"])
        out = {**data, **{k: _exact(data[k], cur) for k in ("net_total", "tax_total", "grand_total") if k in data}}
        out["lines"] = [_line(line, cur) for line in data.get("lines") or []]
        return out


def _exact(value: Any, currency: str) -> Decimal:
    amount = Decimal(str(value))
    cents = quantize(amount, currency)
    return cents if cents == amount else amount


def _line(line: Any, currency: str) -> Any:
    raw = line.model_dump() if isinstance(line, ParityLine) else dict(line)
    return {**raw, "net": _exact(raw["net"], currency), "tax": _exact(raw["tax"], currency)}


class ParityDifference(_Strict):
    field: str
    record: str | None
    shadow: str | None


# dimensions both ERPs carry for every document; ERP-specific ones (an ERPNext company, warehouse) are shown side by
# side, not compared
COMPARED_DIMENSIONS = ("channel", "legal_entity", "store", "posting_date")


def compare_documents(record: ParityDocument | None, shadow: ParityDocument | None) -> list[ParityDifference]:
    """Every difference between the system of record's document and the shadow's: presence, currency, totals,
    each line (by line id: item where both name one, quantity, net, tax) and the shared dimensions. Amounts are
    compared exactly."""
    if record is None and shadow is None:
        return []
    if record is None or shadow is None:
        return [ParityDifference(field="document", record=record.document_id if record else None,
                                 shadow=shadow.document_id if shadow else None)]
    out: list[ParityDifference] = []

    def diff(name: str, a: object, b: object) -> None:
        if a != b:
            out.append(ParityDifference(field=name, record=None if a is None else str(a),
                                        shadow=None if b is None else str(b)))

    diff("status", _status(record.status), _status(shadow.status))
    diff("currency", record.currency, shadow.currency)
    for name in ("net_total", "tax_total", "grand_total"):
        diff(name, getattr(record, name), getattr(shadow, name))
    mine = {line.line_id: line for line in record.lines}
    theirs = {line.line_id: line for line in shadow.lines}
    for line_id in sorted(set(mine) | set(theirs)):
        a, b = mine.get(line_id), theirs.get(line_id)
        if a is None or b is None:
            diff(f"line {line_id}", a and f"{a.quantity} × {a.item_code}", b and f"{b.quantity} × {b.item_code}")
            continue
        if a.item_code and b.item_code:  # a credit note line may leave its item to the order's line
            diff(f"line {line_id} item_code", a.item_code, b.item_code)
        for name in ("quantity", "net", "tax"):
            diff(f"line {line_id} {name}", getattr(a, name), getattr(b, name))
    for name in COMPARED_DIMENSIONS:
        if name in record.dimensions and name in shadow.dimensions:
            diff(f"dimension {name}", record.dimensions[name], shadow.dimensions[name])
    return out


def _status(status: str) -> str:
    """Both ERPs' statuses as one of live / cancelled (their own words differ: open, To Deliver and Bill...)."""
    return "cancelled" if status.strip().lower() in ("cancelled", "canceled", "closed") else "live"
