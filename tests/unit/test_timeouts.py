"""Per-node timeouts, per-run deadlines, and cancellation.

Cases:
* a node over its ``timeouts`` limit fails the run with ``NodeTimeout`` naming the node:
  ``except Timeout`` and ``except NodeFailed`` both catch it, also after retries and in a
  checkpointed run; a retry policy retries it, a fallback catches it (as ``Timeout``);
* a node failing with a ``Timeout`` that is not its own limit (a nested workflow's node or
  deadline) fails with a plain ``NodeFailed``;
* a run over its deadline (``Workflow(timeout=)`` or ``WorkflowCtx(timeout=)``) fails with
  ``Timeout`` promptly; the deadline covers the whole run, not each step;
* nodes see the time left (``ctx.remaining()``);
* ``ctx.cancel()`` from outside ends the run with ``Cancelled`` promptly; the running
  nodes are interrupted and see ``ctx.is_cancelled()``; ``ctx.sleep`` wakes up;
* a node can cancel its own run, with a reason;
* a context cancelled before the run starts runs nothing;
* cancelling the task awaiting the run propagates ``CancelledError`` (not ``Cancelled``);
* a cancelled checkpointed run can be resumed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from floxide import (
    Cancelled,
    Failure,
    InMemoryCheckpointStore,
    NextAll,
    NodeFailed,
    NodeTimeout,
    RetryPolicy,
    Timeout,
    Workflow,
    WorkflowCtx,
    edge,
    node,
    on_failure,
    otherwise,
    route,
    when,
)


@node
async def slow(ctx: WorkflowCtx[Any], seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


async def test_node_timeout() -> None:
    workflow = Workflow("w", start=slow, timeouts={slow: 0.02})
    assert await workflow.run(0.0) == 0.0
    started = time.monotonic()
    with pytest.raises(NodeFailed) as info:
        await workflow.run(5.0)
    assert time.monotonic() - started < 1
    assert str(info.value) == "node 'slow' failed: Timeout: node 'slow' timed out after 0.02s"
    assert isinstance(info.value.__cause__, Timeout)


async def test_node_timeout_is_a_timeout() -> None:
    workflow = Workflow("w", start=slow, timeouts={slow: 0.02})
    with pytest.raises(Timeout) as info:
        await workflow.run(5.0)
    error = info.value
    assert isinstance(error, NodeTimeout) and isinstance(error, NodeFailed)
    assert (error.node, error.error_type, error.attempts) == ("slow", "Timeout", 1)
    assert (error.seconds, error.scope) == (0.02, "node 'slow'")
    assert error.error_message == "node 'slow' timed out after 0.02s"
    assert str(error) == "node 'slow' failed: Timeout: node 'slow' timed out after 0.02s"
    assert type(error.__cause__) is Timeout and error.__cause__.scope == "node 'slow'"


async def test_node_timeout_after_retries_and_checkpointed() -> None:
    policy = RetryPolicy(max_attempts=2, initial_backoff=0.001, max_backoff=0.001)
    workflow = Workflow("w", start=slow, timeouts={slow: 0.02}, retry={slow: policy})
    with pytest.raises(Timeout) as info:
        await workflow.run(5.0)
    assert isinstance(info.value, NodeFailed) and info.value.attempts == 2
    assert str(info.value) == (
        "node 'slow' failed after 2 attempts: Timeout: node 'slow' timed out after 0.02s"
    )

    store = InMemoryCheckpointStore()
    durable = Workflow("w", start=slow, timeouts={slow: 0.02})
    with pytest.raises(Timeout):
        await durable.run_with_checkpoint(5.0, store=store, run_id="t1")
    saved = await store.load("t1")
    assert saved is not None
    assert saved.status == "failed"
    assert saved.error == "node 'slow' failed: Timeout: node 'slow' timed out after 0.02s"


async def test_other_timeouts_in_a_node_are_node_failures() -> None:
    inner = Workflow("inner", start=slow, timeouts={slow: 0.02})

    @node
    async def nested(ctx: WorkflowCtx[Any], seconds: float) -> float:
        return await inner.run(seconds)  # an inner node's timeout, not this node's

    @node
    async def waits(ctx: WorkflowCtx[Any], seconds: float) -> float:
        raise Timeout(seconds, scope="waiting for run 'x'")

    for start, error_type in ((nested, "NodeTimeout"), (waits, "Timeout")):
        with pytest.raises(NodeFailed) as info:
            await Workflow("outer", start=start).run(5.0)
        assert type(info.value) is NodeFailed and info.value.error_type == error_type
        assert isinstance(info.value.__cause__, Timeout)


async def test_node_timeout_is_retried_and_caught() -> None:
    attempts: list[int] = []

    @node
    async def sometimes_slow(ctx: WorkflowCtx[Any], x: int) -> int:
        attempts.append(ctx.attempt)
        await asyncio.sleep(5 if ctx.attempt == 1 else 0)
        return x

    policy = RetryPolicy(max_attempts=2, initial_backoff=0.001, max_backoff=0.001)
    workflow = Workflow(
        "w", start=sometimes_slow, timeouts={sometimes_slow: 0.02}, retry={sometimes_slow: policy}
    )
    assert await workflow.run(4) == 4
    assert attempts == [1, 2]

    @node
    async def report(failure: Failure[float]) -> str:
        return failure.error_type

    caught = Workflow("w", start=slow, edges=[on_failure(slow, report)], timeouts={"slow": 0.01})
    assert await caught.run(5.0) == "Timeout"


@pytest.mark.parametrize("where", ["workflow", "ctx"])
async def test_run_deadline(where: str) -> None:
    workflow = Workflow("w", start=slow, timeout=0.05 if where == "workflow" else None)
    ctx: WorkflowCtx[None] = WorkflowCtx(timeout=0.05 if where == "ctx" else None)
    started = time.monotonic()
    with pytest.raises(Timeout) as info:
        await workflow.run(5.0, ctx=ctx)
    assert time.monotonic() - started < 1
    assert str(info.value) == "run timed out after 0.05s"
    assert info.value.scope == "run"


async def test_deadline_covers_the_whole_run() -> None:
    @node
    async def step(x: int) -> int:
        await asyncio.sleep(0.03)
        return x + 1

    workflow = Workflow(
        "w", start=step, edges=[route(step, when(lambda x: x < 10, step), otherwise())], timeout=0.1
    )
    with pytest.raises(Timeout):
        await workflow.run(0)  # every step is short, the run is not


async def test_nodes_see_the_time_left() -> None:
    left: list[float | None] = []

    @node
    async def peek(ctx: WorkflowCtx[Any], x: int) -> int:
        left.append(ctx.remaining())
        return x

    await Workflow("w", start=peek).run(1)
    await Workflow("w", start=peek, timeout=10).run(1)
    assert left[0] is None
    assert left[1] is not None and 9 < left[1] <= 10


async def test_cancel_from_outside() -> None:
    saw: list[bool] = []

    @node
    async def spread(x: int) -> NextAll[int]:
        return NextAll([1, 2, 3])

    @node
    async def wait(ctx: WorkflowCtx[Any], i: int) -> int:
        try:
            if i == 1:
                await ctx.sleep(5)
            else:
                await asyncio.sleep(5)
        finally:
            saw.append(ctx.is_cancelled())
        return i

    ctx: WorkflowCtx[None] = WorkflowCtx()
    asyncio.get_running_loop().call_later(0.03, ctx.cancel)
    started = time.monotonic()
    with pytest.raises(Cancelled, match="workflow cancelled"):
        await Workflow("w", start=spread, edges=[edge(spread, wait)]).run(0, ctx=ctx)
    assert time.monotonic() - started < 1
    assert saw == [True, True, True]


async def test_ctx_sleep_raises_on_cancellation() -> None:
    ctx: WorkflowCtx[None] = WorkflowCtx()
    asyncio.get_running_loop().call_later(0.01, ctx.cancel, "stop now")
    with pytest.raises(Cancelled, match="stop now"):
        await ctx.sleep(5)
    await asyncio.sleep(0)


async def test_node_cancels_its_own_run() -> None:
    @node
    async def quit(ctx: WorkflowCtx[Any], x: int) -> int:
        ctx.cancel("nothing left to do")
        await ctx.sleep(5)
        return x

    with pytest.raises(Cancelled, match="nothing left to do"):
        await Workflow("w", start=quit).run(1)


async def test_cancelled_before_start_runs_nothing() -> None:
    ran: list[int] = []

    @node
    async def record(x: int) -> int:
        ran.append(x)
        return x

    ctx: WorkflowCtx[None] = WorkflowCtx()
    ctx.cancel()
    with pytest.raises(Cancelled):
        await Workflow("w", start=record).run(1, ctx=ctx)
    assert ran == []


async def test_cancelling_the_awaiting_task_propagates() -> None:
    task = asyncio.ensure_future(Workflow("w", start=slow).run(5.0))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_cancelled_checkpointed_run_resumes() -> None:
    @node
    async def step(ctx: WorkflowCtx[Any], x: int) -> int:
        if x == 2 and ctx.run_id and not resumed:
            ctx.cancel()
            await ctx.sleep(5)
        return x + 1

    resumed = False
    workflow = Workflow("w", start=step, edges=[route(step, when(lambda x: x < 5, step), otherwise())])
    store = InMemoryCheckpointStore()
    with pytest.raises(Cancelled):
        await workflow.run_with_checkpoint(0, store=store, run_id="c1")
    resumed = True
    assert await workflow.resume(store=store, run_id="c1") == 5
