"""The scheduler of ``floxide schedule``: starts runs in Redis at the fire times of schedules.

Each schedule keeps its state in a hash under its workflow's hash tag
(``fx:{wf:<ns>/<workflow>}:schedule:<name>``): when it was created, the last fire time dealt
with, the next one, how many runs it started and fire times it skipped, and the ids of its
runs. A scheduler that restarts reads it back, so fire times that passed while it was down
are *missed* and follow the schedule's catch-up policy (:func:`floxide.schedule.plan`).

A fire time's run id is ``<schedule>-<unix seconds>`` (:func:`~floxide.schedule.run_name`), so
starting is idempotent: a restarted scheduler, or a second one by mistake, never starts a
fire time twice. ``Replace`` cancels the schedule's active runs (running steps are
interrupted); the history limits delete the data of the oldest finished runs.

The clock is injected (``clock``), so tests move time instead of waiting for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from floxide.distributed.models import RunStatus, utcnow
from floxide.distributed.orchestrator import DistributedOrchestrator
from floxide.distributed.priority import Priority
from floxide.errors import AlreadyCompleted, NotStarted
from floxide.redis.backend import RedisBackend
from floxide.redis.clients import Client
from floxide.schedule import Plan, SchedulePolicy, plan, run_name
from floxide.workflow import Workflow

__all__ = ["ScheduleReport", "Scheduled", "Scheduler", "delete_run"]

log = logging.getLogger(__name__)


@dataclass
class Scheduled:
    """One schedule, resolved: its policy and what each of its runs is."""

    name: str
    workflow: Workflow[Any, Any]
    policy: SchedulePolicy
    input: Any = None
    serve_as: str | None = None
    deadline_seconds: float | None = None
    ttl_seconds: float | None = None
    priority: Priority = "normal"


@dataclass
class ScheduleReport:
    """A schedule's state after a tick (what ``floxide schedule --status`` shows)."""

    name: str
    workflow: str
    schedule: str
    suspended: bool
    last: datetime | None
    next: datetime | None
    active: list[str] = field(default_factory=list)
    started: int = 0
    skipped: int = 0
    started_now: list[str] = field(default_factory=list)
    cancelled_now: list[str] = field(default_factory=list)
    deleted_now: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "workflow": self.workflow,
            "schedule": self.schedule,
            "suspended": self.suspended,
            "last_schedule_time": self.last.isoformat() if self.last else None,
            "next_schedule_time": self.next.isoformat() if self.next else None,
            "active": self.active,
            "started": self.started,
            "skipped": self.skipped,
        }


class Scheduler:
    """Starts the runs of ``schedules`` at their fire times (call :meth:`tick`, or :meth:`run`)."""

    def __init__(
        self,
        client: Client,
        schedules: Sequence[Scheduled],
        *,
        namespace: str = "default",
        ttl: float = 7 * 24 * 3600,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        names = [s.name for s in schedules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"schedule names must be unique: {', '.join(duplicates)}")
        self.client = client
        self.schedules = list(schedules)
        self.namespace = namespace
        self.ttl = ttl
        self.clock = clock
        self.watching_since = clock()
        """Fire times before this moment passed while no scheduler watched: they were missed."""

    def backend(self, scheduled: Scheduled) -> RedisBackend:
        ttl = scheduled.ttl_seconds if scheduled.ttl_seconds is not None else self.ttl
        return RedisBackend(
            self.client,
            scheduled.serve_as or scheduled.workflow.name,
            namespace=self.namespace,
            context_type=scheduled.workflow.context_type,
            ttl=ttl,
        )

    async def run(
        self,
        stop: asyncio.Event,
        *,
        interval: float = 1.0,
        on_tick: Callable[[list[ScheduleReport]], None] | None = None,
    ) -> None:
        """Tick every ``interval`` seconds until ``stop`` is set; ``on_tick`` sees each tick's reports."""
        while not stop.is_set():
            reports = await self.tick()
            if on_tick is not None:
                on_tick(reports)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)

    async def tick(self) -> list[ScheduleReport]:
        """Look at every schedule once: clean up its history, start what is due."""
        return [await self.tick_one(scheduled) for scheduled in self.schedules]

    async def status(self) -> list[ScheduleReport]:
        """Every schedule's stored state, without acting."""
        reports = []
        for scheduled in self.schedules:
            backend = self.backend(scheduled)
            state = await _load(backend, scheduled.name)
            runs = await _classify(backend, state["runs"])
            reports.append(_report(scheduled, state, runs["active"]))
        return reports

    async def tick_one(self, scheduled: Scheduled) -> ScheduleReport:
        backend = self.backend(scheduled)
        key = backend.keys.schedule(scheduled.name)
        now = self.clock()
        state = await _load(backend, scheduled.name)
        if state["created"] is None:
            state["created"] = now
            await self.client.hsetnx(key, "created", now.isoformat())
        runs = await _classify(backend, state["runs"])
        policy = scheduled.policy
        deleted = await _trim_history(backend, runs, policy)
        since = state["last"] or state["created"]
        decided: Plan = plan(
            policy, since=since, now=now, watching_since=self.watching_since, active=len(runs["active"])
        )
        orchestrator = DistributedOrchestrator(scheduled.workflow, backend)
        cancelled = []
        if decided.cancel_active:
            for run_id in runs["active"]:
                try:
                    await orchestrator.cancel(run_id, interrupt=True)
                except (AlreadyCompleted, NotStarted):
                    continue
                cancelled.append(run_id)
                log.info("schedule %s: cancelled run %s (Replace)", scheduled.name, run_id)
            runs["active"] = [r for r in runs["active"] if r not in cancelled]
            runs["failed"] += cancelled
        started = []
        for moment in decided.start:
            run_id = run_name(scheduled.name, moment, limit=200)
            await orchestrator.start_run(
                scheduled.input,
                run_id=run_id,
                deadline_seconds=scheduled.deadline_seconds,
                priority=scheduled.priority,
            )
            started.append(run_id)
            log.info("schedule %s: started run %s for %s", scheduled.name, run_id, moment.isoformat())
        if decided.skipped:
            log.info(
                "schedule %s: skipped %d fire time(s) up to %s", scheduled.name, decided.skipped, decided.last
            )
        kept = [r for r in state["runs"] if r not in deleted and r not in runs["gone"]]
        kept += [r for r in started if r not in kept]
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "last": decided.last.isoformat() if decided.last else "",
                    "next": decided.next.isoformat() if decided.next else "",
                    "runs": json.dumps(kept),
                },
            )
            pipe.hincrby(key, "started", len(started))
            pipe.hincrby(key, "skipped", decided.skipped)
            await pipe.execute()
        state.update(last=decided.last, next=decided.next, runs=kept)
        state["started"] += len(started)
        state["skipped"] += decided.skipped
        report = _report(scheduled, state, [*runs["active"], *started])
        report.started_now, report.cancelled_now, report.deleted_now = started, cancelled, deleted
        return report


