"""Business faults: raised by adapters, turned into non-retryable Temporal errors by activities.

A business fault parks the workflow for an analyst; anything else is transient and retried.
"""

from __future__ import annotations


class BusinessError(Exception):
    """A fault that retrying cannot fix; a person must act. `action` says what they should do."""

    action: str = "Fix the cause, then send `retry`; or `cancel` the order."
    skippable: bool = False

    def __init__(self, message: str, *, details: dict | None = None) -> None:
        message = printable(message, limit=4000)  # it travels in a Temporal failure: always encodable
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


def printable(text: object, limit: int = 1000) -> str:
    """Text safe to answer, log and store whatever a sender put in it: lone surrogates (`\\ud800` in JSON) and
    other code points UTF-8 cannot encode are escaped, and the text is cut to `limit` characters."""
    value = str(text)
    if len(value) > limit:
        value = value[:limit] + f"… ({len(value) - limit} more characters)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


class PayloadInvalid(ValueError):
    """A vendor payload (webhook body, API answer, report) that cannot become a canonical model: every mapper's
    error is one of these (ShopifyMappingError, SquareMappingError, …). The message names the field and says
    why; it is always printable (see `printable`), so it can be answered, logged and stored as it is. Intake
    answers it with a 4xx and quarantines the delivery."""

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(printable(message), *args)


class RateLimited(Exception):
    """A partner answered 429 (too many requests): transient, retried after `retry_after` seconds — never a
    business fault. Activities turn it into a retryable ApplicationError with `next_retry_delay`."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = max(float(retry_after), 0.0)
