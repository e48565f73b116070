"""The set of ports the activities are given: one adapter per role, built by the composition root
(runtime/registry.py) from settings. The activities depend on this bundle, never on how it was chosen."""

from __future__ import annotations

from dataclasses import dataclass

from adapters.erp.base import ErpAdapter
from adapters.inventory.ledger import InventoryLedger
from adapters.marketplace.base import MarketplaceAdapter
from adapters.platform.projection import StatusProjection
from adapters.pos.fulfillment import StoreFulfillmentPort
from adapters.tax.base import TaxAdapter
from adapters.wms.base import WmsAdapter


@dataclass
class Adapters:
    erp: ErpAdapter
    wms: WmsAdapter
    tax: TaxAdapter
    marketplace: MarketplaceAdapter
    projection: StatusProjection | None = None
    inventory: InventoryLedger | None = None
    # the POS role's store fulfillments (ship-from-store, click-and-collect): `pos:store` nodes (issue 20)
    store_fulfillment: StoreFulfillmentPort | None = None
