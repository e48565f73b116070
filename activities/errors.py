"""The activity boundary of errors: adapters raise canonical errors (they know nothing of Temporal); here they
become the ApplicationErrors Temporal acts on. A BusinessError parks the run (non-retryable, with what a person
should do); a transient vendor fault is retried by the activity's RetryPolicy, after the vendor's Retry-After."""

from __future__ import annotations

import logging

import structlog
from temporalio.exceptions import ApplicationError

from canonical.errors import BusinessError
from canonical.vendor_errors import VendorUnavailable

log = structlog.get_logger(__name__)


def transient_error(exc: VendorUnavailable) -> ApplicationError:
    """A *retryable* ApplicationError of the fault's type, with `next_retry_delay` = the vendor's Retry-After."""
    return ApplicationError(exc.message, exc.details, type=exc.type, non_retryable=False,
                            next_retry_delay=exc.next_retry_delay)


class _BusinessFaultTraceback(logging.Filter):
    """Temporal's activity worker logs every failed attempt as "Completing activity as failed" with the whole
    traceback (temporalio/worker/_activity.py). For an *expected* business fault (a BusinessError turned into a
    non-retryable ApplicationError by `business_errors`, activities/orders.py) that is noise in plain text: the
    run parks and `activity.business_error` has already said so in one structured line (type, message, workflow
    id, activity). Those records are dropped. An attempt refused by a vendor's *transient* fault (a 5xx, a
    timeout, a 429: retried by the RetryPolicy after its Retry-After) is expected too — at peak there are thousands
    — and becomes one structured line, `activity.vendor_retry`, instead of a 40-line traceback. Every other failure
    keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if is_business_fault(exc):
            return False
        if isinstance(exc, ApplicationError) and is_transient_vendor_fault(exc):
            info = getattr(record, "temporal_activity", None) or {}
            log.warning("activity.vendor_retry", activity=info.get("activity_type"), attempt=info.get("attempt"),
                        workflow_id=info.get("workflow_id"), task_queue=info.get("task_queue"),
                        error_type=exc.type, error=exc.message,
                        retry_after=exc.next_retry_delay.total_seconds() if exc.next_retry_delay else None)
            return False
        return True


def is_transient_vendor_fault(exc: BaseException | None) -> bool:
    """A retryable ApplicationError raised from a canonical VendorUnavailable (`transient_error`)."""
    return isinstance(exc, ApplicationError) and not exc.non_retryable and isinstance(exc.__cause__,
                                                                                       VendorUnavailable)


def is_business_fault(exc: BaseException | None) -> bool:
    """An ApplicationError raised from a canonical BusinessError (what parks a run)."""
    return isinstance(exc, ApplicationError) and exc.non_retryable and isinstance(exc.__cause__, BusinessError)


def install_business_fault_filter() -> None:
    """Idempotent; done on import, so every worker that loads the activities has it."""
    logger = logging.getLogger("temporalio.activity")
    if not any(isinstance(f, _BusinessFaultTraceback) for f in logger.filters):
        logger.addFilter(_BusinessFaultTraceback())


install_business_fault_filter()
