"""A stopping worker drains: it finishes what it runs and takes nothing more, not even by hand-off.

A commit claims the worker's next stream entry in the same script (the hand-off), so a
worker that decided to hand off when its steps began kept taking work after ``stop()``:
with two steps running at SIGTERM, it started two new items as they committed, and its
shutdown took two step lengths. The tests gate their steps (no timing luck involved) and
stop the worker at each place where new work can reach it.

Cases (each on Redis and in memory, with :class:`DistributedWorker` in this process):
* stopped while its steps run: their commits claim nothing; nothing starts after the stop,
  the queue keeps the other items (never delivered), and a fresh worker completes the run;
* the signal arrives while a commit hands off the next item: that item is handed back at
  once (reclaimable without waiting out the lease, its delivery count unchanged), never run;
* the signal arrives while a claim (``XREADGROUP``) or a reclaim (of a dead worker's item) is
  under way, or while a step reads its run's state: the item is handed back at once, never run;
* with a real worker process: SIGTERM while 2 steps run starts no item after the signal,
  lets both steps commit (one step length, not two), exits 0, and another worker completes
  the run, each item having run once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from floxide import NextAll, Workflow, WorkflowCtx, edge, join, node
from floxide.distributed import Backend, DistributedWorker, RunStatus, start_run
from floxide.distributed.models import Claim
from tests.distributed import flows
from tests.distributed.flows import read_marks
from tests.redis.conftest import BackendFactory, Workers
from tests.redis.test_faults import FANOUT, eventually, orchestrator_for

pytestmark = pytest.mark.timeout(60)


# -- a workflow whose steps wait at a gate the test opens --------------------------------------------


class Gate:
    """Which ``hold`` steps started, and the event they wait for."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.opened = asyncio.Event()


GATE = Gate()


@node
async def fan(n: int) -> NextAll[int]:
    return NextAll(list(range(n)))


@node
async def hold(ctx: WorkflowCtx[Any], i: int) -> int:
    GATE.started.append(ctx.item_id)
    await GATE.opened.wait()
    return i


@node
async def total(values: list[int]) -> int:
    return sum(values)


gated = Workflow("gated", start=fan, edges=[edge(fan, hold), join(hold, total)])


@pytest.fixture(autouse=True)
def gate() -> Gate:
    global GATE
    GATE = Gate()
    return GATE


def worker_on(
    backend: Backend, *, concurrency: int, lease: float = 30.0, name: str = "w"
) -> DistributedWorker:
    return DistributedWorker(
        gated,
        backend,
        worker_id=name,
        concurrency=concurrency,
        lease=lease,
        heartbeat_interval=0.2,
        block=0.05,
        control_interval=0.05,
        drain_grace=10.0,
    )


async def until(check: Callable[[], Any], *, timeout: float = 10, what: str) -> None:
    async def checked() -> Any:
        return check()

    await eventually(checked, timeout=timeout, what=what)


@pytest.fixture
async def tasks() -> AsyncIterator[list[asyncio.Task[None]]]:
    """Worker loops a test starts; stopped (and awaited) if the test did not."""
    started: list[asyncio.Task[None]] = []
    yield started
    GATE.opened.set()
    for task in started:
        task.cancel()
    await asyncio.gather(*started, return_exceptions=True)


async def finish_with_another_worker(backend: Backend, run_id: str, tasks: list[asyncio.Task[None]]) -> None:
    """A fresh worker completes the run: each item ran once."""
    GATE.opened.set()
    fresh = worker_on(backend, concurrency=4, lease=0.3, name="fresh")
    running = asyncio.create_task(fresh.run())
    tasks.append(running)

    async def done() -> bool:
        info = await backend.runs.get(run_id)
        return info is not None and info.status.finished

    await eventually(done, timeout=20, what="the run to finish")
    fresh.stop()
    await asyncio.wait_for(running, 10)
    info = await backend.runs.get(run_id)
    assert info is not None and (info.status, info.output) == (RunStatus.COMPLETED, 15), info.error
    assert len(GATE.started) == len(set(GATE.started)) == 6  # each item ran once


