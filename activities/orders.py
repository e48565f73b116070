"""Order-to-fulfillment activities. Each is one idempotent adapter call; business faults become
non-retryable `ApplicationError`s whose type names the fault, so the workflow can park for an analyst."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel, ConfigDict
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import transient_error
from adapters.ports import Adapters
from canonical.errors import BusinessError, InvalidAddress, InvalidOrder, OutOfStock
from canonical.fulfillment import InvoiceRef, Reservation, ResolvedLine, SalesOrderRef, WmsReleaseRef
from canonical.order import Address, Order, Shipment, TaxQuote
from canonical.vendor_errors import VendorUnavailable

log = structlog.get_logger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

# Countries whose addresses have no postal code (a subset; ISO 3166-1 alpha-2).
NO_POSTAL_CODE_COUNTRIES = frozenset({"AE", "AG", "AO", "BS", "BZ", "FJ", "GH", "HK", "IE", "JM", "QA", "ZW"})


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OrderInput(_In):
    order: Order


class KeyInput(_In):
    key: str


class ReserveInput(_In):
    key: str
    lines: list[ResolvedLine]
    allow_backorder: bool = False


class TaxQuoteInput(_In):
    transaction_code: str
    order: Order


class SalesOrderInput(_In):
    external_ref: str
    order: Order
    lines: list[ResolvedLine]
    tax: TaxQuote


class WmsReleaseInput(_In):
    external_ref: str
    lines: list[ResolvedLine]
    ship_to: Address | None


class WmsAmendInput(_In):
    external_ref: str
    lines: list[ResolvedLine]


class ResourceInput(_In):
    """Re-source units a store sale took from the order's reservation (issue 17)."""

    key: str
    item_code: str
    quantity: int
    token: str  # one re-sourcing: the sale's event id
    store: str | None = None
    location: str | None = None  # where the units were lost: reserved from last


class DeliveryInput(_In):
    external_ref: str
    shipment: Shipment
    lines: list[ResolvedLine]


class ShipmentConfirmInput(_In):
    channel: str
    external_order_id: str
    shipment: Shipment


class ChannelCancelInput(_In):
    channel: str
    external_order_id: str
    reason: str


