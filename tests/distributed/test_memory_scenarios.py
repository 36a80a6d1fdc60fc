"""The Redis tier's run scenarios, on the in-memory backend with in-process workers.

Cases (each mirrors a test of ``tests/redis/test_contention.py`` or ``test_faults.py``):
* 1,000 branches adding 1 to a ``Merge.sum()`` field give exactly 1,000;
* a join over 500 branches fires once, with the 500 values in order; a fan-out of no
  branch joins too, with no value;
* a custom merge under contention (300 branches, 5 counters) stays exact;
* a worker that dies mid-step (its step cut, its claims never committed or released): its
  items are reclaimed after the lease, committed once, although their node code ran twice;
* a stopped worker drains: its running step is cut and released (reclaimable at once) and
  another worker completes the run;
* pause parks the next step and nothing moves; resume completes the run;
* cancel interrupts running steps, drops queued items, commits nothing more;
* a node that always fails retries through the delayed queue (the retry waits while no
  worker runs), fails the run (errors, dead letter), and ``retry`` resumes it at that node;
* bad input seeded without the workflow fails the run naming the field; good input completes;
* a deadline fails the run and interrupts its running step.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from examples import countdown
from floxide.distributed import DistributedWorker, ItemStatus, RunStatus, process_claim
from floxide.distributed.execution import seed_run
from tests.distributed import flows
from tests.distributed.flows import read_marks
from tests.distributed.inprocess import eventually, memory_orchestrator, running, until

pytestmark = pytest.mark.timeout(30)


# -- contention ---------------------------------------------------------------------------------------


async def test_a_thousand_branches_sum_exactly() -> None:
    fanout = memory_orchestrator(flows.fanout)
    async with running(flows.fanout, fanout.backend, concurrency=8):
        run_id = await fanout.start_run(flows.Job(count=1000))
        info = await fanout.wait_for_completion(run_id, timeout=20)
    assert info.status is RunStatus.COMPLETED, info.error
    assert info.output == {"values": list(range(1000)), "total": 1000}
    metrics = await fanout.metrics(run_id)
    assert (metrics.nodes["work"].completed, metrics.failed) == (1000, 0)


async def test_a_join_over_500_branches_fires_once() -> None:
    fanout = memory_orchestrator(flows.fanout)
    async with running(flows.fanout, fanout.backend, concurrency=8):
        run_id = await fanout.start_run(flows.Job(count=500))
        info = await fanout.wait_for_completion(run_id, timeout=20)
    assert info.status is RunStatus.COMPLETED, info.error
    metrics = await fanout.metrics(run_id)
    assert (metrics.nodes["gather"].created, metrics.nodes["gather"].completed) == (1, 1)
    assert await fanout.outputs(run_id) == [{"values": list(range(500)), "total": 500}]


async def test_an_empty_fan_out_still_joins() -> None:
    fanout = memory_orchestrator(flows.fanout)
    async with running(flows.fanout, fanout.backend):
        run_id = await fanout.start_run(flows.Job(count=0))
        info = await fanout.wait_for_completion(run_id, timeout=10)
    assert (info.status, info.output) == (RunStatus.COMPLETED, {"values": [], "total": 0})


async def test_a_custom_merge_under_contention() -> None:
    tally = memory_orchestrator(flows.tally)
    async with running(flows.tally, tally.backend, concurrency=8):
        run_id = await tally.start_run(300)
        info = await tally.wait_for_completion(run_id, timeout=20)
    assert info.output == {str(k): 60 for k in range(5)}
    assert (await tally.context(run_id)).counts == {str(k): 60 for k in range(5)}


# -- faults --------------------------------------------------------------------------------------------


async def test_a_dead_workers_items_are_reclaimed_after_the_lease(marks: Path) -> None:
    fanout = memory_orchestrator(flows.fanout)
    backend = fanout.backend
    run_id = await fanout.start_run(flows.Job(count=4, seconds=0.2))
    assert await DistributedWorker(flows.fanout, backend, worker_id="first").run_once() == "committed"
    doomed = await backend.queue.claim("doomed", count=2, block=0)
    steps = [asyncio.ensure_future(process_claim(flows.fanout, backend, c)) for c in doomed]
    await until(lambda: len(read_marks(marks, run_id, "start")) == 2, timeout=5, what="2 steps")
    for step in steps:  # the worker dies: its steps are cut, its claims stay as they are
        step.cancel()
    await asyncio.gather(*steps, return_exceptions=True)
    killed = {c.item.item_id for c in doomed}

    async with running(flows.fanout, backend, lease=0.5):
        info = await fanout.wait_for_completion(run_id, timeout=20)
    assert info.output == {"values": [0, 1, 2, 3], "total": 4}
    assert (await fanout.metrics(run_id)).nodes["work"].completed == 4
    for item_id in killed:
        starts = [m for m in read_marks(marks, run_id, "start") if m.item_id == item_id]
        assert len(starts) == 2 and starts[1].at - starts[0].at >= 0.5  # reclaimed after the lease


async def test_a_stopped_worker_releases_its_step(marks: Path) -> None:
    fanout = memory_orchestrator(flows.fanout)
    backend = fanout.backend
    run_id = await fanout.start_run(flows.Job(count=1, seconds=1.0))
    async with running(flows.fanout, backend, count=1, concurrency=1, lease=60, drain=0.05):
        await until(lambda: read_marks(marks, run_id, "start"), timeout=5, what="the step")
    assert [m.event for m in read_marks(marks, run_id)] == ["start", "interrupted"]
    [probe] = await backend.queue.reclaim("probe", min_idle=60, count=5)  # released: no lease to wait out
    await backend.queue.release("probe", [probe])
    async with running(flows.fanout, backend, count=1, lease=0.2):
        info = await fanout.wait_for_completion(run_id, timeout=10)
    assert info.output == {"values": [0], "total": 1}
    assert [m.event for m in read_marks(marks, run_id)] == ["start", "interrupted", "start", "end"]


async def test_pause_holds_until_resume() -> None:
    chain = memory_orchestrator(countdown.workflow)
    async with running(countdown.workflow, chain.backend):
        run_id = await chain.start_run(countdown.Countdown(steps=6, delay=0.05))

        async def two_steps() -> bool:
            return (await chain.metrics(run_id)).nodes["tick"].completed >= 2

        await eventually(two_steps, timeout=10, what="two steps")
        await chain.pause(run_id)

        async def parked() -> bool:
            return any(s.status is ItemStatus.PARKED for s in await chain.list_work_items(run_id))

        await eventually(parked, timeout=5, what="the next step to be parked")
        held = (await chain.run(run_id)).items_done
        for _ in range(20):
            await asyncio.sleep(0.02)
            assert (await chain.run(run_id)).items_done == held
        await chain.resume(run_id)
        info = await chain.wait_for_completion(run_id, timeout=10)
    assert (info.status, info.output) == (RunStatus.COMPLETED, 6)


async def test_cancel_interrupts_and_drops(marks: Path) -> None:
    fanout = memory_orchestrator(flows.fanout)
    async with running(flows.fanout, fanout.backend, concurrency=2):
        run_id = await fanout.start_run(flows.Job(count=8, seconds=30))
        await until(lambda: len(read_marks(marks, run_id, "start")) == 4, timeout=5, what="4 steps")
        await fanout.cancel(run_id)
        await until(lambda: len(read_marks(marks, run_id, "interrupted")) == 4, timeout=5, what="cuts")

        async def drained() -> bool:
            return await fanout.backend.queue.backlog() == (0, 0) and await fanout.pending_work(run_id) == []

        await eventually(drained, timeout=5, what="the queue to drain")
    assert len(read_marks(marks, run_id, "start")) == 4 and read_marks(marks, run_id, "end") == []
    info = await fanout.run(run_id)
    assert (info.status, info.items_done) == (RunStatus.CANCELLED, 1)
    assert (await fanout.context(run_id)).total == 0


async def test_a_failing_node_retries_fails_and_is_retried(marks: Path) -> None:
    fragile = memory_orchestrator(flows.fragile)
    backend = fragile.backend
    run_id = await fragile.start_run(1)
    async with running(flows.fragile, backend, count=1):

        async def waiting() -> bool:
            return await backend.queue.backlog() == (1, 0) and bool(read_marks(marks, run_id, "attempt-1"))

        await eventually(waiting, timeout=5, what="the retry to wait")
    [delayed] = await backend.queue.pending(run_id)  # waits while no worker runs
    assert delayed.attempt == 2
    async with running(flows.fragile, backend, count=2):
        info = await fragile.wait_for_completion(run_id, timeout=15)
    assert info.error == "node 'attempt' failed: RuntimeError: switch is off (attempt 3)"
    errors = await fragile.errors(run_id)
    assert [(e.attempt, e.permanent) for e in errors] == [(1, False), (2, False), (3, True)]
    assert len(backend._dead) == 1  # type: ignore[attr-defined]
    attempts = [m for m in read_marks(marks, run_id) if m.event.startswith("attempt-")]
    assert attempts[2].at - attempts[1].at >= 1.5  # 1.6 s backoff, from the delayed queue

    flows.switch_on(marks)
    await fragile.retry(run_id)
    async with running(flows.fragile, backend):
        info = await fragile.wait_for_completion(run_id, timeout=10)
    assert (info.status, info.output) == (RunStatus.COMPLETED, "fixed 2")
    assert len(read_marks(marks, run_id, "prepare")) == 1


async def test_bad_input_seeded_without_the_workflow() -> None:
    chain = memory_orchestrator(countdown.workflow)
    bad = await seed_run(chain.backend, start_node="tick", payload={"steps": "many"})
    good = await seed_run(chain.backend, start_node="tick", payload={"steps": 2, "delay": 0})
    async with running(countdown.workflow, chain.backend):
        failed = await chain.wait_for_completion(bad, timeout=10)
        done = await chain.wait_for_completion(good, timeout=10)
    assert failed.status is RunStatus.FAILED and failed.error is not None
    assert "input of node 'tick'" in failed.error and "steps" in failed.error and "many" in failed.error
    assert (done.status, done.output) == (RunStatus.COMPLETED, 2)


async def test_a_deadline_fails_the_run_and_cuts_its_step(marks: Path) -> None:
    fanout = memory_orchestrator(flows.fanout)
    async with running(flows.fanout, fanout.backend):
        run_id = await fanout.start_run(flows.Job(count=1, seconds=30), deadline_seconds=0.5)
        info = await fanout.wait_for_completion(run_id, timeout=10)
        await until(lambda: read_marks(marks, run_id, "interrupted"), timeout=5, what="the cut")
    assert (info.status, info.error) == (RunStatus.FAILED, "run exceeded its deadline")
    assert read_marks(marks, run_id, "end") == []
    assert [i.node for i in await fanout.pending_work(run_id)] == ["work"]
