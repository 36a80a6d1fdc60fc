"""Schedules: when runs start, shared by ``floxide schedule`` (Redis) and the operator's
WorkflowSchedule (Kubernetes).

A schedule has a cron expression (five fields, or six with seconds first; ``@hourly`` and the
other macros) evaluated in a time zone by `cronsim <https://pypi.org/project/cronsim/>`_, so
daylight-saving changes are handled as cron does. What happens at each fire time:

* ``concurrencyPolicy``: ``Allow`` starts a run even while earlier ones are active; ``Forbid``
  skips the fire time while a run of the schedule is active; ``Replace`` cancels the active
  runs and starts the new one;
* ``startingDeadlineSeconds``: a fire time not started within this many seconds is skipped;
* ``catchUp``: the fire times that passed while no scheduler was watching (the operator, or
  ``floxide schedule``, was down) are *missed*. ``None`` skips them all; ``Latest`` starts only
  the most recent one; ``All`` starts each, oldest first, but at most ``maxRuns`` (the most
  recent ones). Unlike Kubernetes' CronJob and Argo's CronWorkflow, this is explicit;
* ``suspend``: no run starts; fire times that pass while suspended are skipped, not caught up.

Fire times reached while the scheduler is watching are never missed; several at once (a slow
tick) all start, unless ``Forbid`` or ``Replace`` keep only the latest. :func:`plan` decides,
with no clock of its own: the caller passes ``now`` (tests pass any time they like).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

__all__ = [
    "CRON_PATTERN",
    "CatchUp",
    "CatchUpPolicy",
    "ConcurrencyPolicy",
    "Plan",
    "SchedulePolicy",
    "fire_times",
    "plan",
    "run_name",
]

CRON_PATTERN = r"^\s*(@[a-z]+|\S+(\s+\S+){4,5})\s*$"
"""Five or six cron fields, or a macro such as ``@hourly``; :func:`fire_times` checks the rest."""

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
"""The cron macros, as the fields they stand for."""

SCAN_LIMIT = 10_000
"""At most this many past fire times are looked at in one plan (older ones count as skipped)."""


class ConcurrencyPolicy(enum.StrEnum):
    """What a fire time does while an earlier run of the schedule is active."""

    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"


class CatchUpPolicy(enum.StrEnum):
    """What happens to fire times missed while no scheduler was watching."""

    NONE = "None"
    LATEST = "Latest"
    ALL = "All"


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class CatchUp(_Model):
    """Which fire times missed while no scheduler was watching still start."""

    policy: CatchUpPolicy = Field(
        CatchUpPolicy.LATEST,
        description="None: skip them. Latest: start only the most recent one. All: start each, oldest "
        "first, at most maxRuns of them (the most recent).",
    )
    max_runs: int = Field(
        10, ge=1, le=1000, description="With All: most missed fire times started at once (runs)."
    )


class SchedulePolicy(_Model):
    """When a schedule starts runs (the fields ``floxide schedule`` and WorkflowSchedule share)."""

    schedule: str = Field(
        pattern=CRON_PATTERN,
        max_length=200,
        description="Cron expression: five fields (minute hour day-of-month month day-of-week), or six "
        "with seconds first, or a macro such as @hourly.",
    )
    time_zone: str = Field(
        "UTC",
        max_length=64,
        description="IANA time zone the cron expression is read in, such as Europe/Berlin.",
    )
    concurrency_policy: ConcurrencyPolicy = Field(
        ConcurrencyPolicy.ALLOW,
        description="While a run of the schedule is active, a fire time starts another one (Allow), is "
        "skipped (Forbid), or cancels the active runs and starts (Replace).",
    )
    starting_deadline_seconds: int | None = Field(
        None, ge=0, description="A fire time not started this long after it is skipped (seconds)."
    )
    catch_up: CatchUp = Field(
        default_factory=CatchUp,
        json_schema_extra={"default": {}},
        description="Which fire times missed while no scheduler was running still start.",
    )
    suspend: bool = Field(False, description="Starts no run while true; fire times meanwhile are skipped.")
    successful_runs_history_limit: int = Field(
        3, ge=0, description="Succeeded runs of the schedule kept; older ones are deleted (runs)."
    )
    failed_runs_history_limit: int = Field(
        1, ge=0, description="Failed or cancelled runs of the schedule kept; older ones are deleted (runs)."
    )

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        try:
            CronSim(_expand(value), datetime(2000, 1, 1, tzinfo=UTC))
        except (CronSimError, ValueError) as exc:
            raise ValueError(f"not a cron expression: {exc}") from None
        return value.strip()

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Europe/Berlin)") from None
        return value

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


@dataclass(frozen=True)
class Plan:
    """What one look at a schedule decided (all times timezone-aware, UTC)."""

    start: list[datetime] = field(default_factory=list)
    """Fire times whose runs start now, oldest first."""
    skipped: int = 0
    """Fire times passed over (missed beyond the catch-up policy, past the deadline, suspended)."""
    last: datetime | None = None
    """The most recent fire time dealt with (started or skipped): the next plan starts after it."""
    next: datetime | None = None
    """The first fire time after now."""
    cancel_active: bool = False
    """``Replace``: cancel the active runs before starting."""


def fire_times(policy: SchedulePolicy, after: datetime, *, reverse: bool = False) -> Iterator[datetime]:
    """The fire times after ``after`` (or, with ``reverse``, at or before it), in UTC."""
    start = after.astimezone(policy.zone())
    if reverse and start.microsecond == 0:  # cronsim's first reverse tick drops microseconds
        start += timedelta(microseconds=1)
    for moment in CronSim(_expand(policy.schedule), start, reverse=reverse):
        yield moment.astimezone(UTC)


def plan(
    policy: SchedulePolicy,
    *,
    since: datetime,
    now: datetime,
    watching_since: datetime,
    active: int = 0,
) -> Plan:
    """The fire times in ``(since, now]`` to start now, by the schedule's policies.

    ``since`` is the last fire time dealt with (or when the schedule was created);
    ``watching_since`` when this scheduler began watching: fire times before it were missed.
    ``active`` is the number of the schedule's runs not finished yet.
    """
    upcoming = next(fire_times(policy, now), None)
    due: list[datetime] = []
    older = 0
    for moment in fire_times(policy, now, reverse=True):
        if moment <= since:
            break
        if len(due) >= SCAN_LIMIT:
            older += 1
            if older >= SCAN_LIMIT:
                break
            continue
        due.append(moment)
    due.reverse()
    if not due:
        return Plan(last=since, next=upcoming)
    last = due[-1]
    if policy.suspend:
        return Plan(skipped=len(due) + older, last=last, next=upcoming)
    missed = [t for t in due if t < watching_since]
    on_time = [t for t in due if t >= watching_since]
    keep = {CatchUpPolicy.NONE: 0, CatchUpPolicy.LATEST: 1, CatchUpPolicy.ALL: policy.catch_up.max_runs}
    caught = missed[len(missed) - keep[policy.catch_up.policy] :] if keep[policy.catch_up.policy] else []
    chosen = [*caught, *on_time]
    deadline = policy.starting_deadline_seconds
    if deadline is not None:
        chosen = [t for t in chosen if (now - t).total_seconds() <= deadline]
    cancel = False
    if policy.concurrency_policy is ConcurrencyPolicy.FORBID:
        chosen = chosen[-1:] if active == 0 else []
    elif policy.concurrency_policy is ConcurrencyPolicy.REPLACE:
        chosen = chosen[-1:]
        cancel = bool(chosen) and active > 0
    return Plan(
        start=chosen, skipped=len(due) + older - len(chosen), last=last, next=upcoming, cancel_active=cancel
    )


def _expand(expression: str) -> str:
    text = expression.strip()
    if text.startswith("@") and text not in MACROS:
        raise ValueError(f"unknown macro {text!r} (one of {', '.join(MACROS)})")
    return MACROS.get(text, text)


def run_name(schedule: str, moment: datetime, *, limit: int = 63) -> str:
    """The name (and run id) of the run a fire time starts: ``<schedule>-<unix seconds>``.

    One name per fire time makes starting idempotent: a scheduler that restarts, or a second
    one, never starts a fire time twice.
    """
    suffix = f"-{int(moment.timestamp())}"
    return f"{schedule[: limit - len(suffix)].rstrip('-.')}{suffix}"
