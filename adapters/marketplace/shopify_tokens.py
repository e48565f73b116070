"""Each Shopify shop's app access, kept in the platform database (table `shopify_tokens`, migration 0009).

The access token and the refresh token are sealed with the codec's keyring (AES-256-GCM, adapters/crypto.py; the
shop's domain is the additional authenticated data, so a row copied to another shop does not open); the grant,
scopes and expiry stay in clear for `retailflow shopify shops`. Rotating the codec keys keeps old rows readable
(any key of the ring opens); a row is re-sealed under the active key when the token is next refreshed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, delete, insert, select, update

from adapters import sql as db
from adapters.crypto import Keyring
from adapters.marketplace.shopify_oauth import ShopToken, parse_scopes

AAD = b"retailflow/shopify-token:"


@dataclass(frozen=True)
class ShopAccess:
    """What may be shown of a shop's access (no token)."""

    shop: str
    grant: str
    scopes: frozenset[str]
    obtained_at: datetime
    expires_at: datetime | None
    refresh_expires_at: datetime | None
    installed_at: datetime


class ShopifyTokenStore:
    def __init__(self, engine: Engine, keyring: Keyring) -> None:
        self.engine, self.keyring = engine, keyring

    def _aad(self, shop: str) -> bytes:
        return AAD + shop.encode()

    def save(self, token: ShopToken) -> None:
        sealed = self.keyring.seal(json.dumps({"access_token": token.access_token,
                                               "refresh_token": token.refresh_token}).encode(), self._aad(token.shop))
        values = {"grant": token.grant, "scopes": ",".join(sorted(token.scopes)), "sealed": sealed,
                  "obtained_at": token.obtained_at, "expires_at": token.expires_at,
                  "refresh_expires_at": token.refresh_expires_at}
        t = db.shopify_tokens
        with self.engine.begin() as conn:
            done = conn.execute(update(t).where(t.c.shop == token.shop).values(**values)).rowcount
            if not done:
                conn.execute(insert(t).values(shop=token.shop, **values))

    def get(self, shop: str) -> ShopToken | None:
        t = db.shopify_tokens
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.shop == shop)).mappings().first()
        if row is None:
            return None
        secret = json.loads(self.keyring.open(row["sealed"], self._aad(shop)))
        return ShopToken(shop=shop, access_token=secret["access_token"], scopes=parse_scopes(row["scopes"]),
                         grant=row["grant"], obtained_at=row["obtained_at"], expires_at=row["expires_at"],
                         refresh_token=secret.get("refresh_token"), refresh_expires_at=row["refresh_expires_at"])

    def shops(self) -> list[ShopAccess]:
        t = db.shopify_tokens
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).order_by(t.c.shop)).mappings().all()
        return [ShopAccess(shop=r["shop"], grant=r["grant"], scopes=parse_scopes(r["scopes"]),
                           obtained_at=r["obtained_at"], expires_at=r["expires_at"],
                           refresh_expires_at=r["refresh_expires_at"], installed_at=r["installed_at"]) for r in rows]

    def delete(self, shop: str) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(db.shopify_tokens).where(db.shopify_tokens.c.shop == shop)).rowcount)