# -- DistributedWorker ------------------------------------------------------------------------------


async def test_stopped_while_steps_run_its_commits_claim_nothing(
    make_backend: BackendFactory, tasks: list[asyncio.Task[None]]
) -> None:
    backend = make_backend("gated")
    await start_run(gated, backend, 6, run_id="r")
    worker = worker_on(backend, concurrency=2)
    running = asyncio.create_task(worker.run())
    tasks.append(running)
    await until(lambda: len(GATE.started) == 2, what="2 steps to run")

    worker.stop()  # SIGTERM: both steps were running (their hand-offs set up) before it
    GATE.opened.set()
    await asyncio.wait_for(running, 10)

    assert len(GATE.started) == 2  # nothing started after the stop
    assert (await backend.metrics.get("r")).nodes["hold"].completed == 2  # both steps committed
    assert await backend.queue.backlog() == (4, 0)  # the other 4: never delivered
    await finish_with_another_worker(backend, "r", tasks)


async def test_an_item_handed_off_as_the_worker_stops_is_handed_back(
    make_backend: BackendFactory, tasks: list[asyncio.Task[None]]
) -> None:
    backend = make_backend("gated")
    await start_run(gated, backend, 6, run_id="r")
    worker = worker_on(backend, concurrency=1)
    GATE.opened.set()
    commit = backend.commit
    handed: list[Claim] = []

    async def stopped_during(claim: Claim, plan: Any, *, handoff: Any = None) -> str:
        result = await commit(claim, plan, handoff=handoff)
        if claim.item.node == "hold" and not handed:  # SIGTERM while the commit script ran
            assert handoff is not None and handoff.claim is not None  # it claimed the next item
            handed.append(handoff.claim)
            worker.stop()
        return result

    backend.commit = stopped_during  # type: ignore[method-assign]
    running = asyncio.create_task(worker.run())
    tasks.append(running)
    await asyncio.wait_for(running, 10)

    assert len(GATE.started) == 1  # the handed-off item did not run
    [back] = await backend.queue.reclaim("other", min_idle=30, count=10)  # at once: no lease to wait out
    assert back.delivery == handed[0].delivery and back.item == handed[0].item
    assert (back.deliveries, back.reclaimed) == (1, False)  # handed back: no crash
    await backend.queue.release("other", [back])
    backend.commit = commit  # type: ignore[method-assign]
    await finish_with_another_worker(backend, "r", tasks)
    assert (await backend.metrics.get("r")).reclaimed == 0


@pytest.mark.parametrize("way", ["claim", "reclaim"])
async def test_items_claimed_as_the_worker_stops_are_handed_back(
    make_backend: BackendFactory, tasks: list[asyncio.Task[None]], way: str
) -> None:
    backend = make_backend("gated")
    await start_run(gated, backend, 6, run_id="r")
    if way == "reclaim":  # a dead worker's item, reclaimed once its lease ran out
        [dead] = await backend.queue.claim("dead", count=1, block=0)
    worker = worker_on(backend, concurrency=2, lease=0.2)
    queue: Any = backend.queue
    original: Callable[..., Awaitable[list[Claim]]] = getattr(queue, way)
    brought: list[Claim] = []

    async def stopped_during(consumer: str, **options: Any) -> list[Claim]:
        claims = await original(consumer, **options)
        if claims and not brought:  # SIGTERM while XREADGROUP (or XAUTOCLAIM) waited
            brought.extend(claims)
            worker.stop()
        return claims

    setattr(queue, way, stopped_during)
    running = asyncio.create_task(worker.run())
    tasks.append(running)
    await asyncio.wait_for(running, 10)
    delattr(queue, way)

    assert [c.item.node for c in brought] == ["fan"]
    metrics = await backend.metrics.get("r")
    assert "fan" not in metrics.nodes or metrics.nodes["fan"].completed == 0  # it did not run
    [back] = await backend.queue.reclaim("other", min_idle=30, count=10)  # handed back at once
    assert back.delivery == brought[0].delivery and not back.reclaimed
    if way == "reclaim":
        assert back.delivery == dead.delivery and back.deliveries == 2  # the dead worker's crash only
    await backend.queue.release("other", [back])
    await finish_with_another_worker(backend, "r", tasks)
    assert (await backend.metrics.get("r")).reclaimed == (1 if way == "reclaim" else 0)


