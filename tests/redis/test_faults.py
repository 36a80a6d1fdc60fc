"""Fault tests: real worker processes killed, Redis restarted, runs paused, cancelled, failed.

Nodes of :mod:`tests.distributed.flows` write *marks* (a side effect outside the run) so
the tests see how often node code ran; the run's context and metrics show what was
committed. Every test polls with a timeout instead of sleeping.

Cases:
* SIGKILL a worker in the middle of steps: its items are reclaimed once the lease runs out
  (not before: a live worker's long steps keep theirs), the run completes with the right
  output, and each item was committed once (completed count = item count, the context
  summed once per item) although the killed steps' node code ran twice;
* SIGTERM a worker in the middle of a long step: it drains within its drain time, cuts the
  step, releases its item (pending, reclaimable at once: no lease to wait out) and exits 0;
  another worker then runs the step and the run completes;
* restart Redis (AOF on, every write fsynced) while a chain runs: the workers reconnect, the
  run completes, every step committed once;
* pause mid-run: the in-flight step's successor is parked, nothing moves while paused;
  resume: the run completes;
* cancel mid-run: running steps are interrupted at once, queued items are dropped, nothing
  is committed after the cancel, the run stays Cancelled;
* a node that always fails: retried with backoff through the delayed queue (the retry waits
  in Redis while no worker is alive, and a new worker runs it), then the run fails with
  the error in ``errors`` and the dead-letter stream; ``retry`` re-runs it from the failed
  node (the node before it does not run again) and the run completes;
* bad input seeded without the workflow's code (``seed_run``): the run fails with a message
  naming the field; a good one seeded the same way completes;
* a deadline (``deadline_seconds``) fails the run and interrupts its running step.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from redis.asyncio import Redis

from examples import countdown
from floxide import Workflow
from floxide.distributed import DistributedOrchestrator, ItemStatus, RunStatus
from floxide.distributed.execution import seed_run
from floxide.redis import GROUP, RedisBackend, RedisSettings
from tests.distributed import flows
from tests.distributed.flows import Mark, read_marks
from tests.redis.conftest import NAMESPACE, RedisServer, Workers

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

T = TypeVar("T")
FANOUT = "tests.distributed.flows:fanout"


async def eventually(check: Callable[[], Awaitable[T]], *, timeout: float, what: str) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


def orchestrator_for(redis: Redis, workflow: Workflow[Any, Any]) -> DistributedOrchestrator:
    backend = RedisBackend(redis, workflow.name, namespace=NAMESPACE, context_type=workflow.context_type)
    return DistributedOrchestrator(workflow, backend)


def by_item(marks: list[Mark]) -> dict[str, list[Mark]]:
    items: dict[str, list[Mark]] = {}
    for m in marks:
        items.setdefault(m.item_id, []).append(m)
    return items


# -- worker deaths ----------------------------------------------------------------------------------


async def test_a_worker_killed_mid_step(redis: Redis, workers: Workers, marks: Path) -> None:
    await workers.start(FANOUT, count=2, concurrency=2, lease=2.0)
    fanout = orchestrator_for(redis, flows.fanout)
    run_id = await fanout.start_run(flows.Job(count=4, seconds=2.5))

    async def first_start() -> Mark | None:
        starts = read_marks(marks, run_id, "start")
        return starts[0] if starts else None

    victim_pid = (await eventually(first_start, timeout=30, what="a step to start")).pid
    workers.kill(workers.by_pid(victim_pid))
    killed_at = time.time()
    killed = {m.item_id for m in read_marks(marks, run_id, "start") if m.pid == victim_pid}
    assert killed

    info = await fanout.wait_for_completion(run_id, timeout=60)
    assert info.status is RunStatus.COMPLETED, info.error
    assert info.output == {"values": list(range(4)), "total": 4}
    assert (await fanout.context(run_id)).total == 4  # committed once per item
    metrics = await fanout.metrics(run_id)
    assert (metrics.nodes["work"].created, metrics.nodes["work"].completed) == (4, 4)
    assert info.items_done == info.items_total == 6

    items = by_item(read_marks(marks, run_id))
    assert len(items) == 4
    for item_id, item_marks in items.items():
        starts = [m for m in item_marks if m.event == "start"]
        ends = [m for m in item_marks if m.event == "end"]
        assert len(ends) == 1 and ends[0].pid != victim_pid, item_id
        if item_id in killed:  # its node code ran twice, once in the dead worker
            assert len(starts) == 2 and starts[0].pid == victim_pid != starts[1].pid, item_marks
            assert starts[1].at > killed_at  # not taken from the victim while it lived...
            assert starts[1].at - starts[0].at >= 2.0  # ...but once its 2 s lease ran out
        else:  # a long step of a live worker keeps its lease (2.5 s step, 2 s lease)
            assert len(starts) == 1, item_marks


async def test_a_worker_stopped_mid_step_drains_and_releases(
    redis: Redis, workers: Workers, marks: Path
) -> None:
    [first] = await workers.start(FANOUT, count=1, concurrency=1, lease=4.0, drain=1.0)
    fanout = orchestrator_for(redis, flows.fanout)
    backend = fanout.backend
    assert isinstance(backend, RedisBackend)
    run_id = await fanout.start_run(flows.Job(count=1, seconds=3.0))

    async def running() -> list[Mark]:
        return read_marks(marks, run_id, "start")

    await eventually(running, timeout=30, what="the step to start")
    stopped_at = time.monotonic()
    assert await asyncio.to_thread(workers.terminate, first, timeout=15) == 0  # drained cleanly
    assert time.monotonic() - stopped_at < 5.0
    assert [m.event for m in read_marks(marks, run_id)] == ["start", "interrupted"]  # cut by the drain
    [pending] = await redis.xpending_range(backend.keys.stream, GROUP, min="-", max="+", count=10)
    assert f"-{first.pid}-" in pending["consumer"]
    assert pending["time_since_delivered"] > 10**9  # released: reclaimable at once, not after the lease

    [second] = await workers.start(FANOUT, count=1, concurrency=1, lease=4.0)
    info = await fanout.wait_for_completion(run_id, timeout=60)
    assert info.status is RunStatus.COMPLETED, info.error
    assert info.output == {"values": [0], "total": 1}
    item_marks = read_marks(marks, run_id)
    assert [(m.event, m.pid) for m in item_marks] == [
        ("start", first.pid), ("interrupted", first.pid), ("start", second.pid), ("end", second.pid),
    ]  # fmt: skip


# -- Redis restarts --------------------------------------------------------------------------------------


async def test_redis_restarts_between_steps(aof_redis: RedisServer, workers: Workers) -> None:
    started = await workers.start("examples.countdown:workflow", count=2, url=aof_redis.url)
    redis = RedisSettings(url=aof_redis.url).client()  # as the operator and the CLI connect
    try:
        chain = orchestrator_for(redis, countdown.workflow)
        run_id = await chain.start_run(countdown.Countdown(steps=6, delay=0.25))

        async def two_steps() -> bool:
            return (await chain.metrics(run_id)).nodes["tick"].completed >= 2

        await eventually(two_steps, timeout=30, what="two steps")
        await asyncio.to_thread(aof_redis.restart)
        assert (await chain.run(run_id)).status is RunStatus.RUNNING  # the AOF kept the run
        info = await chain.wait_for_completion(run_id, timeout=60)
        assert info.status is RunStatus.COMPLETED, info.error
        assert info.output == 6
        metrics = await chain.metrics(run_id)
        assert (metrics.nodes["tick"].created, metrics.nodes["tick"].completed) == (6, 6)
        assert info.items_done == info.items_total == 6
        assert all(w.alive() for w in started)
    finally:
        await redis.aclose()


# -- pause, resume, cancel -------------------------------------------------------------------------------


async def test_pause_holds_a_run_until_resumed(redis: Redis, workers: Workers) -> None:
    await workers.start("examples.countdown:workflow", count=2)
    chain = orchestrator_for(redis, countdown.workflow)
    run_id = await chain.start_run(countdown.Countdown(steps=6, delay=0.2))

    async def two_steps() -> bool:
        return (await chain.metrics(run_id)).nodes["tick"].completed >= 2

    await eventually(two_steps, timeout=30, what="two steps")
    assert await chain.pause(run_id) is RunStatus.PAUSED

    async def parked() -> bool:
        states = await chain.list_work_items(run_id)
        return any(s.status is ItemStatus.PARKED for s in states) and not any(
            s.status is ItemStatus.RUNNING for s in states
        )

    await eventually(parked, timeout=10, what="the next step to be parked")
    held = await chain.run(run_id)
    watched_until = time.monotonic() + 1.5
    while time.monotonic() < watched_until:  # nothing moves while paused
        now = await chain.run(run_id)
        assert (now.status, now.items_done, now.items_total) == (
            RunStatus.PAUSED,
            held.items_done,
            held.items_total,
        )
        assert await chain.backend.queue.backlog() == (0, 0)
        await asyncio.sleep(0.1)
    assert 2 <= held.items_done < 6

    assert await chain.resume(run_id) is RunStatus.RUNNING
    info = await chain.wait_for_completion(run_id, timeout=60)
    assert info.status is RunStatus.COMPLETED and info.output == 6
    assert (await chain.metrics(run_id)).nodes["tick"].completed == 6


async def test_cancel_interrupts_and_drops(redis: Redis, workers: Workers, marks: Path) -> None:
    await workers.start(FANOUT, count=2, concurrency=2)
    fanout = orchestrator_for(redis, flows.fanout)
    run_id = await fanout.start_run(flows.Job(count=8, seconds=30))

    async def four_running() -> bool:
        return len(read_marks(marks, run_id, "start")) >= 4

    await eventually(four_running, timeout=30, what="four steps to run")
    cancelled_at = time.monotonic()
    assert await fanout.cancel(run_id) is RunStatus.CANCELLED

    async def interrupted() -> bool:
        return len(read_marks(marks, run_id, "interrupted")) == 4

    await eventually(interrupted, timeout=10, what="the running steps to be interrupted")
    assert time.monotonic() - cancelled_at < 5

    async def drained() -> bool:
        return await fanout.backend.queue.backlog() == (0, 0) and await fanout.pending_work(run_id) == []

    await eventually(drained, timeout=15, what="the queued items to be dropped")
    assert len(read_marks(marks, run_id, "start")) == 4  # the 4 queued items never ran
    assert read_marks(marks, run_id, "end") == []
    info = await fanout.run(run_id)
    assert (info.status, info.items_done, info.has_output) == (RunStatus.CANCELLED, 1, False)
    assert (await fanout.context(run_id)).total == 0
    assert (await fanout.metrics(run_id)).nodes["work"].completed == 0


# -- failures ----------------------------------------------------------------------------------------------


async def test_a_failing_node_retries_durably_fails_and_is_retried(
    redis: Redis, workers: Workers, marks: Path
) -> None:
    [lonely] = await workers.start("tests.distributed.flows:fragile", count=1)
    fragile = orchestrator_for(redis, flows.fragile)
    backend = fragile.backend
    assert isinstance(backend, RedisBackend)
    run_id = await fragile.start_run(1)

    async def waiting_retry() -> bool:
        return await redis.zcard(backend.keys.delayed) == 1

    await eventually(waiting_retry, timeout=30, what="the first retry to wait in the delayed queue")
    workers.kill(lonely)  # no worker is alive while the retry waits: it waits in Redis
    [delayed] = await redis.zrange(backend.keys.delayed, 0, -1)
    assert '"attempt":2' in delayed
    fresh = await workers.start("tests.distributed.flows:fragile", count=2)

    info = await fragile.wait_for_completion(run_id, timeout=60)
    assert info.status is RunStatus.FAILED
    assert info.error == "node 'attempt' failed: RuntimeError: switch is off (attempt 3)"
    attempts = [m for m in read_marks(marks, run_id) if m.event.startswith("attempt-")]
    assert [m.event for m in attempts] == ["attempt-1", "attempt-2", "attempt-3"]
    assert attempts[0].pid == lonely.pid and {attempts[1].pid, attempts[2].pid} <= {w.pid for w in fresh}
    assert attempts[2].at - attempts[1].at >= 1.5  # exponential backoff: 0.8 s, then 1.6 s
    errors = await fragile.errors(run_id)
    assert [(e.node, e.attempt, e.permanent) for e in errors] == [
        ("attempt", 1, False),
        ("attempt", 2, False),
        ("attempt", 3, True),
    ]
    assert errors[-1].message == "switch is off (attempt 3)" and "RuntimeError" in errors[-1].traceback
    dead = [fields for _, fields in await redis.xrange(backend.keys.dead) if fields["run"] == run_id]
    assert len(dead) == 1 and '"node":"attempt"' in dead[0]["item"]
    metrics = await fragile.metrics(run_id)
    assert (metrics.nodes["attempt"].retries, metrics.nodes["attempt"].failed) == (2, 1)

    flows.switch_on(marks)
    assert await fragile.retry(run_id) is RunStatus.RUNNING
    info = await fragile.wait_for_completion(run_id, timeout=60)
    assert info.status is RunStatus.COMPLETED and info.output == "fixed 2"
    assert len(read_marks(marks, run_id, "prepare")) == 1  # resumed where it failed
    assert [m.event for m in read_marks(marks, run_id) if m.event.startswith("attempt-")][-1] == "attempt-1"
    metrics = await fragile.metrics(run_id)
    assert (metrics.nodes["attempt"].completed, metrics.nodes["attempt"].failed) == (1, 0)


async def test_bad_input_seeded_without_the_workflow(redis: Redis, workers: Workers) -> None:
    await workers.start("examples.countdown:workflow", count=2)
    chain = orchestrator_for(redis, countdown.workflow)
    bad = await seed_run(chain.backend, start_node="tick", payload={"steps": "many", "delay": 0})
    good = await seed_run(chain.backend, start_node="tick", payload={"steps": 2, "delay": 0})
    failed = await chain.wait_for_completion(bad, timeout=30)
    assert failed.status is RunStatus.FAILED
    assert failed.error is not None
    assert "input of node 'tick'" in failed.error and "steps" in failed.error and "many" in failed.error
    [error] = await chain.errors(bad)
    assert (error.error_type, error.permanent, error.attempt) == ("InputError", True, 1)
    done = await chain.wait_for_completion(good, timeout=30)
    assert (done.status, done.output) == (RunStatus.COMPLETED, 2)


async def test_a_deadline_fails_the_run_and_interrupts_its_step(
    redis: Redis, workers: Workers, marks: Path
) -> None:
    await workers.start(FANOUT, count=2)
    fanout = orchestrator_for(redis, flows.fanout)
    started = time.monotonic()
    run_id = await fanout.start_run(flows.Job(count=1, seconds=30), deadline_seconds=2.0)
    info = await fanout.wait_for_completion(run_id, timeout=30)
    assert info.status is RunStatus.FAILED and info.error == "run exceeded its deadline"
    assert time.monotonic() - started < 10

    async def interrupted() -> list[Mark]:
        return read_marks(marks, run_id, "interrupted")

    await eventually(interrupted, timeout=10, what="the running step to be interrupted")
    assert len(read_marks(marks, run_id, "start")) == 1 and read_marks(marks, run_id, "end") == []
    assert (await fanout.metrics(run_id)).nodes["work"].completed == 0
    assert [i.node for i in await fanout.pending_work(run_id)] == ["work"]  # kept for a retry
