"""Who may do what on the API: the roles (api/auth.py applies them; adapters/platform/api_keys.py stores them)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum


class Role(StrEnum):
    """The API's roles, lowest first: when an OIDC token carries several, the last one listed here wins.

    `store` is listed first because it is the narrowest, not because viewer builds on it: a store principal holds
    store ids (its scope) and may list and move those stores' fulfillment requests only; no route that a viewer
    reads admits it (api/auth.py names each route's roles explicitly). A token with `store` and any other role is
    that other role (and its scope is unused)."""

    store = "store"  # a store's staff: its stores' ship-from-store / click-and-collect requests, nothing else
    viewer = "viewer"  # read status, lists, audit (personal data masked)
    analyst = "analyst"  # analysts' operations on runs, quarantine bodies and replay (sees personal data)
    finance = "finance"  # settlement actions and journals (personal data masked)
    admin = "admin"  # everything, plus keys and schedules


ROLE_ORDER: tuple[Role, ...] = tuple(Role)

# who sees customers' names, e-mails, phones and addresses in API answers
PERSONAL_DATA_ROLES: frozenset[Role] = frozenset({Role.analyst, Role.admin})

# roles that hold only with a scope: a store principal without store ids may do nothing
SCOPED_ROLES: frozenset[Role] = frozenset({Role.store})

# a store id as fulfillment.toml names a store node (`id = "STORE-001"`); pos_store_fulfillments.store_id is 64 long
STORE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


def store_ids(values: object, mapping: dict[str, str] | None = None) -> frozenset[str]:
    """The store ids among a claim's values (a string, space or comma separated, or a list of strings), as
    `highest_role` reads roles. With a `mapping` (e.g. {"grp-berlin-mitte": "STORE-001"}) only mapped values
    count, so that a `groups` claim's other groups are not taken for stores; without one each value that is a
    well-formed store id is one."""
    if isinstance(values, str):
        values = values.replace(",", " ").split()
    if not isinstance(values, (list, tuple, set, frozenset)):
        return frozenset()
    found = set()
    for value in values:
        if isinstance(value, str):
            name = mapping.get(value) if mapping else value
            if name is not None and STORE_ID_PATTERN.match(name):
                found.add(name)
    return frozenset(found)


def check_store_ids(stores: Iterable[str] | str | None) -> tuple[str, ...]:
    """Store ids for a key's scope, sorted and without duplicates; ValueError on a malformed one."""
    if isinstance(stores, str):
        stores = stores.replace(",", " ").split()
    out = set()
    for store in stores or ():
        if not isinstance(store, str) or not STORE_ID_PATTERN.match(store.strip()):
            raise ValueError(f"bad store id {store!r}: 1-64 of letters, digits and . _ : - (starting with a letter "
                             "or digit), as fulfillment.toml names the store node")
        out.add(store.strip())
    return tuple(sorted(out))


def highest_role(values: object, mapping: dict[str, str] | None = None) -> Role | None:
    """The highest retailflow role among a claim's values (a string, space or comma separated, or a list of
    strings), each value first translated through `mapping` (e.g. {"rf-ops": "analyst"}); None if none is one."""
    if isinstance(values, str):
        values = values.replace(",", " ").split()
    if not isinstance(values, (list, tuple, set, frozenset)):
        return None
    mapping = mapping or {}
    found = set()
    for value in values:
        if isinstance(value, str):
            name = mapping.get(value, value)
            if name in Role.__members__:
                found.add(Role(name))
    return max(found, key=ROLE_ORDER.index) if found else None
