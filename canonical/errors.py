"""Business faults: raised by adapters, turned into non-retryable Temporal errors by activities.

A business fault parks the workflow for an analyst; anything else is transient and retried.
"""

from __future__ import annotations


class BusinessError(Exception):
    """A fault that retrying cannot fix; a person must act. `action` says what they should do."""

    action: str = "Fix the cause, then send `retry`; or `cancel` the order."
    skippable: bool = False

    def __init__(self, message: str, *, details: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    @property
    def type(self) -> str:
        return type(self).__name__


class UnknownSku(BusinessError):
    action = "Map the channel SKU to an ERP item (retailflow catalog map-sku, or catalog import), then send `retry`."


class OutOfStock(BusinessError):
    action = "Receive or transfer stock, or allow backorders for the channel, then send `retry`; or `cancel`."


class InvalidAddress(BusinessError):
    action = "Correct the shipping address in the channel, then send `retry`; or `cancel`."


class TaxRejected(BusinessError):
    action = "Check the tax engine's answer for this jurisdiction, then send `retry`."


class InvalidOrder(BusinessError):
    action = "The order cannot be fulfilled as sent; correct it in the channel and `retry`, or `cancel`."


class CannotCancel(BusinessError):
    action = "The order has already shipped; handle it as a return."


class ChannelRejected(BusinessError):
    action = "The channel refused the update; check the order in the channel, then `retry` or `skip`."
    skippable = True


BUSINESS_ERROR_TYPES: frozenset[str] = frozenset(
    cls.__name__
    for cls in (UnknownSku, OutOfStock, InvalidAddress, TaxRejected, InvalidOrder, CannotCancel, ChannelRejected)
) | {"VendorRejected", "VendorAuthFailed"}  # canonical/vendor_errors.py (HTTP 4xx from vendor adapters)


class RateLimited(Exception):
    """A partner answered 429 (too many requests): transient, retried after `retry_after` seconds — never a
    business fault. Activities turn it into a retryable ApplicationError with `next_retry_delay`."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = max(float(retry_after), 0.0)
