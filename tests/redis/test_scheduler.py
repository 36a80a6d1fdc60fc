"""``floxide schedule`` on Redis: a scheduler with a clock the test moves, real worker processes.

* the scheduler was down across five fire times: None starts none of them, Latest the most
  recent, All the most recent maxRuns, oldest first; the next fire time starts in every case;
* Forbid skips fire times while a long run is active and starts again once it finished;
* Replace cancels the active run (its step is interrupted, it never ends) and starts the new;
* history limits delete the oldest finished runs' data; suspend skips fire times;
* a fire time never starts twice (a second scheduler on the same state starts nothing);
* the command: ``floxide schedule FILE`` submits on a seconds-cron until SIGTERM (and counts it
  in ``--metrics-port``'s ``floxide_schedule_runs_total``), ``--status``
  shows LAST/NEXT/ACTIVE, a bad file names the field (exit 2).
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from floxide.distributed import DistributedOrchestrator, RunStatus
from floxide.redis import RedisBackend
from floxide.redis.scheduler import Scheduled, Scheduler
from floxide.schedule import SchedulePolicy, run_name
from tests.redis import napflows
from tests.redis.conftest import NAMESPACE, ROOT, Workers
from tests.worker.helpers import child_env, floxide, free_port, http_get

pytestmark = [pytest.mark.timeout(180)]

TARGET = "tests.redis.napflows:nap"
T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


class Clock:
    """The time the scheduler sees; the test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def scheduled(name: str, seconds: float = 0.0, **policy: Any) -> Scheduled:
    return Scheduled(
        name=name,
        workflow=napflows.nap,
        policy=SchedulePolicy.model_validate({"schedule": "* * * * *", **policy}),
        input=napflows.Nap(seconds=seconds, label=name),
    )


def at(name: str, minute: int) -> str:
    return run_name(name, T0 + timedelta(minutes=minute), limit=200)


def nap(redis: Redis) -> DistributedOrchestrator:
    return DistributedOrchestrator(napflows.nap, RedisBackend(redis, "nap", namespace=NAMESPACE))


async def test_catch_up_policies_after_the_scheduler_was_down(redis: Redis, workers: Workers) -> None:
    schedules = [
        scheduled("none", catchUp={"policy": "None"}),
        scheduled("latest", catchUp={"policy": "Latest"}),
        scheduled("all", catchUp={"policy": "All", "maxRuns": 3}),
    ]
    clock = Clock(T0)
    first = Scheduler(redis, schedules, namespace=NAMESPACE, clock=clock)
    assert all(not r.started_now for r in await first.tick())  # nothing due yet
    clock.advance(minutes=5, seconds=30)  # down across the fire times of minutes 1..5
    restarted = Scheduler(redis, schedules, namespace=NAMESPACE, clock=clock)
    reports = {r.name: r for r in await restarted.tick()}
    assert reports["none"].started_now == []
    assert reports["latest"].started_now == [at("latest", 5)]
    assert reports["all"].started_now == [at("all", 3), at("all", 4), at("all", 5)]
    assert {name: r.skipped for name, r in reports.items()} == {"none": 5, "latest": 4, "all": 2}
    assert all(r.next == T0 + timedelta(minutes=6) for r in reports.values())
    clock.advance(minutes=1)  # watching again: the fire time of minute 6 starts everywhere
    reports = {r.name: r for r in await restarted.tick()}
    assert {name: r.started_now for name, r in reports.items()} == {n: [at(n, 6)] for n in reports}
    await workers.start(TARGET, count=1, concurrency=4)
    orchestrator = nap(redis)
    for run_id in [at("latest", 5), at("all", 3), at("all", 4), at("all", 5), at("none", 6)]:
        assert (await orchestrator.wait_for_completion(run_id, timeout=60)).status is RunStatus.COMPLETED
    again = Scheduler(redis, schedules, namespace=NAMESPACE, clock=clock)
    assert all(not r.started_now for r in await again.tick())  # a fire time never starts twice


async def test_forbid_skips_while_a_long_run_is_active(redis: Redis, workers: Workers) -> None:
    await workers.start(TARGET, count=1, concurrency=4)
    clock = Clock(T0)
    scheduler = Scheduler(
        redis, [scheduled("forbid", 8.0, concurrencyPolicy="Forbid")], namespace=NAMESPACE, clock=clock
    )
    await scheduler.tick()
    clock.advance(minutes=1)
    [report] = await scheduler.tick()
    assert report.started_now == [at("forbid", 1)]
    orchestrator = nap(redis)
    await wait_for_status(orchestrator, at("forbid", 1), RunStatus.RUNNING)
    clock.advance(minutes=1)
    [report] = await scheduler.tick()
    assert (report.started_now, report.skipped, report.active) == ([], 1, [at("forbid", 1)])
    await orchestrator.wait_for_completion(at("forbid", 1), timeout=30)
    clock.advance(minutes=1)
    [report] = await scheduler.tick()
    assert report.started_now == [at("forbid", 3)]


