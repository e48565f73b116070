"""Business faults raised by vendor adapters (HTTP 4xx answers that retrying cannot fix). They park the run
like the faults in canonical/errors.py (their names are in BUSINESS_ERROR_TYPES)."""

from __future__ import annotations

from canonical.errors import BusinessError


class VendorRejected(BusinessError):
    """The vendor refused the request as invalid (400/404/409/417/422) and said why."""

    action = "Read the vendor's answer in the error details, fix the data in the vendor or the channel, then `retry`."


class VendorAuthFailed(BusinessError):
    """The vendor refused our credentials (401/403): no retry will succeed until they are fixed."""

    action = "Check the vendor credentials in the RETAILFLOW_* settings (and the API user's permissions), then `retry`."


VENDOR_ERROR_TYPES: frozenset[str] = frozenset({"VendorRejected", "VendorAuthFailed"})
