"""Issue 17: re-sourcing the units a store sale took from an order (`LocalErp.reserve_more`, the `resource_stock`
activity) on SQLite and PostgreSQL — from the locations with free stock, all or nothing, idempotent by its token,
and an OutOfStock that names the store and says what to do."""

from __future__ import annotations

from decimal import Decimal

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.orders import OrderActivities, ResourceInput
from adapters.erp.local import LocalErp
from adapters.ports import Adapters
from canonical.errors import OutOfStock
from canonical.fulfillment import ResolvedLine

KEY = "order:shopify:1001"


@pytest.fixture
def erp(engine) -> LocalErp:
    erp = LocalErp(engine)
    erp.upsert_item("CHAIR", "Chair", Decimal("10"), "USD")
    erp.set_on_hand("CHAIR", "STORE-1", 2)
    erp.set_on_hand("CHAIR", "MAIN", 3)
    erp.set_on_hand("CHAIR", "BACK", 1)
    return erp


def _held(erp: LocalErp) -> dict[str, int]:
    return {loc: v["reserved"] for loc, v in erp.stock_levels("CHAIR").items() if v["reserved"]}


def test_re_sourcing_reserves_where_stock_is_free_most_free_first(erp):
    erp.reserve(KEY, [ResolvedLine(line_id="1", channel_sku="CH", item_code="CHAIR", quantity=2)],
                allow_backorder=False)
    assert _held(erp) == {"MAIN": 2}
    # free now: MAIN 1, STORE-1 2, BACK 1; the store whose sale took the units is used last
    assert erp.reserve_more(KEY, "CHAIR", 2, token="pos-sale-9", avoid_location="STORE-1") == 2
    assert _held(erp) == {"MAIN": 3, "BACK": 1}
    assert erp.reserve_more(KEY, "CHAIR", 2, token="pos-sale-9", avoid_location="STORE-1") == 2  # a retry
    assert _held(erp) == {"MAIN": 3, "BACK": 1}
    assert erp.reserve_more(KEY, "CHAIR", 2, token="pos-sale-10", avoid_location="STORE-1") == 2
    assert _held(erp) == {"MAIN": 3, "BACK": 1, "STORE-1": 2}  # only the store had any left


def test_re_sourcing_is_all_or_nothing(erp):
    with pytest.raises(OutOfStock, match="7 × CHAIR cannot be re-sourced: 6 free"):
        erp.reserve_more(KEY, "CHAIR", 7, token="pos-sale-10")
    assert _held(erp) == {}


def test_the_activity_names_the_store_and_what_to_do(engine, erp):
    acts = OrderActivities(Adapters(erp=erp, wms=None, tax=None, marketplace=None))  # type: ignore[arg-type]
    env = ActivityEnvironment()
    with pytest.raises(ApplicationError) as exc:
        env.run(acts.resource_stock, ResourceInput(key=KEY, item_code="CHAIR", quantity=9, token="pos-sale-11",
                                                   store="STORE-1"))
    assert exc.value.type == "OutOfStock" and exc.value.non_retryable
    assert exc.value.message.startswith("stock taken by a store sale at STORE-1: 9 × CHAIR cannot be re-sourced")
    assert "retry" in exc.value.details[0]["action"] and "lines/cancel" in exc.value.details[0]["action"]
    assert env.run(acts.resource_stock, ResourceInput(key=KEY, item_code="CHAIR", quantity=1, token="pos-sale-12",
                                                      store="STORE-1")) == 1


def test_every_order_activity_is_registered_on_the_worker():
    """A workflow step whose activity the worker does not register waits forever ("running"): every
    `@activity.defn` method of OrderActivities is in `.all()`."""
    defined = {name for name in dir(OrderActivities)
               if hasattr(getattr(OrderActivities, name), "__temporal_activity_definition")}
    acts = OrderActivities(Adapters(erp=None, wms=None, tax=None, marketplace=None))  # type: ignore[arg-type]
    assert {fn.__name__ for fn in acts.all()} == defined and "resource_stock" in defined


def test_metrics_report_rows_whose_free_stock_stays_negative(engine, erp):
    """The ledger's invariant, for alerting: `retailflow_inventory_negative_free_rows` counts item/location rows
    whose free stock is below zero (a store sale no reservation could cover)."""
    from fastapi.testclient import TestClient

    from adapters.inventory.ledger import InventoryLedger
    from api.app import create_app
    from canonical.inventory import InventoryEvent
    from runtime.settings import Settings

    http = TestClient(create_app(Settings(_env_file=None), engine=engine))

    def gauge() -> float:
        line = next(x for x in http.get("/metrics").text.splitlines()
                    if x.startswith("retailflow_inventory_negative_free_rows "))
        return float(line.split()[1])

    assert gauge() == 0
    from datetime import UTC, datetime
    InventoryLedger(engine).apply_events([InventoryEvent(
        source="pos", source_event_id="pos-oversold-1", kind="sale", sku="CHAIR", location="BACK", quantity=3,
        occurred_at=datetime.now(UTC))])
    assert InventoryLedger(engine).negative_free() == [("CHAIR", "BACK", -2)]
    assert gauge() == 1
