"""The platform's one language: pydantic v2 models, no I/O."""

from canonical.money import Money, minor_units, quantize, sum_money
from canonical.order import (
    Address,
    Customer,
    Discount,
    Order,
    OrderLine,
    OrderStatus,
    Shipment,
    ShipmentLine,
    ShippingLine,
    TaxLine,
    TaxQuote,
    TaxQuoteLine,
    order_workflow_id,
)

__all__ = [
    "Address",
    "Customer",
    "Discount",
    "Money",
    "Order",
    "OrderLine",
    "OrderStatus",
    "Shipment",
    "ShipmentLine",
    "ShippingLine",
    "TaxLine",
    "TaxQuote",
    "TaxQuoteLine",
    "minor_units",
    "order_workflow_id",
    "quantize",
    "sum_money",
]
