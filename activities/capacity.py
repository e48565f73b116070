"""Node capacity per day (issue 20, item 1): what a node already has for its shipping day, held against its
`capacity_per_day` when an order is planned.

A release counts on the node's shipping day when it reaches the node (`release_to_node`): the node's local day, or
the next one after its cut-off; a withdrawn release (`cancel_node_release`) gives its place back. `plan_sourcing`
reads each candidate node's count for its current shipping day, so a node at capacity is not planned on ("at capacity
today (40 of 40 shipments)") and its lines go to the next eligible node. The count is of releases, not units: a
node's capacity is the shipments it can send a day. Kept in the platform database (`fulfillment_node_loads`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import structlog

from adapters.platform.node_loads import NodeLoadBook
from canonical.sourcing import FulfillmentNetwork

log = structlog.get_logger(__name__)


class NodeCapacity:
    def __init__(self, book: NodeLoadBook, network: FulfillmentNetwork) -> None:
        self.book = book
        self.nodes = network.nodes_by_id()

    def shipped_today(self, node_ids: Iterable[str], now: datetime | None,
                      given: Mapping[str, int] | None = None) -> dict[str, int]:
        """Node id → releases already on its current shipping day (`given`, the request's own figures, where they
        are higher)."""
        at = now or datetime.now(UTC)
        days = {n: self.nodes[n].shipping_day(at) for n in node_ids if n in self.nodes}
        counts = self.book.counts(days)
        for node, n in (given or {}).items():
            counts[node] = max(n, counts.get(node, 0))
        return counts

    def released(self, node_id: str, release_ref: str, now: datetime | None = None) -> None:
        node = self.nodes.get(node_id)
        if node is None:  # a node the network no longer has: nothing to hold it against
            return
        day = node.shipping_day(now or datetime.now(UTC))
        if self.book.add(node_id, day, release_ref):
            log.info("sourcing.node_load", node=node_id, ship_day=day.isoformat(), release=release_ref)

    def withdrawn(self, release_ref: str) -> None:
        self.book.remove(release_ref)
