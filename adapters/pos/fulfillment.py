"""Store fulfillment through the POS role (issue 20, item 3): a split order's release to a store node
(`pos:<name>`) asks the store's POS to pick the lines, either to ship them (ship-from-store, SHIPMENT) or to hold
them for the customer (click-and-collect, PICKUP). The port (`StoreFulfillmentPort`) has three calls: request,
cancel and read. Both implementations are idempotent by the release reference `<order>/<node>/<n>`.

- `EmbeddedStoreFulfillment`: the embedded POS. The request is a row of `pos_store_fulfillments`
  (adapters/sql/store_fulfillment.py); the store's staff confirm the pick (PREPARED) and the pick-up or the
  shipment (COMPLETED) through the API (`POST /pos/stores/{store}/fulfillments/{ref}/picked` and `/collected`),
  which moves the row (`transition`) and signals the order.
- `adapters/pos/square_fulfillment.py`: Square, an order with one `fulfillments` entry (Orders API).

The states are Square's: PROPOSED → RESERVED → PREPARED → COMPLETED, or CANCELED / FAILED. A request that has
been completed cannot be cancelled (CannotCancel: the goods left the store); one already cancelled cancels to no
effect (False).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from adapters.sql.base import utcnow
from adapters.sql.store_fulfillment import pos_store_fulfillments as table
from canonical.errors import BusinessError, CannotCancel
from canonical.sourcing import (
    STORE_FINAL_STATES,
    STORE_TRANSITIONS,
    StoreFulfillment,
    StoreFulfillmentKind,
    StoreFulfillmentLine,
    StoreFulfillmentRequest,
    StoreFulfillmentState,
)


class StoreFulfillmentRefused(BusinessError):
    """The store (its POS) refused the request or the change: the order re-sources the lines."""

    action = "The store refused the request; the order is re-sourced to another node, or waits here for `retry`."


class UnknownStoreFulfillment(LookupError):
    """No store fulfillment has that reference (at that store)."""


class TransitionRefused(ValueError):
    """The store fulfillment cannot move to that state from the one it is in."""


AMENDABLE_STATES = frozenset({StoreFulfillmentState.PROPOSED.value, StoreFulfillmentState.RESERVED.value})
"""A request's lines may change until the staff pick it."""


@runtime_checkable
class StoreFulfillmentPort(Protocol):
    """A store's POS, as the split order's node activities use it."""

    def request_fulfillment(self, request: StoreFulfillmentRequest) -> StoreFulfillment:
        """Ask the store to pick (and ship, or hold for pick-up); idempotent by `request.ref`."""
        ...

    def cancel_fulfillment(self, ref: str) -> bool:
        """Withdraw the request: True when cancelled now, False when it was already cancelled (or never made);
        CannotCancel once it is completed."""
        ...

    def fulfillment(self, ref: str) -> StoreFulfillment | None:
        """The request as the POS holds it now, or None."""
        ...

    def amend_fulfillment(self, ref: str, lines: list[StoreFulfillmentLine]) -> bool:
        """Take lines off a request (a store sale took their units): the request keeps `lines` only. True when it
        changed now, False when it already had those lines; CannotCancel once the staff have picked it (PREPARED
        or later) or it was withdrawn — the store holds what it picked, so an analyst decides."""
        ...


def _view(row: Any) -> StoreFulfillment:
    return StoreFulfillment(ref=row.ref, store_id=row.store_id, kind=StoreFulfillmentKind(row.kind),
                            state=StoreFulfillmentState(row.state), external_id=row.external_id,
                            lines=[StoreFulfillmentLine.model_validate(x) for x in row.lines or []])


class StoreFulfillmentBook:
    """The table: what both adapters keep of a request (the embedded POS: everything; Square: its order id)."""

    def __init__(self, engine: Engine, provider: str) -> None:
        self.engine = engine
        self.provider = provider

    def row(self, ref: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(table).where(table.c.ref == ref)).first()

    def by_external_id(self, external_id: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(table).where(table.c.external_id == external_id)).first()

    def add(self, request: StoreFulfillmentRequest, *, state: StoreFulfillmentState, external_id: str | None = None,
            fulfillment_uid: str | None = None, version: int = 1) -> Any:
        """Insert the request once; a second call with the same reference returns the row there is."""
        now = utcnow()
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(table).values(
                    ref=request.ref, provider=self.provider, store_id=request.store_id, location=request.location,
                    order_ref=request.order_ref, kind=request.kind.value, state=state.value,
                    lines=[ln.model_dump(mode="json") for ln in request.lines], recipient=request.recipient,
                    external_id=external_id, fulfillment_uid=fulfillment_uid, version=version, created_at=now,
                    updated_at=now))
        except IntegrityError:
            pass  # made before (a retried activity): the row there is is the answer
        row = self.row(request.ref)
        if row is None:  # the integrity error was another row's external id
            raise StoreFulfillmentRefused(f"store fulfillment {request.ref}: {self.provider} id {external_id} is "
                                          "already another request's")
        return row

    def set(self, ref: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(table).where(table.c.ref == ref).values(updated_at=utcnow(), **values))


