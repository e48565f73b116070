"""The custom search attributes, declared once: typed keys for the workflows and starters, and `REGISTRATION`
(name → kind) for whoever registers them (the dev stack, the compose job, every test environment)."""

from typing import Any

from temporalio.common import SearchAttributeIndexedValueType as Kind
from temporalio.common import SearchAttributeKey

CHANNEL = SearchAttributeKey.for_keyword("Channel")
EXTERNAL_ORDER_ID = SearchAttributeKey.for_keyword("ExternalOrderId")
ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")
NEEDS_ATTENTION = SearchAttributeKey.for_bool("NeedsAttention")
STORE_ID = SearchAttributeKey.for_keyword("StoreId")
SETTLEMENT_ID = SearchAttributeKey.for_keyword("SettlementId")
SKUS = SearchAttributeKey.for_keyword_list("Skus")

ALL: list[SearchAttributeKey[Any]] = [CHANNEL, EXTERNAL_ORDER_ID, ORDER_STATUS, NEEDS_ATTENTION, STORE_ID, SETTLEMENT_ID, SKUS]

# the kind names of `temporal operator search-attribute create --type` and of the compose registration job
_KIND = {Kind.KEYWORD: "Keyword", Kind.BOOL: "Bool", Kind.KEYWORD_LIST: "KeywordList"}
REGISTRATION: dict[str, str] = {key.name: _KIND[key.indexed_value_type] for key in ALL}
