"""The embedded ERP: items, SKU cross-reference, stock with reservations, sales orders, deliveries, invoices.

Every write is idempotent by the platform's external reference, so a retried activity never creates twice.
Stock is the inventory ledger's (`adapters/inventory/ledger.py`): every reservation, release and delivery
is a ledger movement posted in the same transaction, taken under a row lock (`SELECT ... FOR UPDATE` on
PostgreSQL, `BEGIN IMMEDIATE` on SQLite).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError

from adapters import sql as db
from adapters.erp.base import BookedLine, BookedOrder
from adapters.inventory import ledger
from canonical.errors import CannotCancel, InvalidOrder, OutOfStock, UnknownSku
from canonical.finance import JournalConflict, JournalEntry, journal_fingerprint
from canonical.fulfillment import InvoiceRef, Reservation, ReservedLine, ResolvedLine, SalesOrderRef
from canonical.inventory import InventoryEvent, InventoryEventKind, StockSnapshotLine
from canonical.money import Money
from canonical.order import Order, Shipment, TaxQuote
from canonical.returns import (
    AuthorizedLine,
    AuthorizedReturn,
    CreditNote,
    CreditNoteLine,
    Disposition,
    DispositionLine,
    ReturnNotAllowed,
    ReturnRequest,
)
from canonical.sales_order import sales_order_values
from canonical.settlement_matching import BookedOrderTotal, CreditNoteFacts, ErpOrderFacts
from canonical.supplier import PayableConflict, SupplierInvoice


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12].upper()}"


class LocalErp:
    def __init__(self, engine: Engine, *, default_location: str = "MAIN") -> None:
        self.engine = engine
        self.default_location = default_location

    # -- catalog -----------------------------------------------------------------------------------
    def upsert_item(self, item_code: str, name: str, unit_price: Decimal, currency: str) -> None:
        with self.engine.begin() as conn:
            row = conn.execute(select(db.items.c.item_code).where(db.items.c.item_code == item_code)).first()
            values = {"name": name, "unit_price": unit_price, "currency": currency, "updated_at": db.utcnow()}
            if row:
                conn.execute(update(db.items).where(db.items.c.item_code == item_code).values(**values))
            else:
                conn.execute(db.items.insert().values(item_code=item_code, **values))

    def map_sku(self, channel: str, channel_sku: str, item_code: str) -> None:
        with self.engine.begin() as conn:
            key = (db.sku_xref.c.channel == channel) & (db.sku_xref.c.channel_sku == channel_sku)
            if conn.execute(select(db.sku_xref.c.item_code).where(key)).first():
                conn.execute(update(db.sku_xref).where(key).values(item_code=item_code))
            else:
                conn.execute(db.sku_xref.insert().values(channel=channel, channel_sku=channel_sku, item_code=item_code))

    def set_on_hand(self, item_code: str, location: str, on_hand: int) -> None:
        if on_hand < 0:
            raise ValueError("on_hand must not be negative")
        # a count as of now in the inventory ledger (the stock this ERP reserves from)
        with self.engine.begin() as conn:
            ledger.apply_in(conn, InventoryEvent(
                source="erp", source_event_id=ledger.new_movement_id("erp:set-on-hand"),
                kind=InventoryEventKind.CYCLE_COUNT, sku=item_code, location=location, quantity=on_hand,
                occurred_at=db.utcnow()))

    def stock_levels(self, item_code: str) -> dict[str, dict[str, int]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(db.inventory_levels).where(
                db.inventory_levels.c.item_code == item_code)).mappings().all()
        return {r["location"]: {"on_hand": r["on_hand"], "reserved": r["reserved"]} for r in rows}

    def stock_snapshot(self) -> list[StockSnapshotLine]:
        """The ERP's on-hand per item and location, for drift reconciliation (here: the ledger itself)."""
        t = db.inventory_levels
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.item_code, t.c.location, t.c.on_hand).where(t.c.on_hand >= 0)
                                .order_by(t.c.item_code, t.c.location)).all()
        return [StockSnapshotLine(sku=r.item_code, location=r.location, on_hand=r.on_hand) for r in rows]

    # -- port --------------------------------------------------------------------------------------
    def resolve_skus(self, order: Order) -> list[ResolvedLine]:
        skus = {line.channel_sku for line in order.lines}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(db.sku_xref.c.channel_sku, db.sku_xref.c.item_code).where(
                    (db.sku_xref.c.channel == order.channel) & (db.sku_xref.c.channel_sku.in_(skus))
                )
            ).all()
        mapping = {r.channel_sku: r.item_code for r in rows}
        unknown = sorted(skus - mapping.keys())
        if unknown:
            raise UnknownSku(
                f"channel {order.channel!r} SKU(s) not mapped to an ERP item: {', '.join(unknown)}",
                details={"channel": order.channel, "skus": unknown},
            )
        return [
            ResolvedLine(line_id=line.line_id, channel_sku=line.channel_sku, item_code=mapping[line.channel_sku],
                         quantity=line.quantity)
            for line in order.lines
        ]

    def channel_skus_of(self, channel: str, item_code: str) -> list[str]:
        x = db.sku_xref
        with self.engine.connect() as conn:
            rows = conn.execute(select(x.c.channel_sku).where((x.c.channel == channel) & (x.c.item_code == item_code))
                                .order_by(x.c.channel_sku)).scalars().all()
        return list(rows) or [item_code]

    def _existing_reservation(self, conn, key: str) -> Reservation | None:
        rows = conn.execute(
            select(db.reservations).where(
                (db.reservations.c.reservation_key == key) & (db.reservations.c.status != "released")
            ).order_by(db.reservations.c.id)
        ).mappings().all()
        if not rows:
            return None
        return Reservation(
            key=key,
            lines=[ReservedLine(item_code=r["item_code"], location=r["location"], quantity=r["quantity"],
                                backordered=r["backordered"]) for r in rows],
        )

    def reserve(self, key: str, lines: list[ResolvedLine], *, allow_backorder: bool,
                location: str | None = None) -> Reservation:
        """Most free location first; with `location`, that location only (a fulfillment node's units), and a
        backorder waits there."""
        wanted: dict[str, int] = {}
        for line in lines:
            wanted[line.item_code] = wanted.get(line.item_code, 0) + line.quantity
        with self.engine.begin() as conn:
            existing = self._existing_reservation(conn, key)
            if existing is not None:
                return existing
            # Lock the ledger rows of every wanted item, in a fixed order to avoid deadlocks.
            stock_rows = ledger.lock_rows(conn, items=wanted)
            by_item: dict[str, list[dict]] = {}
            for r in stock_rows:  # what is free to promise: on hand less what is reserved or allocated
                if location is None or r["location"] == location:
                    by_item.setdefault(r["item_code"], []).append({**r, "reserved": r["reserved"] + r["allocated"]})
            backorder_at = location or self.default_location
            plan: list[tuple[str, str, int, int]] = []  # item, location, qty reserved, backordered
            shortages: dict[str, int] = {}
            for item_code in sorted(wanted):
                need = wanted[item_code]
                locations = sorted(
                    by_item.get(item_code, []), key=lambda r: (-(r["on_hand"] - r["reserved"]), r["location"])
                )
                for loc in locations:
                    free = loc["on_hand"] - loc["reserved"]
                    if need <= 0 or free <= 0:
                        continue
                    take = min(free, need)
                    plan.append((item_code, loc["location"], take, 0))
                    need -= take
                if need > 0:
                    shortages[item_code] = need
                    if allow_backorder:  # one reservation row per item and location: merge into it
                        at = next((i for i, p in enumerate(plan)
                                   if p[0] == item_code and p[1] == backorder_at), None)
                        if at is None:
                            plan.append((item_code, backorder_at, 0, need))
                        else:
                            plan[at] = (item_code, backorder_at, plan[at][2], need)
            if shortages and not allow_backorder:
                short = ", ".join(f"{k} short by {v}" for k, v in shortages.items())
                where = f" at {location}" if location else ""
                raise OutOfStock(f"not enough stock{where}: {short}", details={"shortages": shortages})
            for item_code, location, qty, backordered in plan:
                if qty:
                    ledger.post(conn, source="erp", source_event_id=ledger.new_movement_id(f"erp:reserve:{key}"),
                                kind="reservation", item_code=item_code, location=location, quantity=qty,
                                occurred_at=db.utcnow(), d_reserved=qty, reference=key)
                conn.execute(
                    db.reservations.insert().values(
                        reservation_key=key, item_code=item_code, location=location, quantity=qty,
                        backordered=backordered, consumed=0, status="open",
                    )
                )
        return Reservation(
            key=key,
            lines=[ReservedLine(item_code=i, location=loc, quantity=q, backordered=b) for i, loc, q, b in plan],
        )

    def release_reservation(self, key: str) -> bool:
        released = False
        with self.engine.begin() as conn:
            query = select(db.reservations).where(
                (db.reservations.c.reservation_key == key) & (db.reservations.c.status == "open")
            )
            if db.is_postgres(self.engine):
                query = query.with_for_update()
            for r in conn.execute(query).mappings().all():
                remaining = r["quantity"] - r["consumed"]
                if remaining > 0:
                    ledger.post(conn, source="erp", source_event_id=ledger.new_movement_id(f"erp:release:{key}"),
                                kind="release", item_code=r["item_code"], location=r["location"],
                                quantity=remaining, occurred_at=db.utcnow(), d_reserved=-remaining, reference=key)
                conn.execute(update(db.reservations).where(db.reservations.c.id == r["id"]).values(status="released"))
                released = True
        return released

    def amend_sales_order(self, external_ref: str, order: Order, lines: list[ResolvedLine], tax: TaxQuote) -> bool:
        """Rewrite an open sales order's lines and totals after lines were cancelled; idempotent (sets the state
        given). Raise CannotCancel when it is invoiced or cancelled."""
        so_lines, net, grand = sales_order_values(order, lines, tax)
        with self.engine.begin() as conn:
            query = select(db.sales_orders.c.status, db.sales_orders.c.lines).where(
                db.sales_orders.c.external_ref == external_ref)
            if db.is_postgres(self.engine):
                query = query.with_for_update()
            row = conn.execute(query).first()
            if row is None:
                return False
            if row.status != "open":
                raise CannotCancel(f"sales order {external_ref} is {row.status}; its lines cannot change")
            if row.lines == so_lines:
                return False
            conn.execute(update(db.sales_orders).where(db.sales_orders.c.external_ref == external_ref).values(
                lines=so_lines, net_total=net.amount, tax_total=tax.total_tax.amount, grand_total=grand.amount))
            return True

    def reserve_more(self, key: str, item_code: str, quantity: int, *, token: str,
                     avoid_location: str | None = None) -> int:
        """Reserve `quantity` more units of `item_code` for `key` from the locations with free stock (most free
        first; `avoid_location`, the store whose sale took them, last), added to its reservation rows, under the
        ledger's row locks; all or nothing. Idempotent by `token`: its ledger movements
        (`erp:resource:{key}:{token}:{location}`) are looked for first."""
        if quantity <= 0:
            return 0
        prefix = f"erp:resource:{key}:{token}:"
        with self.engine.begin() as conn:
            rows = ledger.lock_rows(conn, items=[item_code])
            done = conn.execute(select(func.coalesce(func.sum(db.inventory_movements.c.d_reserved), 0)).where(
                db.inventory_movements.c.source_event_id.startswith(prefix, autoescape=True))).scalar_one()
            if done:
                return int(done)
            free = sorted(((r["on_hand"] - r["reserved"] - r["allocated"], r["location"]) for r in rows),
                          key=lambda x: (x[1] == avoid_location, -x[0], x[1]))
            plan, need = [], quantity
            for available, location in free:
                if need <= 0 or available <= 0:
                    continue
                take = min(available, need)
                plan.append((location, take))
                need -= take
            if need > 0:
                raise OutOfStock(f"{quantity} × {item_code} cannot be re-sourced: {quantity - need} free at other "
                                 "locations", details={"shortages": {item_code: need}})
            for location, take in plan:
                ledger.post(conn, source="erp", source_event_id=f"{prefix}{location}", kind="reservation",
                            item_code=item_code, location=location, quantity=take, occurred_at=db.utcnow(),
                            d_reserved=take, reference=key)
                r = db.reservations.c
                updated = conn.execute(update(db.reservations).where(
                    (r.reservation_key == key) & (r.item_code == item_code) & (r.location == location)).values(
                    quantity=r.quantity + take, status="open"))
                if not updated.rowcount:
                    conn.execute(db.reservations.insert().values(
                        reservation_key=key, item_code=item_code, location=location, quantity=take, backordered=0,
                        consumed=0, status="open"))
        return quantity

    def reduce_reservation(self, key: str, lines: list[ResolvedLine]) -> int:
        """Shrink what `key` holds to the quantities `lines` still need (per item), giving the rest back to stock;
        idempotent. Returns the units released by this call."""
        wanted: dict[str, int] = {}
        for line in lines:
            wanted[line.item_code] = wanted.get(line.item_code, 0) + line.quantity
        released = 0
        with self.engine.begin() as conn:
            query = select(db.reservations).where(
                (db.reservations.c.reservation_key == key) & (db.reservations.c.status == "open")
            ).order_by(db.reservations.c.item_code, db.reservations.c.id)
            if db.is_postgres(self.engine):
                query = query.with_for_update()
            for r in conn.execute(query).mappings().all():
                keep = wanted.get(r["item_code"], 0)
                held = r["quantity"] + r["backordered"]
                if held <= keep:
                    wanted[r["item_code"]] = keep - held
                    continue
                # drop backorders first, then reserved units
                backordered = min(r["backordered"], max(keep - r["quantity"], 0))
                quantity = min(r["quantity"], keep)
                give_back = r["quantity"] - quantity
                wanted[r["item_code"]] = 0
                if give_back:
                    ledger.post(conn, source="erp", source_event_id=ledger.new_movement_id(f"erp:release:{key}"),
                                kind="release", item_code=r["item_code"], location=r["location"],
                                quantity=give_back, occurred_at=db.utcnow(), d_reserved=-give_back, reference=key)
                    released += give_back
                conn.execute(update(db.reservations).where(db.reservations.c.id == r["id"]).values(
                    quantity=quantity, backordered=backordered,
                    status="released" if quantity + backordered == 0 else "open"))
        return released

    def create_sales_order(
        self, external_ref: str, order: Order, lines: list[ResolvedLine], tax: TaxQuote
    ) -> SalesOrderRef:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(db.sales_orders.c.id, db.sales_orders.c.status).where(
                    db.sales_orders.c.external_ref == external_ref
                )
            ).first()
        if row:
            return SalesOrderRef(erp_sales_order_id=row.id, external_ref=external_ref)
        so_lines, net, grand = sales_order_values(order, lines, tax)
        so_id = _new_id("SO")
        try:
            with self.engine.begin() as conn:
                conn.execute(db.sales_orders.insert().values(
                    id=so_id, external_ref=external_ref, channel=order.channel,
                    external_order_id=order.external_order_id,
                    customer=order.customer.email or order.customer.name, currency=order.currency,
                    net_total=net.amount, tax_total=tax.total_tax.amount, grand_total=grand.amount,
                    lines=so_lines, status="open",
                ))
        except IntegrityError:  # a concurrent attempt won the race: return its order
            with self.engine.connect() as conn:
                so_id = conn.execute(
                    select(db.sales_orders.c.id).where(db.sales_orders.c.external_ref == external_ref)
                ).scalar_one()
        return SalesOrderRef(erp_sales_order_id=so_id, external_ref=external_ref)

    def cancel_sales_order(self, external_ref: str) -> bool:
        with self.engine.begin() as conn:
            row = conn.execute(
                select(db.sales_orders.c.status).where(db.sales_orders.c.external_ref == external_ref)
            ).first()
            if row is None or row.status == "cancelled":
                return False
            if row.status == "invoiced":
                raise CannotCancel(f"sales order {external_ref} is already invoiced")
            conn.execute(
                update(db.sales_orders).where(db.sales_orders.c.external_ref == external_ref)
                .values(status="cancelled", cancelled_at=db.utcnow())
            )
            return True

    def post_delivery(self, external_ref: str, shipment: Shipment, lines: list[ResolvedLine]) -> None:
        by_line = {r.line_id: r for r in lines}
        by_sku = {r.channel_sku: r for r in lines}
        issued: dict[str, int] = {}
        for sl in shipment.lines:
            resolved = by_line.get(sl.line_id or "") or by_sku.get(sl.channel_sku)
            if resolved is None:
                raise InvalidOrder(f"shipment {shipment.shipment_id} ships {sl.channel_sku}, which is not on the order")
            issued[resolved.item_code] = issued.get(resolved.item_code, 0) + sl.quantity
        with self.engine.begin() as conn:
            exists = conn.execute(
                select(db.deliveries.c.id).where(
                    (db.deliveries.c.external_ref == external_ref) & (db.deliveries.c.shipment_id == shipment.shipment_id)
                )
            ).first()
            if exists:
                return
            conn.execute(db.deliveries.insert().values(
                external_ref=external_ref, shipment_id=shipment.shipment_id,
                lines=[{"item_code": k, "quantity": v} for k, v in sorted(issued.items())],
            ))
            for item_code, qty in sorted(issued.items()):
                remaining = qty
                res_query = select(db.reservations).where(
                    (db.reservations.c.reservation_key == external_ref)
                    & (db.reservations.c.item_code == item_code)
                    & (db.reservations.c.status == "open")
                ).order_by(db.reservations.c.id)
                if db.is_postgres(self.engine):  # a store sale's shortfall may be taking units from these rows
                    res_query = res_query.with_for_update()
                for r in conn.execute(res_query).mappings().all():
                    take = min(remaining, r["quantity"] - r["consumed"])
                    if take <= 0:
                        continue
                    ledger.post(conn, source="erp",
                                source_event_id=ledger.new_movement_id(f"erp:delivery:{external_ref}"),
                                kind="sale", item_code=item_code, location=r["location"], quantity=take,
                                occurred_at=db.utcnow(), raw_on_hand=-take, d_reserved=-take,
                                reference=shipment.shipment_id)
                    consumed = r["consumed"] + take
                    conn.execute(update(db.reservations).where(db.reservations.c.id == r["id"]).values(
                        consumed=consumed, status="consumed" if consumed >= r["quantity"] else "open"))
                    remaining -= take
                if remaining > 0:  # shipped from backorder or unreserved stock at the default location
                    ledger.ensure_rows(conn, [(item_code, self.default_location)])
                    ledger.post(conn, source="erp",
                                source_event_id=ledger.new_movement_id(f"erp:delivery:{external_ref}"),
                                kind="sale", item_code=item_code, location=self.default_location,
                                quantity=remaining, occurred_at=db.utcnow(), raw_on_hand=-remaining,
                                reference=shipment.shipment_id)

    def create_invoice(self, external_ref: str) -> InvoiceRef:
        with self.engine.begin() as conn:
            existing = conn.execute(select(db.invoices).where(db.invoices.c.external_ref == external_ref)).mappings().first()
            if existing:
                return InvoiceRef(invoice_id=existing["id"], external_ref=external_ref,
                                  total=Money.of(existing["grand_total"], existing["currency"]))
            so = conn.execute(
                select(db.sales_orders).where(db.sales_orders.c.external_ref == external_ref)
            ).mappings().first()
            if so is None:
                raise InvalidOrder(f"no sales order {external_ref} to invoice")
            if so["status"] == "cancelled":
                raise InvalidOrder(f"sales order {external_ref} is cancelled and cannot be invoiced")
            inv_id = _new_id("SINV")
            conn.execute(db.invoices.insert().values(
                id=inv_id, external_ref=external_ref, sales_order_id=so["id"], currency=so["currency"],
                net_total=so["net_total"], tax_total=so["tax_total"], grand_total=so["grand_total"],
            ))
            conn.execute(update(db.sales_orders).where(db.sales_orders.c.id == so["id"]).values(status="invoiced"))
            return InvoiceRef(invoice_id=inv_id, external_ref=external_ref, total=Money.of(so["grand_total"], so["currency"]))

    # -- returns -------------------------------------------------------------------------------------
    def _credited(self, conn, order_ref: str, *, exclude_ref: str | None = None) -> dict[str, int]:
        return {lid: units for lid, (units, _, _) in self._credited_amounts(conn, order_ref,
                                                                             exclude_ref=exclude_ref).items()}

    def _credited_amounts(self, conn, order_ref: str, *, exclude_ref: str | None = None
                          ) -> dict[str, tuple[int, Decimal, Decimal]]:
        """Per order line: units, net and tax already credited by open credit notes."""
        credited: dict[str, tuple[int, Decimal, Decimal]] = {}
        rows = conn.execute(select(db.credit_notes.c.external_ref, db.credit_notes.c.lines).where(
            (db.credit_notes.c.order_external_ref == order_ref) & (db.credit_notes.c.status == "open"))).all()
        for row in rows:
            if row.external_ref == exclude_ref:
                continue
            for line in row.lines:
                units, net, tax = credited.get(line["line_id"], (0, Decimal(0), Decimal(0)))
                credited[line["line_id"]] = (units + int(line["quantity"]), net + Decimal(str(line["net"])),
                                             tax + Decimal(str(line["tax"])))
        return credited

    def booked_order(self, external_ref: str) -> BookedOrder | None:
        with self.engine.connect() as conn:
            so = conn.execute(select(db.sales_orders).where(db.sales_orders.c.external_ref == external_ref)
                              ).mappings().first()
            if so is None:
                return None
            shipped_by_item: dict[str, int] = {}
            for row in conn.execute(select(db.deliveries.c.lines).where(db.deliveries.c.external_ref == external_ref)):
                for dl in row.lines:
                    shipped_by_item[dl["item_code"]] = shipped_by_item.get(dl["item_code"], 0) + int(dl["quantity"])
        lines = []
        for line in so["lines"]:  # each item's delivered units go to its lines in order
            take = min(int(line["quantity"]), shipped_by_item.get(line["item_code"], 0))
            shipped_by_item[line["item_code"]] = shipped_by_item.get(line["item_code"], 0) - take
            lines.append(BookedLine(line_id=str(line["line_id"]), item_code=line["item_code"],
                                    quantity=int(line["quantity"]), shipped=take))
        return BookedOrder(external_ref=external_ref, erp_sales_order_id=so["id"], currency=so["currency"],
                           status=so["status"], lines=lines)

    def authorize_return(self, request: ReturnRequest, *, workflow_id: str, return_window_days: int
                         ) -> AuthorizedReturn:
        order_ref = request.order_workflow_id
        with self.engine.connect() as conn:
            so = conn.execute(select(db.sales_orders).where(db.sales_orders.c.external_ref == order_ref)).mappings().first()
            if so is None:
                raise ReturnNotAllowed(f"no ERP sales order {order_ref} to return against")
            shipped_by_item: dict[str, int] = {}
            for row in conn.execute(select(db.deliveries.c.lines).where(db.deliveries.c.external_ref == order_ref)):
                for dl in row.lines:
                    shipped_by_item[dl["item_code"]] = shipped_by_item.get(dl["item_code"], 0) + int(dl["quantity"])
            amounts = self._credited_amounts(conn, order_ref, exclude_ref=workflow_id)
            credited = {lid: units for lid, (units, _, _) in amounts.items()}
        if request.requested_at > so["created_at"] + timedelta(days=return_window_days):
            raise ReturnNotAllowed(f"the return window of {return_window_days} day(s) for {order_ref} has closed")
        # shipped quantities per line: each item's delivered units go to its lines in order
        shipped: dict[str, int] = {}
        for line in so["lines"]:
            take = min(int(line["quantity"]), shipped_by_item.get(line["item_code"], 0))
            shipped[line["line_id"]] = take
            shipped_by_item[line["item_code"]] = shipped_by_item.get(line["item_code"], 0) - take
        by_line = {line["line_id"]: line for line in so["lines"]}
        cur = so["currency"]
        problems, out = [], []
        for rl in request.lines:
            line = by_line.get(rl.line_id)
            if line is None:
                problems.append(f"line {rl.line_id} is not on the order")
                continue
            returnable = shipped.get(rl.line_id, 0) - credited.get(rl.line_id, 0)
            if rl.quantity > returnable:
                problems.append(f"line {rl.line_id}: {rl.quantity} asked, {returnable} returnable "
                                f"({shipped.get(rl.line_id, 0)} shipped, {credited.get(rl.line_id, 0)} already credited)")
                continue
            out.append(AuthorizedLine(
                line_id=rl.line_id, item_code=line["item_code"], quantity=rl.quantity,
                ordered_quantity=int(line["quantity"]), line_net=Money.of(line["net"], cur),
                line_tax=Money.of(line["tax"], cur),
                credited_net=Money.of(amounts.get(rl.line_id, (0, 0, 0))[1], cur),
                credited_tax=Money.of(amounts.get(rl.line_id, (0, 0, 0))[2], cur),
                credited_quantity=credited.get(rl.line_id, 0)))
        if problems:
            raise ReturnNotAllowed("; ".join(problems), details={"problems": problems})
        return AuthorizedReturn(order_external_ref=order_ref, erp_sales_order_id=so["id"], currency=cur, lines=out)

    def _note(self, row) -> CreditNote:
        cur = row["currency"]
        lines = [CreditNoteLine(line_id=x["line_id"], item_code=x.get("item_code"), quantity=int(x["quantity"]),
                                net=Money.of(x["net"], cur), tax=Money.of(x["tax"], cur)) for x in row["lines"]]
        return CreditNote(credit_note_id=row["id"], external_ref=row["external_ref"],
                          order_external_ref=row["order_external_ref"], currency=cur, lines=lines,
                          net_total=Money.of(row["net_total"], cur), tax_total=Money.of(row["tax_total"], cur),
                          total=Money.of(row["grand_total"], cur))

    def create_credit_note(self, note: CreditNote) -> CreditNote:
        note = CreditNote.model_validate(note.model_dump())  # re-check the balance
        with self.engine.begin() as conn:
            existing = conn.execute(select(db.credit_notes).where(
                db.credit_notes.c.external_ref == note.external_ref)).mappings().first()
            if existing is not None and existing["status"] == "open":
                return self._note(existing)
            so = conn.execute(select(db.sales_orders).where(
                db.sales_orders.c.external_ref == note.order_external_ref)).mappings().first()
            if so is None:
                raise ReturnNotAllowed(f"no ERP sales order {note.order_external_ref} to credit")
            if so["currency"] != note.currency:
                raise ReturnNotAllowed(f"credit note in {note.currency}, sales order in {so['currency']}")
            ordered = {x["line_id"]: int(x["quantity"]) for x in so["lines"]}
            credited = self._credited(conn, note.order_external_ref, exclude_ref=note.external_ref)
            amounts = self._credited_amounts(conn, note.order_external_ref, exclude_ref=note.external_ref)
            paid = {x["line_id"]: Decimal(str(x["net"])) + Decimal(str(x["tax"])) for x in so["lines"]}
            for line in note.lines:
                if line.line_id and line.quantity and credited.get(line.line_id, 0) + line.quantity > ordered.get(
                        line.line_id, 0):
                    raise ReturnNotAllowed(f"line {line.line_id} would be credited beyond what was ordered")
                _, net, tax = amounts.get(line.line_id, (0, Decimal(0), Decimal(0)))
                if line.line_id in paid and net + tax + line.net.amount + line.tax.amount > paid[line.line_id]:
                    raise ReturnNotAllowed(f"line {line.line_id} would be credited more than was paid for it "
                                           f"({paid[line.line_id]} {note.currency})")
            values = dict(order_external_ref=note.order_external_ref, currency=note.currency,
                          net_total=note.net_total.amount, tax_total=note.tax_total.amount,
                          grand_total=note.total.amount, status="open", cancelled_at=None,
                          lines=[{"line_id": x.line_id, "item_code": x.item_code, "quantity": x.quantity,
                                  "net": str(x.net.amount), "tax": str(x.tax.amount)} for x in note.lines])
            if existing is not None:  # re-book a cancelled note (an analyst retried after compensation)
                conn.execute(update(db.credit_notes).where(db.credit_notes.c.id == existing["id"]).values(**values))
                cn_id = existing["id"]
            else:
                cn_id = _new_id("CN")
                conn.execute(db.credit_notes.insert().values(id=cn_id, external_ref=note.external_ref, **values))
        return note.model_copy(update={"credit_note_id": cn_id})

    def cancel_credit_note(self, external_ref: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(update(db.credit_notes).where(
                (db.credit_notes.c.external_ref == external_ref) & (db.credit_notes.c.status == "open"))
                .values(status="cancelled", cancelled_at=db.utcnow()))
            return result.rowcount > 0

    def restock(self, receipt_key: str, lines: list[DispositionLine]) -> int:
        units: dict[str, int] = {}
        for line in lines:
            if line.disposition == Disposition.RESTOCK:
                units[line.item_code] = units.get(line.item_code, 0) + line.quantity
        if not units:
            return 0
        with self.engine.begin() as conn:
            done = conn.execute(select(db.restocks.c.id).where(db.restocks.c.receipt_key == receipt_key)).first()
            if done:
                return 0
            for item_code, qty in sorted(units.items()):
                conn.execute(db.restocks.insert().values(receipt_key=receipt_key, item_code=item_code,
                                                         location=self.default_location, quantity=qty))
                ledger.ensure_rows(conn, [(item_code, self.default_location)])
                ledger.post(conn, source="erp", source_event_id=f"erp:restock:{receipt_key}:{item_code}",
                            kind="receipt", item_code=item_code, location=self.default_location, quantity=qty,
                            occurred_at=db.utcnow(), raw_on_hand=qty, reference=receipt_key)
        return sum(units.values())

    def list_credit_notes(self, external_ref: str | None = None, order_external_ref: str | None = None,
                          limit: int = 100) -> list[dict]:
        query = select(db.credit_notes).order_by(db.credit_notes.c.created_at.desc()).limit(limit)
        if external_ref:
            query = query.where(db.credit_notes.c.external_ref == external_ref)
        if order_external_ref:
            query = query.where(db.credit_notes.c.order_external_ref == order_external_ref)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings().all()]

    # -- read side for the API -------------------------------------------------------------------------
    def list_sales_orders(self, external_ref: str | None = None, limit: int = 100) -> list[dict]:
        query = select(db.sales_orders).order_by(db.sales_orders.c.created_at.desc()).limit(limit)
        if external_ref:
            query = query.where(db.sales_orders.c.external_ref == external_ref)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings().all()]

    # -- settlement matching: the settlement store asks these (adapters/erp/base.py) ---------------------------
    def settlement_orders(self, external_refs: list[str]) -> dict[str, ErpOrderFacts]:
        so = db.sales_orders
        with self.engine.connect() as conn:
            rows = conn.execute(select(so.c.external_ref, so.c.id, so.c.grand_total, so.c.status, so.c.currency,
                                       so.c.lines, so.c.created_at)
                                .where(so.c.external_ref.in_(sorted(set(external_refs))))).all()
        # the rows are the ERP's own, already typed: built without re-validation (a settlement asks for many)
        return {r.external_ref: ErpOrderFacts.model_construct(
            id=r.id, grand_total=r.grand_total, status=r.status, currency=r.currency, created_at=r.created_at,
            channel_skus=sorted({str(x["channel_sku"]) for x in (r.lines or []) if x.get("channel_sku")}))
            for r in rows}

    def settlement_credit_notes(self, order_refs: list[str]) -> dict[str, list[CreditNoteFacts]]:
        cn = db.credit_notes
        out: dict[str, list[CreditNoteFacts]] = {}
        with self.engine.connect() as conn:
            for ref, ext, total in conn.execute(
                    select(cn.c.order_external_ref, cn.c.external_ref, cn.c.grand_total)
                    .where(cn.c.order_external_ref.in_(sorted(set(order_refs))) & (cn.c.status == "open"))):
                out.setdefault(ref, []).append(CreditNoteFacts(external_ref=ext, total=total))
        return out

    def orders_booked_between(self, channel: str, start: datetime, end: datetime, currency: str
                              ) -> list[BookedOrderTotal]:
        so = db.sales_orders
        with self.engine.connect() as conn:
            rows = conn.execute(select(so.c.external_order_id, so.c.grand_total).where(
                (so.c.channel == channel) & (so.c.status != "cancelled") & (so.c.currency == currency)
                & (so.c.created_at >= start) & (so.c.created_at < end)).order_by(so.c.external_order_id)).all()
        return [BookedOrderTotal(order_id=oid, grand_total=total) for oid, total in rows]

    # -- finance: general ledger journals ---------------------------------------------------------------------
    def post_journal(self, journal: JournalEntry) -> str:
        """Idempotent by external reference: a journal posted twice is stored once. The same reference with
        different lines is refused (JournalConflict): a posted journal is reversed in the ERP, never rewritten."""
        journal = JournalEntry.model_validate(journal.model_dump())  # re-check the balance
        lines = [line.model_dump(mode="json") for line in journal.lines]
        with self.engine.begin() as conn:
            existing = conn.execute(select(db.erp_journals).where(
                db.erp_journals.c.external_ref == journal.external_ref)).mappings().first()
            if existing is not None:
                if journal_fingerprint(existing["lines"]) != journal_fingerprint(lines):
                    raise JournalConflict(
                        f"journal {journal.external_ref} is already posted as {existing['id']} with other amounts",
                        details={"erp_journal_id": existing["id"]})
                return existing["id"]
            journal_id = _new_id("JE")
            conn.execute(db.erp_journals.insert().values(
                id=journal_id, external_ref=journal.external_ref, posting_date=journal.posting_date.isoformat(),
                currency=journal.currency, description=journal.description, total_debit=journal.total_debit,
                total_credit=journal.total_credit, lines=lines))
        return journal_id

    # -- payables (SupplierPayables) ---------------------------------------------------------------------------
    def post_supplier_invoice(self, invoice: SupplierInvoice) -> str:
        """Idempotent by (supplier, invoice number); the same number with other lines or total is refused."""
        lines = [line.model_dump(mode="json") for line in invoice.lines]
        t = db.supplier_invoices
        with self.engine.begin() as conn:
            existing = conn.execute(select(t).where(t.c.supplier_id == invoice.supplier_id,
                                                    t.c.invoice_number == invoice.invoice_number)).mappings().first()
            if existing is not None:
                if existing["lines"] != lines or existing["total"] != invoice.total.amount \
                        or existing["currency"] != invoice.currency:
                    raise PayableConflict(
                        f"supplier invoice {invoice.invoice_number} of {invoice.supplier_id} is already posted as "
                        f"{existing['id']} with other amounts", details={"payable_id": existing["id"]})
                return str(existing["id"])
            payable_id = _new_id("PINV")
            conn.execute(t.insert().values(id=payable_id, supplier_id=invoice.supplier_id,
                                           invoice_number=invoice.invoice_number, po_number=invoice.po_number,
                                           currency=invoice.currency, total=invoice.total.amount, lines=lines))
        return payable_id

    def get_journal(self, external_ref: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(db.erp_journals).where(
                db.erp_journals.c.external_ref == external_ref)).mappings().first()
        return dict(row) if row else None

