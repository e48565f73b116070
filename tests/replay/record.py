"""Record replay histories again from today's code: `python -m tests.replay.record [names...]` (by default all of
RECORDINGS but FROM_PATCHED_CODE), then they are sealed as `python -m tests.replay.seal` does (but `order_completed_precodec`, kept in clear).

Each history is the run of one workflow test (tests/workflows, the stand-in activities on a fresh time-skipping
server, as the other histories were recorded): the test runs as it does under pytest, against a client that notes
every workflow it starts, and the history of the first run of the named workflow type is written over the file.
Used when a patch is deprecated (docs/deployment.md "Safe deploys", "Patches"): a history recorded before the
patch existed exercises the branch the deprecation removes, so it is recorded again with the same scenario."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client, Interceptor, OutboundInterceptor, StartWorkflowInput, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from canonical.order import Customer
from runtime.codec import EncryptionCodec
from tests.replay.seal import HISTORIES, PRECODEC, replay_keyring, seal_history
from tests.workflows.conftest import TEST_SERVER, register_search_attributes


@dataclass(frozen=True)
class Recording:
    test: str  # module:function under tests.workflows
    workflow: str  # the workflow type whose first run is kept
    clear_email: str | None = None  # the pre-codec history: a customer email in clear (what the codec seals)
    args: dict[str, Any] = field(default_factory=dict)  # the test's other arguments (its parameters)
    tmp_path: bool = False  # the test takes pytest's tmp_path
    fixtures: str | None = None  # a context manager of FIXTURES giving the test's other fixtures (kwargs)


ORDERS = "test_order_fulfillment"
SETTLEMENTS = "test_settlement_reconciliation"
SHORTFALLS = "test_inventory_shortfall_signals"
RECORDINGS: dict[str, Recording] = {
    "order_completed": Recording(
        f"{ORDERS}:test_happy_path_runs_every_step_once_in_order_and_keeps_search_attributes", "OrderFulfillment"),
    "order_completed_precodec": Recording(
        f"{ORDERS}:test_happy_path_runs_every_step_once_in_order_and_keeps_search_attributes", "OrderFulfillment",
        clear_email="jon@example.com"),
    "order_cancelled_before_shipment": Recording(
        f"{ORDERS}:test_cancel_before_shipment_runs_every_compensation_in_reverse_once", "OrderFulfillment"),
    "order_parked_unknown_sku_then_retried": Recording(
        f"{ORDERS}:test_business_error_parks_then_retry_continues_from_the_parked_step", "OrderFulfillment"),
    "settlement_parked_then_skipped_to_suspense": Recording(
        f"{SETTLEMENTS}:test_exceptions_park_then_skip_posts_to_suspense", "SettlementReconciliation"),
    "settlement_parked_then_retried": Recording(
        f"{SETTLEMENTS}:test_retry_rematches_after_the_data_is_fixed", "SettlementReconciliation"),
    "settlement_cancelled_while_parked": Recording(
        f"{SETTLEMENTS}:test_cancel_while_parked_posts_nothing", "SettlementReconciliation"),
    "settlement_stage_parked_skip_refused": Recording(
        f"{SETTLEMENTS}:test_bad_file_parks_the_stage_step_and_skip_is_refused", "SettlementReconciliation"),
    # issue 20: the split path (`split-fulfillment-v1`, patched): two nodes, one refuses and is re-sourced
    "order_split_node_refused_resourced": Recording(
        "test_split_fulfillment:test_a_node_refusing_after_release_is_re_sourced_without_it", "OrderFulfillment"),
    "order_split_cancelled_per_node": Recording(
        "test_split_fulfillment:test_cancelling_a_split_order_undoes_each_node_in_reverse", "OrderFulfillment"),
    # issue 20, item 3: store fulfillments (`store-fulfillment-v1`, patched): picked and collected; refused, re-sourced
    "order_store_pickup_collected": Recording(
        "test_store_fulfillment:test_click_and_collect_is_released_to_the_store_picked_collected_and_completed",
        "OrderFulfillment", tmp_path=True),
    # a store sale's shortfall: before `store-amend-v1` the whole store request was withdrawn (recorded from 86039f7,
    # the test since replaced), after it only the sold line moves and the store's request is amended
    "order_store_sale_amended": Recording(
        "test_store_fulfillment:test_a_store_sale_that_takes_a_store_release_units_moves_those_lines_and_amends_the_"
        "store_request", "OrderFulfillment", tmp_path=True),
    "order_store_refused_resourced": Recording(
        "test_store_fulfillment:test_a_store_that_refuses_its_ship_from_store_request_is_re_sourced_to_the_warehouse",
        "OrderFulfillment", tmp_path=True),
    # issue 20: a backordered line released by a receipt through InventorySync (`backorder-waits-v1` and
    # `backorder-receipts-v1`, patched): the order's run and the sync's
    "order_backorder_released_by_receipt": Recording(
        "test_backorder_receipts:test_a_backordered_line_is_released_by_a_receipt_through_inventory_sync",
        "OrderFulfillment", tmp_path=True),
    "inventory_sync_backorder_receipt_told_order": Recording(
        "test_backorder_receipts:test_a_backordered_line_is_released_by_a_receipt_through_inventory_sync",
        "InventorySync", tmp_path=True),
    # and a POS return told by StoreDay (`store-day-backorder-receipts-v1`, patched)
    "storeday_return_told_backorders": Recording(
        "test_store_day_backorder_receipts:test_a_pos_return_tells_the_orders_whose_backorder_waits_for_the_item_at_"
        "that_store", "StoreDay", tmp_path=True),
    # issue 21: a promotion approved twice, published to two channels at its time and reverted at its end
    "price_approved_published_reverted": Recording(
        "test_price_publication:test_a_promotion_waits_for_two_approvals_and_its_time_publishes_to_two_channels_and_"
        "reverts", "PricePublication", tmp_path=True),
    # issue 21: dual-run parity, a changed tax line in the shadow ERP parks, a retry after the fix finds it equal
    "parity_difference_parked_then_retried": Recording(
        "test_parity_check:test_a_changed_tax_line_in_the_shadow_parks_with_both_documents_until_a_retry_finds_it_"
        "fixed", "ParityCheck", fixtures="dual_run"),
}
# Recorded from the code of the release before the patches were deprecated (`git archive 055e315`, run there):
# each pins a run started while its patch was `patched`, which the deprecated code must still replay.
FROM_PATCHED_CODE: dict[str, Recording] = {
    "return_over_refund_parked_then_skipped": Recording(
        "test_return_to_refund:test_amounts_refunded_without_units_are_credited_as_refunded_never_beyond_what_was_paid",
        "ReturnToRefund", args={"amount": None, "tax": None, "adjustment": "99.00", "net_total": "30.00",
                                "tax_total": "3.00", "over": "66.00"}),
    "inventory_sync_shortfall_told_orders": Recording(
        f"{SHORTFALLS}:test_inventory_sync_signals_each_order_and_publishes_at_once", "InventorySync", tmp_path=True),
    "storeday_shortfall_told_orders": Recording(
        f"{SHORTFALLS}:test_store_day_signals_each_order_and_the_skus_sync", "StoreDay", tmp_path=True,
        args={"sync_running": False}),
}
RECORDINGS.update(FROM_PATCHED_CODE)


@dataclass
class Started:
    runs: list[tuple[str, str]] = field(default_factory=list)  # (workflow type, id)


class _NoteStarts(Interceptor):
    def __init__(self, started: Started) -> None:
        self.started = started

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        started = self.started

        class Outbound(OutboundInterceptor):
            async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
                started.runs.append((input.workflow, input.id))
                return await super().start_workflow(input)

        return Outbound(next)


@dataclass
class _Env:
    """What a workflow test takes as `ts_env`: the time-skipping environment, with the noting client."""

    env: WorkflowEnvironment
    client: Client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)


@contextlib.contextmanager
def _dual_run(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """test_parity_check's fixtures: the ERPNext sandbox served on loopback and the dual-run adapters."""
    from sandbox.common import ServedApp
    from sandbox.erpnext import create_app
    from tests import dual_run as dr
    from tests.workflows.test_parity_check import dual_run_adapters

    with ServedApp(create_app(api_key=dr.API_KEY, api_secret=dr.API_SECRET)) as served, \
            dual_run_adapters(tmp_path, served) as adapters:
        yield {"adapters": adapters, "served": served}


