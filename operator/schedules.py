"""Reconciling a WorkflowSchedule: WorkflowRuns created at its fire times, as a CronJob creates Jobs.

One timer per schedule (every ``schedule_interval`` seconds) plans with
:func:`floxide.schedule.plan` (the policies are documented there) and acts, level-triggered:

1. its runs are the WorkflowRuns labelled ``floxide.io/schedule=<name>`` (the operator's view of
   runs, filled by kopf's watch; no API call); the oldest finished ones beyond the history limits
   are deleted (the run's own deletion handler removes its Redis data);
2. fire times in ``(status.lastScheduleTime, now]`` are due; those before this operator process
   began watching were *missed* and follow ``spec.catchUp``; ``Replace`` asks the active runs to
   stop (``spec.shutdown: Terminate``);
3. each started fire time creates the WorkflowRun ``<schedule>-<unix seconds>`` from
   ``spec.runTemplate``, owned by the schedule (deleting the schedule deletes its runs) and
   labelled with its name. The name makes creation idempotent: after a restart, or when a status
   patch was lost, a fire time is never started twice (the API server answers 409);
4. the status (last and next fire time, active runs, counts, a Ready condition) is patched when it
   changed, and each start, skip and replacement posts an Event.

The time comes from ``Runtime.clock``, so tests can move it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from floxide.schedule import Plan, plan, run_name

from . import models
from .inputs import spec_errors
from .kube import KubeError
from .models import Phase
from .projection import FINISHED, Coalescer, condition, merge_conditions, short
from .runtime import RunSeen, Runtime
from .schedule_models import (
    ACTIVE_SHOWN,
    SCHEDULE_LABEL,
    SCHEDULED_AT_ANNOTATION,
    WORKFLOW_SCHEDULE_PLURAL,
    ScheduledRun,
    WorkflowScheduleSpec,
    WorkflowScheduleStatus,
)

__all__ = ["SCHEDULES", "ScheduleMemory", "reconcile_schedule", "register_schedules"]

log = logging.getLogger(__name__)

SCHEDULES = (models.GROUP, models.VERSION, WORKFLOW_SCHEDULE_PLURAL)


@dataclass
class ScheduleMemory:
    """What the operator remembers about one schedule between ticks (in memory)."""

    coalescer: Coalescer
    last: datetime | None
    started: int
    skipped: int
    created: dict[str, datetime] = field(default_factory=dict)
    """Runs created by this process that the watch has not shown yet (they count as active)."""
    deleted: set[str] = field(default_factory=set)
    last_error: str | None = None


def register_schedules(registry: kopf.OperatorRegistry, rt: Runtime) -> None:
    """The timer of each WorkflowSchedule."""

    @kopf.timer(*SCHEDULES, id="schedule", interval=rt.settings.schedule_interval, registry=registry)
    async def schedule_timer(
        body: Any,
        spec: Any,
        status: Any,
        name: str,
        namespace: str | None,
        uid: str,
        meta: Any,
        patch: kopf.Patch,
        memo: Any,
        **_: Any,
    ) -> None:
        assert namespace is not None, "WorkflowSchedules are namespaced"
        try:
            await reconcile_schedule(
                rt, body=body, spec=spec, status=status, name=name, namespace=namespace, uid=uid,
                meta=meta, patch=patch, memo=memo,
            )  # fmt: skip
        except Exception:
            rt.metrics.reconcile_errors.labels("workflowschedule").inc()
            log.exception("WorkflowSchedule %s/%s: reconciliation failed", namespace, name)


def _moment(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _memory(rt: Runtime, memo: Any, status: dict[str, Any]) -> ScheduleMemory:
    memory: ScheduleMemory | None = memo.get("schedule")
    if memory is None:
        memory = memo["schedule"] = ScheduleMemory(
            coalescer=rt.coalescer(status, volatile=frozenset()),
            last=_moment(status.get("lastScheduleTime")),
            started=int(status.get("startedRuns") or 0),
            skipped=int(status.get("skippedRuns") or 0),
        )
    return memory


def _fire_time(run: str) -> datetime | None:
    """The fire time in a run's name (``<schedule>-<unix seconds>``)."""
    suffix = run.rpartition("-")[2]
    return datetime.fromtimestamp(int(suffix), UTC) if suffix.isdigit() else None


