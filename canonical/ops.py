"""Operations models: analyst requests and the run status projection."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, field_validator

from canonical.order import Address, CanonicalModel, UtcDatetime


class OrderCorrections(CanonicalModel):
    """Corrected data an analyst supplies when resuming a parked order."""

    shipping_address: Address | None = None
    sku_corrections: dict[str, str] = Field(
        default_factory=dict, description="Channel SKU as received → the channel SKU it should have been"
    )


def _not_blank(v: str) -> str:
    if not v.strip():  # Python's idea of whitespace (\x1c-\x1f too), as AnalystRequest checks it
        raise ValueError("must not be blank")
    return v


# What an API body may send as the reason of an analyst action: exactly what AnalystRequest (and the canonical
# requests built from a body) accept, so a reason the route takes can never fail inside the route (a 500).
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000),
                   AfterValidator(_not_blank)]


class AnalystRequest(CanonicalModel):
    """A validated analyst action (API or Web UI update): who, why, and for `resume`, the corrected data."""

    action: Literal["retry", "skip", "cancel", "resume"]
    actor: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=2000)
    corrections: OrderCorrections | None = None

    @field_validator("actor", "reason")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v


class RunStatusUpdate(CanonicalModel):
    workflow_id: str
    kind: str
    channel: str | None = None
    external_id: str | None = None
    reference: str | None = None
    status: str
    needs_attention: bool
    reason: str | None = None
    suggested_action: str | None = None
    erp_ref: str | None = None
    late: bool = False
    version: int
    started_at: UtcDatetime
    changed_at: UtcDatetime
