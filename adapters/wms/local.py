"""The embedded WMS: takes fulfilment requests and ships each one after a delay, announcing the shipment
by POSTing a signed webhook to the platform's API, exactly as a real WMS would.

It ships only what is physically there (issue 17). When the shipper takes a due request it picks each line:
min(released quantity, on-hand at the locations the order's ERP reservation rows hold for the item — every
location of the item when the order has none), less what other requests have picked and not yet posted as a
delivery (this pass's picks included). It decides under the inventory ledger's row locks, so two requests never
both take the last unit. The units it has go out as a `shipment.shipped` event with only those lines; the rest
are reported as a `shipment.short_picked` event (a canonical ShortPick), to the same webhook, signed the same way.
A short-picked request stays `short_picked` until `amend_release` releases the lines still owed again."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

import httpx
import structlog
from sqlalchemy import Connection, Engine, and_, exists, select, update

from adapters import sql as db
from adapters.inventory import ledger
from canonical.errors import CannotCancel
from canonical.fulfillment import ResolvedLine, WmsReleaseRef
from canonical.inventory import ShortPick, ShortPickLine
from canonical.order import Address
from canonical.returns import AuthorizedLine

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "X-Retailflow-Wms-Signature"
SHIPMENT_SHIPPED = "shipment.shipped"
SHIPMENT_SHORT_PICKED = "shipment.short_picked"
Key = tuple[str, str]  # (item_code, location)


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
                select(db.wms_requests.c.status, db.wms_requests.c.shipped_lines).where(
                    db.wms_requests.c.external_ref == external_ref)
            ).first()
            if row is None or row.status == "cancelled":
                return False
            if row.status in ("shipping", "shipped"):
                raise CannotCancel(f"warehouse request {external_ref} has already shipped")
            if row.status == "short_picked" and row.shipped_lines:
                raise CannotCancel(f"warehouse request {external_ref} has shipped in part (short picked)")
            result = conn.execute(update(db.wms_requests).where(
                (db.wms_requests.c.external_ref == external_ref) & (db.wms_requests.c.status == row.status))
                .values(status="cancelled", cancelled_at=db.utcnow()))
            if not result.rowcount:  # the shipper claimed it between our read and write
                raise CannotCancel(f"warehouse request {external_ref} started shipping")
            return True

    def amend_release(self, external_ref: str, lines: list[ResolvedLine]) -> bool:
        """Replace the lines of a release that has not started shipping (lines cancelled before shipment);
        idempotent. Raise CannotCancel once the warehouse is shipping it.

        A short-picked (or shipped) request is released again with `lines` (the units still owed, e.g. after a
        receipt), due after the usual delay; its next pick is a new round with its own shipment and short-pick ids."""
        new_lines = [r.model_dump(mode="json") for r in lines]
        with self.engine.begin() as conn:
            row = conn.execute(select(db.wms_requests.c.status, db.wms_requests.c.lines).where(
                db.wms_requests.c.external_ref == external_ref)).first()
            if row is None:
                return False
            if row.status == "shipped" and not new_lines:
                return False
            if row.status in ("short_picked", "shipped"):
                # what is still owed after a short pick, or after a request shipped only what it was asked for
                # (units a store sale took were taken off it, then re-sourced): a new round
                result = conn.execute(update(db.wms_requests).where(
                    (db.wms_requests.c.external_ref == external_ref) & (db.wms_requests.c.status == row.status))
                    .values(lines=new_lines, status="released", ship_after=db.utcnow() + self.ship_after,
                            last_error=None))
                return bool(result.rowcount)
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
        """Take due requests and return them, each with its pick (`shipped_lines`, `short_lines`, `shipment_id`,
        `picked_at`, `pick_round`). A `released` one is picked now, under the ledger's row locks, and moves to
        `shipping` (so a late cancel is refused); a `shipping` one (its announcement failed) keeps its pick."""
        t = db.wms_requests
        claimed = []
        with self.engine.begin() as conn:
            query = select(t).where(
                (t.c.status.in_(["released", "shipping"])) & (t.c.ship_after <= db.utcnow())
            ).order_by(t.c.ship_after, t.c.id).limit(limit)
            if conn.dialect.name == "postgresql":  # concurrent shippers take different requests
                query = query.with_for_update(skip_locked=True)
            rows = [dict(r) for r in conn.execute(query).mappings().all()]
            to_pick = [r for r in rows if r["status"] == "released"]
            picks = self._pick(conn, to_pick) if to_pick else {}
            for r in rows:
                if r["status"] == "released":
                    values = picks[r["id"]]
                    result = conn.execute(update(t).where((t.c.id == r["id"]) & (t.c.status == "released"))
                                          .values(status="shipping", **values))
                    if not result.rowcount:  # pragma: no cover - the row is locked (FOR UPDATE / BEGIN IMMEDIATE)
                        continue
                    r.update(status="shipping", **values)
                elif r["shipped_lines"] is None and r["short_lines"] is None:  # taken before picks were recorded
                    r.update(shipped_lines=r["lines"], short_lines=[], shipment_id=f"SHP-{r['id']}")
                claimed.append(r)
        return claimed

    def _pick(self, conn: Connection, requests: list[dict]) -> dict[str, dict]:
        """Decide what each request ships, in order, from the stock physically there; returns the column values."""
        items = sorted({line["item_code"] for r in requests for line in r["lines"]})
        levels = ledger.lock_rows(conn, items=items) if items else []
        available: dict[Key, int] = {(lv["item_code"], lv["location"]): max(lv["on_hand"], 0) for lv in levels}
        locations_of_item: dict[str, list[str]] = {}
        for item_code, location in sorted(available):
            locations_of_item.setdefault(item_code, []).append(location)

        refs = [r["external_ref"] for r in requests]
        res = db.reservations
        reserved_at: dict[tuple[str, str], set[str]] = {}
        for row in conn.execute(select(res.c.reservation_key, res.c.item_code, res.c.location).where(
                res.c.reservation_key.in_(refs))).all():
            reserved_at.setdefault((row.reservation_key, row.item_code), set()).add(row.location)

        def locations(external_ref: str, item_code: str) -> list[str]:
            held = reserved_at.get((external_ref, item_code))
            return sorted(held) if held else locations_of_item.get(item_code, [])

        # units already picked by other requests whose delivery the embedded ERP has not posted yet (on-hand
        # moves only when it does): they are off the shelf
        for _ref, item_code, location_set, quantity in self._picked_not_posted(conn, set(items)):
            _take(available, sorted(location_set) or locations_of_item.get(item_code, []), item_code, quantity)

        now = db.utcnow()
        picks: dict[str, dict] = {}
        for r in requests:
            shipped: list[dict] = []
            short: list[dict] = []
            for line in r["lines"]:
                quantity = int(line["quantity"])
                took = _take(available, locations(r["external_ref"], line["item_code"]), line["item_code"], quantity)
                if took:
                    shipped.append({**line, "quantity": took})
                if took < quantity:
                    short.append(ShortPickLine(line_id=line["line_id"], channel_sku=line["channel_sku"],
                                               item_code=line["item_code"], quantity=quantity - took)
                                 .model_dump(mode="json"))
            round_ = int(r.get("pick_round") or 0) + 1
            picks[r["id"]] = {
                "shipped_lines": shipped, "short_lines": short, "picked_at": now, "pick_round": round_,
                "shipment_id": (f"SHP-{r['id']}" if round_ == 1 else f"SHP-{r['id']}-{round_}") if shipped else None,
            }
            if short:
                log.info("local_wms.short_pick", release_id=r["id"], external_ref=r["external_ref"],
                         short=[(x["item_code"], x["quantity"]) for x in short])
        return picks

    @staticmethod
    def _picked_not_posted(conn: Connection, items: set[str]
                           ) -> Iterable[tuple[str, str, set[str], int]]:
        """(external_ref, item_code, its reservation locations, units) picked for orders the embedded ERP books
        (they have reservation rows) whose shipment has no delivery yet. Orders booked elsewhere cannot be told
        apart once posted, so they are not counted."""
        t, res, dlv = db.wms_requests, db.reservations, db.deliveries
        rows = conn.execute(select(t.c.external_ref, t.c.shipped_lines).where(
            (t.c.status != "cancelled") & t.c.shipment_id.is_not(None)
            & exists().where(res.c.reservation_key == t.c.external_ref)
            & ~exists().where(and_(dlv.c.external_ref == t.c.external_ref, dlv.c.shipment_id == t.c.shipment_id))
        )).all()
        if not rows:
            return []
        wanted: dict[tuple[str, str], int] = {}
        for row in rows:
            for line in row.shipped_lines or []:
                if line["item_code"] in items:
                    key = (row.external_ref, line["item_code"])
                    wanted[key] = wanted.get(key, 0) + int(line["quantity"])
        if not wanted:
            return []
        held: dict[tuple[str, str], set[str]] = {}
        for r in conn.execute(select(res.c.reservation_key, res.c.item_code, res.c.location).where(
                res.c.reservation_key.in_(sorted({ref for ref, _ in wanted})))).all():
            held.setdefault((r.reservation_key, r.item_code), set()).add(r.location)
        return [(ref, item, held.get((ref, item), set()), qty) for (ref, item), qty in sorted(wanted.items())]

    @staticmethod
    def shipment_event(request: dict) -> dict:
        """The `shipment.shipped` event of a request: its picked lines (all its lines when it was not picked)."""
        picked = request.get("shipped_lines")
        source = request["lines"] if picked is None else picked
        lines = [
            {"line_id": line["line_id"], "channel_sku": line["channel_sku"], "quantity": line["quantity"]}
            for line in source
        ]
        shipment_id = request.get("shipment_id") or f"SHP-{request['id']}"
        round_ = int(request.get("pick_round") or 1)
        return {
            "event_id": f"evt-{shipment_id}",
            "type": SHIPMENT_SHIPPED,
            "release_id": request["id"],
            "external_ref": request["external_ref"],
            "shipment": {
                "shipment_id": shipment_id,
                "carrier": "LOCAL-POST",
                "service": "ground",
                "tracking_number": f"LP{request['id'][-10:]}" + (f"-{round_}" if round_ > 1 else ""),
                "shipped_at": _iso(request.get("picked_at")),
                "lines": lines,
            },
        }

    @staticmethod
    def short_pick_event(request: dict) -> dict | None:
        """The `shipment.short_picked` event of a picked request, or None when nothing was short."""
        short = request.get("short_lines")
        if not short:
            return None
        round_ = int(request.get("pick_round") or 1)
        pick = ShortPick(release_id=request["id"], external_ref=request["external_ref"],
                         lines=[ShortPickLine.model_validate(x) for x in short],
                         reported_at=request.get("picked_at") or db.utcnow())
        return {
            "event_id": f"evt-SP-{request['id']}-{round_}",
            "type": SHIPMENT_SHORT_PICKED,
            "release_id": request["id"],
            "external_ref": request["external_ref"],
            "short_pick": pick.model_dump(mode="json"),
        }

    @staticmethod
    def events(request: dict) -> list[dict]:
        """What the warehouse announces for a picked request, in order: the shipment of what it had (none when it
        had nothing), then the short pick of the rest (none when it had everything)."""
        out = []
        if request.get("shipped_lines") is None or request["shipped_lines"]:
            out.append(LocalWms.shipment_event(request))
        short = LocalWms.short_pick_event(request)
        if short is not None:
            out.append(short)
        return out

    def mark(self, request_id: str, *, shipped: bool, error: str | None = None) -> None:
        """After announcing: `shipped`, or `short_picked` when the pick was short; otherwise retry later."""
        t = db.wms_requests
        values: dict = {"delivery_attempts": t.c.delivery_attempts + 1, "last_error": error}
        with self.engine.begin() as conn:
            row = conn.execute(select(t.c.short_lines, t.c.shipped_lines).where(t.c.id == request_id)).first()
            if shipped:
                short = bool(row and row.short_lines)
                values.update(status="short_picked" if short else "shipped", last_error=None)
                if not (row and row.shipped_lines == []):
                    values.update(shipped_at=db.utcnow())
            else:  # back off: try again later
                values.update(ship_after=db.utcnow() + timedelta(seconds=5))
            conn.execute(update(t).where((t.c.id == request_id) & (t.c.status == "shipping")).values(**values))


def _take(available: dict[Key, int], locations: list[str], item_code: str, quantity: int) -> int:
    """Take up to `quantity` units of the item from `locations`, in order; returns the units taken."""
    took = 0
    for location in locations:
        if took >= quantity:
            break
        here = available.get((item_code, location), 0)
        n = min(here, quantity - took)
        if n > 0:
            available[(item_code, location)] = here - n
            took += n
    return took


def _iso(value: datetime | None) -> str:
    return (value or db.utcnow()).isoformat()


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
                    ok, err = True, None
                    for event in LocalWms.events(request):  # a retry sends them again: deduped by event id
                        body = json.dumps(event).encode()
                        try:
                            resp = await http.post(url, content=body, headers={
                                "Content-Type": "application/json", SIGNATURE_HEADER: sign(body, secret)})
                            ok = resp.status_code < 300
                            err = None if ok else f"HTTP {resp.status_code}: {resp.text[:200]}"
                        except httpx.HTTPError as exc:
                            ok, err = False, f"{type(exc).__name__}: {exc}"
                        if not ok:
                            break
                    await asyncio.to_thread(wms.mark, request["id"], shipped=ok, error=err)
                    log.info("local_wms.shipment_delivered" if ok else "local_wms.delivery_failed",
                             release_id=request["id"], external_ref=request["external_ref"], error=err)
            except Exception:  # keep shipping after a database hiccup
                log.exception("local_wms.shipper_error")
            try:
                await asyncio.wait_for(stop.wait(), timeout=poll_seconds)
            except TimeoutError:
                pass
