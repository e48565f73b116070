"""The shipped schedules.toml: every entry names a workflow the worker registers, and its arguments validate
against that workflow's input model (a typo would otherwise only show when the schedule first fires)."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

import pytest
from temporalio import workflow

import worker
from retailflow.schedules import load_schedules

ROOT = Path(__file__).resolve().parents[2]
ENTRIES = load_schedules(ROOT / "schedules.toml")
REGISTERED = {workflow._Definition.must_from_class(wf).name: wf for wf in worker.WORKFLOWS}


def test_the_file_schedules_settlements_and_store_closes():
    assert {e.workflow for e in ENTRIES} >= {"SettlementFetch", "StoreDayClose"}


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.id for e in ENTRIES])
def test_each_entry_starts_a_registered_workflow_with_valid_arguments(entry):
    assert entry.workflow in REGISTERED, f"{entry.id}: {entry.workflow} is not registered on the worker"
    run = workflow._Definition.must_from_class(REGISTERED[entry.workflow]).run_fn
    params = [p for p in inspect.signature(run).parameters.values() if p.name != "self"]
    assert len(entry.args) == len(params), f"{entry.id}: {len(params)} argument(s) expected"
    hints = typing.get_type_hints(run)
    for arg, param in zip(entry.args, params, strict=True):
        hints[param.name].model_validate(arg)  # pydantic input model: raises on a wrong or missing field
