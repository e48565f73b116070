"""The activity boundary of errors: adapters raise canonical errors (they know nothing of Temporal); here they
become the ApplicationErrors Temporal acts on. A BusinessError parks the run (non-retryable, with what a person
should do); a transient vendor fault is retried by the activity's RetryPolicy, after the vendor's Retry-After."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from canonical.vendor_errors import VendorUnavailable


def transient_error(exc: VendorUnavailable) -> ApplicationError:
    """A *retryable* ApplicationError of the fault's type, with `next_retry_delay` = the vendor's Retry-After."""
    return ApplicationError(exc.message, exc.details, type=exc.type, non_retryable=False,
                            next_retry_delay=exc.next_retry_delay)
