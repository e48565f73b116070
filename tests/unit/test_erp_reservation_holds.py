"""ERPNext reserves only when a sales order is submitted; the holds (adapters/erp/holds.py) keep two orders from
both taking the last units in between — the oversell `retailflow simulate peak` found. SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import httpx
import pytest
from pydantic import SecretStr

from adapters.erp.erpnext import ErpNext
from adapters.erp.holds import ReservationHolds
from canonical.errors import OutOfStock
from canonical.fulfillment import ResolvedLine


def test_concurrent_reservations_never_take_more_than_the_erp_has_free(engine):
    holds = ReservationHolds(engine)
    free = {"SUN-AVIATOR": 5}

    def free_in_erp(items: list[str]) -> dict[str, int]:
        time.sleep(0.01)  # the ERP's answer takes a while: without the lock every order would see 5 free
        return {i: free.get(i, 0) for i in items}

    taken: dict[str, int] = {}
    barrier = threading.Barrier(12)

    def order(n: int) -> None:
        barrier.wait()
        taken[f"o{n}"] = holds.reserve(f"o{n}", "Stores", {"SUN-AVIATOR": 1}, free_in_erp)["SUN-AVIATOR"]

    threads = [threading.Thread(target=order, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(taken.values()) == 5 and sorted(set(taken.values())) == [0, 1]
    assert holds.held() == {"SUN-AVIATOR": 5}


def test_a_retry_replaces_its_own_hold_and_a_drop_gives_it_back(engine):
    holds = ReservationHolds(engine)

    def erp(items):
        return dict.fromkeys(items, 3)

    assert holds.reserve("a", "W", {"X": 2}, erp) == {"X": 2}
    assert holds.reserve("a", "W", {"X": 2}, erp) == {"X": 2}  # the same order again: not 4 held
    assert holds.reserve("b", "W", {"X": 2}, erp) == {"X": 1}  # only one left beside a's two
    assert holds.held("a") == {"X": 2} and holds.held() == {"X": 3}
    assert holds.drop("a") == 1
    assert holds.reserve("c", "W", {"X": 2}, erp) == {"X": 2}


class _Erp:
    """The two ERPNext calls `reserve` makes: find the order's sales order (none yet), read the bins."""

    def __init__(self, actual: int) -> None:
        self.actual = actual

    def __call__(self, request: httpx.Request) -> httpx.Response:
        doctype = request.url.path.rsplit("/", 1)[-1]
        if doctype == "Bin":
            return httpx.Response(200, json={"data": [{"item_code": "SUN-AVIATOR", "warehouse": "Stores - RD",
                                                       "actual_qty": self.actual, "reserved_qty": 0}]})
        return httpx.Response(200, json={"data": []})


def _erpnext(engine, actual: int) -> ErpNext:
    return ErpNext("http://erp.test", "k", SecretStr("s"), company="RD", warehouse="Stores - RD",
                   tax_account="Tax", shipping_account="Ship", transport=httpx.MockTransport(_Erp(actual)),
                   holds=ReservationHolds(engine))


def test_the_erpnext_adapter_refuses_the_second_order_for_the_last_unit(engine):
    line = [ResolvedLine(line_id="1", channel_sku="SKU2006-001", item_code="SUN-AVIATOR", quantity=1)]
    erp = _erpnext(engine, actual=1)
    first = erp.reserve("order:shopify:1", line, allow_backorder=False)
    assert first.lines[0].quantity == 1
    with pytest.raises(OutOfStock, match="SUN-AVIATOR short by 1"):
        erp.reserve("order:shopify:2", line, allow_backorder=False)
    assert erp.holds is not None and erp.holds.held("order:shopify:2") == {}  # refused: holds nothing
    backordered = erp.reserve("order:shopify:3", line, allow_backorder=True)
    assert (backordered.lines[0].quantity, backordered.lines[0].backordered) == (0, 1)
    erp.release_reservation("order:shopify:1")  # no sales order yet: only the hold goes
    assert erp.holds.held() == {}
    assert Decimal(erp.reserve("order:shopify:2", line, allow_backorder=False).lines[0].quantity) == 1
