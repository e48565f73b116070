"""Temporal Schedules from a config file (`schedules.toml`, or `.yaml` when PyYAML is installed).

Each entry starts one workflow by name with JSON arguments, on cron expressions and/or calendar specs, in a time
zone. `apply_schedules` creates what is missing and updates what exists (idempotent); an update keeps the
schedule's state (a schedule finance paused in the Web UI stays paused). Entries are generic: the daily settlement
fetch per provider, a store-day close per store at its local close time, anything else.

    [[schedule]]
    id = "settlement-fetch-amazon"
    workflow = "SettlementFetch"
    workflow_id = "settlement-fetch:amazon"     # Temporal appends the scheduled time
    args = [{ provider = "amazon" }]
    cron = ["0 6 * * *"]
    time_zone = "Europe/Amsterdam"
"""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from workflows.priorities import priority_for

DEFAULT_FILES = ("schedules.yaml", "schedules.yml", "schedules.toml")
_OVERLAP = {"skip": ScheduleOverlapPolicy.SKIP, "buffer_one": ScheduleOverlapPolicy.BUFFER_ONE,
            "buffer_all": ScheduleOverlapPolicy.BUFFER_ALL, "cancel_other": ScheduleOverlapPolicy.CANCEL_OTHER,
            "terminate_other": ScheduleOverlapPolicy.TERMINATE_OTHER, "allow_all": ScheduleOverlapPolicy.ALLOW_ALL}


class CalendarEntry(BaseModel):
    """A calendar time: each field an int, a list of ints, or a range "a-b" (ScheduleCalendarSpec)."""

    model_config = ConfigDict(extra="forbid")
    second: Any = 0
    minute: Any = 0
    hour: Any = 0
    day_of_month: Any = "*"
    month: Any = "*"
    day_of_week: Any = "*"
    comment: str | None = None


class ScheduleEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200)
    workflow: str = Field(min_length=1, description="Workflow type name, e.g. SettlementFetch or StoreDayClose")
    workflow_id: str = Field(min_length=1, description="Id of each started run (Temporal appends the time)")
    args: list[Any] = Field(default_factory=list)
    cron: list[str] = Field(default_factory=list)
    calendars: list[CalendarEntry] = Field(default_factory=list)
    time_zone: str = "UTC"
    task_queue: str | None = None
    overlap: Literal["skip", "buffer_one", "buffer_all", "cancel_other", "terminate_other", "allow_all"] = "skip"
    catchup_window_minutes: int | None = Field(default=None, ge=1)
    paused: bool = False
    note: str | None = None
    summary: str | None = None

    @field_validator("cron", mode="before")
    @classmethod
    def _cron_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("time_zone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {v!r}") from None
        return v

    @model_validator(mode="after")
    def _when(self) -> ScheduleEntry:
        if not self.cron and not self.calendars:
            raise ValueError(f"schedule {self.id}: give `cron` and/or `calendars`")
        return self


class ScheduleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schedule: list[ScheduleEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> ScheduleFile:
        ids = [s.id for s in self.schedule]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate schedule id(s): {', '.join(dupes)}")
        return self


def default_file(root: Path = Path(".")) -> Path:
    for name in DEFAULT_FILES:
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"no {' / '.join(DEFAULT_FILES)} in {root.resolve()}")


def load_schedules(path: Path) -> list[ScheduleEntry]:
    text = Path(path).read_text(encoding="utf-8")
    if Path(path).suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ValueError("YAML schedules need PyYAML (pip install pyyaml); or use schedules.toml") from None
        data = yaml.safe_load(text) or {}
    else:
        data = tomllib.loads(text)
    return ScheduleFile.model_validate(data).schedule


def _ranges(value: Any, low: int, high: int) -> list[ScheduleRange]:
    if value in ("*", None):
        return [ScheduleRange(low, high)]
    values = value if isinstance(value, list) else [value]
    out = []
    for v in values:
        if isinstance(v, str) and "-" in v:
            a, b = v.split("-", 1)
            out.append(ScheduleRange(int(a), int(b)))
        else:
            out.append(ScheduleRange(int(v)))
    return out


# the priority (workflows/priorities.py) of what schedules start: finance's runs behind order intake on shared queues
SCHEDULED_KINDS = {"SettlementFetch": "finance", "SettlementReconciliation": "finance", "InventoryDrift": "drift",
                   "ChannelOrderPoll": "orders"}


def to_schedule(entry: ScheduleEntry, default_task_queue: str) -> Schedule:
    calendars = [ScheduleCalendarSpec(
        second=_ranges(c.second, 0, 59), minute=_ranges(c.minute, 0, 59), hour=_ranges(c.hour, 0, 23),
        day_of_month=_ranges(c.day_of_month, 1, 31), month=_ranges(c.month, 1, 12),
        day_of_week=_ranges(c.day_of_week, 0, 6), comment=c.comment) for c in entry.calendars]
    return Schedule(
        action=ScheduleActionStartWorkflow(entry.workflow, args=entry.args, id=entry.workflow_id,
                                           task_queue=entry.task_queue or default_task_queue,
                                           static_summary=entry.summary,
                                           priority=priority_for(SCHEDULED_KINDS.get(entry.workflow, "reporting"))),
        spec=ScheduleSpec(cron_expressions=list(entry.cron), calendars=calendars, time_zone_name=entry.time_zone),
        policy=SchedulePolicy(overlap=_OVERLAP[entry.overlap], catchup_window=timedelta(
            minutes=entry.catchup_window_minutes) if entry.catchup_window_minutes else None),
        state=ScheduleState(paused=entry.paused, note=entry.note),
    )


async def apply_schedules(client: Client, entries: list[ScheduleEntry], *, task_queue: str,
                          workflow_queues: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """Create or update each schedule; returns (id, "created" | "updated"). A schedule starts its workflow on the
    entry's `task_queue`, else its domain's queue (`workflow_queues`: type name → queue), else `task_queue`."""
    done = []
    for entry in entries:
        schedule = to_schedule(entry, (workflow_queues or {}).get(entry.workflow, task_queue))
        try:
            await client.create_schedule(entry.id, schedule)
            done.append((entry.id, "created"))
            continue
        except ScheduleAlreadyRunningError:
            pass

        def updater(inp: ScheduleUpdateInput, schedule: Schedule = schedule) -> ScheduleUpdate:
            schedule.state = inp.description.schedule.state  # keep what finance did in the Web UI (pause, note)
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(entry.id).update(updater)
        done.append((entry.id, "updated"))
    return done
