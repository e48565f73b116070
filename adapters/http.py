"""The HTTP error policy every vendor adapter shares, and its httpx client.

* 2xx: returned.
* 429: `VendorRateLimited` (type ``RateLimited``) whose `retry_after` is the vendor's ``Retry-After``; the
  activity boundary (activities/errors.py) makes it a *retryable* ApplicationError with that `next_retry_delay`,
  so Temporal waits exactly as long as the vendor asked instead of its backoff.
* 5xx, 408, timeouts, connection failures: `VendorUnavailable` (type ``VendorUnavailable`` / ``VendorTimeout``),
  retryable the same way; a 503 with ``Retry-After`` (maintenance, outage) sets the delay too. No retry loop
  here: Temporal's `RetryPolicy` retries the activity. These are canonical errors (canonical/vendor_errors.py):
  adapters do not depend on temporalio.
* 401/403: `VendorAuthFailed`; other 4xx: the adapter's `error_mapper` decides (a typed BusinessError such as
  UnknownSku or TaxRejected), else `VendorRejected` with the vendor's message. Business errors park the run.

Credentials travel in headers set once on the client; nothing here logs headers, bodies or query strings (an
event names the vendor, method, path template and status only).
"""

from __future__ import annotations

import email.utils
import json as jsonlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import structlog

from canonical.errors import BusinessError
from canonical.vendor_errors import VendorAuthFailed, VendorRateLimited, VendorRejected, VendorUnavailable

log = structlog.get_logger(__name__)

ErrorMapper = Callable[[httpx.Response, Any], BusinessError | None]

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


def jsonable(obj: Any) -> Any:
    """Decimals as JSON numbers (int when integral, else float: the same digits for money's ≤ 15 significant
    digits), recursively; everything else unchanged."""
    if isinstance(obj, Decimal):
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    return obj


def parse_retry_after(value: str | None, *, default: float = 1.0, now: datetime | None = None) -> float:
    """Retry-After as seconds: delta-seconds or an HTTP-date (RFC 9110 §10.2.3); `default` when absent/garbled."""
    if not value:
        return default
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def vendor_message(response: httpx.Response) -> str:
    """The vendor's own words from an error body (AvaTax ``error.message``, Frappe ``exception``/``_server_messages``
    and the like), else the reason phrase. Never the request."""
    try:
        body = response.json()
    except ValueError:
        return (response.text or response.reason_phrase)[:500]
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            details = err.get("details") or []
            detail = details[0].get("description") if details and isinstance(details[0], dict) else None
            return " ".join(x for x in (err.get("message"), detail) if x)[:500]
        for key in ("exception", "message", "_server_messages", "detail", "errors"):
            if body.get(key):
                return str(body[key])[:500]
    return str(body)[:500]


def raise_for_vendor(response: httpx.Response, *, vendor: str, error_mapper: ErrorMapper | None = None,
                     context: Any = None) -> httpx.Response:
    """Apply the error policy to one response (see the module docstring); returns it when it is 2xx."""
    status = response.status_code
    if status < 400:
        return response
    message = f"{vendor} answered {status} to {response.request.method} {response.request.url.path}"
    if status == 429:  # ShipBob names it x-retry-after (developer.shipbob.com/rate-limit)
        wait = parse_retry_after(response.headers.get("Retry-After") or response.headers.get("x-retry-after"))
        raise VendorRateLimited(f"{message}; retry after {wait:g}s", vendor=vendor, retry_after=wait)
    if status >= 500 or status == 408:
        retry_after = (parse_retry_after(response.headers["Retry-After"])
                       if "Retry-After" in response.headers else None)
        raise VendorUnavailable(f"{message}: {vendor_message(response)}", vendor=vendor, status=status,
                                retry_after=retry_after)
    if status in (401, 403):
        raise VendorAuthFailed(f"{message}: {vendor_message(response)}", details={"vendor": vendor, "status": status})
    mapped = error_mapper(response, context) if error_mapper is not None else None
    if mapped is not None:
        raise mapped
    raise VendorRejected(f"{message}: {vendor_message(response)}", details={"vendor": vendor, "status": status})


def send(client: httpx.Client, vendor: str, method: str, url: str, *, error_mapper: ErrorMapper | None = None,
         context: Any = None, **kwargs: Any) -> httpx.Response:
    """One call on a plain httpx client (a token endpoint, a pre-signed URL) under the same error policy as
    VendorHttp: timeouts and refused connections are VendorUnavailable, the answer goes through raise_for_vendor."""
    try:
        response = client.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise VendorUnavailable(f"{vendor} timed out on {method}: {type(exc).__name__}", vendor=vendor,
                                error_type="VendorTimeout") from exc
    except httpx.TransportError as exc:
        raise VendorUnavailable(f"{vendor} unreachable on {method}: {type(exc).__name__}", vendor=vendor) from exc
    return raise_for_vendor(response, vendor=vendor, error_mapper=error_mapper, context=context)