async def test_replace_cancels_the_active_run(redis: Redis, workers: Workers, marks: Path) -> None:
    await workers.start(TARGET, count=1, concurrency=4)
    clock = Clock(T0)
    scheduler = Scheduler(
        redis, [scheduled("replace", 60.0, concurrencyPolicy="Replace")], namespace=NAMESPACE, clock=clock
    )
    await scheduler.tick()
    clock.advance(minutes=1)
    await scheduler.tick()
    orchestrator = nap(redis)
    await wait_for_status(orchestrator, at("replace", 1), RunStatus.RUNNING)
    clock.advance(minutes=1)
    [report] = await scheduler.tick()
    assert (report.cancelled_now, report.started_now) == ([at("replace", 1)], [at("replace", 2)])
    assert (await orchestrator.run(at("replace", 1))).status is RunStatus.CANCELLED
    await wait_for_status(orchestrator, at("replace", 2), RunStatus.RUNNING)
    assert napflows.intervals(marks, [at("replace", 1)]) == {}  # its step was interrupted: no "end"
    await orchestrator.cancel(at("replace", 2))


async def test_history_limits_and_suspend(redis: Redis, workers: Workers) -> None:
    await workers.start(TARGET, count=1, concurrency=4)
    clock = Clock(T0)
    limited = scheduled("history", successfulRunsHistoryLimit=2, failedRunsHistoryLimit=0)
    scheduler = Scheduler(redis, [limited], namespace=NAMESPACE, clock=clock)
    orchestrator = nap(redis)
    await scheduler.tick()
    deleted: list[str] = []
    for minute in range(1, 5):
        clock.advance(minutes=1)
        [report] = await scheduler.tick()
        deleted += report.deleted_now
        await orchestrator.wait_for_completion(at("history", minute), timeout=30)
    clock.advance(seconds=10)
    [report] = await scheduler.tick()
    deleted += report.deleted_now
    assert deleted == [at("history", 1), at("history", 2)]  # the oldest, as soon as more than 2 succeeded
    assert [await orchestrator.backend.runs.get(at("history", m)) is None for m in range(1, 5)] == [
        True, True, False, False,
    ]  # fmt: skip
    suspended = scheduled("history", suspend=True, successfulRunsHistoryLimit=2)
    paused = Scheduler(redis, [suspended], namespace=NAMESPACE, clock=clock)
    clock.advance(minutes=3)
    [report] = await paused.tick()
    assert (report.started_now, report.suspended) == ([], True)
    assert report.skipped == 3  # minutes 5, 6 and 7
    resumed = Scheduler(redis, [limited], namespace=NAMESPACE, clock=clock)
    [report] = await resumed.tick()
    assert report.started_now == []  # fire times passed while suspended are not caught up
    clock.advance(minutes=1)
    [report] = await resumed.tick()
    assert report.started_now == [at("history", 8)]


async def wait_for_status(orchestrator: DistributedOrchestrator, run_id: str, status: RunStatus) -> None:
    for _ in range(600):
        info = await orchestrator.backend.runs.get(run_id)
        if info is not None and info.status is status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} never became {status.value}")


def test_the_command_submits_on_a_schedule_until_stopped(
    redis_url: str, workers: Workers, tmp_path: Path
) -> None:
    asyncio.run(workers.start(TARGET, count=1, concurrency=4))
    definitions = tmp_path / "schedules.yaml"
    definitions.write_text(
        "schedules:\n"
        "  - name: every-second\n"
        "    schedule: '* * * * * *'\n"
        "    concurrencyPolicy: Forbid\n"
        "    runTemplate:\n"
        f"      target: {TARGET}\n"
        "      priority: high\n"
        "      input: {seconds: 0, label: tick}\n",
        encoding="utf-8",
    )
    env = child_env(redis_url, FLOXIDE_NAMESPACE=NAMESPACE)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "floxide.cli", "schedule", str(definitions), "--interval", "0.2",
         "--metrics-port", str(port)],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        completed = asyncio.run(completed_runs(redis_url, at_least=3, timeout=60))
        code, text = http_get(port, "/metrics")
        assert code == 200
        started = re.search(
            r'floxide_schedule_runs_total\{result="started",schedule="every-second"\} (\S+)', text
        )
        assert started and float(started.group(1)) >= 3, text
        assert 'floxide_schedule_next_fire_timestamp_seconds{schedule="every-second"}' in text
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert all(run_id.startswith("every-second-") for run_id in completed)
    status = json.loads(floxide("status", completed[0], "-o", "json", env=env).stdout)
    assert status["priority"] == "high"  # the runTemplate's
    shown = floxide("schedule", str(definitions), "--status", "-o", "json", env=env)
    assert shown.returncode == 0, shown.stderr
    [state] = json.loads(shown.stdout)
    assert state["name"] == "every-second" and state["started"] >= 3
    assert state["last_schedule_time"] and state["next_schedule_time"] > state["last_schedule_time"]
    definitions.write_text(definitions.read_text().replace("Forbid", "Sometimes"), encoding="utf-8")
    bad = floxide("schedule", str(definitions), "--status", env=env)
    assert bad.returncode == 2
    assert "schedules.0.concurrencyPolicy" in bad.stderr and "'Allow', 'Forbid' or 'Replace'" in bad.stderr


async def completed_runs(url: str, *, at_least: int, timeout: float) -> list[str]:
    client = Redis.from_url(url, decode_responses=True)
    try:
        orchestrator = nap(client)
        for _ in range(int(timeout / 0.1)):
            done = [i.run_id for i in await orchestrator.list_runs(RunStatus.COMPLETED)]
            if len(done) >= at_least:
                return done
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()
    raise AssertionError(f"fewer than {at_least} scheduled runs completed in {timeout}s")
