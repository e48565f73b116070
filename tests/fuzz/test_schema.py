"""schemathesis against the API's own OpenAPI schema, in process (from_asgi: no server), authenticated with an
admin key: every operation gets positive and negative examples (a bounded number each, derandomized), and no
answer may be a server error.

The app runs over the test database (SQLite, and PostgreSQL in CI) with the fuzz tier's in-process Temporal
(tests/fuzz/temporal_fake.py, `track_runs=False`): it encodes every workflow input with the real data converter
and answers a start as a frontend does, while every run has already closed — so reads answer 404 and analyst
actions 409 from the same code paths as against a server, and nothing waits on a worker that is not there
(a query with no worker polling takes 30 s to time out on Temporal's test server; the tier's budget is 90 s)."""

from __future__ import annotations

from collections import Counter

import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as settings_
from hypothesis.errors import Unsatisfiable
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.python import asgi

from api.app import create_app
from runtime.settings import Settings
from tests.auth import headers, make_key
from tests.fuzz import report
from tests.fuzz.temporal_fake import FakeTemporal

EXAMPLES = 10  # per operation and generation mode (positive, negative)


def test_no_operation_answers_a_server_error(engine):
    settings = Settings(shopify_webhook_secret=SecretStr("fuzz-shopify-secret"),
                        square_webhook_signature_key=SecretStr("fuzz-square-key"))
    app = create_app(settings, engine=engine, client=FakeTemporal(track_runs=False))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    admin = headers(make_key(engine, "admin"))
    seen: Counter[str] = Counter()
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    with asgi.get_client(app) as client:  # one in-process client for every call
        _run(operations, client, admin, seen, failures)
    report(f"fuzz/schema/all-operations[{engine.dialect.name}]", injects=f"schemathesis positive and negative "
           f"examples on {len(operations)} operations (<= {EXAMPLES} per operation and mode), with an admin key",
           inputs=seen["inputs"], operations=len(operations),
           **{"2xx": seen["2xx"], "4xx": seen["4xx"], "5xx": seen["5xx"] + len(failures)},
           invariant="no operation answers a server error (schemathesis not_a_server_error)")
    assert not failures, "\n\n".join(failures)
    assert len(operations) >= 30 and seen["inputs"] >= len(operations) * EXAMPLES


def _run(operations, client, admin: dict, seen: Counter[str], failures: list[str]) -> None:
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @settings_(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                       phases=[Phase.explicit, Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))
            @given(operation.as_strategy(mode))
            def call(case):
                response = case.call(session=client, headers=admin)
                seen["inputs"] += 1
                seen[f"{response.status_code // 100}xx"] += 1
                case.validate_response(response, checks=[not_a_server_error])

            try:
                call()
            except Unsatisfiable:  # no parameter and no body: nothing to make invalid in negative mode
                seen["operations without negative cases"] += 1
            except Exception as exc:  # every operation runs; each failure is listed at the end
                failures.append(f"{operation.label} ({mode.value}): {str(exc)[:1500]}")
