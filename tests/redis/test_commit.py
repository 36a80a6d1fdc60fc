"""Commits, retries, failures and run control, on Redis and in memory alike (once per backend).

Cases:
* commit: a step committed twice (its lease ran out and a second worker ran it too) counts
  once: the second commit only acknowledges; context, counters, successors and item state
  are those of one commit;
* durable retries: a failed attempt waits in the delayed queue (not in any process: another
  connection promotes it), is not handed out before its time, then comes back with attempt 2;
  the backend says when the earliest waiting retry is due; a worker promotes its own retry
  when it falls due, and an idle worker looks for due retries about once a second;
* fail: an item that fails for good is recorded in ``errors`` (permanent), dead-lettered,
  kept for a retry, counted, and fails the run with a message naming the node and error;
  ``retry`` (Failed -> Running) re-queues it with attempt 1 and clears the run's error; an
  input no validator can be built for fails its item at once (no crash, no re-delivery);
* park/drop: a paused run parks the items it meets and the successors of steps that commit
  meanwhile, resume re-queues them; a cancelled run drops its parked items, its items and the
  successors of in-flight commits; an item of a deleted run is dropped;
* status: moves only forward (Completed and Cancelled are final), except Failed -> Running
  (a retry); an unknown run has no status; the orchestrator refuses illegal moves.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any

import pytest
from pydantic import BaseModel
from redis.asyncio import Redis

from floxide import (
    AlreadyCompleted,
    FloxideError,
    Merge,
    NextAll,
    NotStarted,
    RetryPolicy,
    Workflow,
    WorkflowCtx,
    edge,
    join,
    node,
)
from floxide.distributed import (
    Commit,
    DistributedOrchestrator,
    ItemStatus,
    RunStatus,
    Successor,
    process_claim,
    start_run,
)
from floxide.distributed.execution import child_id
from floxide.redis import RedisBackend
from tests.distributed.inprocess import running
from tests.redis.conftest import NAMESPACE, BackendFactory

pytestmark = pytest.mark.timeout(30)


class Sum(BaseModel):
    total: Annotated[int, Merge.sum()] = 0


@node
async def bump(ctx: WorkflowCtx[Sum], n: int) -> NextAll[int]:
    ctx.store.total += n
    return NextAll([n, n + 1])


@node
async def leaf(n: int) -> int:
    return n


bumps = Workflow("bumps", start=bump, context=Sum, edges=[edge(bump, leaf)])


@node
async def flaky(n: int) -> int:
    raise ConnectionError(f"flaky {n}")


retrying = Workflow(
    "retrying", start=flaky, retry={flaky: RetryPolicy(max_attempts=3, initial_backoff=0.3, jitter=0)}
)

ATTEMPTS: list[tuple[int, float]] = []  # (attempt, when it started) of ``once``


@node
async def once(ctx: WorkflowCtx[Any], n: int) -> int:
    ATTEMPTS.append((ctx.attempt, time.monotonic()))
    if ctx.attempt == 1:
        raise ConnectionError("fails once")
    return n


fails_once = Workflow(
    "fails-once", start=once, retry={once: RetryPolicy(max_attempts=2, initial_backoff=0.3, jitter=0)}
)

SWITCH = {"broken": True}


@node
async def prep(n: int) -> int:
    return n + 1


@node
async def boom(n: int) -> int:
    if SWITCH["broken"]:
        raise RuntimeError(f"boom {n}")
    return n * 10


breaking = Workflow(
    "breaking", start=prep, edges=[edge(prep, boom)], retry={boom: RetryPolicy(max_attempts=1)}
)


class Opaque:
    """A type pydantic cannot build a validator for."""


@node
async def make(n: int) -> Any:
    return "x" * n


@node
async def measure(value: Opaque) -> int:
    return 1


unloadable = Workflow("unloadable", start=make, edges=[edge(make, measure)])


async def dead_letters(backend: object) -> list[dict[str, str]]:
    if isinstance(backend, RedisBackend):
        return [fields for _, fields in await backend.client.xrange(backend.keys.dead)]
    return [{"item": raw} for raw in backend._dead]  # type: ignore[attr-defined]


async def delete_run(backend: object, run_id: str) -> None:
    """Remove a run's data (as its finalizer or its expiry does), leaving its items queued."""
    if isinstance(backend, RedisBackend):
        await backend.client.delete(*await backend.all_run_keys(run_id))
    else:
        del backend._runs[run_id]  # type: ignore[attr-defined]


