"""Shopify Payments payouts and balance transactions over the GraphQL Admin API, written as the same report file
the REST fetcher writes (adapters/marketplace/shopify_payouts_api.py), so the reader
(adapters/marketplace/shopify_payouts.py), the matching and the journals do not change with the API.

Facts (Shopify's GraphQL Admin reference, `ShopifyPaymentsAccount`; field names checked against Shopify's published
Admin schema introspection, Shopify/dev-mcp `data/admin_schema_2025-01.json.gz`):
- `shopifyPaymentsAccount { payouts(first, after, query: "issued_at:>=YYYY-MM-DD", sortKey) }` → nodes
  `{id, legacyResourceId, status (SCHEDULED|IN_TRANSIT|PAID|FAILED|CANCELED), issuedAt, net {amount currencyCode},
  summary {chargesGross, chargesFee, refundsFeeGross, refundsFee, adjustmentsGross, adjustmentsFee,
  reservedFundsGross, reservedFundsFee, retriedPayoutsGross, retriedPayoutsFee}}`.
- `shopifyPaymentsAccount { balanceTransactions(first, after, query: "payments_transfer_id:<payout id>") }` →
  nodes `{id, type, test, amount, fee, net, sourceId, sourceType, sourceOrderTransactionId, associatedOrder {id},
  associatedPayout {id status}, transactionDate, adjustmentReason}`; amounts are `Decimal` strings.
- Connections page with `pageInfo {hasNextPage endCursor}`; ids are global ids (`gid://shopify/…/<n>`).

The GraphQL transaction types are finer than REST's; `REST_TYPE` maps them onto the REST names the reader and the
account map know (`TRANSFER` → `payout`, `DISPUTE_*`/`CHARGEBACK_*` → `dispute`, `RESERVED_FUNDS*` →
`reserved_funds`, a `…_CREDIT` → `credit`, a `…_DEBIT` → `debit`, …); any other is kept lower-cased (an `other`
line the finance team maps when it first appears).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any

from adapters.marketplace.shopify_graphql import ShopifyGraphQL, legacy_id
from adapters.marketplace.shopify_payouts_api import (
    PayoutRef,
    ShopifyPayoutMappingError,
    ShopifyPayoutsApi,
    map_payout,
)

_MONEY = "amount currencyCode"
PAYOUTS = f"""
query PayoutsPage($first: Int!, $after: String, $query: String) {{
  shopifyPaymentsAccount {{
    payouts(first: $first, after: $after, query: $query) {{
      nodes {{
        id legacyResourceId status issuedAt net {{ {_MONEY} }}
        summary {{
          chargesGross {{ {_MONEY} }} chargesFee {{ {_MONEY} }} refundsFeeGross {{ {_MONEY} }} refundsFee {{ {_MONEY} }}
          adjustmentsGross {{ {_MONEY} }} adjustmentsFee {{ {_MONEY} }} reservedFundsGross {{ {_MONEY} }}
          reservedFundsFee {{ {_MONEY} }} retriedPayoutsGross {{ {_MONEY} }} retriedPayoutsFee {{ {_MONEY} }}
        }}
      }}
      pageInfo {{ hasNextPage endCursor }}
    }}
  }}
}}"""
BALANCE_TRANSACTIONS = f"""
query BalanceTransactionsPage($first: Int!, $after: String, $query: String) {{
  shopifyPaymentsAccount {{
    balanceTransactions(first: $first, after: $after, query: $query) {{
      nodes {{
        id type test amount {{ {_MONEY} }} fee {{ {_MONEY} }} net {{ {_MONEY} }} sourceId sourceType
        sourceOrderTransactionId associatedOrder {{ id }} associatedPayout {{ id status }} transactionDate
        adjustmentReason
      }}
      pageInfo {{ hasNextPage endCursor }}
    }}
  }}
}}"""

_EXACT = {"TRANSFER": "payout", "TRANSFER_FAILURE": "payout_failure", "TRANSFER_CANCEL": "payout_cancellation",
          "CHARGE": "charge", "REFUND": "refund", "ADJUSTMENT": "adjustment", "CHARGE_ADJUSTMENT": "adjustment",
          "REFUND_ADJUSTMENT": "adjustment", "APPLICATION_FEE_REFUND": "application_fee_refund",
          "RESERVED_FUNDS": "reserved_funds", "RESERVED_FUNDS_WITHDRAWAL": "reserved_funds",
          "RESERVED_FUNDS_REVERSAL": "reserved_funds", "DISPUTE_WITHDRAWAL": "dispute", "DISPUTE_REVERSAL": "dispute",
          "CHARGEBACK_FEE": "dispute", "CHARGEBACK_FEE_REFUND": "dispute", "CHARGEBACK_HOLD": "dispute",
          "CHARGEBACK_HOLD_RELEASE": "dispute"}
_SUMMARY = {"chargesGross": "charges_gross_amount", "chargesFee": "charges_fee_amount",
            "refundsFeeGross": "refunds_gross_amount", "refundsFee": "refunds_fee_amount",
            "adjustmentsGross": "adjustments_gross_amount", "adjustmentsFee": "adjustments_fee_amount",
            "reservedFundsGross": "reserved_funds_gross_amount", "reservedFundsFee": "reserved_funds_fee_amount",
            "retriedPayoutsGross": "retried_payouts_gross_amount", "retriedPayoutsFee": "retried_payouts_fee_amount"}


def _numeric(value: Any, what: str) -> int:
    """The number of a global id (`gid://shopify/Kind/123`) or of a legacy id (`123`)."""
    text = str(value or "").strip()
    if text.isdigit():
        return int(text)
    try:
        return int(legacy_id(text, what))
    except ValueError as exc:
        raise ShopifyPayoutMappingError(str(exc)) from None


def rest_type(graphql_type: Any) -> str:
    name = str(graphql_type or "").strip().upper()
    if name in _EXACT:
        return _EXACT[name]
    if name.endswith("_CREDIT"):
        return "credit"
    if name.endswith("_DEBIT"):
        return "debit"
    if name.endswith("_REVERSAL"):
        return "adjustment"
    return name.lower()


def _amount(money: Any, what: str) -> tuple[str, str]:
    if not isinstance(money, Mapping) or money.get("amount") is None:
        raise ShopifyPayoutMappingError(f"{what} has no amount")
    return str(money["amount"]), str(money.get("currencyCode") or "").upper()


def payout_as_rest(node: Mapping[str, Any]) -> dict[str, Any]:
    """A GraphQL payout as the REST payout object the report file holds."""
    amount, currency = _amount(node.get("net"), "payout net")
    summary = {rest: _amount(node["summary"][key], key)[0] for key, rest in _SUMMARY.items()
               if isinstance(node.get("summary"), Mapping) and isinstance(node["summary"].get(key), Mapping)}
    return {"id": _numeric(node.get("legacyResourceId") or node.get("id"), "payout id"),
            "status": str(node.get("status") or "").lower(), "date": str(node.get("issuedAt") or "")[:10],
            "currency": currency, "amount": amount, "summary": summary}


def transaction_as_rest(node: Mapping[str, Any]) -> dict[str, Any]:
    """A GraphQL balance transaction as the REST transaction object the report file holds."""
    amount, currency = _amount(node.get("amount"), "transaction amount")
    fee = _amount(node.get("fee"), "transaction fee")[0] if node.get("fee") is not None else "0.00"
    net = _amount(node.get("net"), "transaction net")[0] if node.get("net") is not None else None
    payout = node.get("associatedPayout") or {}
    order = node.get("associatedOrder") or {}

    def _int(value: Any) -> int | None:
        return int(value) if value is not None and str(value).strip().isdigit() else None

    return {"id": _numeric(node.get("id"), "balance transaction id"), "type": rest_type(node.get("type")),
            "test": bool(node.get("test")),
            "payout_id": _numeric(payout["id"], "payout id") if payout.get("id") else None,
            "payout_status": str(payout.get("status") or "").lower() or None, "currency": currency,
            "amount": amount, "fee": fee, "net": net, "source_id": _int(node.get("sourceId")),
            "source_type": {"TRANSFER": "payout"}.get(str(node.get("sourceType")),
                                                      str(node.get("sourceType") or "").lower() or None),
            "source_order_id": _numeric(order["id"], "order id") if order.get("id") else None,
            "source_order_transaction_id": _int(node.get("sourceOrderTransactionId")),
            "processed_at": node.get("transactionDate"), "adjustment_reason": node.get("adjustmentReason")}


class ShopifyPayoutsGraphQL(ShopifyPayoutsApi):
    """The payouts fetcher on the GraphQL Admin API: the same `download_payouts` as the REST one (each paid payout
    once, atomically), its lists read through `ShopifyGraphQL.execute` (cost throttle, errors, versions)."""

    # Shopify's requested cost is 2 + first x the node's objects, and a query over 1000 points is refused: a payout
    # node holds 13 objects (net, summary and its ten amounts), a balance transaction 6
    PAYOUT_OBJECTS, TRANSACTION_OBJECTS = 13, 6

    def __init__(self, client: ShopifyGraphQL, *, payout_page_size: int = 50, transaction_page_size: int = 100) -> None:
        self.client = client
        self.payout_page_size = max(1, min(int(payout_page_size), 70))
        self.transaction_page_size = max(1, min(int(transaction_page_size), 160))

    def _nodes(self, document: str, field: str, query: str | None) -> Iterator[Mapping[str, Any]]:
        size, objects = ((self.payout_page_size, self.PAYOUT_OBJECTS) if field == "payouts"
                         else (self.transaction_page_size, self.TRANSACTION_OBJECTS))
        after: str | None = None
        seen: set[str] = set()
        while True:
            data = self.client.execute(document, {"first": size, "after": after, "query": query},
                                       cost=3 + size * objects)
            account = data.get("shopifyPaymentsAccount")
            if not isinstance(account, Mapping):
                raise ShopifyPayoutMappingError("the shop has no Shopify Payments account (shopifyPaymentsAccount)")
            page = account.get(field) or {}
            nodes = page.get("nodes")
            if not isinstance(nodes, list) or not all(isinstance(n, Mapping) for n in nodes):
                raise ShopifyPayoutMappingError(f"the {field} answer has no list of nodes")
            yield from nodes
            info = page.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                return
            after = info.get("endCursor")
            if not after or after in seen:
                raise ShopifyPayoutMappingError(f"{field}: the next page cursor is missing or repeats")
            seen.add(after)

    def payouts(self, date_min: date | None = None) -> Iterator[tuple[PayoutRef, dict[str, Any]]]:
        query = f"issued_at:>={date_min.isoformat()}" if date_min is not None else None
        for node in self._nodes(PAYOUTS, "payouts", query):
            raw = payout_as_rest(node)
            yield map_payout(raw), raw

    def transactions(self, payout_id: str) -> list[dict[str, Any]]:
        pid = _numeric(payout_id, "payout id")
        return [transaction_as_rest(n) for n in self._nodes(BALANCE_TRANSACTIONS, "balanceTransactions",
                                                            f"payments_transfer_id:{pid}")]
