"""Stores: the sales channels one platform serves, each a shop of a vendor with its own legal entity and
currency (issue 16). A Shopify shop is known by its `X-Shopify-Shop-Domain`, an Amazon store by seller and
marketplace, a Square store by location. The store's `channel` names it everywhere: workflow ids
(`order:{channel}:{external id}`), the `Channel` search attribute, SKU mappings, API filters.

Pure: the directory is built from settings by `runtime.settings.StoreSettings.store_directory()`."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from canonical.money import currency_code
from canonical.order import CanonicalModel

CHANNEL_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
VENDORS = ("shopify", "amazon", "square", "local")


_currency = currency_code


class LegalEntity(CanonicalModel):
    """Who books a store's sales: its books are kept in `currency`; `fx_account` takes exchange differences."""

    name: str = Field(min_length=1)
    currency: str
    fx_account: str = "7910"

    @field_validator("currency")
    @classmethod
    def _cur(cls, v: str) -> str:
        return _currency(v)


class Store(CanonicalModel):
    """One sales channel: a Shopify shop, an Amazon seller on one marketplace, a Square location, or the
    embedded (`local`) channel."""

    channel: str
    vendor: Literal["shopify", "amazon", "square", "local"]
    legal_entity: str = Field(min_length=1)
    currency: str
    shop_domain: str | None = None
    seller_id: str | None = None
    marketplace_id: str | None = None
    square_location_id: str | None = None
    locations: list[str] = Field(default_factory=list)

    @field_validator("channel")
    @classmethod
    def _channel(cls, v: str) -> str:
        if not CHANNEL_PATTERN.fullmatch(v):
            raise ValueError(f"channel {v!r} must be lower-case letters, digits and '-' (at most 63), starting "
                             "with a letter or digit")
        return v

    @field_validator("currency")
    @classmethod
    def _cur(cls, v: str) -> str:
        return _currency(v)

    @field_validator("shop_domain")
    @classmethod
    def _domain(cls, v: str | None) -> str | None:
        return normalize_domain(v)


def normalize_domain(domain: str | None) -> str | None:
    """A shop domain as compared: lower-case, no surrounding blanks or trailing dot; None for empty."""
    if domain is None:
        return None
    v = domain.strip().lower().rstrip(".")
    return v or None


class StoreDirectory:
    """The configured stores, looked up by channel or by Shopify shop domain. `configured` is True when the
    stores were listed (RETAILFLOW_STORES); False for the default store built from the single-shop settings,
    where an unknown or missing shop domain is taken as before (the default shop)."""

    def __init__(self, stores: list[Store], entities: dict[str, LegalEntity], default_entity: str,
                 configured: bool) -> None:
        if default_entity not in entities:
            raise ValueError(f"default legal entity {default_entity!r} is not among the legal entities "
                             f"({', '.join(sorted(entities)) or 'none'})")
        by_channel: dict[str, Store] = {}
        by_domain: dict[str, Store] = {}
        for store in stores:
            if store.channel in by_channel:
                raise ValueError(f"store channel {store.channel!r} is listed twice")
            if store.legal_entity not in entities:
                raise ValueError(f"store {store.channel!r}: unknown legal entity {store.legal_entity!r} "
                                 f"(RETAILFLOW_LEGAL_ENTITIES has {', '.join(sorted(entities)) or 'none'})")
            if store.shop_domain is not None:
                if store.shop_domain in by_domain:
                    raise ValueError(f"shop domain {store.shop_domain!r} is listed for both "
                                     f"{by_domain[store.shop_domain].channel!r} and {store.channel!r}")
                by_domain[store.shop_domain] = store
            by_channel[store.channel] = store
        self.stores = list(stores)
        self.entities = dict(entities)
        self.default_entity = default_entity
        self.configured = configured
        self._by_channel, self._by_domain = by_channel, by_domain

    def by_channel(self, channel: str) -> Store | None:
        return self._by_channel.get(channel)

    def by_shop_domain(self, domain: str | None) -> Store | None:
        key = normalize_domain(domain)
        return None if key is None else self._by_domain.get(key)

    def entity_of(self, channel: str) -> LegalEntity:
        """The legal entity that books `channel`'s sales: its store's, else the default entity."""
        store = self._by_channel.get(channel)
        return self.entities[store.legal_entity if store is not None else self.default_entity]

    def shopify_stores(self) -> list[Store]:
        return [s for s in self.stores if s.vendor == "shopify"]

    def __iter__(self):
        return iter(self.stores)

    def __len__(self) -> int:
        return len(self.stores)