# -- commit --------------------------------------------------------------------------------------


async def test_a_second_commit_of_an_item_only_acknowledges(make_backend: BackendFactory) -> None:
    backend = make_backend("bumps", context_type=Sum)
    await start_run(bumps, backend, 5, run_id="r")
    [first] = await backend.queue.claim("slow", count=1, block=0)
    await asyncio.sleep(0.05)
    [second] = await backend.queue.reclaim("fast", min_idle=0.01, count=1)  # the lease ran out
    assert first.item == second.item
    assert await process_claim(bumps, backend, second) == "committed"
    assert await process_claim(bumps, backend, first) == "duplicate"  # the slow one finishes too

    context = await backend.contexts.get("r")
    assert context == {"total": 5}
    info = await backend.runs.get("r")
    assert info is not None and (info.items_done, info.items_total) == (1, 3)
    metrics = await backend.metrics.get("r")
    assert (metrics.nodes["bump"].completed, metrics.nodes["leaf"].created) == (1, 2)
    assert sorted(i.payload for i in await backend.queue.pending("r")) == [5, 6]
    assert await backend.queue.backlog() == (2, 0)
    root = await backend.items.get("r", "root")
    assert root is not None and root.status is ItemStatus.COMPLETED
    assert [i.item_id for i in await backend.queue.pending("r")] == [child_id("root", 0), child_id("root", 1)]


async def test_node_names_that_need_escaping_commit_as_they_are(make_backend: BackendFactory) -> None:
    """The commit writes item states by splicing ids and node names into JSON when they need no
    escaping: names with quotes, backslashes or control characters come back intact."""

    @node(name='spread "wide" \\ far')
    async def spread(n: int) -> NextAll[int]:
        return NextAll(list(range(n)))

    @node(name="pass\tthrough")
    async def through(i: int) -> float:
        return i / 2

    @node(name="gather")
    async def gather(values: list[float]) -> float:
        return sum(values)

    workflow = Workflow("odd-names", start=spread, edges=[edge(spread, through), join(through, gather)])
    backend = make_backend("odd-names")
    orchestrator = DistributedOrchestrator(workflow, backend)
    async with running(workflow, backend):
        run_id = await orchestrator.start_run(4)
        info = await orchestrator.wait_for_completion(run_id, timeout=10)
    assert (info.status, info.output) == (RunStatus.COMPLETED, 3.0)
    states = sorted((s.node, s.status.value) for s in await backend.items.list(run_id))
    assert states == [
        ("gather", "Completed"),
        *[("pass\tthrough", "Completed")] * 4,
        ('spread "wide" \\ far', "Completed"),
    ]


# -- durable retries --------------------------------------------------------------------------------


async def test_retries_wait_in_the_delayed_queue(make_backend: BackendFactory) -> None:
    backend = make_backend("retrying")
    await start_run(retrying, backend, 1, run_id="r")
    [claim] = await backend.queue.claim("c", count=1, block=0)
    failed_at = time.monotonic()
    assert await process_claim(retrying, backend, claim) == "retrying"
    assert await backend.queue.claim("c", count=1, block=0) == []
    assert await backend.queue.backlog() == (1, 0)
    waiting = await backend.promote_due()  # nothing due yet; the backend says when it will be
    assert waiting.moved == 0 and waiting.wake_in is not None and 0.15 < waiting.wake_in <= 0.3

    other = backend
    if isinstance(backend, RedisBackend):  # durable: any other process can promote it
        score = await backend.client.zrange(backend.keys.delayed, 0, -1, withscores=True)
        assert len(score) == 1 and json.loads(score[0][0])["attempt"] == 2
        assert 0.2 < score[0][1] / 1000 - time.time() <= 0.3
        other = make_backend("retrying")
    deadline = time.monotonic() + 5
    while (await other.promote_due()).moved == 0:
        assert time.monotonic() < deadline, "the retry never became due"
        await asyncio.sleep(0.02)
    assert time.monotonic() - failed_at >= 0.25
    assert (await other.promote_due()).wake_in is None  # nothing waits any more
    [again] = await backend.queue.claim("c", count=1, block=1)
    assert (again.item.item_id, again.item.attempt, again.item.payload) == ("root", 2, 1)
    state = await backend.items.get("r", "root")
    assert state is not None and state.attempt == 2