async def reconcile_schedule(
    rt: Runtime,
    *,
    body: Any,
    spec: Any,
    status: Any,
    name: str,
    namespace: str,
    uid: str,
    meta: Any,
    patch: kopf.Patch,
    memo: Any,
) -> None:
    """One tick of a schedule (see the module docstring)."""
    with rt.metrics.reconciling("workflowschedule"):
        generation = meta.get("generation")
        memory = _memory(rt, memo, dict(status))
        try:
            parsed = WorkflowScheduleSpec.model_validate(dict(spec))
        except ValidationError as exc:
            message = short(spec_errors(exc))
            ready = condition("Ready", False, "InvalidSpec", message, generation=generation)
            conditions = merge_conditions(memory.coalescer.sent.get("conditions"), [ready])
            _publish(
                rt, memory, patch, {**memory.coalescer.sent, "conditions": [c.to_body() for c in conditions]}
            )
            if memory.last_error != message:
                memory.last_error = message
                kopf.warn(body, reason="InvalidSpec", message=message)
            return
        memory.last_error = None
        runs = sorted((r for r in rt.runs.values() if r.namespace == namespace and r.schedule == name),
                      key=lambda r: (r.created, r.name))  # fmt: skip
        seen = {r.name for r in runs}
        memory.created = {run: at for run, at in memory.created.items() if run not in seen}
        active = [r.name for r in runs if r.phase not in FINISHED] + list(memory.created)
        await _trim_history(rt, memory, parsed, runs, namespace=namespace)
        now = rt.clock()
        created_at = _moment(meta.get("creationTimestamp")) or now
        since = max(t for t in (memory.last, _moment(status.get("lastScheduleTime")), created_at) if t)
        decided = plan(parsed, since=since, now=now, watching_since=rt.started_at, active=len(active))
        try:
            replaced = await _replace(rt, body, decided, active, namespace=namespace)
            started = await _start(rt, body, memory, parsed, decided, name=name, namespace=namespace, uid=uid)
        except KubeError as exc:  # the next tick tries these fire times again
            message = short(str(exc))
            log.warning("WorkflowSchedule %s/%s: %s", namespace, name, message)
            ready = condition("Ready", False, "CreateFailed", message, generation=generation)
            conditions = merge_conditions(memory.coalescer.sent.get("conditions"), [ready])
            _publish(
                rt, memory, patch, {**memory.coalescer.sent, "conditions": [c.to_body() for c in conditions]}
            )
            return
        if decided.skipped:
            rt.metrics.schedule_runs.labels("skipped").inc(decided.skipped)
            kopf.info(body, reason="Skipped", message=_skipped_message(parsed, decided))
        memory.last = decided.last if decided.last != created_at else memory.last
        memory.started += len(started)
        memory.skipped += decided.skipped
        active = [run for run in active if run not in replaced] + [
            run for run in started if run not in active
        ]
        ready = condition(
            "Ready",
            True,
            "Suspended" if parsed.suspend else "Scheduling",
            "spec.suspend is true: no run starts" if parsed.suspend else f"next run at {decided.next}",
            generation=generation,
        )
        new = WorkflowScheduleStatus(
            last_schedule_time=memory.last,
            next_schedule_time=decided.next,
            last_successful_time=_last_success(runs, status),
            active=[
                ScheduledRun(name=run, scheduled_at=_fire_time(run) or now) for run in active[:ACTIVE_SHOWN]
            ],
            active_runs=len(active),
            started_runs=memory.started,
            skipped_runs=memory.skipped,
            conditions=merge_conditions(memory.coalescer.sent.get("conditions"), [ready]),
            observed_generation=generation,
        ).to_body()
        _publish(rt, memory, patch, new)  # a key left out (no active run) is removed


def _skipped_message(spec: WorkflowScheduleSpec, decided: Plan) -> str:
    why = "suspended" if spec.suspend else f"catchUp {spec.catch_up.policy.value}, concurrencyPolicy " \
        f"{spec.concurrency_policy.value}"  # fmt: skip
    return f"skipped {decided.skipped} fire time(s) up to {decided.last} ({why})"


