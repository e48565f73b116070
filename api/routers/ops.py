"""Operations: the quarantine of deliveries that could not be taken, and their replay after a fix."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from adapters.platform.intake_store import IntakeStore
from adapters.platform.projection import StatusProjection
from api.audit import audit_answer, fetch_audit
from api.auth import Analyst, Principal, Viewer
from api.deps import ClientDep, EngineDep, SettingsDep
from api.intake import pipeline
from api.intake.registry import SOURCES
from api.masking import for_principal
from canonical.breakers import BreakerView
from runtime.breakers import breaker_id
from runtime.observability import observe_replay
from starters import TemporalUnavailable

router = APIRouter(prefix="/ops", tags=["ops"])


class QuarantineItem(BaseModel):
    id: int
    source: str
    topic: str | None
    delivery_id: str | None
    reason: str
    status_code: int
    received_at: datetime
    replayed_at: datetime | None
    replay_result: str | None
    resolved: bool
    size: int
    body_preview: str | None = Field(description="The raw body's first 2000 bytes: to analysts and admins only "
                                     "(it holds customers' personal data); null for the other roles")


class ReplayResult(BaseModel):
    id: int
    status_code: int
    result: dict
    resolved: bool


def _item(row, principal: Principal) -> QuarantineItem:
    body: bytes | None = row["body"]
    preview: str | None = None
    if principal.sees_personal_data():  # raw bodies only to analyst and up
        if body is None:
            preview = f"unreadable: {row['body_error']}"
        else:
            try:
                preview = body[:2000].decode("utf-8")
            except UnicodeDecodeError:
                preview = "base64:" + base64.b64encode(body[:1500]).decode()
    item = QuarantineItem(size=len(body) if body is not None else row["sealed_size"], body_preview=preview,
                          **{k: row[k] for k in QuarantineItem.model_fields if k not in ("size", "body_preview")})
    return QuarantineItem.model_validate(for_principal(principal, item))


@router.get("/quarantine", response_model=list[QuarantineItem])
def list_quarantine(engine: EngineDep, principal: Viewer, request: Request, resolved: bool | None = False,
                    source: str | None = None,
                    limit: int = Query(default=100, ge=1, le=1000), offset: int = Query(default=0, ge=0, le=2**31 - 1)):
    """Quarantined deliveries, newest first; raw bodies only to analysts and admins."""
    store = IntakeStore(engine, keyring=request.app.state.keyring)  # bodies sealed at rest, opened here
    return [_item(r, principal) for r in store.list(resolved=resolved, source=source, limit=limit, offset=offset)]


@router.get("/quarantine/{qid}", response_model=QuarantineItem)
def get_quarantine(qid: Annotated[int, Path(ge=1, le=2**31 - 1)], engine: EngineDep, principal: Viewer,
                   request: Request):
    row = IntakeStore(engine, keyring=request.app.state.keyring).get(qid)
    if row is None:
        raise HTTPException(404, f"no quarantined delivery {qid}")
    return _item(row, principal)


@router.post("/quarantine/{qid}/replay", response_model=ReplayResult)
async def replay_quarantine(qid: Annotated[int, Path(ge=1, le=2**31 - 1)], request: Request, engine: EngineDep,
                            settings: SettingsDep, principal: Analyst) -> ReplayResult:
    """Run a quarantined delivery through intake again (after fixing the mapping, the secret or the data)."""
    store = IntakeStore(engine, keyring=request.app.state.keyring)
    row = await asyncio.to_thread(store.get, qid)
    if row is None:
        raise HTTPException(404, f"no quarantined delivery {qid}")
    if row["resolved"]:
        raise HTTPException(409, f"quarantined delivery {qid} was already replayed successfully")
    if row["body"] is None:
        raise HTTPException(409, f"quarantined delivery {qid} cannot be opened ({row['body_error']}): put the key "
                                 "it was sealed under back into RETAILFLOW_CODEC_KEYS, after the active one")
    source = SOURCES.get(row["source"])
    if source is None:
        raise HTTPException(409, f"no intake for source {row['source']!r}")
    try:
        outcome = await pipeline.take(source, engine, request.app.state.temporal.get, settings, row["body"],
                                      dict(row["headers"]), replay=True, app_state=request.app.state)
    except TemporalUnavailable as exc:
        raise HTTPException(503, f"Temporal is unavailable: {exc}") from None
    await asyncio.to_thread(store.mark_replayed, qid, result=f"{outcome.status_code} {outcome.body}",
                            resolved=outcome.resolved)
    observe_replay(row["source"], outcome.resolved)
    return ReplayResult(id=qid, status_code=outcome.status_code, result=outcome.body, resolved=outcome.resolved)


class ParkedRun(BaseModel):
    workflow_id: str
    kind: str
    channel: str | None
    external_id: str | None
    reference: str | None
    status: str
    reason: str | None
    suggested_action: str | None
    parked_since: datetime


@router.get("/needs-attention", response_model=list[ParkedRun], summary="Runs parked for an analyst")
def needs_attention(engine: EngineDep, principal: Viewer, kind: str | None = None, channel: str | None = None,
                    parked_before: Annotated[datetime | None, Query(
                        description="Only runs parked before this instant (ISO 8601 with offset)")] = None,
                    limit: int = Query(default=100, ge=1, le=1000), offset: int = Query(default=0, ge=0, le=2**31 - 1)):
    """Parked runs, most recently parked first (`retailflow ops needs-attention` shows them oldest first)."""
    if parked_before is not None and parked_before.tzinfo is None:
        parked_before = parked_before.replace(tzinfo=UTC)
    rows, _ = StatusProjection(engine).list(kind=kind, channel=channel, needs_attention=True, limit=limit,
                                            offset=offset, updated_before=parked_before)
    return for_principal(principal, [
        ParkedRun(workflow_id=r["workflow_id"], kind=r["kind"], channel=r["channel"], external_id=r["external_id"],
                  reference=r["reference"], status=r["status"], reason=r["reason"],
                  suggested_action=r["suggested_action"], parked_since=r["updated_at"]) for r in rows])


@router.get("/audit/{workflow_id}", summary="Business audit trail of any run (order, return, settlement, store day)")
async def audit(workflow_id: str, principal: Viewer, request: Request, format: Literal["json", "csv"] = "json"):
    """Personal data masked below analyst. A settlement's trail needs finance (its own route)."""
    if workflow_id.startswith("settlement:") and principal.role.value not in ("finance", "admin"):
        raise HTTPException(403, f"{principal.name} ({principal.role.value}) may not read settlement trails; "
                                 "it needs: finance, admin")
    entries = await fetch_audit(await request.app.state.temporal.get(), workflow_id)
    return audit_answer(entries, format, principal)


@router.get("/breakers", response_model=list[BreakerView],
            summary="The partner queues' circuit breakers (closed, open, half-open)")
async def breakers(principal: Viewer, settings: SettingsDep, client: ClientDep) -> list[BreakerView]:
    """One row per partner queue (RETAILFLOW_PARTNER_ACTIVITY_RATE_LIMITS): its breaker's state, trips and last
    error; a queue whose breaker never ran (nothing failed yet) is closed."""
    out = []
    for queue in sorted(settings.partner_activity_rate_limits):
        try:
            out.append(await client.get_workflow_handle(breaker_id(queue)).query("state", result_type=BreakerView))
        except RPCError as exc:
            if exc.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                raise HTTPException(503, f"Temporal is unavailable: {exc}") from None
            out.append(BreakerView(queue=queue, state="closed", consecutive_failures=0, trips=0))
        except WorkflowQueryFailedError:
            out.append(BreakerView(queue=queue, state="closed", consecutive_failures=0, trips=0))
    return out
