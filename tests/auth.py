"""Credentials for tests: an API key of a role in a test database, and the headers that carry it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Engine

from adapters.platform.api_keys import ApiKeyStore


def make_key(engine: Engine, role: str = "admin", name: str | None = None,
             stores: Sequence[str] | None = None) -> str:
    """A new API key of `role` in the database of `engine` (its tables must exist); the full key. A `store` key
    acts for `stores`, by default STORE-001 (the store node of fulfillment.toml)."""
    if role == "store" and stores is None:
        stores = ("STORE-001",)
    _, key = ApiKeyStore(engine).create(name or f"test-{role}-{uuid.uuid4().hex[:8]}", role, stores=stores)
    return key


def headers(key: str) -> dict[str, str]:
    """The request headers that present `key`."""
    return {"Authorization": f"Bearer {key}"}
