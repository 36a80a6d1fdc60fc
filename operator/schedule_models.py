"""The WorkflowSchedule resource as pydantic models (the source of its CRD, like :mod:`.models`).

A WorkflowSchedule creates WorkflowRuns from ``spec.runTemplate`` at the fire times of a cron
expression, as a Kubernetes CronJob creates Jobs; the timing fields and their meaning are those
of ``floxide schedule`` (:class:`floxide.schedule.SchedulePolicy`), so one page documents both.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from floxide.schedule import SchedulePolicy

from .models import (
    _CONDITIONS_DESCRIPTION,
    _KOPF_DESCRIPTION,
    _OBSERVED_GENERATION_DESCRIPTION,
    DNS_SUBDOMAIN_PATTERN,
    AnyJson,
    Condition,
    KubeModel,
    OpaqueObject,
    _map_list,
)

__all__ = [
    "SCHEDULE_LABEL",
    "WORKFLOW_SCHEDULE_PLURAL",
    "ScheduleRunTemplate",
    "ScheduledRun",
    "WorkflowScheduleSpec",
    "WorkflowScheduleStatus",
]

WORKFLOW_SCHEDULE_PLURAL = "workflowschedules"
SCHEDULE_LABEL = "floxide.io/schedule"
"""The label on each WorkflowRun a schedule created: the schedule's name."""
SCHEDULED_AT_ANNOTATION = "floxide.io/scheduled-at"
"""The annotation on each WorkflowRun a schedule created: its fire time (RFC 3339)."""
ACTIVE_SHOWN = 20
"""At most this many active runs are named in ``status.active`` (``status.activeRuns`` counts all)."""


class ScheduleRunTemplate(KubeModel):
    """What each run of the schedule is: the spec of the WorkflowRuns it creates."""

    workflow: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="Name of the Workflow to run, in the same namespace.",
    )
    input: AnyJson = Field(None, description="Input of each run, any JSON value.")
    active_deadline_seconds: int | None = Field(
        None, ge=1, description="Fails a run not finished this long after it started (seconds)."
    )
    ttl_seconds_after_finished: int | None = Field(
        None, ge=0, description="Deletes a run this long after it finished (seconds)."
    )
    priority: Literal["high", "normal", "low"] = Field(
        "normal",
        description="Each run's priority: workers take a higher class's work items first; "
        "low still gets about one claim in ten.",
    )


class WorkflowScheduleSpec(SchedulePolicy, KubeModel):
    """The desired state of a WorkflowSchedule: when to create WorkflowRuns, and which."""

    run_template: ScheduleRunTemplate = Field(
        description="The spec of the WorkflowRuns the schedule creates."
    )


class ScheduledRun(KubeModel):
    """A run the schedule created."""

    name: str = Field(description="Name of the WorkflowRun.")
    scheduled_at: datetime = Field(description="The fire time it was created for (RFC 3339 date-time).")


class WorkflowScheduleStatus(KubeModel):
    """The observed state of a WorkflowSchedule, written by the operator."""

    last_schedule_time: datetime | None = Field(
        None, description="The last fire time dealt with, started or skipped (RFC 3339 date-time)."
    )
    next_schedule_time: datetime | None = Field(None, description="The next fire time (RFC 3339 date-time).")
    last_successful_time: datetime | None = Field(
        None, description="When a run of the schedule last succeeded (RFC 3339 date-time)."
    )
    active: list[ScheduledRun] | None = Field(
        None,
        description=f"The schedule's runs not finished yet, oldest first (at most {ACTIVE_SHOWN} named).",
    )
    active_runs: int | None = Field(None, ge=0, description="The schedule's runs not finished yet (runs).")
    started_runs: int | None = Field(None, ge=0, description="Runs the schedule created so far (runs).")
    skipped_runs: int | None = Field(
        None,
        ge=0,
        description="Fire times skipped so far: missed beyond the catch-up policy, past the starting "
        "deadline, forbidden by a run still active, or while suspended.",
    )
    conditions: list[Condition] | None = Field(
        None, json_schema_extra=_map_list("type"), description=_CONDITIONS_DESCRIPTION
    )
    observed_generation: int | None = Field(None, ge=0, description=_OBSERVED_GENERATION_DESCRIPTION)
    kopf: OpaqueObject | None = Field(None, description=_KOPF_DESCRIPTION)
