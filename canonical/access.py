"""Who may do what on the API: the roles (api/auth.py applies them; adapters/platform/api_keys.py stores them)."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """The API's roles, lowest first: when an OIDC token carries several, the last one listed here wins."""

    viewer = "viewer"  # read status, lists, audit (personal data masked)
    analyst = "analyst"  # analysts' operations on runs, quarantine bodies and replay (sees personal data)
    finance = "finance"  # settlement actions and journals (personal data masked)
    admin = "admin"  # everything, plus keys and schedules


ROLE_ORDER: tuple[Role, ...] = tuple(Role)

# who sees customers' names, e-mails, phones and addresses in API answers
PERSONAL_DATA_ROLES: frozenset[Role] = frozenset({Role.analyst, Role.admin})


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
