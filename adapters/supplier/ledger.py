"""The EDI ledger on the platform database (tables in adapters/sql/edi.py): interchange control numbers per trading
partner (unique, monotonic, persisted: an upsert that increments in one statement, so concurrent senders on
PostgreSQL or SQLite never share a number) and the interchanges exchanged with their 997s."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, and_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from adapters.sql.base import utcnow
from adapters.sql.edi import edi_control_numbers, edi_interchanges

MAX_CONTROL = 999_999_999  # ISA13 is nine digits


class ControlNumbersExhausted(RuntimeError):
    pass


@dataclass(frozen=True)
class InterchangeRecord:
    direction: str
    partner: str
    control_number: str
    group_control: str | None
    transaction_sets: str
    reference: str | None
    file_name: str | None
    ack_status: str | None
    ack_control: str | None
    acked_at: datetime | None
    processed_at: datetime | None


class SqlEdiLedger:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def next_control_number(self, partner: str) -> int:
        now = utcnow()
        table = edi_control_numbers
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        stmt = insert(table).values(partner=partner, last_control=1, updated_at=now)
        stmt = stmt.on_conflict_do_update(index_elements=[table.c.partner],
                                          set_={"last_control": table.c.last_control + 1, "updated_at": now})
        with self.engine.begin() as conn:
            value = conn.execute(stmt.returning(table.c.last_control)).scalar_one()
            if value > MAX_CONTROL:
                raise ControlNumbersExhausted(f"interchange control numbers towards {partner} are used up")
        return int(value)

    def record(self, *, direction: str, partner: str, control_number: str, transaction_sets: list[str],
               group_control: str | None = None, reference: str | None = None, file_name: str | None = None) -> bool:
        """Record an interchange; False when (direction, partner, control number) was recorded before."""
        try:
            with self.engine.begin() as conn:
                conn.execute(edi_interchanges.insert().values(
                    direction=direction, partner=partner, control_number=control_number,
                    group_control=group_control, transaction_sets=",".join(transaction_sets)[:255],
                    reference=reference, file_name=file_name, created_at=utcnow()))
        except IntegrityError:
            return False
        return True

    def get(self, direction: str, partner: str, control_number: str) -> InterchangeRecord | None:
        t = edi_interchanges
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(and_(t.c.direction == direction, t.c.partner == partner,
                                                    t.c.control_number == control_number))).mappings().first()
        if row is None:
            return None
        return InterchangeRecord(**{k: row[k] for k in InterchangeRecord.__dataclass_fields__})

    def acknowledged(self, direction: str, partner: str, control_number: str, *, status: str,
                     ack_control: str | None, detail: str | None = None) -> bool:
        """Note the 997 of an interchange (sent for an inbound one, received for an outbound one); False when the
        interchange is unknown."""
        t = edi_interchanges
        with self.engine.begin() as conn:
            n = conn.execute(update(t).where(and_(t.c.direction == direction, t.c.partner == partner,
                                                  t.c.control_number == control_number))
                             .values(ack_status=status, ack_control=ack_control, ack_detail=detail,
                                     acked_at=utcnow())).rowcount
        return bool(n)

    def acknowledged_group(self, partner: str, group_control: str, *, status: str, ack_control: str,
                           detail: str | None = None) -> bool:
        """A received 997 names our functional group (AK102 = our GS06): note it on that outbound interchange."""
        t = edi_interchanges
        with self.engine.begin() as conn:
            n = conn.execute(update(t).where(and_(t.c.direction == "outbound", t.c.partner == partner,
                                                  t.c.group_control == group_control))
                             .values(ack_status=status, ack_control=ack_control, ack_detail=detail,
                                     acked_at=utcnow())).rowcount
        return bool(n)

    def processed(self, partner: str, control_number: str) -> bool:
        t = edi_interchanges
        with self.engine.begin() as conn:
            n = conn.execute(update(t).where(and_(t.c.direction == "inbound", t.c.partner == partner,
                                                  t.c.control_number == control_number,
                                                  t.c.processed_at.is_(None)))
                             .values(processed_at=utcnow())).rowcount
        return bool(n)

    def outbound_for(self, partner: str, reference: str, transaction_set: str) -> InterchangeRecord | None:
        """The interchange we sent `partner` about `reference` (a PO number) of that transaction set, if any."""
        t = edi_interchanges
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(and_(t.c.direction == "outbound", t.c.partner == partner,
                                                    t.c.reference == reference,
                                                    t.c.transaction_sets == transaction_set))
                               .order_by(t.c.id).limit(1)).mappings().first()
        if row is None:
            return None
        return InterchangeRecord(**{k: row[k] for k in InterchangeRecord.__dataclass_fields__})

    def written(self, direction: str, partner: str, control_number: str, file_name: str) -> None:
        """The interchange's file is in the drop folder (set after the atomic write succeeded)."""
        t = edi_interchanges
        with self.engine.begin() as conn:
            conn.execute(update(t).where(and_(t.c.direction == direction, t.c.partner == partner,
                                              t.c.control_number == control_number)).values(file_name=file_name))

    def about(self, direction: str, reference: str, transaction_set: str | None) -> list[InterchangeRecord]:
        """The interchanges of `direction` about `reference` (a PO number), oldest first; `transaction_set`: only
        those carrying exactly that set."""
        t = edi_interchanges
        where = and_(t.c.direction == direction, t.c.reference == reference,
                     *([t.c.transaction_sets == transaction_set] if transaction_set else []))
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where(where).order_by(t.c.id)).mappings().all()
        return [InterchangeRecord(**{k: row[k] for k in InterchangeRecord.__dataclass_fields__}) for row in rows]
