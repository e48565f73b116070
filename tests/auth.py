"""Credentials for tests: an API key of a role in a test database, and the headers that carry it."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine

from adapters.platform.api_keys import ApiKeyStore


def make_key(engine: Engine, role: str = "admin", name: str | None = None) -> str:
    """A new API key of `role` in the database of `engine` (its tables must exist); the full key."""
    _, key = ApiKeyStore(engine).create(name or f"test-{role}-{uuid.uuid4().hex[:8]}", role)
    return key


def headers(key: str) -> dict[str, str]:
    """The request headers that present `key`."""
    return {"Authorization": f"Bearer {key}"}
