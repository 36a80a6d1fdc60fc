"""A deleted or cancelled run takes nothing more from the steps still in flight (the fence).

The races are driven step by step, not left to timing: a step's run state is read (as a
worker does before running it), then the run is deleted or cancelled, then the step ends
(its node code runs for real, from the state read before) and hands its outcome to the
backend.

Cases:
* a run deleted the way the operator deletes it (cancelled with interrupt, every key
  deleted, dropped from the runs index) while steps are in flight: whether they commit,
  ask for a retry, fail for good or are parked (their run was paused), no key of the run
  exists afterwards (``SCAN``), the run stays unknown, and every claimed entry is
  acknowledged (nothing pending); the retry leaves no delayed item, the failure no dead
  letter;
* a commit of a deleted run still hands the next stream entry (another run's) to its worker;
* a run deleted between a worker's read of its state and the seeding of its context (a run
  seeded without one, as the operator seeds it): the context is not seeded, no key is left;
* a run cancelled without interrupt while steps are in flight (``floxide cancel
  --no-interrupt``): their commits, retries and failures change nothing (context, counters,
  metrics, outputs, errors, item states), every entry is acknowledged, and what the run has
  keeps the TTL of a finished run (on Redis and in memory alike);
* a run cancelled before its first step: the worker that claims the step does not seed
  the context (no key without the TTL);
* with real worker processes: a run deleted while its steps run leaves no key behind once
  the steps end; a run cancelled with ``--no-interrupt`` keeps the context and counters it
  had at the cancel while its running steps finish.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import pytest
from pydantic import BaseModel, Field
from redis.asyncio import Redis

from floxide import Merge, NextAll, PermanentError, RetryPolicy, Workflow, WorkflowCtx, edge, join, node
from floxide.distributed import Claim, Commit, RunStatus, StepInput, process_claim, start_run
from floxide.distributed.execution import seed_run
from floxide.distributed.protocols import Handoff
from floxide.redis import GROUP, RedisBackend
from tests.distributed.flows import Job, fanout, read_marks
from tests.redis.conftest import NAMESPACE, BackendFactory, Workers

pytestmark = pytest.mark.timeout(30)

T = TypeVar("T")
TTL = 300


class Bag(BaseModel):
    hits: Annotated[int, Merge.sum()] = 0
    log: Annotated[list[str], Merge.append()] = Field(default_factory=list)
    tags: Annotated[set[str], Merge.union()] = Field(default_factory=set)
    seen: Annotated[dict[str, int], Merge.update()] = Field(default_factory=dict)


ENDING = {"branch": "commit"}
"""How ``branch`` ends: ``commit`` (it changes every kind of context field), ``retry`` or ``fail``."""


@node
async def split3(n: int) -> NextAll[int]:
    return NextAll([n, n + 1, n + 2])


@node
async def branch(ctx: WorkflowCtx[Bag], i: int) -> int:
    if ENDING["branch"] == "retry":
        raise RuntimeError(f"branch {i}: try again")
    if ENDING["branch"] == "fail":
        raise PermanentError(f"branch {i}: give up")
    ctx.store.hits += 1
    ctx.store.log.append(f"b{i}")
    ctx.store.tags.add(f"t{i}")
    ctx.store.seen[str(i)] = i
    return i


@node
async def collect(values: list[int]) -> list[int]:
    return values


fenced = Workflow(
    "fenced",
    start=split3,
    context=Bag,
    edges=[edge(split3, branch), join(branch, collect)],
    retry={branch: RetryPolicy(max_attempts=2, initial_backoff=30, max_backoff=30)},
)


def redis_backend(client: Redis, workflow: str = "fenced") -> RedisBackend:
    return RedisBackend(client, workflow, namespace=NAMESPACE, context_type=Bag, ttl=TTL)


async def delete_like_the_operator(backend: RedisBackend, run_id: str) -> None:
    """What the operator's ``RunStore.delete`` does: cancel (interrupt), delete every key, unindex."""
    status = await backend.set_status(run_id, RunStatus.CANCELLED, reason="deleted", interrupt=True)
    assert status is RunStatus.CANCELLED
    await backend.client.delete(*await backend.all_run_keys(run_id))
    await backend.client.zrem(backend.keys.runs, run_id)


