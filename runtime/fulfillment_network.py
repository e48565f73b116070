"""The fulfillment network from its file (`fulfillment.toml`, or `.yaml` when PyYAML is installed), as
`retailflow/schedules.py` loads `schedules.toml`: parsed, then validated by the pydantic models of
`canonical.sourcing` (nodes, policies, kits, item flags). A bad file is one clear line naming the file and the field:

    fulfillment.toml: node[1].time_zone: Value error, unknown IANA time zone 'Europe/Berln'

The path is `RETAILFLOW_FULFILLMENT_NETWORK_FILE` (`OrderSettings.fulfillment_network_file`; default the
repository's fulfillment.toml). docs/fulfillment.md explains the file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from canonical.sourcing import FulfillmentNetwork
from runtime.settings import OrderSettings


class FulfillmentNetworkError(ValueError):
    """The network file is missing, unreadable or invalid; the message is one line naming the file and field."""


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe(exc: ValidationError, path: Path) -> str:
    """One line: `<file>: <field>: <problem>` for each error, joined with '; '."""
    problems = []
    for err in exc.errors(include_url=False):
        where = _where(tuple(err["loc"]))
        problems.append(f"{where}: {err['msg']}" if where else err["msg"])
    return f"{path}: " + "; ".join(problems)


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FulfillmentNetworkError(f"{path}: no such file (set RETAILFLOW_FULFILLMENT_NETWORK_FILE)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FulfillmentNetworkError(f"{path}: cannot be read: {exc}") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise FulfillmentNetworkError(f"{path}: a YAML network file needs PyYAML (pip install pyyaml); or use "
                                          "fulfillment.toml") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise FulfillmentNetworkError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise FulfillmentNetworkError(f"{path}: not valid TOML: {exc}") from None
    if not isinstance(data, dict):
        raise FulfillmentNetworkError(f"{path}: the file must be a table of node, policy, kit and items")
    return data


def load_network(path: Path | str) -> FulfillmentNetwork:
    """The validated network of the file; FulfillmentNetworkError (one line) when it is not."""
    path = Path(path)
    data = _read(path)
    try:
        return FulfillmentNetwork.model_validate(data)
    except ValidationError as exc:
        raise FulfillmentNetworkError(" ".join(describe(exc, path).split())) from None


def network_from_settings(settings: OrderSettings) -> FulfillmentNetwork:
    """The network of `RETAILFLOW_FULFILLMENT_NETWORK_FILE` (for the composition roots)."""
    return load_network(settings.fulfillment_network_file)


_NETWORKS: dict[tuple[str, int], FulfillmentNetwork] = {}


def pickup_locations(settings: OrderSettings, channel: str) -> dict[str, str] | None:
    """The channel's click-and-collect locations (channel location id → store node id, from the nodes'
    `channel_locations`) for the Shopify intake and poll; None when the channel's orders are not sourced over the
    network (not in RETAILFLOW_SPLIT_FULFILLMENT_CHANNELS): then no order of it is routed to a store for pick-up.
    The file is read again when it changes; FulfillmentNetworkError when it is invalid."""
    if channel not in settings.split_fulfillment_channels:
        return None
    path = Path(settings.fulfillment_network_file)
    try:
        key = (str(path), path.stat().st_mtime_ns)
    except OSError:
        key = (str(path), -1)
    network = _NETWORKS.get(key)
    if network is None:
        network = load_network(path)
        _NETWORKS.clear()
        _NETWORKS[key] = network
    return network.pickup_locations(channel)
