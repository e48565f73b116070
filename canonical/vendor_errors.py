"""Business faults raised by vendor adapters (HTTP 4xx answers that retrying cannot fix). They park the run
like the faults in canonical/errors.py (their names are in BUSINESS_ERROR_TYPES)."""

from __future__ import annotations

from datetime import timedelta

from canonical.errors import BusinessError


class VendorRejected(BusinessError):
    """The vendor refused the request as invalid (400/404/409/417/422) and said why."""

    action = "Read the vendor's answer in the error details, fix the data in the vendor or the channel, then `retry`."


class VendorAuthFailed(BusinessError):
    """The vendor refused our credentials (401/403): no retry will succeed until they are fixed."""

    action = "Check the vendor credentials in the RETAILFLOW_* settings (and the API user's permissions), then `retry`."


class VendorUnavailable(Exception):
    """A transient vendor fault (5xx, 408, timeout, connection refused): retrying may fix it. Not a Temporal
    type — adapters know nothing of Temporal; the activity boundary (activities/errors.py) turns it into a
    *retryable* ApplicationError of `type` whose `next_retry_delay` is the vendor's Retry-After, and the
    activity's RetryPolicy retries it (no retry loop anywhere)."""

    non_retryable = False

    def __init__(self, message: str, *, vendor: str, status: int | None = None, retry_after: float | None = None,
                 error_type: str = "VendorUnavailable") -> None:
        super().__init__(message)
        self.message = message
        self.vendor = vendor
        self.status = status
        self.retry_after = retry_after
        self.type = error_type

    @property
    def details(self) -> dict:
        return {"vendor": self.vendor, "status": self.status, "retry_after": self.retry_after}

    @property
    def next_retry_delay(self) -> timedelta | None:
        return timedelta(seconds=self.retry_after) if self.retry_after is not None else None


class VendorRateLimited(VendorUnavailable):
    """HTTP 429: retried after the vendor's Retry-After."""

    def __init__(self, message: str, *, vendor: str, retry_after: float) -> None:
        super().__init__(message, vendor=vendor, status=429, retry_after=retry_after, error_type="RateLimited")


VENDOR_ERROR_TYPES: frozenset[str] = frozenset({"VendorRejected", "VendorAuthFailed"})
