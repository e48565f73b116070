"""The routing ERP (issue 21, part 2; docs/erp-migration.md): one `ErpAdapter` in front of several live ERPs, so
the activities call the same port they always did while each process of each store or legal entity posts to the
ERP the routing file names — and, in dual-run, to a shadow ERP as well.

- **Pinned routes.** The first time a business key is posted, its route (system of record and shadow) is pinned in
  the platform database (`ErpRouteStore`). Every later call for that key goes where the first did, so a cut-over
  (a change of the routing file) takes effect for new keys only: a running order finishes on the ERP it started
  with. An order's key is its workflow id (`order:<channel>:<id>`); its first ERP step (`resolve_skus`) pins it, and
  the node releases of a split order (`order:<channel>:<id>/<node>/<n>`) go where their order is pinned.
- **Documents made from an order follow it.** An invoice, a delivery or a credit note is made from the order's
  sales order, so it goes to the ERPs the order is pinned to; the `invoices` / `credit_notes` routes decide only
  for orders the router never saw (booked before it was configured). Journals and stock route on their own.
- **Dual-run.** With a shadow in its route a posting goes to the system of record first and then, in shadow, to
  the shadow ERP (`ShadowErpNext` marks the documents there). The shadow posting never fails the order: its error
  is logged and recorded (`erp_shadow_failures`) and the parity check reports it. The shadow books the documents
  only (sales order, delivery, invoice, credit note, journal, restock); reservations stay with the record.
  Before a shadow sales order is booked, the shadow resolves the order's SKUs itself (its item codes may differ).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import structlog

from adapters.erp.base import BookedOrder, ErpAdapter
from adapters.erp.route_store import ErpRouteStore
from canonical.erp_routing import ErpRoute, ErpRoutingConfig
from canonical.finance import JournalEntry
from canonical.fulfillment import InvoiceRef, Reservation, ResolvedLine, SalesOrderRef
from canonical.inventory import StockSnapshotLine
from canonical.order import Order, Shipment, TaxQuote
from canonical.returns import AuthorizedReturn, CreditNote, DispositionLine, ReturnRequest
from canonical.settlement_matching import BookedOrderTotal, CreditNoteFacts, ErpOrderFacts
from canonical.supplier import SupplierInvoice

log = structlog.get_logger(__name__)


def order_key(key: str) -> str:
    """The order a key belongs to: a node release of a split order (`order:<channel>:<id>/<node>/<n>`, issue 20)
    posts where its order is pinned."""
    return key.split("/", 1)[0] if key.startswith("order:") else key


def channel_of(key: str) -> str | None:
    """The channel (store) of an order key `order:<channel>:<id>`; None for another key."""
    parts = key.split(":", 2)
    return parts[1] if len(parts) == 3 and parts[0] == "order" and parts[1] else None


class RoutingErp:
    """ErpAdapter routing each call to the ERP its process and scope are configured for (see the module)."""

    def __init__(self, erps: dict[str, ErpAdapter], config: ErpRoutingConfig, store: ErpRouteStore, *,
                 shadows: dict[str, ErpAdapter] | None = None, legal_entities: dict[str, str] | None = None) -> None:
        """`erps`: the adapter of each ERP as a system of record; `shadows`: as a shadow (its documents marked; one
        ERP can be both — the record of a store already cut over and the shadow of the others); default `erps`."""
        shadows = dict(erps if shadows is None else shadows)
        missing = (set(config.erps) - set(erps)) | (config.shadow_erps() - set(shadows))
        if missing:
            raise ValueError(f"routing names ERP(s) without an adapter: {', '.join(sorted(missing))}")
        self.erps = dict(erps)
        self.shadows = shadows
        self.config = config
        self.store = store
        self.legal_entities = dict(legal_entities or {})  # store (channel) → legal entity

    # -- routing --------------------------------------------------------------------------------------------
    def configured(self, process: str, store: str | None = None, legal_entity: str | None = None) -> ErpRoute:
        entity = legal_entity or (self.legal_entities.get(store) if store else None)
        return self.config.route_for(process, store=store, legal_entity=entity)

    def _scope(self, store: str | None, legal_entity: str | None = None) -> str:
        entity = legal_entity or (self.legal_entities.get(store) if store else None)
        return f"store={store or '*'} legal_entity={entity or '*'}"

    def route(self, process: str, key: str, *, store: str | None = None, legal_entity: str | None = None,
              pin: bool = True) -> ErpRoute:
        """The key's route: pinned before, else the configured one (pinned now unless `pin` is False)."""
        if process == "orders":
            key = order_key(key)
        if not pin:
            return self.store.pinned(process, key) or self.configured(process, store, legal_entity)
        return self.store.pin(process, key, self.configured(process, store, legal_entity),
                              scope=self._scope(store, legal_entity))

    def _order_route(self, order_ref: str, process: str, key: str) -> ErpRoute:
        """A document made from an order: the order's pinned route, pinned for `key` of `process` as well."""
        order_route = self.store.pinned("orders", order_ref)
        if order_route is None:
            return self.route(process, key, store=channel_of(order_ref))
        return self.store.pin(process, key, order_route, scope=f"order {order_ref}")

    def record(self, route: ErpRoute) -> ErpAdapter:
        return self.erps[route.record]

    def _shadow(self, route: ErpRoute, process: str, key: str, operation: str,
                post: Callable[[ErpAdapter], Any]) -> None:
        """Post in shadow; a failure is logged and recorded, never raised."""
        if route.shadow is None:
            return
        try:
            post(self.shadows[route.shadow])
        except Exception as exc:  # the shadow never fails the order: it is reported by the parity check
            error = f"{type(exc).__name__}: {exc}"
            log.warning("erp.shadow_failed", process=process, key=key, operation=operation, shadow=route.shadow,
                        error=error)
            try:
                self.store.record_shadow_failure(process, key, operation, route.shadow, error)
            except Exception as store_exc:  # not even the record: the log line above is what is left
                log.error("erp.shadow_failure_not_recorded", key=key, error=str(store_exc))

    @staticmethod
    def _shadow_lines(shadow: ErpAdapter, order: Order, lines: list[ResolvedLine]) -> list[ResolvedLine]:
        """The record's lines (quantities as booked) with the shadow's own item codes."""
        items = {r.line_id: r.item_code for r in shadow.resolve_skus(order)}
        return [line.model_copy(update={"item_code": items.get(line.line_id, line.item_code)}) for line in lines]

    # -- orders -------------------------------------------------------------------------------------------
    def resolve_skus(self, order: Order) -> list[ResolvedLine]:
        route = self.route("orders", order.workflow_id, store=order.channel)
        return self.record(route).resolve_skus(order)

    def channel_skus_of(self, channel: str, item_code: str) -> list[str]:
        return self.record(self.configured("stock", channel)).channel_skus_of(channel, item_code)

    def reserve(self, key: str, lines: list[ResolvedLine], *, allow_backorder: bool,
                location: str | None = None) -> Reservation:
        return self.record(self.route("orders", key, store=channel_of(key))).reserve(
            key, lines, allow_backorder=allow_backorder, location=location)

    def release_reservation(self, key: str) -> bool:
        return self.record(self.route("orders", key, store=channel_of(key))).release_reservation(key)

    def create_sales_order(self, external_ref: str, order: Order, lines: list[ResolvedLine], tax: TaxQuote
                           ) -> SalesOrderRef:
        route = self.route("orders", external_ref, store=order.channel)
        ref = self.record(route).create_sales_order(external_ref, order, lines, tax)
        self._shadow(route, "orders", external_ref, "create_sales_order",
                     lambda s: s.create_sales_order(external_ref, order, self._shadow_lines(s, order, lines), tax))
        return ref

    def amend_sales_order(self, external_ref: str, order: Order, lines: list[ResolvedLine], tax: TaxQuote) -> bool:
        route = self.route("orders", external_ref, store=order.channel)
        changed = self.record(route).amend_sales_order(external_ref, order, lines, tax)
        self._shadow(route, "orders", external_ref, "amend_sales_order",
                     lambda s: s.amend_sales_order(external_ref, order, self._shadow_lines(s, order, lines), tax))
        return changed

    def reduce_reservation(self, key: str, lines: list[ResolvedLine]) -> int:
        return self.record(self.route("orders", key, store=channel_of(key))).reduce_reservation(key, lines)

    def reserve_more(self, key: str, item_code: str, quantity: int, *, token: str,
                     avoid_location: str | None = None) -> int:
        return self.record(self.route("orders", key, store=channel_of(key))).reserve_more(
            key, item_code, quantity, token=token, avoid_location=avoid_location)

    def cancel_sales_order(self, external_ref: str) -> bool:
        route = self.route("orders", external_ref, store=channel_of(external_ref))
        cancelled = self.record(route).cancel_sales_order(external_ref)
        self._shadow(route, "orders", external_ref, "cancel_sales_order", lambda s: s.cancel_sales_order(external_ref))
        return cancelled

    def post_delivery(self, external_ref: str, shipment: Shipment, lines: list[ResolvedLine]) -> None:
        route = self.route("orders", external_ref, store=channel_of(external_ref))
        self.record(route).post_delivery(external_ref, shipment, lines)
        self._shadow(route, "orders", external_ref, "post_delivery",
                     lambda s: s.post_delivery(external_ref, shipment, lines))

    def create_invoice(self, external_ref: str) -> InvoiceRef:
        route = self._order_route(external_ref, "invoices", external_ref)
        invoice = self.record(route).create_invoice(external_ref)
        self._shadow(route, "invoices", external_ref, "create_invoice", lambda s: s.create_invoice(external_ref))
        return invoice

    def booked_order(self, external_ref: str) -> BookedOrder | None:
        route = self.route("orders", external_ref, store=channel_of(external_ref), pin=False)
        return self.record(route).booked_order(external_ref)

    # -- returns ------------------------------------------------------------------------------------------
    def authorize_return(self, request: ReturnRequest, *, workflow_id: str, return_window_days: int
                         ) -> AuthorizedReturn:
        order_ref = request.order_workflow_id
        route = self.store.pinned("orders", order_ref) or self.configured("credit_notes", request.channel)
        return self.record(route).authorize_return(request, workflow_id=workflow_id,
                                                   return_window_days=return_window_days)

    def create_credit_note(self, note: CreditNote) -> CreditNote:
        route = self._order_route(note.order_external_ref, "credit_notes", note.external_ref)
        booked = self.record(route).create_credit_note(note)
        self._shadow(route, "credit_notes", note.external_ref, "create_credit_note",
                     lambda s: s.create_credit_note(note))
        return booked

    def cancel_credit_note(self, external_ref: str) -> bool:
        route = self.route("credit_notes", external_ref, pin=False)
        cancelled = self.record(route).cancel_credit_note(external_ref)
        self._shadow(route, "credit_notes", external_ref, "cancel_credit_note",
                     lambda s: s.cancel_credit_note(external_ref))
        return cancelled

    def restock(self, receipt_key: str, lines: list[DispositionLine]) -> int:
        route = self.route("stock", receipt_key)
        units = self.record(route).restock(receipt_key, lines)
        self._shadow(route, "stock", receipt_key, "restock", lambda s: s.restock(receipt_key, lines))
        return units

    # -- inventory ----------------------------------------------------------------------------------------
    def stock_snapshot(self) -> list[StockSnapshotLine]:
        return self.record(self.configured("stock")).stock_snapshot()

    # -- finance ------------------------------------------------------------------------------------------
    def post_journal(self, journal: JournalEntry) -> str:
        dims = next((line.dimensions for line in journal.lines
                     if line.dimensions.store or line.dimensions.channel or line.dimensions.legal_entity), None)
        store = (dims.store or dims.channel) if dims else None
        route = self.route("journals", journal.external_ref, store=store,
                           legal_entity=dims.legal_entity if dims else None)
        journal_id = self.record(route).post_journal(journal)
        self._shadow(route, "journals", journal.external_ref, "post_journal", lambda s: s.post_journal(journal))
        return journal_id

    def post_supplier_invoice(self, invoice: SupplierInvoice) -> str:
        """SupplierPayables, on the journals' default system of record (payables are booked there)."""
        erp = self.record(self.configured("journals"))
        post = getattr(erp, "post_supplier_invoice", None)
        if post is None:
            raise TypeError(f"the journals' ERP {self.configured('journals').record!r} books no supplier payables")
        return post(invoice)

    # -- settlement matching: each reference asks the ERP its order is on ------------------------------------
    def _by_record(self, refs: Iterable[str]) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for ref in refs:
            route = self.route("orders", ref, store=channel_of(ref), pin=False)
            groups.setdefault(route.record, []).append(ref)
        return groups

    def settlement_orders(self, external_refs: list[str]) -> dict[str, ErpOrderFacts]:
        out: dict[str, ErpOrderFacts] = {}
        for name, refs in self._by_record(external_refs).items():
            out.update(self.erps[name].settlement_orders(refs))
        return out

    def settlement_credit_notes(self, order_refs: list[str]) -> dict[str, list[CreditNoteFacts]]:
        out: dict[str, list[CreditNoteFacts]] = {}
        for name, refs in self._by_record(order_refs).items():
            out.update(self.erps[name].settlement_credit_notes(refs))
        return out

    def orders_booked_between(self, channel: str, start: datetime, end: datetime, currency: str
                              ) -> list[BookedOrderTotal]:
        """Every ERP that is a system of record for some orders is asked; an order counts only from its own
        system of record (pinned, else configured), never from a shadow copy on another ERP."""
        records = sorted({r.record for r in self.config.route if r.process in ("orders", "*")})
        found: dict[str, BookedOrderTotal] = {}
        for name in records:
            for booked in self.erps[name].orders_booked_between(channel, start, end, currency):
                key = f"order:{channel}:{booked.order_id}"
                if self.route("orders", key, store=channel, pin=False).record == name:
                    found[booked.order_id] = booked
        return [found[k] for k in sorted(found)]

    def close(self) -> None:
        for erp in {id(e): e for e in [*self.erps.values(), *self.shadows.values()]}.values():
            close = getattr(erp, "close", None)
            if close is not None:
                close()
