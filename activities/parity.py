"""Dual-run parity activities (issue 21, part 2; workflows/parity_check.py): which business keys to compare, the
comparison of the system of record's document with the shadow ERP's (canonical.erp_routing.compare_documents),
recorded per key with both documents, and an analyst's acceptance of a difference."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import transient_error
from adapters.erp.base import ErpAdapter
from adapters.erp.documents import PARITY_PROCESSES, read_document
from adapters.erp.routing import RoutingErp
from canonical.erp_routing import ParityDifference, ParityDocument, compare_documents
from canonical.vendor_errors import VendorUnavailable


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ParityKeysInput(_In):
    process: str
    as_of: datetime
    lookback_days: int = Field(default=7, ge=1)
    limit: int = Field(default=1000, ge=1)


class ParityBatchInput(_In):
    process: str
    keys: list[str]
    run_id: str


class ParityAcceptInput(_In):
    process: str
    keys: list[str]
    note: str


class ParityOutcome(_In):
    business_key: str
    status: str  # equal | different | pending (nothing posted on the system of record yet)
    record_erp: str
    shadow_erp: str | None
    differences: list[ParityDifference] = Field(default_factory=list)
    record: ParityDocument | None = None
    shadow: ParityDocument | None = None
    shadow_failures: list[str] = Field(default_factory=list)


def _erp_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A vendor's transient fault is retried by Temporal after its Retry-After (activities/errors.py)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except VendorUnavailable as exc:
            raise transient_error(exc) from exc

    return wrapper


class ParityActivities:
    """Given the routing ERP (`RoutingErp`); with a single ERP configured there is nothing to compare."""

    def __init__(self, erp: ErpAdapter) -> None:
        self.routing = erp if isinstance(erp, RoutingErp) else None

    def _router(self, process: str) -> RoutingErp:
        if self.routing is None:
            raise ApplicationError("no ERP routing is configured (RETAILFLOW_ERP_ROUTING_FILE): there is no dual-run "
                                   "to compare", type="ErpRoutingNotConfigured", non_retryable=True)
        if process not in PARITY_PROCESSES:
            raise ApplicationError(f"parity is compared for {', '.join(PARITY_PROCESSES)}, not {process!r}",
                                   type="ParityProcessUnsupported", non_retryable=True)
        return self.routing

    @activity.defn(name="parity_keys")
    def parity_keys(self, inp: ParityKeysInput) -> list[str]:
        """Dual-run keys of the process posted in the lookback window, not yet equal or accepted."""
        router = self._router(inp.process)
        # the window ends at the run's time, never past the platform's clock (a test server's clock skips ahead)
        until = min(inp.as_of, datetime.now(UTC))
        return router.store.keys_to_check(inp.process, since=until - timedelta(days=inp.lookback_days),
                                          limit=inp.limit)

    @activity.defn(name="check_parity")
    @_erp_errors
    def check_parity(self, inp: ParityBatchInput) -> list[ParityOutcome]:
        router = self._router(inp.process)
        return [self.check_one(router, inp.process, key, inp.run_id) for key in inp.keys]

    @staticmethod
    def check_one(router: RoutingErp, process: str, key: str, run_id: str | None) -> ParityOutcome:
        route = router.store.pinned(process, key)
        if route is None or route.shadow is None:
            return ParityOutcome(business_key=key, status="pending", record_erp=route.record if route else "",
                                 shadow_erp=None)
        record = read_document(route.record, router.erps[route.record], process, key)
        shadow = read_document(route.shadow, router.shadows[route.shadow], process, key,
                               currency=record.currency if record else None)
        failures = [f"{f['failed_at']:%Y-%m-%d %H:%M:%S} {f['operation']}: {f['error']}"
                    for f in router.store.shadow_failures(process, key)]
        if record is None and shadow is None and not failures:
            return ParityOutcome(business_key=key, status="pending", record_erp=route.record, shadow_erp=route.shadow)
        differences = compare_documents(record, shadow)
        if not differences and shadow is None:  # nothing booked anywhere, but the shadow posting failed
            differences = [ParityDifference(field="shadow posting", record=None, shadow=failures[0])]
        status = "different" if differences else "equal"
        router.store.record_parity(
            process, key, status=status, differences=[d.model_dump(mode="json") for d in differences],
            record_document=record.model_dump(mode="json") if record else None,
            shadow_document=shadow.model_dump(mode="json") if shadow else None,
            shadow_failures=[{"failure": f} for f in failures], run_id=run_id)
        return ParityOutcome(business_key=key, status=status, record_erp=route.record, shadow_erp=route.shadow,
                             differences=differences, record=record, shadow=shadow, shadow_failures=failures)

    @activity.defn(name="accept_parity_differences")
    def accept_parity_differences(self, inp: ParityAcceptInput) -> int:
        return self._router(inp.process).store.accept(inp.process, inp.keys, inp.note)

    def all(self) -> list[Callable[..., Any]]:
        return [self.parity_keys, self.check_parity, self.accept_parity_differences]