async def test_a_worker_promotes_its_retry_when_it_falls_due(make_backend: BackendFactory) -> None:
    backend = make_backend("fails-once")
    ATTEMPTS.clear()
    async with running(fails_once, backend, count=1, retry=None):
        await start_run(fails_once, backend, 7, run_id="r")
        info = await DistributedOrchestrator(fails_once, backend).wait_for_completion("r", timeout=10)
    assert info.status is RunStatus.COMPLETED
    (first, started), (second, again) = ATTEMPTS
    assert (first, second) == (1, 2)
    # the worker's promoter, woken by its own retry, sleeps until the retry is due: not a
    # second-long idle look, nor a tight poll
    assert 0.3 <= again - started < 0.65, again - started


async def test_an_idle_worker_looks_for_due_retries_about_once_a_second(redis_url: str) -> None:
    client = Redis.from_url(redis_url, decode_responses=True)
    backend = RedisBackend(client, "fails-once", namespace=NAMESPACE)
    try:
        async with running(fails_once, backend, count=1, retry=None):
            await asyncio.sleep(0.3)
            before = await client.info("commandstats")
            await asyncio.sleep(2.0)
            after = await client.info("commandstats")
    finally:
        await client.aclose()
    # promote.lua reads each of the three priority classes' delayed sets (ZRANGEBYSCORE, which
    # nothing else of an idle worker runs): twice or three times in 2 s (was 20 times)
    looks = after["cmdstat_zrangebyscore"]["calls"] - before["cmdstat_zrangebyscore"]["calls"]
    assert looks <= 9, looks


# -- fail and retry -----------------------------------------------------------------------------------


async def test_a_failed_item_fails_the_run_and_a_retry_resumes_it(make_backend: BackendFactory) -> None:
    backend = make_backend("breaking")
    orchestrator = DistributedOrchestrator(breaking, backend)
    SWITCH["broken"] = True
    await start_run(breaking, backend, 1, run_id="r")
    results = [
        await process_claim(breaking, backend, c) for c in await backend.queue.claim("c", count=1, block=0)
    ]
    results += [
        await process_claim(breaking, backend, c) for c in await backend.queue.claim("c", count=1, block=0)
    ]
    assert results == ["committed", "failed"]

    info = await orchestrator.run("r")
    assert info.status is RunStatus.FAILED and info.finished_at is not None
    assert info.error == "node 'boom' failed: RuntimeError: boom 2"
    [error] = await orchestrator.errors("r")
    assert (error.node, error.attempt, error.error_type, error.message, error.permanent) == (
        "boom", 1, "RuntimeError", "boom 2", True,
    )  # fmt: skip
    [dead] = await dead_letters(backend)
    assert json.loads(dead["item"])["node"] == "boom"
    if isinstance(backend, RedisBackend):
        assert dead["run"] == "r" and json.loads(dead["error"])["message"] == "boom 2"
    boom_id = child_id("root", 0)
    state = await backend.items.get("r", boom_id)
    assert state is not None and state.status is ItemStatus.FAILED
    assert [(i.node, i.attempt) for i in await orchestrator.pending_work("r")] == [("boom", 1)]
    assert (await orchestrator.metrics("r")).nodes["boom"].failed == 1

    with pytest.raises(FloxideError, match="use retry"):
        await orchestrator.resume("r")
    SWITCH["broken"] = False
    assert await orchestrator.retry("r") is RunStatus.RUNNING
    info = await orchestrator.run("r")
    assert (info.status, info.error, info.finished_at) == (RunStatus.RUNNING, None, None)
    assert (await orchestrator.metrics("r")).nodes["boom"].failed == 0
    state = await backend.items.get("r", boom_id)
    assert state is not None and state.status is ItemStatus.QUEUED
    [claim] = await backend.queue.claim("c", count=1, block=0)
    assert (claim.item.node, claim.item.attempt) == ("boom", 1)
    assert await process_claim(breaking, backend, claim) == "committed"
    info = await orchestrator.run("r")
    assert (info.status, info.output) == (RunStatus.COMPLETED, 20)
    metrics = await orchestrator.metrics("r")
    assert (metrics.nodes["prep"].completed, metrics.nodes["boom"].completed) == (1, 1)
    with pytest.raises(FloxideError, match="only a Failed run"):
        await orchestrator.retry("r")


