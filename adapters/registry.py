"""Composition root for adapters: builds the configured set. Nothing connects until `build_adapters` runs."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from adapters.erp.base import ErpAdapter
from adapters.erp.local import LocalErp
from adapters.marketplace.base import MarketplaceAdapter
from adapters.marketplace.local import LocalMarketplace
from adapters.platform.projection import StatusProjection
from adapters.tax.base import TaxAdapter
from adapters.tax.local import LocalTax
from adapters.wms.base import WmsAdapter
from adapters.wms.local import LocalWms
from retailflow.settings import Settings


@dataclass
class Adapters:
    erp: ErpAdapter
    wms: WmsAdapter
    tax: TaxAdapter
    marketplace: MarketplaceAdapter
    projection: StatusProjection | None = None


def build_adapters(settings: Settings, engine: Engine) -> Adapters:
    """The embedded adapters on the platform database (vendor adapters are selected here as they land)."""
    return Adapters(
        erp=LocalErp(engine, default_location=settings.default_location),
        wms=LocalWms(engine, ship_after_seconds=settings.local_wms_ship_after_seconds),
        tax=LocalTax(engine),
        marketplace=LocalMarketplace(engine),
        projection=StatusProjection(engine),
    )
