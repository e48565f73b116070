"""The API's keys: created, listed and revoked with `retailflow keys …`, verified by api/auth.py on each request.

A key reads `rfk_<key id>_<secret>`: the key id (public, the table's primary key) finds the row in one indexed
lookup, the secret is compared with `hmac.compare_digest` over SHA-256 digests. Only the digest is stored.
SHA-256 (not a slow password hash such as scrypt or argon2) is right here because the secret is not chosen by a
person: it is 32 random bytes from `secrets` (256 bits), so there is no dictionary to try and a brute force of
2**256 is out of reach however fast the hash; a slow hash would only cost every request its CPU time.
Table in adapters/sql/platform.py (`api_keys`), migration 0005; a `store` key's store ids (`stores`), 0018.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from adapters import sql as db
from canonical.access import SCOPED_ROLES, Role, check_store_ids

PREFIX = "rfk"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$")
# how stale `last_used_at` may get before a request writes it again (a write per request would cost more than
# the lookup itself, and SQLite has one writer)
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class ApiKeyRecord:
    key_id: str
    name: str
    role: Role
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    stores: tuple[str, ...] = ()  # a `store` key's scope (sorted); empty for the other roles

    def state(self, now: datetime | None = None) -> str:
        """`active`, `expired` or `revoked`."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or db.utcnow()):
            return "expired"
        return "active"

    @property
    def active(self) -> bool:
        return self.state() == "active"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _record(row) -> ApiKeyRecord:
    return ApiKeyRecord(key_id=row["key_id"], name=row["name"], role=Role(row["role"]),
                        created_at=row["created_at"], expires_at=row["expires_at"], revoked_at=row["revoked_at"],
                        last_used_at=row["last_used_at"], stores=tuple(row["stores"] or ()))


def split_key(key: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    key_id, secret = parts[1], parts[2]
    if len(key_id) > 32 or not key_id.isalnum() or not key_id.isascii() or len(secret) > 256:
        return None
    return key_id, secret


class ApiKeyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, name: str, role: Role | str, expires_at: datetime | None = None,
               stores: Iterable[str] | None = None) -> tuple[ApiKeyRecord, str]:
        """A new key: its record and the full key, which is shown once and never stored. ValueError on a bad
        name or role, or a name already taken (revoked keys keep their name, so a trail stays unambiguous).
        A `store` key needs one or more store ids (`stores`, its scope); the other roles take none."""
        if not NAME_PATTERN.match(name):
            raise ValueError(f"bad key name {name!r}: 1-128 of letters, digits and . _ @ : - (starting with a "
                             "letter or digit)")
        try:
            role = Role(role)
        except ValueError:
            raise ValueError(f"unknown role {role!r}; the roles are {', '.join(Role)}") from None
        scope = check_store_ids(stores)
        if role in SCOPED_ROLES and not scope:
            raise ValueError(f"a {role.value} key needs the store id(s) it acts for (--store STORE-001)")
        if role not in SCOPED_ROLES and scope:
            raise ValueError(f"a {role.value} key acts for every store; store ids are for {Role.store.value} keys "
                             "only")
        if expires_at is not None and expires_at.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware")
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)  # 256 bits from the OS's CSPRNG
        now = db.utcnow()
        try:
            with self.engine.begin() as conn:
                conn.execute(db.api_keys.insert().values(
                    key_id=key_id, name=name, role=role.value, secret_sha256=_digest(secret), created_at=now,
                    expires_at=expires_at, stores=list(scope) if scope else None))
        except IntegrityError:
            raise ValueError(f"a key named {name!r} exists already (revoked keys keep their name)") from None
        record = ApiKeyRecord(key_id=key_id, name=name, role=role, created_at=now, expires_at=expires_at,
                              revoked_at=None, last_used_at=None, stores=scope)
        return record, f"{PREFIX}_{key_id}_{secret}"

    def list(self) -> list[ApiKeyRecord]:
        t = db.api_keys
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).order_by(t.c.created_at, t.c.name)).mappings().all()
        return [_record(r) for r in rows]

    def get(self, name: str) -> ApiKeyRecord | None:
        t = db.api_keys
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.name == name)).mappings().first()
        return _record(row) if row is not None else None

    def revoke(self, name: str) -> ApiKeyRecord | None:
        """Revoke the key of that name (at once: the next request with it is refused); its record, or None if
        there is no such key. Revoking twice keeps the first time."""
        t = db.api_keys
        with self.engine.begin() as conn:
            conn.execute(update(t).where((t.c.name == name) & t.c.revoked_at.is_(None)).values(revoked_at=db.utcnow()))
            row = conn.execute(select(t).where(t.c.name == name)).mappings().first()
        return _record(row) if row is not None else None

    def lookup(self, key: str) -> ApiKeyRecord | None:
        """The record whose secret this is, whatever its state (expired and revoked too); None if no key
        matches. One primary-key lookup, then a constant-time comparison of the digests."""
        parts = split_key(key)
        if parts is None:
            return None
        key_id, secret = parts
        t = db.api_keys
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.key_id == key_id)).mappings().first()
        if row is None or not hmac.compare_digest(_digest(secret), row["secret_sha256"]):
            return None
        return _record(row)

    def verify(self, key: str) -> ApiKeyRecord | None:
        """The record of an active key (not expired, not revoked), else None; notes when it was last used."""
        record = self.lookup(key)
        if record is None or not record.active:
            return None
        now = db.utcnow()
        if record.last_used_at is None or now - record.last_used_at > TOUCH_EVERY:
            t = db.api_keys
            try:
                with self.engine.begin() as conn:
                    conn.execute(update(t).where(t.c.key_id == record.key_id).values(last_used_at=now))
            except SQLAlchemyError:  # best effort: a busy writer never turns a valid key away
                pass
        return record

    def has_active(self, role: Role | str) -> bool:
        """Whether an active key of this role exists (`retailflow dev` makes an admin key when none does)."""
        t = db.api_keys
        now = db.utcnow()
        with self.engine.connect() as conn:
            row = conn.execute(select(t.c.key_id).where(
                (t.c.role == Role(role).value) & t.c.revoked_at.is_(None)
                & (t.c.expires_at.is_(None) | (t.c.expires_at > now))).limit(1)).first()
        return row is not None