async def test_an_input_that_cannot_be_loaded_fails_at_once(make_backend: BackendFactory) -> None:
    backend = make_backend("unloadable")
    await start_run(unloadable, backend, 3, run_id="r")
    [claim] = await backend.queue.claim("c", count=1, block=0)
    assert await process_claim(unloadable, backend, claim) == "committed"
    [claim] = await backend.queue.claim("c", count=1, block=0)
    assert await process_claim(unloadable, backend, claim) == "failed"  # no crash, no re-delivery
    info = await backend.runs.get("r")
    assert info is not None and info.status is RunStatus.FAILED
    assert info.error is not None and info.error.startswith(
        "node 'measure' failed: PydanticSchemaGenerationError"
    )
    assert await backend.queue.backlog() == (0, 0)


# -- park and drop -------------------------------------------------------------------------------------


async def test_a_paused_run_parks_items_until_resumed(make_backend: BackendFactory) -> None:
    backend = make_backend("bumps", context_type=Sum)
    orchestrator = DistributedOrchestrator(bumps, backend)
    await start_run(bumps, backend, 1, run_id="r")
    [claim] = await backend.queue.claim("c", count=1, block=0)
    await backend.step_input(claim)  # the step runs...
    assert await orchestrator.pause("r") is RunStatus.PAUSED
    child = Successor(item_id="c1", node="leaf", payload=7)
    assert await backend.commit(claim, Commit(item=claim.item, children=[child])) == "ok"  # ...and commits
    assert await backend.queue.claim("c", count=5, block=0) == []  # its successor was parked
    state = await backend.items.get("r", "c1")
    assert state is not None and state.status is ItemStatus.PARKED
    assert [i.item_id for i in await orchestrator.pending_work("r")] == ["c1"]
    assert (await orchestrator.run("r")).status is RunStatus.PAUSED

    assert await orchestrator.resume("r") is RunStatus.RUNNING
    state = await backend.items.get("r", "c1")
    assert state is not None and state.status is ItemStatus.QUEUED
    [claim] = await backend.queue.claim("c", count=5, block=0)
    assert await orchestrator.pause("r") is RunStatus.PAUSED  # paused before the step starts:
    assert await process_claim(bumps, backend, claim) == "parked"  # the item itself is parked
    assert await backend.queue.backlog() == (0, 0)
    await orchestrator.resume("r")
    [claim] = await backend.queue.claim("c", count=5, block=0)
    assert await process_claim(bumps, backend, claim) == "committed"
    info = await orchestrator.run("r")
    assert (info.status, info.output) == (RunStatus.COMPLETED, 7)


async def test_a_cancelled_run_drops_its_items(make_backend: BackendFactory) -> None:
    backend = make_backend("bumps", context_type=Sum)
    orchestrator = DistributedOrchestrator(bumps, backend)
    await start_run(bumps, backend, 1, run_id="r")
    [claim] = await backend.queue.claim("c", count=1, block=0)
    assert await process_claim(bumps, backend, claim) == "committed"  # two leaves queued
    claims = await backend.queue.claim("c", count=1, block=0)
    await orchestrator.pause("r")
    assert [await process_claim(bumps, backend, c) for c in claims] == ["parked"]
    assert await orchestrator.cancel("r", interrupt=False) is RunStatus.CANCELLED
    info = await orchestrator.run("r")
    assert info.finished_at is not None and info.error == "cancelled" and not info.interrupt
    [claim] = await backend.queue.claim("c", count=5, block=0)
    assert await process_claim(bumps, backend, claim) == "dropped"
    assert await orchestrator.pending_work("r") == []
    assert await backend.queue.backlog() == (0, 0)
    assert (await orchestrator.run("r")).items_done == 1
    with pytest.raises(AlreadyCompleted):
        await orchestrator.resume("r")


