"""A sales channel's order feed, as the order poll sees it: pages of orders updated since a cursor, each with
what the platform should do about it. The channel's own rules (which statuses are paid, who ships) live in its
adapter, which decides `action`; the poll only walks pages, starts, cancels and keeps its cursor."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from canonical.errors import PayloadInvalid
from canonical.order import CanonicalModel, UtcDatetime


class FeedAction(StrEnum):
    START = "start"  # paid and ours to ship: start its OrderFulfillment (a second start is a duplicate)
    CANCEL = "cancel"  # cancelled in the channel: signal `cancel` to its workflow
    WAIT = "wait"  # not yet (pending payment) or not ours (shipped by the marketplace): its next update decides


class FeedOrder(CanonicalModel):
    """One row of the feed: enough to decide what to do with the order, not the order itself."""

    external_order_id: str
    status: str = Field(description="The channel's own status, for summaries and the audit trail")
    last_update_date: UtcDatetime
    action: FeedAction


class FeedPage(CanonicalModel):
    orders: list[FeedOrder] = Field(default_factory=list)
    next_token: str | None = None


class UnmappableOrder(PayloadInvalid):
    """A channel's order cannot become a canonical Order; the message says why (the poll reports it, goes on)."""
