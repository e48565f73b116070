"""What the workflow tests share about stand-in activities: a call log with failure injection, and the status
projection (`record_run_status`) every workflow that parks writes. Each test module declares the stand-ins of its
own workflow under the real activity names (`@activity.defn(name=...)`), calling `hit` first."""

from __future__ import annotations

from collections import Counter

from temporalio import activity
from temporalio.exceptions import ApplicationError

from canonical.ops import RunStatusUpdate


class StandIns:
    """Records every call. `fail` maps an activity name to (kind, times): the next `times` calls fail with kind
    "transient" (a plain error: Temporal retries it), "fatal" (non-retryable `ContractViolation`, not a business
    fault) or any other string, an `ApplicationError` of that type (a business fault when the workflow parks on it;
    details say what to do, and `ChannelRejected` is skippable)."""

    def __init__(self, fail: dict[str, tuple[str, int]] | None = None) -> None:
        self.calls: list[tuple[str, object]] = []
        self.fail = dict(fail or {})
        self.projections: list[RunStatusUpdate] = []

    def hit(self, name: str, arg: object) -> None:
        self.calls.append((name, arg))
        kind, times = self.fail.get(name, ("", 0))
        if times <= 0:
            return
        self.fail[name] = (kind, times - 1)
        if kind == "transient":
            raise RuntimeError(f"{name}: connection reset")
        if kind == "fatal":
            raise ApplicationError(f"{name} broke its contract", type="ContractViolation", non_retryable=True)
        raise ApplicationError(f"{name} refused", {"action": "fix it", "skippable": kind == "ChannelRejected"},
                               type=kind, non_retryable=True)

    def names(self) -> list[str]:
        return [n for n, _ in self.calls]

    def count(self) -> Counter:
        return Counter(self.names())

    def arg(self, name: str, index: int = -1) -> object:
        return [a for n, a in self.calls if n == name][index]

    def record_run_status(self):
        """The status projection stand-in: keeps every update in `projections`."""
        projections = self.projections

        @activity.defn(name="record_run_status")
        async def record_run_status(upd: RunStatusUpdate) -> bool:
            projections.append(upd)
            return True

        return record_run_status