async def test_an_in_flight_commit_of_a_cancelled_run_adds_nothing(make_backend: BackendFactory) -> None:
    backend = make_backend("bumps", context_type=Sum)
    await start_run(bumps, backend, 1, run_id="r")
    [claim] = await backend.queue.claim("c", count=1, block=0)
    await backend.step_input(claim)
    assert await backend.set_status("r", RunStatus.CANCELLED, interrupt=True) is RunStatus.CANCELLED
    info = await backend.runs.get("r")
    assert info is not None and info.interrupt
    child = Successor(item_id="c1", node="leaf", payload=7)
    await backend.commit(claim, Commit(item=claim.item, children=[child], outputs=[1]))
    assert await backend.queue.backlog() == (0, 0)
    assert await backend.queue.pending("r") == []
    info = await backend.runs.get("r")
    assert info is not None and info.status is RunStatus.CANCELLED


async def test_an_item_of_a_deleted_run_is_dropped(make_backend: BackendFactory) -> None:
    backend = make_backend("bumps", context_type=Sum)
    await start_run(bumps, backend, 1, run_id="gone")
    await delete_run(backend, "gone")
    [claim] = await backend.queue.claim("c", count=1, block=0)
    assert await process_claim(bumps, backend, claim) == "dropped"
    assert await backend.queue.backlog() == (0, 0)
    assert await backend.runs.get("gone") is None


# -- status transitions ---------------------------------------------------------------------------------

P, R, Z, C, F, X = (
    RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.COMPLETED, RunStatus.FAILED,
    RunStatus.CANCELLED,
)  # fmt: skip
LEGAL = {
    P: {R, Z, C, F, X},
    R: {Z, C, F, X},
    Z: {R, C, F, X},
    F: {R, X},  # a retry, or giving up
    C: set(),
    X: set(),
}


async def test_status_moves_only_forward(make_backend: BackendFactory) -> None:
    backend = make_backend("bumps", context_type=Sum)
    # Queued is entered only when a run is created under a run limit (tests/redis/test_run_limits.py):
    # no other status moves back to it.
    for source in (s for s in RunStatus if s is not RunStatus.QUEUED):
        for target in RunStatus:
            run_id = f"{source.value}-{target.value}"
            await start_run(bumps, backend, 1, run_id=run_id)
            if source is not P:
                assert await backend.set_status(run_id, source) is source
            expected = target if target in LEGAL[source] else source
            assert await backend.set_status(run_id, target) is expected, f"{source} -> {target}"
            info = await backend.runs.get(run_id)
            assert info is not None and info.status is expected
            assert (info.finished_at is not None) == expected.finished
    assert await backend.set_status("unknown", R) is None


async def test_the_orchestrator_refuses_illegal_moves(make_backend: BackendFactory) -> None:
    backend = make_backend("bumps", context_type=Sum)
    orchestrator = DistributedOrchestrator(bumps, backend)
    run_id = await orchestrator.start_run(3)
    assert await orchestrator.cancel(run_id) is RunStatus.CANCELLED
    assert await orchestrator.cancel(run_id) is RunStatus.CANCELLED  # (idempotent)
    for move in (orchestrator.pause, orchestrator.resume):
        with pytest.raises(AlreadyCompleted, match="is Cancelled"):
            await move(run_id)
    done = await orchestrator.start_run(3)
    assert await backend.set_status(done, RunStatus.COMPLETED) is RunStatus.COMPLETED
    for move in (orchestrator.pause, orchestrator.resume, orchestrator.cancel):
        with pytest.raises(AlreadyCompleted, match="is Completed"):
            await move(done)
    for move in (orchestrator.pause, orchestrator.resume, orchestrator.cancel, orchestrator.retry):
        with pytest.raises(NotStarted):
            await move("unknown")
