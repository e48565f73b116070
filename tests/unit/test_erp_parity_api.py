"""`GET /erp/parity?process=…` (docs/erp-migration.md): per day the equal / different / accepted counts and the
verdicts with both documents, for analysts and finance (viewers are refused)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from adapters.erp.route_store import ErpRouteStore
from api.app import create_app
from runtime.settings import Settings
from tests.auth import headers, make_key
from tests.unit.test_erp_parity_report import _verdicts


@pytest.fixture
def http(engine) -> TestClient:
    return TestClient(create_app(Settings(_env_file=None), engine=engine), raise_server_exceptions=False)


def test_the_parity_route_lists_by_day_with_both_documents_for_analysts_and_finance(http, engine):
    keys = _verdicts(ErpRouteStore(engine))
    today = datetime.now(UTC).date().isoformat()
    for role in ("analyst", "finance"):
        r = http.get("/erp/parity", params={"process": "orders"}, headers=headers(make_key(engine, role)))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["unchecked"] == 1
        assert body["days"] == [{"process": "orders", "day": today, "equal": 1, "different": 1, "accepted": 1}]
        assert [x["business_key"] for x in body["results"]] == keys
    r = http.get("/erp/parity", params={"process": "orders", "status": "different"},
                 headers=headers(make_key(engine, "analyst")))
    [row] = r.json()["results"]
    assert row["record_document"]["erp"] == "legacy" and row["shadow_document"]["document_id"] == "SAL-ORD-1"
    assert row["differences"] == [{"field": "tax_total", "record": "11.59", "shadow": "12.59"}]
    assert http.get("/erp/parity", headers=headers(make_key(engine, "viewer"))).status_code == 403
    assert http.get("/erp/parity", params={"process": "payroll"},
                    headers=headers(make_key(engine, "analyst"))).status_code == 422
