"""Typed custom search attributes (registered by the dev stack and by every test environment)."""

from temporalio.common import SearchAttributeKey

CHANNEL = SearchAttributeKey.for_keyword("Channel")
EXTERNAL_ORDER_ID = SearchAttributeKey.for_keyword("ExternalOrderId")
ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")
NEEDS_ATTENTION = SearchAttributeKey.for_bool("NeedsAttention")
STORE_ID = SearchAttributeKey.for_keyword("StoreId")
SETTLEMENT_ID = SearchAttributeKey.for_keyword("SettlementId")
SKUS = SearchAttributeKey.for_keyword_list("Skus")

ALL = [CHANNEL, EXTERNAL_ORDER_ID, ORDER_STATUS, NEEDS_ATTENTION, STORE_ID, SETTLEMENT_ID, SKUS]