def _report(scheduled: Scheduled, state: dict[str, Any], active: list[str]) -> ScheduleReport:
    return ScheduleReport(
        name=scheduled.name,
        workflow=scheduled.serve_as or scheduled.workflow.name,
        schedule=scheduled.policy.schedule,
        suspended=scheduled.policy.suspend,
        last=state["last"],
        next=state["next"],
        active=active,
        started=state["started"],
        skipped=state["skipped"],
    )


async def _load(backend: RedisBackend, name: str) -> dict[str, Any]:
    raw = cast(dict[str, str], await backend.client.hgetall(backend.keys.schedule(name)))

    def moment(field: str) -> datetime | None:
        return datetime.fromisoformat(raw[field]) if raw.get(field) else None

    return {
        "created": moment("created"),
        "last": moment("last"),
        "next": moment("next"),
        "runs": json.loads(raw.get("runs") or "[]"),
        "started": int(raw.get("started") or 0),
        "skipped": int(raw.get("skipped") or 0),
    }


async def _classify(backend: RedisBackend, run_ids: list[str]) -> dict[str, list[str]]:
    """The schedule's runs (oldest first) by state: active, succeeded, failed (or cancelled), gone."""
    found: dict[str, list[str]] = {"active": [], "succeeded": [], "failed": [], "gone": []}
    if not run_ids:
        return found
    async with backend.client.pipeline(transaction=False) as pipe:
        for run_id in run_ids:
            pipe.hget(backend.run_keys(run_id).info, "status")
        statuses = await pipe.execute()
    for run_id, status in zip(run_ids, statuses, strict=True):
        if status is None:
            found["gone"].append(run_id)
        elif status == RunStatus.COMPLETED.value:
            found["succeeded"].append(run_id)
        elif status in (RunStatus.FAILED.value, RunStatus.CANCELLED.value):
            found["failed"].append(run_id)
        else:
            found["active"].append(run_id)
    return found


async def _trim_history(
    backend: RedisBackend, runs: dict[str, list[str]], policy: SchedulePolicy
) -> list[str]:
    """Delete the oldest finished runs beyond the history limits; their ids."""
    doomed = runs["succeeded"][: max(len(runs["succeeded"]) - policy.successful_runs_history_limit, 0)]
    doomed += runs["failed"][: max(len(runs["failed"]) - policy.failed_runs_history_limit, 0)]
    for run_id in doomed:
        await delete_run(backend, run_id)
    runs["succeeded"] = [r for r in runs["succeeded"] if r not in doomed]
    runs["failed"] = [r for r in runs["failed"] if r not in doomed]
    return doomed


async def delete_run(backend: RedisBackend, run_id: str) -> int:
    """Stop a run (interrupting running steps) and delete its keys; how many keys went."""
    await backend.set_status(run_id, RunStatus.CANCELLED, reason="deleted", interrupt=True)
    keys = await backend.all_run_keys(run_id)
    async with backend.client.pipeline(transaction=False) as pipe:
        for start in range(0, len(keys), 100):
            pipe.delete(*keys[start : start + 100])
        pipe.zrem(backend.keys.runs, run_id)
        replies = await pipe.execute()
    return sum(int(reply) for reply in replies[:-1])
