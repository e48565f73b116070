"""Kits and bundles: an item sold as one line that the warehouse picks, the ledger reserves and a return restocks
as its components (issue 20, item 6).

A kit's availability is the number of whole kits its components make: min over components of
floor(available / quantity per kit). Two bundles that share a component therefore draw on the same units, and
reserving components (never the kit itself) is what keeps them from both selling the last one (medusa #16502).

Kits may contain kits; `KitCatalog` refuses a cycle and flattens a kit into the leaf items the ledger holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from pydantic import Field, model_validator

from canonical.fulfillment import ResolvedLine
from canonical.order import CanonicalModel


class KitComponent(CanonicalModel):
    item_code: str = Field(min_length=1)
    quantity: int = Field(gt=0, description="Units of this component in one kit")


class Kit(CanonicalModel):
    item_code: str = Field(min_length=1, description="The item the channel sells (the kit's ERP item code)")
    components: list[KitComponent] = Field(min_length=1)

    @model_validator(mode="after")
    def _components(self) -> Kit:
        codes = [c.item_code for c in self.components]
        dupes = sorted({c for c in codes if codes.count(c) > 1})
        if dupes:
            raise ValueError(f"kit {self.item_code}: component(s) listed twice: {', '.join(dupes)}")
        if self.item_code in codes:
            raise ValueError(f"kit {self.item_code} contains itself")
        return self


class ComponentLine(CanonicalModel):
    """One item the ledger reserves and the node picks for an order line: the line itself (no kit), or one
    component of the kit the line sold, remembering that kit line (for the return that restocks it)."""

    line_id: str = Field(description="The order line this comes from (the kit's line for a component)")
    item_code: str
    quantity: int = Field(gt=0, description="Units of item_code, for all of the line's kits")
    kit_item_code: str | None = Field(default=None, description="The kit sold on the line; None: no kit")
    kit_quantity: int | None = Field(default=None, gt=0, description="Kits sold on the line")

    @model_validator(mode="after")
    def _kit_fields(self) -> ComponentLine:
        if (self.kit_item_code is None) != (self.kit_quantity is None):
            raise ValueError("kit_item_code and kit_quantity go together")
        if self.kit_quantity is not None and self.quantity % self.kit_quantity:
            raise ValueError(f"line {self.line_id}: {self.quantity} units of {self.item_code} is no whole number "
                             f"per kit for {self.kit_quantity} kits")
        return self

    @property
    def per_kit(self) -> int:
        """Units of this component in one kit (the line's quantity for a line that is no kit)."""
        return self.quantity // self.kit_quantity if self.kit_quantity else self.quantity


class KitCatalog:
    """Kit item code → components, validated when built: positive quantities, no kit listed twice, no cycle."""

    def __init__(self, kits: Iterable[Kit] = ()) -> None:
        self._kits: dict[str, Kit] = {}
        for kit in kits:
            if kit.item_code in self._kits:
                raise ValueError(f"kit {kit.item_code} is defined twice")
            self._kits[kit.item_code] = kit
        self._flat: dict[str, dict[str, int]] = {}
        for code in sorted(self._kits):
            self._flatten(code, ())

    @classmethod
    def of(cls, kits: Mapping[str, Mapping[str, int]]) -> KitCatalog:
        """From a plain mapping, e.g. {"GIFT-BOX": {"MUG": 2, "TEA": 1}}."""
        return cls(Kit(item_code=code, components=[KitComponent(item_code=c, quantity=q) for c, q in parts.items()])
                   for code, parts in kits.items())

    def _flatten(self, code: str, path: tuple[str, ...]) -> dict[str, int]:
        if code in path:
            cycle = " → ".join((*path[path.index(code):], code))
            raise ValueError(f"kit cycle: {cycle}")
        if code in self._flat:
            return self._flat[code]
        out: dict[str, int] = {}
        for comp in self._kits[code].components:
            if comp.item_code in self._kits:
                for leaf, qty in self._flatten(comp.item_code, (*path, code)).items():
                    out[leaf] = out.get(leaf, 0) + qty * comp.quantity
            else:
                out[comp.item_code] = out.get(comp.item_code, 0) + comp.quantity
        self._flat[code] = out
        return out

    def __contains__(self, item_code: object) -> bool:
        return item_code in self._kits

    def __len__(self) -> int:
        return len(self._kits)

    @property
    def kits(self) -> list[Kit]:
        return [self._kits[c] for c in sorted(self._kits)]

    def components(self, kit_item_code: str) -> dict[str, int]:
        """The leaf items (those the ledger holds) in one kit, nested kits multiplied out."""
        if kit_item_code not in self._kits:
            raise KeyError(f"{kit_item_code} is no kit")
        return dict(self._flat[kit_item_code])


def expand_kits(lines: Sequence[ResolvedLine], catalog: KitCatalog) -> list[ComponentLine]:
    """Each order line as the items to reserve and pick: a kit line becomes one line per component (sorted by
    item code) that remembers the kit line; any other line stays itself."""
    out: list[ComponentLine] = []
    for line in lines:
        if line.item_code not in catalog:
            out.append(ComponentLine(line_id=line.line_id, item_code=line.item_code, quantity=line.quantity))
            continue
        for item, per_kit in sorted(catalog.components(line.item_code).items()):
            out.append(ComponentLine(line_id=line.line_id, item_code=item, quantity=per_kit * line.quantity,
                                     kit_item_code=line.item_code, kit_quantity=line.quantity))
    return out


def components_for_return(kit_line: Sequence[ComponentLine], quantity: int) -> list[ComponentLine]:
    """What a return of `quantity` kits of one kit line restocks: each component it shipped with, per kit as it
    was sold (the component lines recorded with the order, so a later change to the catalog does not change
    what comes back)."""
    if not kit_line:
        raise ValueError("no component lines given")
    first = kit_line[0]
    if first.kit_item_code is None or first.kit_quantity is None:
        raise ValueError(f"line {first.line_id} is no kit line")
    if any((c.line_id, c.kit_item_code, c.kit_quantity) != (first.line_id, first.kit_item_code, first.kit_quantity)
           for c in kit_line):
        raise ValueError("the component lines belong to more than one kit line")
    if not 0 < quantity <= first.kit_quantity:
        raise ValueError(f"line {first.line_id} sold {first.kit_quantity} kit(s) of {first.kit_item_code}; "
                         f"cannot return {quantity}")
    return [c.model_copy(update={"quantity": c.per_kit * quantity, "kit_quantity": quantity})
            for c in sorted(kit_line, key=lambda c: c.item_code)]


def kit_availability(kit: Kit, available_by_item: Mapping[str, int], catalog: KitCatalog | None = None) -> int:
    """Whole kits the components make: min over components of floor(available / quantity per kit), never below 0.
    With `catalog`, nested kits count by their leaf components (as they are reserved)."""
    parts = catalog.components(kit.item_code) if catalog is not None and kit.item_code in catalog else {
        c.item_code: c.quantity for c in kit.components}
    return max(0, min(max(available_by_item.get(item, 0), 0) // qty for item, qty in parts.items()))