def business_errors(fn: F) -> F:
    """Turn a BusinessError into a non-retryable ApplicationError carrying what a person should do, and a
    transient vendor fault into a retryable one (activities/errors.py)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except VendorUnavailable as exc:
            raise transient_error(exc) from exc
        except BusinessError as exc:
            info = activity.info()
            log.warning("activity.business_error", activity=info.activity_type, workflow_id=info.workflow_id,
                        error_type=exc.type, error=exc.message)
            raise ApplicationError(
                exc.message, {"action": exc.action, "skippable": exc.skippable, **exc.details},
                type=exc.type, non_retryable=True,
            ) from exc

    return wrapper  # type: ignore[return-value]


class OrderActivities:
    """Activities as methods of a class that receives its adapters (the composition root builds it)."""

    def __init__(self, adapters: Adapters) -> None:
        self.adapters = adapters

    @activity.defn(name="validate_order")
    @business_errors
    def validate_order(self, inp: OrderInput) -> None:
        order = inp.order
        if any(line.requires_shipping for line in order.lines) and order.pickup_store is None:  # collected: no address
            addr = order.shipping_address
            if addr is None:
                raise InvalidAddress("the order has lines that need shipping but no shipping address")
            missing = [name for name in ("line1", "city") if not getattr(addr, name)]
            if not addr.postal_code and addr.country not in NO_POSTAL_CODE_COUNTRIES:
                missing.append("postal_code")
            if missing:
                raise InvalidAddress(f"the shipping address lacks {', '.join(missing)}")
        if order.computed_total.amount < 0:
            raise InvalidOrder(f"the order total is negative ({order.computed_total})")

    @activity.defn(name="resolve_skus")
    @business_errors
    def resolve_skus(self, inp: OrderInput) -> list[ResolvedLine]:
        return self.adapters.erp.resolve_skus(inp.order)

    @activity.defn(name="reserve_stock")
    @business_errors
    def reserve_stock(self, inp: ReserveInput) -> Reservation:
        return self.adapters.erp.reserve(inp.key, inp.lines, allow_backorder=inp.allow_backorder)

    @activity.defn(name="release_stock")
    @business_errors
    def release_stock(self, inp: KeyInput) -> bool:
        return self.adapters.erp.release_reservation(inp.key)

    @activity.defn(name="quote_tax")
    @business_errors
    def quote_tax(self, inp: TaxQuoteInput) -> TaxQuote:
        return self.adapters.tax.quote(inp.transaction_code, inp.order)

    @activity.defn(name="void_tax")
    @business_errors
    def void_tax(self, inp: KeyInput) -> bool:
        return self.adapters.tax.void(inp.key)

    @activity.defn(name="create_sales_order")
    @business_errors
    def create_sales_order(self, inp: SalesOrderInput) -> SalesOrderRef:
        return self.adapters.erp.create_sales_order(inp.external_ref, inp.order, inp.lines, inp.tax)

    @activity.defn(name="cancel_sales_order")
    @business_errors
    def cancel_sales_order(self, inp: KeyInput) -> bool:
        return self.adapters.erp.cancel_sales_order(inp.key)

    @activity.defn(name="release_to_wms")
    @business_errors
    def release_to_wms(self, inp: WmsReleaseInput) -> WmsReleaseRef:
        return self.adapters.wms.release(inp.external_ref, inp.lines, inp.ship_to)

    @activity.defn(name="cancel_wms_release")
    @business_errors
    def cancel_wms_release(self, inp: KeyInput) -> bool:
        return self.adapters.wms.cancel_release(inp.key)

    # -- lines cancelled before shipment: each downstream document shrinks (idempotent: sets the state given)
    @activity.defn(name="amend_wms_release")
    @business_errors
    def amend_wms_release(self, inp: WmsAmendInput) -> bool:
        return self.adapters.wms.amend_release(inp.external_ref, inp.lines)

    @activity.defn(name="requote_tax")
    @business_errors
    def requote_tax(self, inp: TaxQuoteInput) -> TaxQuote:
        return self.adapters.tax.requote(inp.transaction_code, inp.order)

    @activity.defn(name="amend_sales_order")
    @business_errors
    def amend_sales_order(self, inp: SalesOrderInput) -> bool:
        return self.adapters.erp.amend_sales_order(inp.external_ref, inp.order, inp.lines, inp.tax)

    @activity.defn(name="reduce_reservation")
    @business_errors
    def reduce_reservation(self, inp: ReserveInput) -> int:
        return self.adapters.erp.reduce_reservation(inp.key, inp.lines)

    @activity.defn(name="resource_stock")
    @business_errors
    def resource_stock(self, inp: ResourceInput) -> int:
        """Reserve elsewhere what a store sale took; OutOfStock (the order parks) names the store and what to do."""
        try:
            return self.adapters.erp.reserve_more(inp.key, inp.item_code, inp.quantity, token=inp.token,
                                                  avoid_location=inp.location)
        except OutOfStock as exc:
            where = f" at {inp.store}" if inp.store else ""
            raise OutOfStock(
                f"stock taken by a store sale{where}: {exc.message}",
                details={**(exc.details or {}), "action": "Receive or transfer stock (POST /inventory/events), then "
                         "send `retry`; or cancel the short line (POST /orders/{channel}/{id}/lines/cancel) or the "
                         "order"}) from None

    @activity.defn(name="post_delivery")
    @business_errors
    def post_delivery(self, inp: DeliveryInput) -> None:
        self.adapters.erp.post_delivery(inp.external_ref, inp.shipment, inp.lines)

    @activity.defn(name="confirm_shipment")
    @business_errors
    def confirm_shipment(self, inp: ShipmentConfirmInput) -> None:
        self.adapters.marketplace.confirm_shipment(inp.channel, inp.external_order_id, inp.shipment)

    @activity.defn(name="notify_channel_cancelled")
    @business_errors
    def notify_channel_cancelled(self, inp: ChannelCancelInput) -> None:
        self.adapters.marketplace.notify_cancelled(inp.channel, inp.external_order_id, inp.reason)

    @activity.defn(name="create_invoice")
    @business_errors
    def create_invoice(self, inp: KeyInput) -> InvoiceRef:
        return self.adapters.erp.create_invoice(inp.key)

    @activity.defn(name="commit_tax")
    @business_errors
    def commit_tax(self, inp: KeyInput) -> None:
        self.adapters.tax.commit(inp.key)

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.validate_order, self.resolve_skus, self.reserve_stock, self.release_stock, self.quote_tax,
            self.void_tax, self.create_sales_order, self.cancel_sales_order, self.release_to_wms,
            self.cancel_wms_release, self.post_delivery, self.confirm_shipment, self.notify_channel_cancelled,
            self.create_invoice, self.commit_tax, self.amend_wms_release, self.requote_tax, self.amend_sales_order,
            self.reduce_reservation, self.resource_stock,
        ]
