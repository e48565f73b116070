"""A NUL character (which PostgreSQL text cannot hold) in a path or a query parameter is a 422 naming where it was,
never a 500 — on SQLite and PostgreSQL. Found by the schema fuzzer: `GET
/inventory/{sku}/publications?channel=%00` answered 500 (psycopg DataError) on PostgreSQL."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from runtime.settings import Settings
from tests.auth import headers, make_key


@pytest.fixture
def http(engine) -> TestClient:
    client = TestClient(create_app(Settings(_env_file=None), engine=engine), raise_server_exceptions=False)
    client.headers.update(headers(make_key(engine, "admin")))
    return client


def test_a_nul_in_a_query_parameter_is_422_naming_it(http):
    resp = http.get("/inventory/status/publications", params={"channel": "\x00"})
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"][0]["type"] == "nul_character" and resp.json()["detail"][0]["loc"] == ["query",
                                                                                                      "channel"]
    assert http.get("/inventory/status/publications", params={"channel": "shopify"}).status_code == 200


def test_a_nul_in_the_path_is_422(http):
    resp = http.get("/orders/shopify/12%0034")
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["path"]


def test_a_nul_in_a_stock_event_is_refused_before_it_reaches_the_ledger():
    """`POST /inventory/events` validates its body as InventoryEventBatch (a 422 naming the field): an event with a
    NUL, sent on, would fail the ledger on PostgreSQL on every retry and hold up every later event of its SKU."""
    from pydantic import ValidationError

    from canonical.inventory import InventoryEventBatch

    with pytest.raises(ValidationError) as exc:
        InventoryEventBatch.model_validate_json(
            '{"events": [{"kind": "receipt", "source": "wms", "source_event_id": "e\\u0000-1", "sku": "SKU-1", '
            '"location": "WH1", "quantity": 5, "occurred_at": "2026-01-05T10:00:00Z"}]}')
    [err] = exc.value.errors()
    assert err["loc"][-1] == "source_event_id" and "NUL" in err["msg"]