class EmbeddedStoreFulfillment:
    """The embedded POS: the request is the row; the store's staff move it through the API."""

    provider = "embedded"

    def __init__(self, engine: Engine) -> None:
        self.book = StoreFulfillmentBook(engine, self.provider)

    def request_fulfillment(self, request: StoreFulfillmentRequest) -> StoreFulfillment:
        row = self.book.add(request, state=StoreFulfillmentState.PROPOSED)
        if row.store_id != request.store_id or row.provider != self.provider:
            raise StoreFulfillmentRefused(f"store fulfillment {request.ref} is already at {row.provider} store "
                                          f"{row.store_id}, not {request.store_id}")
        return _view(row)

    def cancel_fulfillment(self, ref: str) -> bool:
        row = self.book.row(ref)
        if row is None or row.state in (StoreFulfillmentState.CANCELED, StoreFulfillmentState.FAILED):
            return False
        if row.state == StoreFulfillmentState.COMPLETED:
            raise CannotCancel(f"store fulfillment {ref} at {row.store_id} is completed "
                               f"({'collected' if row.kind == 'PICKUP' else 'shipped'}); handle it as a return",
                               details={"store_id": row.store_id})
        with self.book.engine.begin() as conn:  # only from the state read: a pick-up meanwhile wins
            done = conn.execute(update(table).where((table.c.ref == ref) & (table.c.state == row.state)).values(
                state=StoreFulfillmentState.CANCELED.value, cancelled_at=utcnow(), updated_at=utcnow(),
                reason="withdrawn by the order")).rowcount
        if not done:
            return self.cancel_fulfillment(ref)
        return True

    def fulfillment(self, ref: str) -> StoreFulfillment | None:
        row = self.book.row(ref)
        return _view(row) if row is not None else None

    def amend_fulfillment(self, ref: str, lines: list[StoreFulfillmentLine]) -> bool:
        row = self.book.row(ref)
        if row is None:
            raise CannotCancel(f"store fulfillment {ref} was never requested; nothing to amend")
        wanted = [ln.model_dump(mode="json") for ln in lines]
        if (row.lines or []) == wanted:
            return False
        if row.state not in AMENDABLE_STATES:
            raise CannotCancel(f"store fulfillment {ref} at {row.store_id} is {row.state}: its lines cannot change "
                               "(the staff have picked it, or it is withdrawn)", details={"store_id": row.store_id})
        with self.book.engine.begin() as conn:  # only from the state read: a pick meanwhile wins
            done = conn.execute(update(table).where((table.c.ref == ref) & (table.c.state == row.state)).values(
                lines=wanted, version=row.version + 1, updated_at=utcnow())).rowcount
        if not done:
            return self.amend_fulfillment(ref, lines)
        return True

    def pending(self, store_id: str) -> list[StoreFulfillment]:
        """The store's open requests (what its staff are to pick or hand over), oldest first."""
        return [view for view, _ in self.pending_for_staff(store_id)]

    def pending_for_staff(self, store_id: str) -> list[tuple[StoreFulfillment, str | None]]:
        """The store's open requests, oldest first, each with its recipient's name (who collects it, or whom the
        parcel is for): what the staff's list shows (api/routers/pos.py)."""
        with self.book.engine.connect() as conn:
            rows = conn.execute(select(table).where(
                (table.c.store_id == store_id) & (table.c.provider == self.provider)
                & table.c.state.not_in([s.value for s in STORE_FINAL_STATES])).order_by(table.c.created_at)).all()
        return [(_view(r), r.recipient) for r in rows]

    def transition(self, store_id: str, ref: str, state: StoreFulfillmentState, actor: str, *,
                   at: datetime | None = None, reason: str | None = None, carrier: str | None = None,
                   tracking_number: str | None = None) -> tuple[StoreFulfillment, bool]:
        """The store's staff move the request: (the request, whether it changed now). The same move again is a
        no-op (False); a move the states do not allow raises TransitionRefused; another store's ref, or an unknown
        one, raises UnknownStoreFulfillment."""
        row = self.book.row(ref)
        if row is None or row.store_id != store_id or row.provider != self.provider:
            raise UnknownStoreFulfillment(f"store {store_id} has no fulfillment {ref}")
        current = StoreFulfillmentState(row.state)
        if current == state:
            return _view(row), False
        if state not in STORE_TRANSITIONS.get(current, frozenset()):
            raise TransitionRefused(f"store fulfillment {ref} is {current.value}; it cannot become {state.value}")
        now = at or utcnow()
        values: dict[str, Any] = {"state": state.value, "version": row.version + 1}
        if state == StoreFulfillmentState.PREPARED:
            values.update(prepared_by=actor, prepared_at=now)
        elif state == StoreFulfillmentState.COMPLETED:
            values.update(completed_by=actor, completed_at=now, carrier=carrier, tracking_number=tracking_number)
        elif state in (StoreFulfillmentState.CANCELED, StoreFulfillmentState.FAILED):
            values.update(cancelled_at=now, reason=reason or f"refused by {actor}")
        with self.book.engine.begin() as conn:
            done = conn.execute(update(table).where((table.c.ref == ref) & (table.c.version == row.version)).values(
                updated_at=utcnow(), **values)).rowcount
        if not done:  # moved meanwhile: decide again against what it is now
            return self.transition(store_id, ref, state, actor, at=at, reason=reason, carrier=carrier,
                                   tracking_number=tracking_number)
        return _view(self.book.row(ref)), True