def _last_success(runs: list[RunSeen], status: Any) -> datetime | None:
    succeeded = [r for r in runs if r.phase is Phase.SUCCEEDED and r.finished]
    latest = max(
        (_moment(r.finished) for r in succeeded),
        default=None,
        key=lambda t: t or datetime.min.replace(tzinfo=UTC),
    )
    return latest or _moment(status.get("lastSuccessfulTime"))


async def _trim_history(
    rt: Runtime, memory: ScheduleMemory, spec: WorkflowScheduleSpec, runs: list[RunSeen], *, namespace: str
) -> None:
    """Delete the oldest finished runs beyond the history limits."""
    succeeded = [r.name for r in runs if r.phase is Phase.SUCCEEDED and r.name not in memory.deleted]
    failed = [
        r.name for r in runs if r.phase in (Phase.FAILED, Phase.CANCELLED) and r.name not in memory.deleted
    ]
    doomed = succeeded[: max(len(succeeded) - spec.successful_runs_history_limit, 0)]
    doomed += failed[: max(len(failed) - spec.failed_runs_history_limit, 0)]
    for run in doomed:
        try:
            await rt.require_kube().delete_custom(
                group=models.GROUP, version=models.VERSION, plural=models.WORKFLOW_RUN_PLURAL,
                namespace=namespace, name=run,
            )  # fmt: skip
        except KubeError as exc:
            log.warning("WorkflowSchedule: cannot delete old run %s/%s: %s", namespace, run, exc)
            continue
        memory.deleted.add(run)
    memory.deleted &= {r.name for r in runs}


async def _replace(rt: Runtime, body: Any, decided: Plan, active: list[str], *, namespace: str) -> list[str]:
    """With ``Replace``: ask the active runs to stop (running steps are cancelled); their names."""
    if not decided.cancel_active:
        return []
    for run in active:
        await rt.require_kube().patch_custom(
            group=models.GROUP, version=models.VERSION, plural=models.WORKFLOW_RUN_PLURAL,
            namespace=namespace, name=run, patch={"spec": {"shutdown": models.ShutdownMode.TERMINATE.value}},
        )  # fmt: skip
        rt.metrics.schedule_runs.labels("replaced").inc()
    kopf.info(
        body, reason="Replaced", message=short(f"stopping {', '.join(active)} (concurrencyPolicy Replace)")
    )
    return list(active)


async def _start(
    rt: Runtime,
    body: Any,
    memory: ScheduleMemory,
    spec: WorkflowScheduleSpec,
    decided: Plan,
    *,
    name: str,
    namespace: str,
    uid: str,
) -> list[str]:
    """Create the WorkflowRun of each fire time to start; the names of those created now."""
    started = []
    for moment in decided.start:
        run = run_name(name, moment)
        manifest = {
            "apiVersion": models.API_VERSION,
            "kind": "WorkflowRun",
            "metadata": {
                "name": run,
                "namespace": namespace,
                "labels": {SCHEDULE_LABEL: name},
                "annotations": {SCHEDULED_AT_ANNOTATION: moment.isoformat()},
                "ownerReferences": [
                    {
                        "apiVersion": models.API_VERSION,
                        "kind": "WorkflowSchedule",
                        "name": name,
                        "uid": uid,
                        "controller": True,
                    },
                ],
            },
            "spec": spec.run_template.to_body(),
        }
        created = await rt.require_kube().create_custom(
            group=models.GROUP, version=models.VERSION, plural=models.WORKFLOW_RUN_PLURAL,
            namespace=namespace, body=manifest,
        )  # fmt: skip
        if not created:
            continue  # an earlier tick (or operator) created it: a fire time never starts twice
        memory.created[run] = moment
        started.append(run)
        rt.metrics.schedule_runs.labels("started").inc()
        kopf.info(body, reason="Started", message=f"created WorkflowRun {run} for {moment.isoformat()}")
        log.info("WorkflowSchedule %s/%s: created WorkflowRun %s for %s", namespace, name, run, moment)
    return started


def _publish(rt: Runtime, memory: ScheduleMemory, patch: kopf.Patch, status: dict[str, Any]) -> None:
    now = time.monotonic()
    changes = memory.coalescer.due(status, now=now)
    if changes:
        patch.status.update(changes)
        memory.coalescer.mark_sent(status, now=now)
        rt.metrics.status_patches.labels("workflowschedule").inc()
