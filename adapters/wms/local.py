"""The embedded WMS: takes fulfilment requests and ships each one after a delay, announcing the shipment
by POSTing a signed webhook to the platform's API, exactly as a real WMS would."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from datetime import timedelta

import httpx
import structlog
from sqlalchemy import Engine, select, update

from adapters import sql as db
from canonical.errors import CannotCancel
from canonical.fulfillment import ResolvedLine, WmsReleaseRef
from canonical.order import Address
from canonical.returns import AuthorizedLine

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "X-Retailflow-Wms-Signature"


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify(body: bytes, signature: str | None, secret: str) -> bool:
    """Constant-time, over bytes: a header with characters outside ASCII is a mismatch, never an error."""
    if not signature:
        return False
    return hmac.compare_digest(sign(body, secret).encode("ascii"), signature.strip().encode("utf-8", "replace"))


class LocalWms:
    def __init__(self, engine: Engine, *, ship_after_seconds: float = 10.0) -> None:
        self.engine = engine
        self.ship_after = timedelta(seconds=ship_after_seconds)

    def release(self, external_ref: str, lines: list[ResolvedLine], ship_to: Address | None) -> WmsReleaseRef:
        with self.engine.begin() as conn:
            row = conn.execute(
                select(db.wms_requests.c.id).where(db.wms_requests.c.external_ref == external_ref)
            ).first()
            if row:
                return WmsReleaseRef(release_id=row.id, external_ref=external_ref)
            release_id = f"WMS-{uuid.uuid4().hex[:12].upper()}"
            conn.execute(db.wms_requests.insert().values(
                id=release_id, external_ref=external_ref,
                lines=[r.model_dump(mode="json") for r in lines],
                ship_to=ship_to.model_dump(mode="json") if ship_to else None,
                status="released", ship_after=db.utcnow() + self.ship_after,
            ))
        return WmsReleaseRef(release_id=release_id, external_ref=external_ref)

    def cancel_release(self, external_ref: str) -> bool:
        with self.engine.begin() as conn:
            row = conn.execute(
                select(db.wms_requests.c.status).where(db.wms_requests.c.external_ref == external_ref)
            ).first()
            if row is None or row.status == "cancelled":
                return False
            if row.status in ("shipping", "shipped"):
                raise CannotCancel(f"warehouse request {external_ref} has already shipped")
            conn.execute(update(db.wms_requests).where(db.wms_requests.c.external_ref == external_ref)
                         .values(status="cancelled", cancelled_at=db.utcnow()))
            return True

    def amend_release(self, external_ref: str, lines: list[ResolvedLine]) -> bool:
        """Replace the lines of a release that has not started shipping (lines cancelled before shipment);
        idempotent. Raise CannotCancel once the warehouse is shipping it."""
        new_lines = [r.model_dump(mode="json") for r in lines]
        with self.engine.begin() as conn:
            row = conn.execute(select(db.wms_requests.c.status, db.wms_requests.c.lines).where(
                db.wms_requests.c.external_ref == external_ref)).first()
            if row is None:
                return False
            if row.status != "released":
                raise CannotCancel(f"warehouse request {external_ref} is {row.status}; its lines cannot change")
            if row.lines == new_lines:
                return False
            result = conn.execute(update(db.wms_requests).where(
                (db.wms_requests.c.external_ref == external_ref) & (db.wms_requests.c.status == "released"))
                .values(lines=new_lines))
            if not result.rowcount:  # the shipper claimed it between our read and write
                raise CannotCancel(f"warehouse request {external_ref} started shipping; its lines cannot change")
            return True

    def expect_return(self, external_ref: str, lines: list[AuthorizedLine]) -> str:
        with self.engine.begin() as conn:
            row = conn.execute(select(db.wms_return_expectations.c.id).where(
                db.wms_return_expectations.c.external_ref == external_ref)).first()
            if row:
                conn.execute(update(db.wms_return_expectations).where(
                    db.wms_return_expectations.c.id == row.id).values(status="expected"))
                return row.id
            rma = f"RMA-{uuid.uuid4().hex[:12].upper()}"
            conn.execute(db.wms_return_expectations.insert().values(
                id=rma, external_ref=external_ref, status="expected",
                lines=[{"line_id": x.line_id, "item_code": x.item_code, "quantity": x.quantity} for x in lines]))
        return rma

    def cancel_expected_return(self, external_ref: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(update(db.wms_return_expectations).where(
                (db.wms_return_expectations.c.external_ref == external_ref)
                & (db.wms_return_expectations.c.status == "expected")).values(status="cancelled"))
            return result.rowcount > 0

    def get(self, external_ref: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(db.wms_requests).where(db.wms_requests.c.external_ref == external_ref)).mappings().first()
        return dict(row) if row else None

    # -- the shipper ----------------------------------------------------------------------------------
    def claim_due(self, limit: int = 50) -> list[dict]:
        """Move due requests to `shipping` (so a late cancel is refused) and return them."""
        claimed = []
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(db.wms_requests).where(
                    (db.wms_requests.c.status.in_(["released", "shipping"]))
                    & (db.wms_requests.c.ship_after <= db.utcnow())
                ).order_by(db.wms_requests.c.ship_after).limit(limit)
            ).mappings().all()
            for r in rows:
                result = conn.execute(
                    update(db.wms_requests)
                    .where((db.wms_requests.c.id == r["id"]) & (db.wms_requests.c.status.in_(["released", "shipping"])))
                    .values(status="shipping")
                )
                if result.rowcount:
                    claimed.append(dict(r))
        return claimed

    @staticmethod
    def shipment_event(request: dict) -> dict:
        lines = [
            {"line_id": line["line_id"], "channel_sku": line["channel_sku"], "quantity": line["quantity"]}
            for line in request["lines"]
        ]
        shipment_id = f"SHP-{request['id']}"
        return {
            "event_id": f"evt-{shipment_id}",
            "type": "shipment.shipped",
            "release_id": request["id"],
            "external_ref": request["external_ref"],
            "shipment": {
                "shipment_id": shipment_id,
                "carrier": "LOCAL-POST",
                "service": "ground",
                "tracking_number": f"LP{request['id'][-10:]}",
                "shipped_at": db.utcnow().isoformat(),
                "lines": lines,
            },
        }

    def mark(self, request_id: str, *, shipped: bool, error: str | None = None) -> None:
        values: dict = {"delivery_attempts": db.wms_requests.c.delivery_attempts + 1, "last_error": error}
        if shipped:
            values.update(status="shipped", shipped_at=db.utcnow(), last_error=None)
        else:  # back off: try again later
            values.update(ship_after=db.utcnow() + timedelta(seconds=5))
        with self.engine.begin() as conn:
            conn.execute(update(db.wms_requests).where(db.wms_requests.c.id == request_id).values(**values))


async def run_shipper(wms: LocalWms, api_base_url: str, secret: str, *, poll_seconds: float = 1.0,
                      stop: asyncio.Event | None = None) -> None:
    """Ship due requests forever (until `stop`), delivering each shipment to the API's WMS webhook."""
    stop = stop or asyncio.Event()
    url = api_base_url.rstrip("/") + "/webhooks/wms/local"
    async with httpx.AsyncClient(timeout=10) as http:
        while not stop.is_set():
            try:
                due = await asyncio.to_thread(wms.claim_due)
                for request in due:
                    body = json.dumps(LocalWms.shipment_event(request)).encode()
                    try:
                        resp = await http.post(url, content=body, headers={
                            "Content-Type": "application/json", SIGNATURE_HEADER: sign(body, secret)})
                        ok = resp.status_code < 300
                        err = None if ok else f"HTTP {resp.status_code}: {resp.text[:200]}"
                    except httpx.HTTPError as exc:
                        ok, err = False, f"{type(exc).__name__}: {exc}"
                    await asyncio.to_thread(wms.mark, request["id"], shipped=ok, error=err)
                    log.info("local_wms.shipment_delivered" if ok else "local_wms.delivery_failed",
                             release_id=request["id"], external_ref=request["external_ref"], error=err)
            except Exception:  # keep shipping after a database hiccup
                log.exception("local_wms.shipper_error")
            try:
                await asyncio.wait_for(stop.wait(), timeout=poll_seconds)
            except TimeoutError:
                pass
