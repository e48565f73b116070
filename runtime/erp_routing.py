"""ERP coexistence from a routing file (RETAILFLOW_ERP_ROUTING_FILE, e.g. `erp_routing.toml`; docs/erp-migration.md):
the ERPs the platform talks to and which process of which store or legal entity goes to which, validated by
pydantic (canonical/erp_routing.py) when the worker starts, then built into one `RoutingErp`.

    [erps.legacy]
    adapter = "local"                  # the embedded ERP
    [erps.cloud]
    adapter = "erpnext"                # RETAILFLOW_ERPNEXT_* settings; base_url / company / warehouse override them

    [[route]]                          # the default: every process on the legacy ERP ...
    record = "legacy"
    [[route]]
    process = "orders"                 # ... and orders in dual-run: posted to cloud in shadow as well
    record = "legacy"
    shadow = "cloud"
    [[route]]
    process = "orders"
    store = "shopify-de"               # a store (or legal_entity = "retail-de") in its own wave
    record = "cloud"
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine

from adapters.erp.base import ErpAdapter
from adapters.erp.routing import RoutingErp
from canonical.erp_routing import ErpDefinition, ErpRoutingConfig
from runtime.settings import Settings


class ErpRoutingError(ValueError):
    """The routing file cannot be used (one line, naming the file)."""


def load_routing(path: Path | str) -> ErpRoutingConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ErpRoutingError(f"{path}: no such file (RETAILFLOW_ERP_ROUTING_FILE)") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ErpRoutingError(f"{path}: cannot be read as TOML: {exc}") from None
    return parse_routing(data, source=str(path))


def parse_routing(data: dict[str, Any], *, source: str = "erp routing") -> ErpRoutingConfig:
    try:
        return ErpRoutingConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors())
        raise ErpRoutingError(f"{source}: {problems}") from None


def build_one(name: str, erp: ErpDefinition, settings: Settings, engine: Engine, *, shadow: bool) -> ErpAdapter:
    if erp.adapter == "local":
        from adapters.erp.local import LocalErp

        return LocalErp(engine, default_location=settings.default_location)
    from adapters.erp.erpnext import ErpNext
    from adapters.erp.holds import ReservationHolds
    from adapters.erp.shadow import ShadowErpNext

    update = {k: v for k, v in (("erpnext_base_url", erp.base_url), ("erpnext_company", erp.company),
                                ("erpnext_warehouse", erp.warehouse)) if v is not None}
    own = settings.model_copy(update=update) if update else settings
    if shadow:  # the shadow books documents only: no reservation holds
        return ShadowErpNext.from_settings(own)
    return ErpNext.from_settings(own, holds=ReservationHolds(engine))


def build_routing_erp(settings: Settings, engine: Engine, config: ErpRoutingConfig) -> RoutingErp:
    """Every ERP of the routing file in one RoutingErp over the platform database's route table: each as a system
    of record, and each ERP named as a shadow also as a shadow (`ShadowErpNext`: its documents marked, no
    reservation holds) — so one ERP can be the record of a store already cut over and the shadow of the others.
    Stores map to their legal entities (RETAILFLOW_STORES)."""
    from adapters.erp.route_store import ErpRouteStore

    erps = {name: build_one(name, erp, settings, engine, shadow=False) for name, erp in config.erps.items()}
    shadows = {name: build_one(name, config.erps[name], settings, engine, shadow=True)
               for name in sorted(config.shadow_erps())}
    directory = settings.store_directory()
    entities = {store.channel: store.legal_entity for store in directory.stores}
    return RoutingErp(erps, config, ErpRouteStore(engine), shadows=shadows, legal_entities=entities)