FIXTURES: dict[str, Callable[[Path], contextlib.AbstractContextManager[dict[str, Any]]]] = {"dual_run": _dual_run}


async def _run_test(recording: Recording, env: _Env) -> None:
    module, name = recording.test.split(":")
    mod = importlib.import_module(f"tests.workflows.{module}")
    test: Callable[[Any], Awaitable[None]] = getattr(mod, name)
    make_order = getattr(mod, "_order", None)
    if recording.clear_email:  # the order carries its customer's email, as a channel's order does
        email = recording.clear_email
        mod._order = lambda *a, **kw: make_order(*a, **kw).model_copy(  # type: ignore[misc]
            update={"customer": Customer(external_id="C1", email=email, name="Jon")})
    try:
        if recording.fixtures:
            with tempfile.TemporaryDirectory() as tmp, FIXTURES[recording.fixtures](Path(tmp)) as kwargs:
                await test(env, **kwargs, **recording.args)  # type: ignore[call-arg]
        elif recording.tmp_path:
            with tempfile.TemporaryDirectory() as tmp:
                await test(env, tmp_path=Path(tmp), **recording.args)  # type: ignore[call-arg]
        else:
            await test(env, **recording.args)  # type: ignore[call-arg]
    finally:
        if make_order is not None:
            mod._order = make_order


async def record(name: str) -> str:
    recording = RECORDINGS[name]
    started = Started()
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=TEST_SERVER,
                                                        data_converter=pydantic_data_converter)
    try:
        await register_search_attributes(env)
        config = env.client.config()  # its interceptors kept: the time-skipping one skips time while a result waits
        client = Client(**{**config, "interceptors": [*config.get("interceptors", []), _NoteStarts(started)]})
        await _run_test(recording, _Env(env, client))
        wf_id = next(i for t, i in started.runs if t == recording.workflow)
        history = await env.client.get_workflow_handle(wf_id).fetch_history()
    finally:
        await env.shutdown()
    text = history.to_json() + "\n"
    if name not in PRECODEC:
        text = seal_history(text, EncryptionCodec(replay_keyring()), name)
    (HISTORIES / f"{name}.json").write_text(text)
    return f"recorded {name}.json from {recording.test} ({len(history.events)} events)"


async def main(names: list[str]) -> None:
    unknown = sorted(set(names) - set(RECORDINGS))
    if unknown:
        raise SystemExit(f"no recording for {', '.join(unknown)}; one of {', '.join(RECORDINGS)}")
    # by default not the FROM_PATCHED_CODE ones: from today's code they would lose the marker they are kept for
    for name in names or [n for n in RECORDINGS if n not in FROM_PATCHED_CODE]:
        print(await record(name))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