async def delete_run(backend: Any, run_id: str) -> None:
    if isinstance(backend, RedisBackend):
        await delete_like_the_operator(backend, run_id)
    else:
        await backend.set_status(run_id, RunStatus.CANCELLED, reason="deleted", interrupt=True)
        del backend._runs[run_id]


async def keys_of(backend: RedisBackend, run_id: str) -> dict[str, int]:
    """Every key of the run, found by SCAN, with its TTL in seconds (-1: none)."""
    base = backend.run_keys(run_id).base
    found = {}
    for pattern in (base, f"{base}:*"):
        async for key in backend.client.scan_iter(match=pattern, count=1000):
            found[key] = await backend.client.ttl(key)
    return found


async def unacknowledged(backend: Any) -> int:
    """Entries claimed and not acknowledged."""
    if isinstance(backend, RedisBackend):
        return int((await backend.client.xpending(backend.keys.stream, GROUP))["pending"])
    _, pending = await backend.queue.backlog()
    return int(pending)


async def steps_in_flight(backend: Any, run_id: str, *, pause: bool = False) -> list[tuple[Claim, StepInput]]:
    """Start ``run_id``, commit its first step, claim its three branches and read their state
    (as a worker does before running them); with ``pause``, the run is paused first."""
    ENDING["branch"] = "commit"
    await start_run(fenced, backend, 1, run_id=run_id)
    [root] = await backend.queue.claim("c", count=1, block=0)
    assert await process_claim(fenced, backend, root) == "committed"
    claims = await backend.queue.claim("c", count=10, block=0)
    assert len(claims) == 3
    if pause:
        assert await backend.set_status(run_id, RunStatus.PAUSED) is RunStatus.PAUSED
    states = await backend.step_inputs(claims)
    expected = RunStatus.PAUSED if pause else RunStatus.RUNNING
    assert all(s.status is expected and s.context is not None for s in states)
    return list(zip(claims, states, strict=True))


async def end_steps(backend: Any, steps: list[tuple[Claim, StepInput]], ending: str) -> list[str]:
    """Run each step's node code from the state read before, and hand its outcome to the backend."""
    ENDING["branch"] = "commit" if ending == "park" else ending
    try:
        return [await process_claim(fenced, backend, claim, state=state) for claim, state in steps]
    finally:
        ENDING["branch"] = "commit"


