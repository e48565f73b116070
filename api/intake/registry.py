"""Every webhook source by name, built here and only here: the routes take their source from it and quarantine
replay finds a delivery's source by the name it was quarantined under."""

from __future__ import annotations

from api.intake import shipbob, shipstation, shopify, square, wms
from api.intake.pipeline import Source

SOURCES: dict[str, Source] = {source.name: source for source in (
    shopify.SOURCE, wms.SOURCE, square.SOURCE, shipstation.SOURCE, shipbob.SOURCE)}
