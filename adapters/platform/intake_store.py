"""The intake's own store: webhook deliveries already taken (dedupe) and the quarantine of deliveries that could
not be taken (kept with their raw body for an analyst and for replay). Tables in adapters/sql/platform.py.

Quarantined bodies hold customers' names, e-mails, phones and addresses: given a keyring (adapters/crypto.py, the
same keys as the payload codec), the store seals each body with AES-256-GCM before it is written and opens it
when read, so the platform database holds ciphertext only; the API is handed plaintext (and shows it to analysts
and up). Rows written before sealing (plaintext) still read as they are. The API always passes its keyring;
without one (a bare store in a test) bodies are kept as given."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from adapters import sql as db
from adapters.crypto import Keyring, SealedDataError, is_sealed


class IntakeStore:
    def __init__(self, engine: Engine, keyring: Keyring | None = None) -> None:
        self.engine = engine
        self.keyring = keyring

    @staticmethod
    def _aad(source: str, delivery_id: str | None) -> bytes:
        # a sealed body belongs to its row's source and delivery: it cannot be moved to another one unnoticed
        return f"retailflow/quarantine-body/v1:{source}:{delivery_id or ''}".encode()

    def _seal(self, source: str, delivery_id: str | None, body: bytes) -> bytes:
        return body if self.keyring is None else self.keyring.seal(body, self._aad(source, delivery_id))

    def _opened(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row with its body opened; a body that cannot be opened (sealed under a key no longer in the
        keyring, or damaged) comes back as None with `body_error` saying why, so a listing still answers."""
        body = bytes(row["body"])
        if is_sealed(body):  # a row from before sealing is plaintext: as it is
            if self.keyring is None:
                raise ValueError(f"quarantined delivery {row['id']} is sealed: the store needs the keyring")
            try:
                opened = self.keyring.open(body, self._aad(row["source"], row["delivery_id"]))
            except SealedDataError as exc:
                return {**row, "body": None, "body_error": str(exc), "sealed_size": len(body)}
            return {**row, "body": opened, "body_error": None}
        return {**row, "body": body, "body_error": None}

    # -- deliveries (dedupe) ---------------------------------------------------------------------------------
    def seen(self, source: str, delivery_id: str | None) -> str | None:
        """The workflow id a delivery already led to ("" if it led to none), or None if it is new."""
        if not delivery_id:
            return None
        t = db.webhook_deliveries
        with self.engine.connect() as conn:
            row = conn.execute(select(t.c.workflow_id).where(
                (t.c.source == source) & (t.c.delivery_id == delivery_id))).first()
        return (row.workflow_id or "") if row else None

    def record(self, source: str, delivery_id: str | None, topic: str | None, workflow_id: str | None) -> None:
        """Remember a delivery that was taken; a delivery without an id is not remembered."""
        if not delivery_id:
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(db.webhook_deliveries.insert().values(
                    source=source, delivery_id=delivery_id, topic=topic, workflow_id=workflow_id))
        except IntegrityError:
            pass  # a concurrent duplicate recorded it first

    @staticmethod
    def _resolve_copy(conn, source: str, delivery_id: str | None, result: str) -> None:
        """The quarantined copy of a held delivery is resolved once what it held reached its workflow."""
        if not delivery_id:
            return
        q = db.quarantine
        conn.execute(update(q).where((q.c.source == source) & (q.c.delivery_id == delivery_id)
                                     & q.c.resolved.is_(False)).values(resolved=True, replayed_at=db.utcnow(),
                                                                       replay_result=result))

    # -- cancellations that overtook their order ---------------------------------------------------------------
    def hold_cancel(self, workflow_id: str, *, source: str, delivery_id: str | None, actor: str, reason: str) -> None:
        """Keep a channel's cancel of an order no workflow runs for yet; the first one is kept."""
        try:
            with self.engine.begin() as conn:
                conn.execute(db.early_cancels.insert().values(
                    workflow_id=workflow_id, source=source, delivery_id=delivery_id, actor=actor, reason=reason))
        except IntegrityError:
            pass  # already held (a duplicate delivery, or a replay)

    def held_cancel(self, workflow_id: str) -> dict[str, Any] | None:
        """The cancel held for the order, if any and not yet applied."""
        t = db.early_cancels
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where((t.c.workflow_id == workflow_id) & t.c.applied_at.is_(None))
                               ).mappings().first()
        return dict(row) if row is not None else None

    def cancel_applied(self, workflow_id: str) -> None:
        """The order's run started with the held cancel: mark it applied, and resolve its quarantined copy."""
        t = db.early_cancels
        with self.engine.begin() as conn:
            row = conn.execute(select(t.c.source, t.c.delivery_id).where(t.c.workflow_id == workflow_id)).first()
            conn.execute(update(t).where(t.c.workflow_id == workflow_id).values(applied_at=db.utcnow()))
            if row is not None:
                self._resolve_copy(conn, row.source, row.delivery_id,
                                   f"applied when {workflow_id} started: the cancel won")

    # -- events that overtook their workflow (shipments, short picks, receipts) ------------------------------
    def hold_event(self, workflow_id: str, signal: str, payload: dict[str, Any], *, source: str,
                   delivery_id: str | None) -> bool:
        """Keep a signal for a workflow that has not started; False if this delivery is held already."""
        try:
            with self.engine.begin() as conn:
                conn.execute(db.early_events.insert().values(workflow_id=workflow_id, signal=signal, payload=payload,
                                                            source=source, delivery_id=delivery_id))
            return True
        except IntegrityError:
            return False  # a redelivery (or a replay) of a held event

    def held_events(self, workflow_id: str) -> list[dict[str, Any]]:
        """The signals held for the workflow and not yet delivered, in the order they arrived."""
        t = db.early_events
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where((t.c.workflow_id == workflow_id) & t.c.applied_at.is_(None))
                                .order_by(t.c.id)).mappings().all()
        return [dict(r) for r in rows]

    def event_applied(self, event_id: int, workflow_id: str) -> None:
        """A held signal reached its workflow: mark it, and resolve its quarantined copy."""
        t = db.early_events
        with self.engine.begin() as conn:
            row = conn.execute(select(t.c.source, t.c.delivery_id, t.c.signal).where(t.c.id == event_id)).first()
            conn.execute(update(t).where(t.c.id == event_id).values(applied_at=db.utcnow()))
            if row is not None:
                self._resolve_copy(conn, row.source, row.delivery_id,
                                   f"delivered to {workflow_id} as its {row.signal} when it started")

    # -- quarantine ------------------------------------------------------------------------------------------
    def quarantine(self, *, source: str, topic: str | None, delivery_id: str | None, headers: dict[str, str],
                   body: bytes, reason: str, status_code: int) -> int:
        """Keep a copy of a delivery that could not be taken; its quarantine id."""
        with self.engine.begin() as conn:
            result = conn.execute(db.quarantine.insert().values(
                source=source, topic=topic, delivery_id=delivery_id, headers=headers,
                body=self._seal(source, delivery_id, body), reason=reason,
                status_code=status_code))
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def prune(self, *, older_than: datetime | None = None, unsigned_max_rows: int | None = None) -> dict[str, int]:
        """Bound the quarantine: copies resolved, and deliveries refused for their signature (401), received before
        `older_than`; and refused signatures beyond the newest `unsigned_max_rows`. An authentic delivery that
        was not taken (unresolved, not a 401) is never deleted: that would lose it."""
        q = db.quarantine
        counts = {"resolved": 0, "unsigned": 0}
        with self.engine.begin() as conn:
            if older_than is not None:
                counts["resolved"] = conn.execute(delete(q).where(
                    q.c.resolved.is_(True) & (q.c.received_at < older_than))).rowcount or 0
                counts["unsigned"] = conn.execute(delete(q).where(
                    (q.c.status_code == 401) & (q.c.received_at < older_than))).rowcount or 0
            if unsigned_max_rows is not None:
                keep = select(q.c.id).where(q.c.status_code == 401).order_by(q.c.id.desc()).limit(unsigned_max_rows)
                boundary = conn.execute(select(func.min(keep.subquery().c.id))).scalar()
                if boundary is not None:
                    counts["unsigned"] += conn.execute(delete(q).where(
                        (q.c.status_code == 401) & (q.c.id < boundary))).rowcount or 0
                elif unsigned_max_rows == 0:
                    counts["unsigned"] += conn.execute(delete(q).where(q.c.status_code == 401)).rowcount or 0
        return counts

    def list(self, *, resolved: bool | None = False, source: str | None = None, limit: int = 100,
             offset: int = 0) -> list[dict[str, Any]]:
        """Quarantined deliveries, newest first."""
        t = db.quarantine
        query = select(t).order_by(t.c.id.desc()).limit(limit).offset(offset)
        if resolved is not None:
            query = query.where(t.c.resolved == resolved)
        if source:
            query = query.where(t.c.source == source)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings().all()]
        return [self._opened(r) for r in rows]

    def get(self, qid: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(db.quarantine).where(db.quarantine.c.id == qid)).mappings().first()
        return self._opened(dict(row)) if row is not None else None

    def mark_replayed(self, qid: int, *, result: str, resolved: bool) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(db.quarantine).where(db.quarantine.c.id == qid).values(
                replayed_at=db.utcnow(), replay_result=result, resolved=resolved))
