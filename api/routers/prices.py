"""Price and promotion publication (docs/pricing.md): request a change set, approve or reject it, act on a
parked one, and read what each channel shows now and why.

- `POST /prices/changes` (analyst, finance, admin): the set is checked here first — its lines (422 when a line
  breaks a rule: a negative price, an end before the start, an unknown currency), each line's currency against
  its channel's (422), overlapping windows for one item and channel within the set or against the price book's
  accepted windows (409, naming the other change set) — then PricePublication `price:{change_set_id}` starts
  (202). The requester recorded is the authenticated principal.
- `POST /prices/changes/{id}/approve|reject` (finance, admin): the workflow's validated updates; the requester
  cannot approve their own change, a discount deeper than RETAILFLOW_PRICING_SECOND_APPROVAL_DEPTH needs a
  second, different approver; what does not apply now is 409 and leaves no trace.
- `POST /prices/changes/{id}/actions/{retry|skip|cancel}` (analyst, admin): a parked publication.
- `GET /prices/changes/{id}` and `GET /prices/{sku}` (every role): the run's view; what each channel shows for
  the item (or a channel SKU) now, from the price book, with the change set, approvers and time it was read back,
  and the item's change sets.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field, ValidationError
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from adapters.pricing.book import PriceBook
from api.auth import Analyst, Principal, Role, Viewer, require
from api.deps import ClientDep, EngineDep, SettingsDep
from canonical.money import DecimalAmount
from canonical.ops import AnalystRequest, Reason
from canonical.pricing import (
    ApprovalDecision,
    PriceChange,
    PriceChangeSet,
    PricePublicationView,
    currency_problems,
    overlaps_within,
    price_workflow_id,
)
from starters.pricing import start_price_publication

router = APIRouter(prefix="/prices", tags=["prices"])

Requester = Annotated[Principal, Depends(require(Role.analyst, Role.finance, Role.admin))]
Approver = Annotated[Principal, Depends(require(Role.finance, Role.admin))]


class PriceChangeRequest(BaseModel):
    """A change set; the requester recorded is the authenticated principal (a `requested_by` here is refused)."""

    model_config = {"extra": "forbid"}

    change_set_id: str = Field(min_length=1, max_length=100, description="The business key (workflow price:<id>)")
    reason: Reason
    lines: list[dict[str, Any]] = Field(min_length=1, max_length=1000, description="PriceChange lines: item_code, "
                                        "channel, currency, amount, compare_at?, effective_from, effective_to?, "
                                        "kind (price|promotion), promotion_id?")


class PriceChangeAccepted(BaseModel):
    workflow_id: str
    change_set_id: str
    lines: int
    requested_by: str


class DecisionBody(BaseModel):
    reason: str | None = Field(default=None, max_length=2000)


class ActionBody(BaseModel):
    reason: Reason


class ChannelShows(BaseModel):
    channel: str
    channel_sku: str
    item_code: str
    amount: DecimalAmount
    currency: str
    compare_at: DecimalAmount | None
    why: str = Field(description="The change set and line, publish or revert, and its reason")
    change_set_id: str
    action: str
    approved_by: str | None
    verified_at: datetime


class ItemChange(BaseModel):
    change_set_id: str
    line: int
    channel: str
    amount: DecimalAmount
    currency: str
    compare_at: DecimalAmount | None
    effective_from: datetime
    effective_to: datetime | None
    kind: str
    status: str
    requested_by: str
    approved_by: str | None
    reason: str


class PricesOfItem(BaseModel):
    sku: str
    channels: list[ChannelShows]
    changes: list[ItemChange]


def _errors(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" if e["loc"] else e["msg"] for e in exc.errors()]


def _lines(raw: list[dict[str, Any]]) -> list[PriceChange]:
    lines, problems = [], []
    for i, item in enumerate(raw):
        try:
            lines.append(PriceChange.model_validate(item))
        except ValidationError as exc:
            problems += [f"lines[{i}]: {m}" for m in _errors(exc)]
    if problems:
        raise HTTPException(422, {"message": "the change set has invalid lines", "problems": problems})
    return lines


@router.post("/changes", status_code=202, response_model=PriceChangeAccepted,
             responses={409: {"description": "Overlapping effective windows, or the change set id is taken"},
                        422: {"description": "A line breaks a pricing rule, or its currency is not its channel's"}})
async def request_price_change(body: PriceChangeRequest, principal: Requester, engine: EngineDep,
                               settings: SettingsDep, request: Request) -> PriceChangeAccepted:
    lines = _lines(body.lines)
    within = overlaps_within(lines)
    if within:
        raise HTTPException(409, {"message": "overlapping effective windows within the change set",
                                  "problems": within})
    try:
        cs = PriceChangeSet(change_set_id=body.change_set_id, lines=lines, reason=body.reason,
                            requested_by=principal.name)
    except ValidationError as exc:
        raise HTTPException(422, {"message": "the change set is invalid", "problems": _errors(exc)}) from None
    wrong_currency = currency_problems(cs, settings.pricing_channel_currencies)
    if wrong_currency:
        raise HTTPException(422, {"message": "currency of the channel", "problems": wrong_currency})
    book = PriceBook(engine)
    overlaps = (await asyncio.to_thread(book.windows, cs.items, cs.channels)).conflicts(cs)
    if overlaps:
        raise HTTPException(409, {"message": "overlapping effective windows: one price per item and channel at a "
                                             "time", "problems": overlaps})
    client = await request.app.state.temporal.get()  # only now: a refused set needs no Temporal
    try:
        await start_price_publication(client, settings, cs)
    except WorkflowAlreadyStartedError:
        raise HTTPException(409, f"change set {cs.change_set_id} exists already ({cs.workflow_id})") from None
    except RPCError as exc:
        raise HTTPException(503, f"Temporal is unavailable: {exc.message}") from None
    return PriceChangeAccepted(workflow_id=cs.workflow_id, change_set_id=cs.change_set_id, lines=len(cs.lines),
                               requested_by=principal.name)


async def _update(client, change_set_id: str, name: str, arg: Any) -> PricePublicationView:
    handle = client.get_workflow_handle(price_workflow_id(change_set_id))
    try:
        return await handle.execute_update(name, arg, result_type=PricePublicationView)
    except WorkflowUpdateFailedError as exc:
        raise HTTPException(409, getattr(exc.cause, "message", None) or str(exc.cause or exc)) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(404, f"no running price change {change_set_id}") from None
        raise HTTPException(503, f"Temporal is unavailable: {exc.message}") from None


@router.post("/changes/{change_set_id}/{decision}", response_model=PricePublicationView,
             responses={404: {"description": "No such running change set"},
                        409: {"description": "Not awaiting approval, the requester, or approved by you already"}})
async def decide_price_change(change_set_id: str, decision: Literal["approve", "reject"], body: DecisionBody,
                              principal: Approver, client: ClientDep) -> PricePublicationView:
    return await _update(client, change_set_id, decision,
                         ApprovalDecision(actor=principal.name, role=principal.role.value, reason=body.reason))


@router.post("/changes/{change_set_id}/actions/{action}", response_model=PricePublicationView,
             responses={404: {"description": "No such running change set"}, 409: {"description": "Not valid now"}})
async def price_change_action(change_set_id: str, action: Literal["retry", "skip", "cancel"], body: ActionBody,
                              principal: Analyst, client: ClientDep) -> PricePublicationView:
    return await _update(client, change_set_id, "act",
                         AnalystRequest(action=action, actor=principal.name, reason=body.reason))


@router.get("/changes/{change_set_id}", response_model=PricePublicationView,
            responses={404: {"description": "No such change set"}})
async def get_price_change(change_set_id: str, principal: Viewer, client: ClientDep) -> PricePublicationView:
    handle = client.get_workflow_handle(price_workflow_id(change_set_id))
    try:
        return await handle.query("status", result_type=PricePublicationView)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(404, f"no price change {change_set_id}") from None
        raise HTTPException(503, f"the change set's status cannot be queried now: {exc.message}") from None


@router.get("/{sku}", response_model=PricesOfItem)
async def get_prices(sku: str, principal: Viewer, engine: EngineDep) -> PricesOfItem:
    book = PriceBook(engine)
    shown, changes = await asyncio.gather(asyncio.to_thread(book.shown, sku), asyncio.to_thread(book.changes, sku))
    return PricesOfItem(sku=sku, channels=[ChannelShows(
        channel=r["channel"], channel_sku=r["channel_sku"], item_code=r["item_code"], amount=r["amount"],
        currency=r["currency"], compare_at=r["compare_at"], change_set_id=r["change_set_id"], action=r["action"],
        approved_by=r["approved_by"], verified_at=r["verified_at"],
        why=f"{r['action']} of change set {r['change_set_id']} line {r['line']}: {r['reason']}") for r in shown],
        changes=[ItemChange(
            change_set_id=c["change_set_id"], line=c["line"], channel=c["channel"], amount=Decimal(c["amount"]),
            currency=c["currency"], compare_at=Decimal(c["compare_at"]) if c["compare_at"] is not None else None,
            effective_from=c["effective_from"], effective_to=c["effective_to"], kind=c["kind"], status=c["status"],
            requested_by=c["requested_by"], approved_by=c["approved_by"], reason=c["reason"]) for c in changes])
