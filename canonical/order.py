"""Orders as the platform sees them, whatever channel they came from."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from canonical.money import DecimalAmount, Money, sum_money


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware")
    from datetime import UTC

    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is a valid timestamp but no UTC time
        raise ValueError(f"datetime {value.isoformat()} is out of range in UTC") from None


UtcDatetime = Annotated[datetime, AfterValidator(_aware_utc)]


class CanonicalModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class OrderStatus(StrEnum):
    RECEIVED = "received"
    VALIDATED = "validated"
    RESERVED = "reserved"
    BOOKED = "booked"
    RELEASED = "released"
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    INVOICED = "invoiced"
    COMPLETED = "completed"
    NEEDS_ATTENTION = "needs_attention"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    FAILED = "failed"


class Address(CanonicalModel):
    name: str | None = None
    company: str | None = None
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    region: str | None = Field(default=None, description="State/province code, e.g. KY or ON")
    postal_code: str | None = None
    country: str = Field(description="ISO 3166-1 alpha-2 country code")
    phone: str | None = None

    @field_validator("country")
    @classmethod
    def _country(cls, v: str) -> str:
        if len(v) != 2 or not v.isalpha():
            raise ValueError(f"country must be an ISO 3166-1 alpha-2 code, got {v!r}")
        return v.upper()


class Customer(CanonicalModel):
    external_id: str | None = None
    email: str | None = None
    name: str | None = None
    tax_exempt: bool = False


class TaxLine(CanonicalModel):
    title: str
    rate: DecimalAmount
    amount: Money


class Discount(CanonicalModel):
    code: str | None = None
    description: str | None = None
    amount: Money


class OrderLine(CanonicalModel):
    line_id: str = Field(description="The channel's id of this line, unique within the order")
    channel_sku: str = Field(min_length=1)
    name: str | None = None
    quantity: int = Field(gt=0)
    unit_price: Money = Field(description="Price per unit as the channel sold it (gross when the order's taxes_included)")
    discounts: list[Discount] = Field(default_factory=list)
    tax_lines: list[TaxLine] = Field(default_factory=list)
    requires_shipping: bool = True
    taxable: bool = True
    item_code: str | None = Field(default=None, description="ERP item, set once the SKU is resolved")

    @property
    def gross(self) -> Money:
        return self.unit_price * self.quantity

    @property
    def discount_total(self) -> Money:
        return sum_money([d.amount for d in self.discounts], self.unit_price.currency)

    @property
    def net(self) -> Money:
        """Line total after line discounts (tax included or not, as the order says)."""
        return self.gross - self.discount_total

    @property
    def tax_total(self) -> Money:
        return sum_money([t.amount for t in self.tax_lines], self.unit_price.currency)

    @model_validator(mode="after")
    def _consistent(self) -> OrderLine:
        cur = self.unit_price.currency
        for d in self.discounts:
            if d.amount.currency != cur:
                raise ValueError(f"line {self.line_id}: discount currency {d.amount.currency} differs from {cur}")
            if d.amount.amount < 0:
                raise ValueError(f"line {self.line_id}: discount must not be negative")
        if self.discount_total > self.gross:
            raise ValueError(f"line {self.line_id}: discounts {self.discount_total} exceed the line total {self.gross}")
        for t in self.tax_lines:
            if t.amount.currency != cur:
                raise ValueError(f"line {self.line_id}: tax currency {t.amount.currency} differs from {cur}")
        return self


class ShippingLine(CanonicalModel):
    code: str | None = None
    title: str
    price: Money
    discounts: list[Discount] = Field(default_factory=list)
    tax_lines: list[TaxLine] = Field(default_factory=list)

    @property
    def net(self) -> Money:
        return self.price - sum_money([d.amount for d in self.discounts], self.price.currency)


class Order(CanonicalModel):
    channel: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    external_order_id: str = Field(min_length=1, max_length=128)
    order_number: str | None = None
    created_at: UtcDatetime
    currency: str
    taxes_included: bool = Field(description="True when prices include tax (VAT style), False when tax is added on top")
    customer: Customer = Field(default_factory=Customer)
    shipping_address: Address | None = None
    billing_address: Address | None = None
    lines: list[OrderLine] = Field(min_length=1)
    shipping_lines: list[ShippingLine] = Field(default_factory=list)
    pickup_store: str | None = Field(default=None, description="Click-and-collect: the fulfillment node id of the "
                                     "store where the customer collects the order; None (the default): it is shipped")
    order_discounts: list[Discount] = Field(default_factory=list, description="Discounts not allocated to lines")
    total: Money | None = Field(default=None, description="The channel's stated grand total, checked when given")
    test: bool = False

    @property
    def workflow_id(self) -> str:
        return order_workflow_id(self.channel, self.external_order_id)

    @property
    def lines_net(self) -> Money:
        return sum_money([line.net for line in self.lines], self.currency)

    @property
    def shipping_net(self) -> Money:
        return sum_money([s.net for s in self.shipping_lines], self.currency)

    @property
    def order_discount_total(self) -> Money:
        return sum_money([d.amount for d in self.order_discounts], self.currency)

    @property
    def channel_tax_total(self) -> Money:
        return sum_money(
            [line.tax_total for line in self.lines]
            + [sum_money([t.amount for t in s.tax_lines], self.currency) for s in self.shipping_lines],
            self.currency,
        )

    @property
    def computed_total(self) -> Money:
        total = self.lines_net + self.shipping_net - self.order_discount_total
        if not self.taxes_included:
            total = total + self.channel_tax_total
        return total

    @model_validator(mode="after")
    def _consistent(self) -> Order:
        ids = [line.line_id for line in self.lines]
        if len(set(ids)) != len(ids):
            raise ValueError("order line ids must be unique")
        for line in self.lines:
            if line.unit_price.currency != self.currency:
                raise ValueError(f"line {line.line_id} is in {line.unit_price.currency}, the order in {self.currency}")
        for s in self.shipping_lines:
            if s.price.currency != self.currency:
                raise ValueError(f"shipping line {s.title!r} is in {s.price.currency}, the order in {self.currency}")
        for d in self.order_discounts:
            if d.amount.currency != self.currency:
                raise ValueError("order discount currency differs from the order currency")
        if self.total is not None:
            if self.total.currency != self.currency:
                raise ValueError("order total currency differs from the order currency")
            if self.total != self.computed_total:
                raise ValueError(
                    f"order total {self.total} does not equal lines - discounts + shipping"
                    f"{'' if self.taxes_included else ' + tax'} = {self.computed_total}"
                )
        return self


def order_workflow_id(channel: str, external_order_id: str) -> str:
    return f"order:{channel}:{external_order_id}"


class ShipmentLine(CanonicalModel):
    line_id: str | None = Field(default=None, description="Order line id, when the WMS knows it")
    channel_sku: str
    quantity: int = Field(gt=0)


class Shipment(CanonicalModel):
    shipment_id: str = Field(min_length=1, description="Unique per shipment; deliveries of the same id are deduplicated")
    carrier: str | None = None
    service: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    shipped_at: UtcDatetime
    lines: list[ShipmentLine] = Field(min_length=1)


class TaxQuoteLine(CanonicalModel):
    line_id: str
    taxable_amount: Money
    rate: DecimalAmount
    tax: Money


class TaxQuote(CanonicalModel):
    """Tax for an order as the tax engine priced it; `transaction_code` is the engine's idempotency key."""

    transaction_code: str
    currency: str
    jurisdiction: str
    taxes_included: bool
    lines: list[TaxQuoteLine]
    shipping_tax: Money
    total_tax: Money

    @model_validator(mode="after")
    def _sums(self) -> TaxQuote:
        total = sum_money([line.tax for line in self.lines], self.currency) + self.shipping_tax
        if total != self.total_tax:
            raise ValueError(f"tax quote lines sum to {total}, total_tax says {self.total_tax}")
        return self


class Quantity(CanonicalModel):
    item_code: str
    quantity: int = Field(gt=0)


__all__ = [
    "Address",
    "CanonicalModel",
    "Customer",
    "Decimal",
    "Discount",
    "Money",
    "Order",
    "OrderLine",
    "OrderStatus",
    "Quantity",
    "Shipment",
    "ShipmentLine",
    "ShippingLine",
    "TaxLine",
    "TaxQuote",
    "TaxQuoteLine",
    "UtcDatetime",
    "order_workflow_id",
]
