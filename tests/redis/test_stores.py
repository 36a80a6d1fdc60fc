"""Every store, on Redis and in memory alike (each test runs once per backend).

Steps are driven one at a time in this process (``DistributedWorker.run_once``), so every
state in between can be looked at.

Cases:
* runs: a started run is Pending with its workflow, creation time and deadline; starting the
  same run id again changes nothing; an unknown run is ``None``; the list is newest first,
  filters by status and honours ``limit``; the first step makes the run Running;
* contexts: the seeded context reads back; a workflow without a context type has none;
  every merge kind (replace, sum, max, min, append, union, update with a delete, custom)
  committed step by step gives the same context as a local run; a run seeded without a
  context (as the operator seeds) gets the model's defaults and keeps its steps' changes;
* metrics: created/completed/seconds per node and the run totals; retries and failures
  counted; an unknown run has zeros;
* errors: each failed attempt is recorded, oldest first, with node, attempt, type, message
  and traceback; the last one is permanent; an unknown run has none;
* liveness: heartbeats are listed, replaced by newer ones, expire after their ttl, and are
  removed on shutdown;
* work-item states: Queued -> Running -> Completed, children Queued, WaitingRetry with the
  next attempt (until a worker runs it), Failed; unknown items are ``None``;
* outputs: every terminal output in commit order, the run's output is the first one.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field

from floxide import Merge, NextAll, RetryPolicy, Workflow, WorkflowCtx, edge, join, node
from floxide.distributed import (
    DistributedOrchestrator,
    DistributedWorker,
    ItemStatus,
    RunStatus,
    WorkerHealth,
    WorkerStatus,
    start_run,
)
from floxide.distributed.execution import seed_run
from tests.distributed.flows import add_counts
from tests.redis.conftest import BackendFactory

pytestmark = pytest.mark.timeout(30)


# -- workflows ---------------------------------------------------------------------------------


class Everything(BaseModel):
    name: str = "new"
    hits: Annotated[int, Merge.sum()] = 0
    best: Annotated[int, Merge.max()] = 0
    low: Annotated[int, Merge.min()] = 100
    log: Annotated[list[str], Merge.append()] = Field(default_factory=list)
    tags: Annotated[set[str], Merge.union()] = Field(default_factory=set)
    seen: Annotated[dict[str, int], Merge.update()] = Field(default_factory=lambda: {"stale": -1})
    counts: Annotated[dict[str, int], Merge.custom(add_counts)] = Field(default_factory=dict)


@node
async def fan(n: int) -> NextAll[int]:
    return NextAll(list(range(n)))


@node
async def touch(ctx: WorkflowCtx[Everything], i: int) -> int:
    s = ctx.store
    s.hits += 1
    s.best = max(s.best, i * 10)
    s.low = min(s.low, i + 5)
    s.log.append(f"branch {i}")
    s.tags.add(f"t{i % 2}")
    s.seen[f"k{i}"] = i
    s.seen.pop("stale", None)
    s.counts[str(i % 2)] = s.counts.get(str(i % 2), 0) + 1
    return i


@node
async def finish(ctx: WorkflowCtx[Everything], values: list[int]) -> list[int]:
    ctx.store.name = "finished"
    return values


merging = Workflow("merging", start=fan, context=Everything, edges=[edge(fan, touch), join(touch, finish)])


@node
async def first(n: int) -> int:
    return n + 1


@node
async def second(n: int) -> int:
    return n * 2


chain = Workflow("chain", start=first, edges=[edge(first, second)])


@node
async def emit_three(n: int) -> NextAll[int]:
    return NextAll([n, n + 1, n + 2])


outputs_flow = Workflow("outputs", start=emit_three)


@node
async def broken(n: int) -> int:
    raise ValueError(f"broken on {n}")


failing = Workflow("failing", start=broken, retry={broken: RetryPolicy(max_attempts=2, initial_backoff=0)})


async def drain(worker: DistributedWorker, *, limit: int = 500) -> list[str]:
    """Run steps until none is left (promoting due retries); the results, in order."""
    results = []
    for _ in range(limit):
        result = await worker.run_once()
        if result is None:
            await worker.backend.promote_due()
            result = await worker.run_once()
            if result is None:
                return results
        results.append(result)
    raise AssertionError(f"still working after {limit} steps")


def worker_for(workflow: Workflow[Any, Any], backend: Any, **kw: Any) -> DistributedWorker:
    return DistributedWorker(workflow, backend, worker_id="tester-1", retry=None, **kw)


# -- runs ------------------------------------------------------------------------------------------


async def test_a_started_run_is_pending_once(make_backend: BackendFactory) -> None:
    backend = make_backend("chain")
    before = datetime.now(UTC)
    run_id = await start_run(chain, backend, 1, run_id="r-1", deadline_seconds=60)
    assert run_id == "r-1"
    info = await backend.runs.get("r-1")
    assert info is not None
    assert (info.run_id, info.workflow, info.status) == ("r-1", "chain", RunStatus.PENDING)
    assert before <= info.created_at <= datetime.now(UTC)
    assert info.deadline is not None and 55 < (info.deadline - before).total_seconds() < 65
    assert (info.items_total, info.items_done, info.has_output, info.finished_at) == (1, 0, False, None)

    again = await start_run(chain, backend, 99, run_id="r-1")
    assert again == "r-1"
    assert await backend.runs.get("r-1") == info
    assert len(await backend.queue.pending("r-1")) == 1
    assert await backend.runs.get("nope") is None


async def test_list_runs_newest_first_by_status(make_backend: BackendFactory) -> None:
    backend = make_backend("chain")
    for n in range(3):
        await start_run(chain, backend, n, run_id=f"r{n}")
        await asyncio.sleep(0.002)  # distinct creation times (ms)
    assert [i.run_id for i in await backend.runs.list()] == ["r2", "r1", "r0"]
    assert [i.run_id for i in await backend.runs.list(limit=2)] == ["r2", "r1"]
    assert await backend.set_status("r1", RunStatus.CANCELLED) is RunStatus.CANCELLED
    assert [i.run_id for i in await backend.runs.list(RunStatus.PENDING)] == ["r2", "r0"]
    assert await drain(worker_for(chain, backend)) == [
        "committed",
        "dropped",
        "committed",
        "committed",
        "committed",
    ]
    assert [i.run_id for i in await backend.runs.list(RunStatus.COMPLETED)] == ["r2", "r0"]
    assert [i.run_id for i in await backend.runs.list(RunStatus.CANCELLED)] == ["r1"]
    assert await backend.runs.list(RunStatus.FAILED) == []


async def test_the_first_step_starts_the_run(make_backend: BackendFactory) -> None:
    backend = make_backend("chain")
    await start_run(chain, backend, 1, run_id="r")
    worker = worker_for(chain, backend)
    assert await worker.run_once() == "committed"
    info = await backend.runs.get("r")
    assert info is not None and info.status is RunStatus.RUNNING and info.started_at is not None
    assert (info.items_total, info.items_done) == (2, 1)
    assert await worker.run_once() == "committed"
    info = await backend.runs.get("r")
    assert info is not None and info.status is RunStatus.COMPLETED
    assert (info.output, info.has_output, info.items_total, info.items_done) == (4, True, 2, 2)
    assert (
        info.finished_at is not None and info.started_at is not None and info.finished_at >= info.started_at
    )
    assert await worker.run_once() is None


# -- contexts ------------------------------------------------------------------------------------


async def test_context_seeded_and_absent(make_backend: BackendFactory) -> None:
    backend = make_backend("merging", context_type=Everything)
    seeded = Everything(name="seed", hits=5, log=["a"], tags={"x"}, seen={"k": 1}, counts={"0": 2})
    await start_run(merging, backend, 2, run_id="r", context=seeded)
    stored = await backend.contexts.get("r")
    assert stored is not None
    assert Everything.model_validate(stored) == seeded
    assert await backend.contexts.get("unknown") is None

    plain = make_backend("chain")
    await start_run(chain, plain, 1, run_id="p")
    assert await plain.contexts.get("p") is None


async def test_every_merge_kind_matches_a_local_run(make_backend: BackendFactory) -> None:
    backend = make_backend("merging", context_type=Everything)
    local = await merging.execute(4)
    await start_run(merging, backend, 4, run_id="r")
    results = await drain(worker_for(merging, backend))
    assert results == ["committed"] * 6  # fan, 4 x touch, finish
    orchestrator = DistributedOrchestrator(merging, backend)
    context = await orchestrator.context("r")
    assert isinstance(context, Everything)
    expected = local.context
    assert context.model_dump(exclude={"log"}) == expected.model_dump(exclude={"log"})
    assert sorted(context.log) == sorted(expected.log) == [f"branch {i}" for i in range(4)]
    assert context.hits == 4 and context.best == 30 and context.low == 5 and context.name == "finished"
    assert context.seen == {"k0": 0, "k1": 1, "k2": 2, "k3": 3}
    assert context.counts == {"0": 2, "1": 2} and context.tags == {"t0", "t1"}
    assert (await orchestrator.run("r")).output == [0, 1, 2, 3]


async def test_a_run_seeded_without_context_gets_the_defaults(make_backend: BackendFactory) -> None:
    backend = make_backend("merging", context_type=Everything)
    await seed_run(backend, start_node="fan", payload=3, run_id="r")  # as the operator seeds runs
    assert await backend.contexts.get("r") is None  # not seeded yet: the first step does it
    await drain(worker_for(merging, backend))
    stored = await backend.contexts.get("r")
    assert stored is not None
    context = Everything.model_validate(stored)
    assert context.model_dump(exclude={"log"}) == (await merging.execute(3)).context.model_dump(
        exclude={"log"}
    )
    assert (context.hits, context.name, sorted(context.log)) == (
        3,
        "finished",
        ["branch 0", "branch 1", "branch 2"],
    )


# -- metrics, errors, outputs ----------------------------------------------------------------------


async def test_metrics_per_node_and_per_run(make_backend: BackendFactory) -> None:
    backend = make_backend("merging", context_type=Everything)
    await start_run(merging, backend, 3, run_id="r")
    await drain(worker_for(merging, backend))
    metrics = await backend.metrics.get("r")
    counts = {name: (m.created, m.completed, m.failed, m.retries) for name, m in metrics.nodes.items()}
    assert counts == {"fan": (1, 1, 0, 0), "touch": (3, 3, 0, 0), "finish": (1, 1, 0, 0)}
    assert (metrics.total_work_items, metrics.completed, metrics.failed, metrics.retries) == (5, 5, 0, 0)
    assert all(m.seconds >= 0 for m in metrics.nodes.values()) and metrics.nodes["touch"].pending == 0
    empty = await backend.metrics.get("unknown")
    assert (empty.total_work_items, empty.completed, empty.nodes) == (0, 0, {})


async def test_retries_and_failures_are_counted_and_recorded(make_backend: BackendFactory) -> None:
    backend = make_backend("failing")
    await start_run(failing, backend, 7, run_id="r")
    worker = worker_for(failing, backend)
    assert await drain(worker) == ["retrying", "failed"]
    metrics = await backend.metrics.get("r")
    node = metrics.nodes["broken"]
    assert (node.created, node.completed, node.failed, node.retries, node.pending) == (1, 0, 1, 1, 0)
    assert (metrics.failed, metrics.retries) == (1, 1)

    errors = await backend.errors.list("r")
    assert [(e.node, e.attempt, e.error_type, e.permanent) for e in errors] == [
        ("broken", 1, "ValueError", False),
        ("broken", 2, "ValueError", True),
    ]
    assert all(e.message == "broken on 7" and e.run_id == "r" and e.item_id == "root" for e in errors)
    assert "ValueError: broken on 7" in errors[-1].traceback
    assert errors[0].timestamp <= errors[1].timestamp
    info = await backend.runs.get("r")
    assert info is not None and info.status is RunStatus.FAILED
    assert info.error == "node 'broken' failed: ValueError: broken on 7"
    assert await backend.errors.list("unknown") == []


async def test_outputs_in_commit_order(make_backend: BackendFactory) -> None:
    backend = make_backend("outputs")
    await start_run(outputs_flow, backend, 5, run_id="r")
    assert await drain(worker_for(outputs_flow, backend)) == ["committed"]
    assert await backend.runs.outputs("r") == [5, 6, 7]
    info = await backend.runs.get("r")
    assert info is not None and (info.status, info.output) == (RunStatus.COMPLETED, 5)
    assert await backend.runs.outputs("unknown") == []


# -- liveness -------------------------------------------------------------------------------------


async def test_heartbeats_expire_and_are_removed(make_backend: BackendFactory) -> None:
    backend = make_backend("chain")
    await backend.liveness.heartbeat(WorkerHealth(worker_id="a", workflow="chain"), ttl=30)
    await backend.liveness.heartbeat(WorkerHealth(worker_id="b", workflow="chain"), ttl=0.3)
    assert sorted(h.worker_id for h in await backend.liveness.list()) == ["a", "b"]

    busy = WorkerHealth(
        worker_id="a", workflow="chain", status=WorkerStatus.BUSY, in_flight=["r/x"], processed=3
    )
    await backend.liveness.heartbeat(busy, ttl=30)
    listed = {h.worker_id: h for h in await backend.liveness.list()}
    assert (
        listed["a"].status is WorkerStatus.BUSY
        and listed["a"].in_flight == ["r/x"]
        and listed["a"].processed == 3
    )

    deadline = time.monotonic() + 5
    while "b" in {h.worker_id for h in await backend.liveness.list()}:
        assert time.monotonic() < deadline, "an expired heartbeat is still listed"
        await asyncio.sleep(0.05)
    await backend.liveness.remove("a")
    assert await backend.liveness.list() == []


# -- work-item states -----------------------------------------------------------------------------


async def test_item_states_through_a_run(make_backend: BackendFactory) -> None:
    backend = make_backend("chain")
    await start_run(chain, backend, 1, run_id="r")
    root = await backend.items.get("r", "root")
    assert root is not None and (root.node, root.status, root.attempt) == ("first", ItemStatus.QUEUED, 1)

    [claim] = await backend.queue.claim("c", count=1, block=0)
    await backend.step_input(claim)
    root = await backend.items.get("r", "root")
    assert root is not None and root.status is ItemStatus.RUNNING
    await backend.queue.release("c", [claim])

    worker = worker_for(chain, backend)
    assert await worker.run_once() == "committed"  # a released item is reclaimed at once
    states = {s.item_id: (s.node, s.status) for s in await backend.items.list("r")}
    [child] = [i for i in states if i != "root"]
    assert states == {"root": ("first", ItemStatus.COMPLETED), child: ("second", ItemStatus.QUEUED)}
    assert await worker.run_once() == "committed"
    assert {s.status for s in await backend.items.list("r")} == {ItemStatus.COMPLETED}
    assert await backend.items.get("r", "nope") is None
    assert await backend.items.list("unknown") == []


async def test_item_states_of_retries_and_failures(make_backend: BackendFactory) -> None:
    backend = make_backend("failing")
    await start_run(failing, backend, 1, run_id="r")
    worker = worker_for(failing, backend)
    assert await worker.run_once() == "retrying"
    state = await backend.items.get("r", "root")
    assert state is not None and (state.status, state.attempt) == (ItemStatus.WAITING_RETRY, 2)
    assert (await backend.promote_due()).moved == 1
    state = await backend.items.get("r", "root")  # due, back in the queue: waiting for a worker
    assert state is not None and (state.status, state.attempt) == (ItemStatus.WAITING_RETRY, 2)
    [claim] = await backend.queue.claim("c", count=1, block=0)
    await backend.step_input(claim)
    state = await backend.items.get("r", "root")
    assert state is not None and (state.status, state.attempt) == (ItemStatus.RUNNING, 2)
    await backend.queue.release("c", [claim])
    assert await worker.run_once() == "failed"
    state = await backend.items.get("r", "root")
    assert state is not None and (state.status, state.attempt) == (ItemStatus.FAILED, 2)