@dataclass(frozen=True)
class RateSignal:
    """What a vendor's answer says of its rate limit, before it refuses: the rate it allows (Amazon SP-API's
    `x-amzn-RateLimit-Limit`, requests/second) and how full the bucket is (Shopify REST's
    `X-Shopify-Shop-Api-Call-Limit: 32/40`, ShipBob's `x-remaining-calls` of its 150 a minute)."""

    vendor: str
    limit_per_second: float | None = None
    used: float | None = None  # 0..1


SHIPBOB_CALLS_PER_MINUTE = 150  # developer.shipbob.com/rate-limit: per user and application


def rate_signal(vendor: str, headers: Mapping[str, str]) -> RateSignal | None:
    limit = used = None
    raw = headers.get("x-amzn-RateLimit-Limit")
    if raw:
        try:
            limit = float(raw)
        except ValueError:
            limit = None
        if limit is not None and not limit > 0:
            limit = None
    raw = headers.get("X-Shopify-Shop-Api-Call-Limit")
    if raw and "/" in raw:
        a, _, b = raw.partition("/")
        try:
            used = min(max(float(a) / float(b), 0.0), 1.0) if float(b) > 0 else None
        except ValueError:
            used = None
    raw = headers.get("x-remaining-calls")  # ShipBob: calls left of 150 per minute, sliding window
    if raw is not None and vendor == "shipbob" and used is None:
        try:
            used = min(max(1.0 - float(raw) / SHIPBOB_CALLS_PER_MINUTE, 0.0), 1.0)
        except ValueError:
            used = None
        if used is not None and limit is None:
            limit = SHIPBOB_CALLS_PER_MINUTE / 60
    return RateSignal(vendor, limit, used) if limit is not None or used is not None else None


# who hears the rate signals (the composition root registers the partner queues' back-pressure); never fails a call
RATE_OBSERVERS: list[Callable[[RateSignal], None]] = []


def _observe_rate(vendor: str, response: httpx.Response) -> None:
    if not RATE_OBSERVERS:
        return
    signal = rate_signal(vendor, response.headers)
    if signal is None:
        return
    for observer in list(RATE_OBSERVERS):
        try:
            observer(signal)
        except Exception:  # noqa: BLE001 - back-pressure is advice; the call's answer stands
            log.warning("vendor.rate_observer_failed", vendor=vendor)


class VendorHttp:
    """A synchronous httpx client for one vendor with the error policy applied to every call.

    Adapters are called from (threaded) activities, hence sync. `transport` lets tests mount a sandbox app."""

    def __init__(self, vendor: str, base_url: str, *, headers: Mapping[str, str] | None = None,
                 auth: httpx.Auth | tuple[str, str] | None = None, timeout: float | httpx.Timeout | None = None,
                 error_mapper: ErrorMapper | None = None, transport: httpx.BaseTransport | None = None) -> None:
        self.vendor = vendor
        self.error_mapper = error_mapper
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), headers=dict(headers or {}), auth=auth,
            timeout=timeout if timeout is not None else DEFAULT_TIMEOUT, transport=transport,
            follow_redirects=False)

    def __repr__(self) -> str:  # never show headers (credentials)
        return f"VendorHttp(vendor={self.vendor!r}, base_url={str(self._client.base_url)!r})"

    def close(self) -> None:
        self._client.close()

    def request(self, method: str, path: str, *, params: Any = None, json: Any = None,
                not_found: bool = False, context: Any = None) -> httpx.Response | None:
        """Send one request; with `not_found=True` a 404 returns None instead of raising."""
        started = time.monotonic()
        try:
            content = None if json is None else jsonlib.dumps(jsonable(json)).encode()
            headers = None if json is None else {"Content-Type": "application/json"}
            response = self._client.request(method, path, params=params, content=content, headers=headers)
        except httpx.TimeoutException as exc:
            log.warning("vendor.timeout", vendor=self.vendor, method=method, path=path)
            raise VendorUnavailable(f"{self.vendor} timed out on {method} {path}: {type(exc).__name__}",
                                    vendor=self.vendor, error_type="VendorTimeout") from exc
        except httpx.TransportError as exc:
            log.warning("vendor.unreachable", vendor=self.vendor, method=method, path=path,
                        error=type(exc).__name__)
            raise VendorUnavailable(f"{self.vendor} unreachable on {method} {path}: {type(exc).__name__}",
                                    vendor=self.vendor) from exc
        log.debug("vendor.response", vendor=self.vendor, method=method, path=path, status=response.status_code,
                  elapsed_ms=round((time.monotonic() - started) * 1000))
        _observe_rate(self.vendor, response)
        if not_found and response.status_code == 404:
            return None
        return raise_for_vendor(response, vendor=self.vendor, error_mapper=self.error_mapper, context=context)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if response is None:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise VendorUnavailable(f"{self.vendor} answered {method} {path} with a body that is not JSON",
                                    vendor=self.vendor, status=response.status_code) from exc
