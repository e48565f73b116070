"""Split fulfillment's wiring (issue 20): RETAILFLOW_SPLIT_FULFILLMENT_CHANNELS turns it on per channel in the
starter (`OrderFulfillmentInput.split_fulfillment`), and the worker registers plan_sourcing and the per-node
activities, refusing a listed channel that has no policy in the fulfillment network file."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

import worker
from canonical.money import Money
from canonical.order import Address, Order, OrderLine
from runtime.registry import build_adapters
from runtime.settings import Settings
from starters.orders import start_order


def _order(channel: str) -> Order:
    return Order(channel=channel, external_order_id="1001", created_at=datetime(2026, 12, 1, tzinfo=UTC),
                 currency="EUR", taxes_included=False, shipping_address=Address(line1="x", city="Berlin",
                                                                                postal_code="10117", country="DE"),
                 lines=[OrderLine(line_id="1", channel_sku="SKU-1", quantity=1, unit_price=Money.of("1.00", "EUR"))])


class _Client:
    def __init__(self) -> None:
        self.inputs: list = []

    async def start_workflow(self, workflow, arg, **kwargs):
        self.inputs.append(arg)


@pytest.mark.parametrize(("channels", "channel", "split"), [([], "shopify", False), (["shopify"], "shopify", True),
                                                           (["shopify"], "amazon", False)])
def test_the_starter_splits_only_the_channels_listed(channels, channel, split):
    client = _Client()
    asyncio.run(start_order(client, Settings(split_fulfillment_channels=channels), _order(channel)))  # type: ignore[arg-type]
    assert client.inputs[0].split_fulfillment is split


def test_the_env_lists_the_channels(monkeypatch):
    monkeypatch.setenv("RETAILFLOW_SPLIT_FULFILLMENT_CHANNELS", '["shopify", "amazon"]')
    assert Settings().split_fulfillment_channels == ["shopify", "amazon"]


def test_the_worker_registers_sourcing_and_the_node_steps(tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'rf.db'}", split_fulfillment_channels=["shopify"])
    from adapters.sql import create_schema, make_engine

    engine = make_engine(settings.database_url)
    create_schema(engine)
    names = {fn.__name__ for fn in worker.sourcing_activities(build_adapters(settings, engine), settings)}
    assert names == {"plan_sourcing", "reserve_at_node", "release_node_stock", "reduce_node_reservation",
                     "release_to_node", "cancel_node_release", "amend_node_release", "post_node_delivery",
                     "poll_node", "sweep_supplier_invoices"}
    with pytest.raises(ValueError, match="no sourcing policy for marketplace-x"):
        worker.sourcing_activities(build_adapters(settings, engine),
                                   settings.model_copy(update={"split_fulfillment_channels": ["marketplace-x"]}))
    engine.dispose()


def test_without_a_network_file_and_no_split_channel_the_worker_registers_none(tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'rf.db'}",
                        fulfillment_network_file=tmp_path / "absent.toml")
    from adapters.sql import create_schema, make_engine

    engine = make_engine(settings.database_url)
    create_schema(engine)
    assert worker.sourcing_activities(build_adapters(settings, engine), settings) == []
    with pytest.raises(ValueError, match="absent.toml: no such file"):
        worker.sourcing_activities(build_adapters(settings, engine),
                                   settings.model_copy(update={"split_fulfillment_channels": ["shopify"]}))
    engine.dispose()
