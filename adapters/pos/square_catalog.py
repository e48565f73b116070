"""Square Catalog API: a store's item variation prices (the price port of a Square POS channel, docs/pricing.md).

- The variation is found by its SKU: `POST /v2/catalog/search` with `object_types: ["ITEM_VARIATION"]` and an
  `exact_query` on the `sku` attribute; one exact match or ChannelRejected.
- Setting a price upserts the whole variation (`POST /v2/catalog/object`: Square takes no sparse updates) with its
  current `version` (optimistic concurrency: a VERSION_MISMATCH is transient, read again and retried),
  `pricing_type: FIXED_PRICING` and `price_money` in the currency's minor units, under an idempotency key.
- Reading back is `GET /v2/catalog/object/{id}`: `item_variation_data.price_money`.
- Square has no compare-at price on a variation: a promotion's regular price is not sent (Square shows the sale
  price only).

Requests carry `Square-Version` (SQUARE_VERSION); Square documents no retirement date for its versions.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

import httpx

from adapters.http import VendorHttp
from canonical.errors import ChannelRejected
from canonical.money import Money, minor_units
from canonical.pricing import ChannelPrice
from canonical.vendor_errors import VendorUnavailable
from canonical.vendor_versions import VendorApiVersion

SQUARE_VERSION = "2025-10-16"
API_VERSIONS = (
    VendorApiVersion("square", "Catalog API (item variation prices)", SQUARE_VERSION, released=None, sunset=None,
                     source="https://developer.squareup.com/docs/build-basics/versioning-overview",
                     note="Square-Version header; no version retirement date documented"),
)


def _minor(price: Money) -> int:
    return int((price.amount * (Decimal(10) ** minor_units(price.currency))).to_integral_value())


def _major(amount: Any, currency: str) -> Decimal:
    return (Decimal(int(amount)) / (Decimal(10) ** minor_units(currency))).quantize(
        Decimal(1).scaleb(-minor_units(currency)))


def channel_rejected(response: httpx.Response, context: Any = None) -> ChannelRejected | None:
    try:
        errors = response.json().get("errors") or []
    except ValueError:
        errors = []
    if any(e.get("code") == "VERSION_MISMATCH" for e in errors if isinstance(e, dict)):
        # the variation changed between our read and our write: transient, the retry reads it again
        raise VendorUnavailable(f"Square's object changed while {response.request.url.path} wrote it",
                                vendor="square", status=response.status_code, error_type="VersionMismatch",
                                retry_after=1.0)
    detail = "; ".join(f"{e.get('code')}: {e.get('detail')}" for e in errors if isinstance(e, dict)) or response.text[:300]
    return ChannelRejected(f"Square refused {response.request.method} {response.request.url.path}: {detail}",
                           details={"status": response.status_code})


class SquareCatalog:
    lists_by_channel_sku = True  # a Square variation is found by its own SKU

    def __init__(self, http: VendorHttp) -> None:
        self.http = http

    def variation(self, sku: str) -> dict[str, Any]:
        body = self.http.json("POST", "/v2/catalog/search", json={
            "object_types": ["ITEM_VARIATION"], "include_deleted_objects": False,
            "query": {"exact_query": {"attribute_name": "sku", "attribute_value": sku}}}) or {}
        found = [o for o in body.get("objects") or []
                 if o.get("type") == "ITEM_VARIATION" and (o.get("item_variation_data") or {}).get("sku") == sku]
        if not found:
            raise ChannelRejected(f"no Square item variation has SKU {sku!r}")
        if len(found) > 1:
            raise ChannelRejected(f"{len(found)} Square item variations have SKU {sku!r}; SKUs must be unique")
        return found[0]

    def publish_price(self, channel: str, sku: str, price: Money, compare_at: Money | None = None) -> None:
        current = self.variation(sku)
        data = dict(current.get("item_variation_data") or {})
        data["pricing_type"] = "FIXED_PRICING"
        data["price_money"] = {"amount": _minor(price), "currency": price.currency}
        obj = {k: v for k, v in current.items() if k not in ("updated_at", "created_at", "is_deleted")}
        obj["item_variation_data"] = data
        key = hashlib.sha256(f"{channel}:{sku}:{price}:{current.get('version')}".encode()).hexdigest()[:45]
        self.http.request("POST", "/v2/catalog/object", json={"idempotency_key": key, "object": obj})

    def read_price(self, channel: str, sku: str) -> ChannelPrice | None:
        obj = self.variation(sku)
        body = self.http.json("GET", f"/v2/catalog/object/{obj['id']}") or {}
        money = ((body.get("object") or {}).get("item_variation_data") or {}).get("price_money")
        if not money:
            return None
        currency = str(money.get("currency"))
        return ChannelPrice(channel=channel, channel_sku=sku, amount=_major(money.get("amount"), currency),
                            currency=currency)


def build_square_catalog(settings: Any, *, transport: httpx.BaseTransport | None = None) -> SquareCatalog:
    token = settings.square_access_token
    if token is None or not token.get_secret_value().strip():
        raise ValueError("a Square price channel needs RETAILFLOW_SQUARE_ACCESS_TOKEN")
    http = VendorHttp("square", settings.square_api_base_url, transport=transport, error_mapper=channel_rejected,
                      headers={"Authorization": f"Bearer {token.get_secret_value()}", "Square-Version": SQUARE_VERSION,
                               "Accept": "application/json"})
    return SquareCatalog(http)
