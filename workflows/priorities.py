"""Task-queue priority and fairness of every workflow the platform starts (Temporal's own dispatch order, on shared
task queues; docs/operations.md "Priority and fairness").

Priority keys (1 runs first; Temporal's default for an unset key is 3):

| key | what | why |
| --- | --- | --- |
| 1 | order intake, cancellation and shipment confirmation (`OrderFulfillment`, the order polls) | a customer and a marketplace SLA wait on them |
| 2 | returns and refunds, inventory publication, POS store days | money back to a customer, oversell protection |
| 3 | the orders of a store above its burst rate (`starters/bursts.py`, RETAILFLOW_ORDER_BURST_PER_MINUTE) | a flash sale must not slow the other stores' orders: fairness keys do not reach sticky queues, priority does |
| 4 | settlement fetch and reconciliation, inventory drift checks | finance's day; hours of slack |
| 5 | reporting, backfills, benchmarks | whenever nothing else waits |

Activities and child workflows inherit their workflow's priority (Temporal's rule), so an ERP call of an order runs
ahead of an ERP call of a reconciliation on the same partner queue without any per-call setting.

Within a priority the fairness key is the store (the channel, or the POS store / settlement provider): tasks are
dispatched round-robin across keys in proportion to their weight (RETAILFLOW_FAIRNESS_WEIGHTS, default 1.0), so one
shop's flash sale cannot starve the others. Self-hosted servers need `matching.enableFairness: true` (dynamic
config; `retailflow dev` and deploy/temporal/dynamicconfig set it); priority needs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from temporalio.common import Priority

ORDERS, RETURNS, INVENTORY, POS, ORDERS_BURST, FINANCE, DRIFT, REPORTING = 1, 2, 2, 2, 3, 4, 4, 5
PRIORITY_KEYS: dict[str, int] = {"orders": ORDERS, "returns": RETURNS, "inventory": INVENTORY, "pos": POS,
                                 "orders_burst": ORDERS_BURST, "finance": FINANCE, "drift": DRIFT, "reporting": REPORTING}
MAX_FAIRNESS_KEY_BYTES = 64  # Temporal's limit


def fairness_key(value: str) -> str:
    """The fairness key of a store (at most 64 bytes, as Temporal requires)."""
    raw = value.encode("utf-8")[:MAX_FAIRNESS_KEY_BYTES]
    return raw.decode("utf-8", errors="ignore")


def priority_for(kind: str, key: str | None = None, weights: Mapping[str, float] | None = None) -> Priority:
    """The Priority a workflow of `kind` starts with; `key` (a channel, store or provider) is its fairness key."""
    if kind not in PRIORITY_KEYS:
        raise ValueError(f"unknown workflow kind {kind!r}; one of {', '.join(PRIORITY_KEYS)}")
    if not key:
        return Priority(priority_key=PRIORITY_KEYS[kind])
    weight = (weights or {}).get(key)
    return Priority(priority_key=PRIORITY_KEYS[kind], fairness_key=fairness_key(key),
                    fairness_weight=float(weight) if weight is not None else None)
