"""Publishing availability: the ledger speaks ERP item codes; a real channel (Shopify, Amazon) knows its listings
only by its own SKUs, so each of the item's channel SKUs is set; the embedded marketplace keeps item codes."""

from __future__ import annotations

from decimal import Decimal

from activities.inventory import InventoryActivities, PublishInput
from adapters.erp.local import LocalErp
from adapters.inventory.ledger import InventoryLedger
from adapters.marketplace.by_channel import ChannelMarketplaces
from adapters.marketplace.local import LocalMarketplace
from adapters.ports import Adapters
from adapters.tax.local import LocalTax
from adapters.wms.local import LocalWms


class ChannelListings:
    """A stand-in real channel: it refuses anything that is not one of its SKUs, as Shopify and Amazon do."""

    lists_by_channel_sku = True

    def __init__(self, skus: set[str]) -> None:
        self.skus = skus
        self.calls: list[tuple[str, str, int, str | None]] = []

    def publish_availability(self, channel: str, sku: str, quantity: int, *, key: str | None = None) -> None:
        if sku not in self.skus:
            raise AssertionError(f"{channel} has no listing {sku!r}")
        self.calls.append((channel, sku, quantity, key))


def _activities(engine, shopify: ChannelListings) -> tuple[InventoryActivities, LocalMarketplace, LocalErp]:
    erp, embedded = LocalErp(engine), LocalMarketplace(engine)
    erp.upsert_item("SUN-AVIATOR", "Aviator sunglasses", Decimal("30"), "USD")
    erp.map_sku("shopify", "SKU2006-001", "SUN-AVIATOR")
    erp.map_sku("shopify", "SKU2006-001-BUNDLE", "SUN-AVIATOR")
    erp.map_sku("web", "WEB-AV", "SUN-AVIATOR")
    adapters = Adapters(erp=erp, wms=LocalWms(engine), tax=LocalTax(engine), inventory=InventoryLedger(engine),
                        marketplace=ChannelMarketplaces(embedded, {"shopify": shopify}))
    return InventoryActivities(adapters), embedded, erp


def test_a_real_channel_gets_each_of_its_skus_for_the_item(engine):
    shopify = ChannelListings({"SKU2006-001", "SKU2006-001-BUNDLE"})
    acts, _, _ = _activities(engine, shopify)
    acts.publish_availability(PublishInput(channel="shopify", sku="SUN-AVIATOR", quantity=7, key="k1"))
    assert shopify.calls == [("shopify", "SKU2006-001", 7, "k1:SKU2006-001"),
                             ("shopify", "SKU2006-001-BUNDLE", 7, "k1:SKU2006-001-BUNDLE")]


def test_an_item_the_channel_lists_under_its_own_code_is_published_as_is(engine):
    shopify = ChannelListings({"PLAIN-ITEM"})
    acts, _, _ = _activities(engine, shopify)
    acts.publish_availability(PublishInput(channel="shopify", sku="PLAIN-ITEM", quantity=3, key="k2"))
    assert shopify.calls == [("shopify", "PLAIN-ITEM", 3, "k2")]


def test_the_embedded_marketplace_keeps_erp_item_codes(engine):
    acts, embedded, erp = _activities(engine, ChannelListings(set()))
    assert erp.channel_skus_of("web", "SUN-AVIATOR") == ["WEB-AV"]
    acts.publish_availability(PublishInput(channel="web", sku="SUN-AVIATOR", quantity=4, key="k3"))
    assert [(p["channel"], p["quantity"]) for p in embedded.publications("SUN-AVIATOR")] == [("web", 4)]