async def eventually(check: Callable[[], Awaitable[T]], *, timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


# -- deleted runs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["commit", "retry", "fail", "park"])
async def test_steps_of_a_deleted_run_write_nothing(make_backend: BackendFactory, ending: str) -> None:
    backend = make_backend("fenced", context_type=Bag, ttl=TTL)
    steps = await steps_in_flight(backend, "r", pause=ending == "park")
    await delete_run(backend, "r")

    results = await end_steps(backend, steps, ending)
    if isinstance(backend, RedisBackend):
        assert await keys_of(backend, "r") == {}
        assert await backend.client.zcard(backend.keys.delayed) == 0
        assert await backend.client.xlen(backend.keys.dead) == 0
        assert await backend.client.zscore(backend.keys.runs, "r") is None
    else:
        assert "r" not in backend._runs  # type: ignore[attr-defined]
        assert backend._dead == [] and backend._delayed == []  # type: ignore[attr-defined]
    assert await backend.runs.get("r") is None
    assert await unacknowledged(backend) == 0
    assert await backend.queue.backlog() == (0, 0)  # no retry waits, nothing was queued
    assert results == ["dropped"] * 3


async def test_a_commit_of_a_deleted_run_still_hands_off_the_next_entry(redis: Redis) -> None:
    backend = redis_backend(redis)
    [(claim, _), *others] = await steps_in_flight(backend, "r")
    await start_run(fenced, backend, 10, run_id="other")  # the stream's next new entry
    await delete_like_the_operator(backend, "r")

    append = {"field": "log", "kind": "append", "value": ["late"]}
    commit = Commit(item=claim.item, changes=[append], arrivals=[("collect", 1)], outputs=[1])
    handoff = Handoff("c")
    result = await backend.commit(claim, commit, handoff=handoff)
    assert handoff.claim is not None and handoff.claim.item.run_id == "other"
    assert await process_claim(fenced, backend, handoff.claim) == "committed"
    results = [await backend.commit(o, Commit(item=o.item, outputs=[2])) for o, _ in others]
    assert await keys_of(backend, "r") == {}
    assert await unacknowledged(backend) == 0
    assert [result, *results] == ["gone"] * 3
    info = await backend.runs.get("other")
    assert info is not None and (info.status, info.items_done) == (RunStatus.RUNNING, 1)


async def test_a_run_deleted_before_its_context_is_seeded_gets_none(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = redis_backend(redis)
    await seed_run(backend, start_node="split3", payload=1, run_id="r")  # no context: the worker seeds it
    [claim] = await backend.queue.claim("c", count=1, block=0)
    seed = backend._seed_context

    async def deleted_first(*args: Any, **kwargs: Any) -> None:
        await delete_like_the_operator(backend, "r")  # between the worker's read and the seeding
        await seed(*args, **kwargs)

    monkeypatch.setattr(backend, "_seed_context", deleted_first)
    [state] = await backend.step_inputs([claim])
    monkeypatch.undo()
    assert await keys_of(backend, "r") == {}
    assert (state.status, state.context) == (RunStatus.RUNNING, None)
    assert await process_claim(fenced, backend, claim, state=state) == "dropped"
    assert await keys_of(backend, "r") == {}
    assert await unacknowledged(backend) == 0


async def test_seeding_a_run_without_a_context_still_works(redis: Redis) -> None:
    backend = redis_backend(redis)
    await seed_run(backend, start_node="split3", payload=1, run_id="r")
    [claim] = await backend.queue.claim("c", count=1, block=0)
    [state] = await backend.step_inputs([claim])
    assert state.status is RunStatus.RUNNING
    assert state.context == {"hits": 0, "log": [], "tags": [], "seen": {}}
    assert await process_claim(fenced, backend, claim, state=state) == "committed"
    for claim in await backend.queue.claim("c", count=10, block=0):
        assert await process_claim(fenced, backend, claim) == "committed"
    [claim] = await backend.queue.claim("c", count=10, block=0)
    assert await process_claim(fenced, backend, claim) == "committed"
    info = await backend.runs.get("r")
    assert info is not None and (info.status, info.output) == (RunStatus.COMPLETED, [1, 2, 3])
    assert (await backend.contexts.get("r") or {})["hits"] == 3


# -- cancelled runs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["commit", "retry", "fail"])
async def test_steps_of_a_cancelled_run_change_nothing(make_backend: BackendFactory, ending: str) -> None:
    backend = make_backend("fenced", context_type=Bag, ttl=TTL)
    steps = await steps_in_flight(backend, "r")
    before = (
        await backend.contexts.get("r"),
        await backend.metrics.get("r"),
        await backend.runs.outputs("r"),
        await backend.errors.list("r"),
        sorted((s.item_id, s.node, s.status, s.attempt) for s in await backend.items.list("r")),
    )
    assert await backend.set_status("r", RunStatus.CANCELLED) is RunStatus.CANCELLED  # no interrupt
    cancelled = await backend.runs.get("r")

    results = await end_steps(backend, steps, ending)
    after = (
        await backend.contexts.get("r"),
        await backend.metrics.get("r"),
        await backend.runs.outputs("r"),
        await backend.errors.list("r"),
        sorted((s.item_id, s.node, s.status, s.attempt) for s in await backend.items.list("r")),
    )
    assert after == before
    assert before[0] == {"hits": 0, "log": [], "tags": [], "seen": {}}
    assert await backend.runs.get("r") == cancelled
    assert cancelled is not None and (cancelled.items_done, cancelled.items_total) == (1, 4)
    assert await unacknowledged(backend) == 0
    assert await backend.queue.backlog() == (0, 0)
    if isinstance(backend, RedisBackend):
        keys = await keys_of(backend, "r")
        assert keys and all(0 < ttl <= TTL for ttl in keys.values()), keys
        assert await backend.client.xlen(backend.keys.dead) == 0
    assert results == ["dropped"] * 3


async def test_a_run_cancelled_before_its_first_step_gets_no_context(redis: Redis) -> None:
    backend = redis_backend(redis)
    await seed_run(backend, start_node="split3", payload=1, run_id="r")
    assert await backend.set_status("r", RunStatus.CANCELLED) is RunStatus.CANCELLED
    [claim] = await backend.queue.claim("c", count=1, block=0)
    [state] = await backend.step_inputs([claim])
    keys = await keys_of(backend, "r")
    assert keys and all(0 < ttl <= TTL for ttl in keys.values()), keys
    assert not any(key.endswith(":ctx") or ":ctx:" in key for key in keys)
    assert (state.status, state.context) == (RunStatus.CANCELLED, None)
    assert await process_claim(fenced, backend, claim, state=state) == "dropped"
    assert await unacknowledged(backend) == 0


# -- with real worker processes ----------------------------------------------------------------------

FANOUT = "tests.distributed.flows:fanout"


async def started(marks: Any, run_id: str, count: int) -> bool:
    return len(read_marks(marks, run_id, "start")) >= count


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_a_run_deleted_while_its_steps_run_leaves_no_key(
    redis: Redis, workers: Workers, marks: Any
) -> None:
    await workers.start(FANOUT, count=1, concurrency=4)
    backend = RedisBackend(redis, "fanout", namespace=NAMESPACE, context_type=fanout.context_type)
    run_id = await start_run(fanout, backend, Job(count=4, seconds=1.5))
    await eventually(lambda: started(marks, run_id, 4), timeout=30, what="four running steps")
    await delete_like_the_operator(backend, run_id)

    async def ended() -> bool:
        marked = read_marks(marks, run_id)
        return sum(m.event in ("end", "interrupted") for m in marked) >= 4 and not await unacknowledged(
            backend
        )

    await eventually(ended, timeout=30, what="the steps to end")
    await asyncio.sleep(0.3)  # anything a late step still wrote would be there by now
    assert await keys_of(backend, run_id) == {}
    assert await backend.runs.get(run_id) is None


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_a_run_cancelled_without_interrupt_keeps_its_state(
    redis: Redis, workers: Workers, marks: Any
) -> None:
    await workers.start(FANOUT, count=1, concurrency=4)
    backend = RedisBackend(redis, "fanout", namespace=NAMESPACE, context_type=fanout.context_type)
    run_id = await start_run(fanout, backend, Job(count=4, seconds=1.5))
    await eventually(lambda: started(marks, run_id, 4), timeout=30, what="four running steps")
    assert await backend.set_status(run_id, RunStatus.CANCELLED, reason="cancelled") is RunStatus.CANCELLED

    async def ended() -> bool:
        return len(read_marks(marks, run_id, "end")) >= 4 and not await unacknowledged(backend)

    await eventually(ended, timeout=30, what="the running steps to finish")
    await asyncio.sleep(0.3)
    assert await backend.contexts.get(run_id) == {"total": 0}
    info = await backend.runs.get(run_id)
    assert info is not None and (info.status, info.items_done, info.items_total) == (
        RunStatus.CANCELLED, 1, 5,
    )  # fmt: skip
    metrics = await backend.metrics.get(run_id)
    assert (metrics.nodes["spread"].completed, metrics.nodes["work"].completed) == (1, 0)
    assert await backend.runs.outputs(run_id) == []
    keys = await keys_of(backend, run_id)
    assert keys and all(ttl > 0 for ttl in keys.values()), keys
