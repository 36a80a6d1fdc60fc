"""Run priorities with real worker processes on a real redis-server.

Cases:
* a low-priority run with a long backlog, then a high-priority run: the high one finishes
  first, while the low one still completes steps meanwhile (no starvation); both complete;
  the runs show their priority; the high run's items went through the ``high`` class's
  stream and the low run's through the ``low`` one, and trimming trims both;
* a workflow whose runs are all ``normal`` uses the one plain stream (no class streams);
* a bad priority is refused before anything is stored, naming the allowed classes;
* the claim order: of every 10 claims with all classes busy, 6 start with high, 3 with
  normal, 1 with low; with only low and normal busy, normal is first 3 times in 4.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from floxide.distributed import DistributedOrchestrator, RunStatus
from floxide.distributed.priority import ClassOrder
from floxide.redis import RedisBackend
from tests.redis.conftest import NAMESPACE, Workers
from tests.redis.priority_flows import Chunk, batch, ends

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def orchestrator(redis: Redis) -> DistributedOrchestrator:
    return DistributedOrchestrator(batch, RedisBackend(redis, batch.name, namespace=NAMESPACE))


async def finished_at(orch: DistributedOrchestrator, run_id: str, *, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = await orch.run(run_id)
        if info.status.finished:
            assert info.status is RunStatus.COMPLETED, info.error
            assert info.finished_at is not None
            return info.finished_at.timestamp()
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish within {timeout}s")


async def test_a_high_priority_run_goes_first_and_the_low_one_still_moves(
    redis: Redis, workers: Workers, marks: Path
) -> None:
    await workers.start("tests.redis.priority_flows:batch", count=2, concurrency=2)
    orch = orchestrator(redis)
    low = await orch.start_run(Chunk(label="low", count=400, hold=0.05), priority="low")
    deadline = time.monotonic() + 30
    while len(ends(marks).get("low", [])) < 5:  # the low run is under way
        assert time.monotonic() < deadline, "the low run never started"
        await asyncio.sleep(0.05)
    started = time.time()
    high = await orch.start_run(Chunk(label="high", count=60, hold=0.05), priority="high")
    high_done = await finished_at(orch, high, timeout=60)
    low_done = await finished_at(orch, low, timeout=90)
    assert high_done < low_done, "the high-priority run finished first"
    meanwhile = [t for t in ends(marks)["low"] if started <= t <= high_done]
    assert meanwhile, "the low-priority run still completed steps while the high one ran"
    assert len(meanwhile) < 60, "but far fewer than the high one"
    print(f"high: 60 steps in {high_done - started:.2f}s; low steps meanwhile: {len(meanwhile)}")
    assert (await orch.run(high)).priority == "high" and (await orch.run(low)).priority == "low"
    keys = orch.backend.keys  # type: ignore[attr-defined]
    assert await redis.xlen(f"{keys.stream}:high") >= 61 and await redis.xlen(f"{keys.stream}:low") >= 401
    assert await redis.smembers(keys.priorities) == {"high", "low"}
    assert await orch.backend.trim() >= 60 + 400  # type: ignore[attr-defined]  # every class's stream
    assert await redis.xlen(f"{keys.stream}:high") <= 1 and await redis.xlen(f"{keys.stream}:low") <= 1


async def test_normal_runs_use_the_plain_stream(redis: Redis, workers: Workers) -> None:
    await workers.start("tests.redis.priority_flows:batch", count=1, concurrency=2)
    orch = orchestrator(redis)
    run_id = await orch.start_run(Chunk(label="n", count=5, hold=0.0))
    await finished_at(orch, run_id, timeout=30)
    keys = orch.backend.keys  # type: ignore[attr-defined]
    assert await redis.xlen(keys.stream) == 6
    assert not await redis.exists(f"{keys.stream}:high", f"{keys.stream}:low", keys.priorities)
    assert (await orch.run(run_id)).priority == "normal"


async def test_a_bad_priority_is_refused(redis: Redis) -> None:
    orch = orchestrator(redis)
    with pytest.raises(ValueError, match="priority must be one of high, normal, low; got 'urgent'"):
        await orch.start_run(Chunk(label="x", count=1), run_id="bad-priority", priority="urgent")
    assert await orch.backend.runs.get("bad-priority") is None


def test_the_claim_order_is_weighted() -> None:
    order = ClassOrder()
    firsts = [order.next()[0] for _ in range(100)]
    assert (firsts.count("high"), firsts.count("normal"), firsts.count("low")) == (60, 30, 10)
    assert order.next()[1:] in (["normal", "low"], ["high", "low"], ["high", "normal"])
    two = ClassOrder()
    firsts = [two.next(("normal", "low"))[0] for _ in range(40)]
    assert (firsts.count("normal"), firsts.count("low")) == (30, 10)
