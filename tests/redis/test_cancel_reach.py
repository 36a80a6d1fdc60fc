"""A cancel reaches running steps at once, and what they do after it is never committed.

The races are held open, not left to timing: the steps wait at a gate
(:mod:`tests.redis.gateflows`) until the test has recorded the cancel, then the gate opens.

Cases:
* cancel -> interruption of a running step: with the worker's poll of its runs set to a
  minute, the interrupt still arrives through the workflow's control stream; every trial
  within 250 ms (about 5-30 ms on an idle 2-core machine; the bound leaves room for a
  loaded one), the figures printed;
* a real worker process interrupts its running steps on a cancel within a second, its poll
  left at the default 0.5 s;
* ``cancel --no-interrupt``: the running steps finish after the cancel is recorded (the gate
  opens only then) and nothing of them lands: context, counters, metrics, outputs, item states;
* a step that finishes although it was interrupted (it ignores the interrupt, as a step
  ending just as the cancel arrives does) commits nothing;
* the status change appends to the control stream only for a cancel with interrupt.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from floxide.distributed import DistributedWorker, RunStatus, start_run
from floxide.redis import RedisBackend
from tests.distributed.flows import read_marks
from tests.redis.conftest import NAMESPACE, Workers
from tests.redis.gateflows import Gates, gated, release

pytestmark = pytest.mark.timeout(120)

TARGET = "tests.redis.gateflows:gated"


async def eventually(check: Any, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def started(marks: Path, run_id: str, n: int) -> Any:
    async def check() -> bool:
        return len(read_marks(marks, run_id, "start")) >= n

    return check


async def pending(backend: RedisBackend) -> int:
    summary = await backend.client.xpending(backend.keys.stream, "floxide-workers")
    return int(summary["pending"])


def backend_for(redis: Redis) -> RedisBackend:
    return RedisBackend(redis, gated.name, namespace=NAMESPACE, context_type=gated.context_type)


async def test_a_cancel_interrupts_a_running_step_within_250_ms_without_the_poll(
    redis: Redis, marks: Path
) -> None:
    backend = backend_for(redis)
    worker = DistributedWorker(gated, backend, concurrency=4, control_interval=60.0, block=0.5)
    running = asyncio.create_task(worker.run())
    latencies = []
    try:
        for _ in range(5):
            run_id = await start_run(gated, backend, Gates(count=1))
            await eventually(started(marks, run_id, 1), timeout=30, what="the step to start")
            await asyncio.sleep(0.05)  # the step is waiting at its gate, the listener at its XREAD
            cancelled_at = time.time()
            assert (
                await backend.set_status(run_id, RunStatus.CANCELLED, interrupt=True) is RunStatus.CANCELLED
            )

            async def interrupted(run_id: str = run_id) -> bool:
                return bool(read_marks(marks, run_id, "interrupted"))

            await eventually(interrupted, timeout=30, what="the step to be interrupted")
            latencies.append(read_marks(marks, run_id, "interrupted")[0].at - cancelled_at)
            release(marks, run_id)
    finally:
        worker.stop()
        await asyncio.wait_for(running, 30)
    print(f"cancel -> interruption (s): {', '.join(f'{x:.3f}' for x in latencies)}; "
          f"median {statistics.median(latencies):.3f}")  # fmt: skip
    assert max(latencies) < 0.25, latencies


@pytest.mark.slow
async def test_a_worker_process_interrupts_its_steps_on_a_cancel(
    redis: Redis, workers: Workers, marks: Path
) -> None:
    await workers.start(TARGET, count=1, concurrency=4)
    backend = backend_for(redis)
    run_id = await start_run(gated, backend, Gates(count=3))
    await eventually(started(marks, run_id, 3), timeout=30, what="three running steps")
    cancelled_at = time.time()
    assert await backend.set_status(run_id, RunStatus.CANCELLED, interrupt=True) is RunStatus.CANCELLED

    async def interrupted() -> bool:
        return len(read_marks(marks, run_id, "interrupted")) == 3

    await eventually(interrupted, timeout=30, what="the steps to be interrupted")
    latest = max(m.at for m in read_marks(marks, run_id, "interrupted"))
    assert latest - cancelled_at < 1.0
    await eventually(lambda: _zero(backend), timeout=30, what="every entry acknowledged")
    assert await backend.contexts.get(run_id) == {"total": 0}


async def _zero(backend: RedisBackend) -> bool:
    return await pending(backend) == 0


async def _unchanged(backend: RedisBackend, run_id: str, marks: Path, ends: int) -> None:
    """Wait for ``ends`` ended steps and an empty pending list, then check the run took nothing."""

    async def ended() -> bool:
        return len(read_marks(marks, run_id, "end")) >= ends and await pending(backend) == 0

    await eventually(ended, timeout=30, what="the held steps to finish")
    await asyncio.sleep(0.3)  # a commit issued right after the last mark has landed by now
    assert await backend.contexts.get(run_id) == {"total": 0}
    info = await backend.runs.get(run_id)
    assert info is not None
    assert (info.status, info.items_done, info.items_total) == (RunStatus.CANCELLED, 1, 4)
    metrics = await backend.metrics.get(run_id)
    assert "hold" not in metrics.nodes or metrics.nodes["hold"].completed == 0
    assert await backend.runs.outputs(run_id) == []
    states = {s.status.value for s in await backend.items.list(run_id) if s.node == "hold"}
    assert "Completed" not in states, states


@pytest.mark.slow
async def test_steps_finishing_after_a_cancel_without_interrupt_commit_nothing(
    redis: Redis, workers: Workers, marks: Path
) -> None:
    await workers.start(TARGET, count=1, concurrency=4)
    backend = backend_for(redis)
    run_id = await start_run(gated, backend, Gates(count=3))
    await eventually(started(marks, run_id, 3), timeout=30, what="three steps at the gate")
    assert await backend.set_status(run_id, RunStatus.CANCELLED, interrupt=False) is RunStatus.CANCELLED
    release(marks, run_id)  # only now, the cancel recorded: the steps finish and commit
    await _unchanged(backend, run_id, marks, 3)
    assert read_marks(marks, run_id, "interrupted") == []


@pytest.mark.slow
async def test_a_step_finishing_despite_its_interrupt_commits_nothing(
    redis: Redis, workers: Workers, marks: Path
) -> None:
    await workers.start(TARGET, count=1, concurrency=4)
    backend = backend_for(redis)
    run_id = await start_run(gated, backend, Gates(count=3, stubborn=True))
    await eventually(started(marks, run_id, 3), timeout=30, what="three steps at the gate")
    assert await backend.set_status(run_id, RunStatus.CANCELLED, interrupt=True) is RunStatus.CANCELLED

    async def interrupted() -> bool:
        return len(read_marks(marks, run_id, "interrupted")) == 3

    await eventually(interrupted, timeout=30, what="the steps to be interrupted")
    release(marks, run_id)  # they go on regardless, finish and hand their outcome in
    await _unchanged(backend, run_id, marks, 3)


async def test_only_a_cancel_with_interrupt_is_announced(redis: Redis) -> None:
    backend = backend_for(redis)
    position, _ = await backend.interrupts(None, block=0.1)
    quiet = await start_run(gated, backend, Gates(count=1))
    loud = await start_run(gated, backend, Gates(count=1))
    await backend.set_status(quiet, RunStatus.PAUSED)
    await backend.set_status(quiet, RunStatus.CANCELLED, interrupt=False)
    await backend.set_status(loud, RunStatus.CANCELLED, interrupt=True)
    position, runs = await backend.interrupts(position, block=0.1)
    assert runs == [loud]
    assert (await backend.interrupts(position, block=0.1))[1] == []
