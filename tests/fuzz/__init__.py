"""The fuzz tier: hypothesis on every vendor mapper, signed hostile bodies through the HTTP intake, and
schemathesis on the API's own OpenAPI schema. Bounded, derandomized examples; no servers."""

from __future__ import annotations


def report(test_id: str, *, injects: str, invariant: str, **figures: int | float | str) -> None:
    """One bad-input record for docs/reliability.md (tests/reliability.py), with the measured figures, written
    at the end of a test; `result` is "fail" if any 5xx or other exception was counted."""
    from tests.reliability import record

    bad = int(figures.get("5xx", 0)) + int(figures.get("other exceptions", 0))
    record(test_id, category="bad-input", injects=injects, figures=dict(figures), invariant=invariant,
           result="pass" if bad == 0 else "fail")