async def test_an_item_stopped_while_its_state_is_read_is_handed_back(
    make_backend: BackendFactory, tasks: list[asyncio.Task[None]]
) -> None:
    backend = make_backend("gated")
    await start_run(gated, backend, 6, run_id="r")
    worker = worker_on(backend, concurrency=1)
    step_input, step_inputs = backend.step_input, backend.step_inputs
    read: list[Claim] = []

    async def batch_fails(claims: Any) -> Any:  # the first batch: each step then reads its own state
        backend.step_inputs = step_inputs  # type: ignore[method-assign]
        raise ConnectionError("no batch today")

    async def stopped_during(claim: Claim) -> Any:
        state = await step_input(claim)
        read.append(claim)
        worker.stop()  # SIGTERM while the step read its run's state, before its node ran
        return state

    backend.step_inputs = batch_fails  # type: ignore[method-assign]
    backend.step_input = stopped_during  # type: ignore[method-assign]
    running = asyncio.create_task(worker.run())
    tasks.append(running)
    await asyncio.wait_for(running, 10)
    backend.step_inputs, backend.step_input = step_inputs, step_input  # type: ignore[method-assign]

    assert [c.item.node for c in read] == ["fan"]
    metrics = await backend.metrics.get("r")
    assert "fan" not in metrics.nodes or metrics.nodes["fan"].completed == 0  # it did not run
    [back] = await backend.queue.reclaim("other", min_idle=30, count=10)  # handed back at once
    assert back.delivery == read[0].delivery and not back.reclaimed
    await backend.queue.release("other", [back])
    await finish_with_another_worker(backend, "r", tasks)


# -- a real worker process ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_sigterm_while_steps_run_starts_nothing_new(
    redis: Redis, workers: Workers, marks: Path
) -> None:
    seconds = 3.0
    [first] = await workers.start(FANOUT, count=1, concurrency=2, lease=5.0, drain=20.0)
    fanout = orchestrator_for(redis, flows.fanout)
    run_id = await fanout.start_run(flows.Job(count=6, seconds=seconds))

    async def two_running() -> bool:
        return len(read_marks(marks, run_id, "start")) == 2

    await eventually(two_running, timeout=30, what="2 steps to run")
    signalled = time.monotonic()
    assert await asyncio.to_thread(workers.terminate, first, timeout=30) == 0  # drained cleanly
    took = time.monotonic() - signalled

    starts = read_marks(marks, run_id, "start")
    assert len(starts) == 2, starts  # no item started after SIGTERM
    assert len(read_marks(marks, run_id, "end")) == 2  # both steps finished and committed
    assert read_marks(marks, run_id, "interrupted") == []
    assert took < 2 * seconds - 0.5, took  # one step length (the rest of it), not two
    metrics = await fanout.metrics(run_id)
    assert metrics.nodes["work"].completed == 2
    assert await fanout.backend.queue.backlog() == (4, 0)  # the other 4: never delivered

    [second] = await workers.start(FANOUT, count=1, concurrency=4, lease=5.0)
    info = await fanout.wait_for_completion(run_id, timeout=60)
    assert info.status is RunStatus.COMPLETED, info.error
    assert info.output == {"values": list(range(6)), "total": 6}
    starts = read_marks(marks, run_id, "start")
    assert len(starts) == len({m.item_id for m in starts}) == 6  # each item ran once
    assert {m.pid for m in starts[2:]} == {second.pid}
    assert (await fanout.metrics(run_id)).reclaimed == 0 and await fanout.errors(run_id) == []
