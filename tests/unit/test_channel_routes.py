"""RETAILFLOW_ACTIVITY_TASK_QUEUES routes per channel (`confirm_shipment@amazon`): the lookup a Runbook run makes
(workflows/runbook.py `queue_of`, the run's channel first, then the activity's route) and what the setting accepts.
On the dev server: tests/integration/test_channel_breakers.py."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from runtime.settings import Settings
from workflows.runbook import queue_of

ROUTES = {"confirm_shipment@amazon": "retailflow-amazon", "confirm_shipment": "retailflow-channels",
          "create_sales_order": "retailflow-erp"}


def test_the_runs_channel_route_comes_first_then_the_activitys():
    assert queue_of(ROUTES, "confirm_shipment", "amazon") == "retailflow-amazon"
    assert queue_of(ROUTES, "confirm_shipment", "shopify") == "retailflow-channels"  # no route of its own
    assert queue_of(ROUTES, "confirm_shipment", None) == "retailflow-channels"  # a run without a channel
    assert queue_of(ROUTES, "create_sales_order", "amazon") == "retailflow-erp"
    assert queue_of(ROUTES, "reserve_stock", "amazon") is None  # the run's own queue
    assert queue_of({}, "confirm_shipment", "amazon") is None


def test_a_run_started_before_channel_routes_is_routed_as_before():
    """Its input's map has plain names only: every lookup gives what the plain name gave."""
    old = {"confirm_shipment": "retailflow-channels", "create_sales_order": "retailflow-erp"}
    for activity in ("confirm_shipment", "create_sales_order", "release_to_wms"):
        for channel in ("amazon", "shopify", None):
            assert queue_of(old, activity, channel) == old.get(activity)


def test_the_setting_takes_activity_and_activity_at_channel_keys():
    s = Settings(_env_file=None, activity_task_queues=ROUTES,
                 partner_activity_rate_limits={"retailflow-amazon": 5, "retailflow-channels": 5})
    assert s.activity_task_queues == ROUTES
    assert s.unserved_activity_queues() == ["retailflow-erp"]  # routed, but no partner worker would poll it
    for bad in ({"confirm_shipment@": "q"}, {"@amazon": "q"}, {"confirm_shipment@Amazon": "q"},
                {"confirm_shipment@amazon": ""}):
        with pytest.raises(ValidationError, match="activity route"):
            Settings(_env_file=None, activity_task_queues=bad)


def test_the_setting_reads_channel_routes_from_the_environment(monkeypatch):
    monkeypatch.setenv("RETAILFLOW_ACTIVITY_TASK_QUEUES",
                       '{"confirm_shipment@amazon": "retailflow-amazon", "confirm_shipment": "retailflow-shopify"}')
    s = Settings(_env_file=None)
    assert queue_of(s.activity_task_queues, "confirm_shipment", "amazon") == "retailflow-amazon"
    assert queue_of(s.activity_task_queues, "confirm_shipment", "shopify") == "retailflow-shopify"
