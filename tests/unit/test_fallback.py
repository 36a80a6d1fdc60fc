"""Fallback edges (``on_failure``).

Cases:
* the fallback receives the failed node's original input;
* a fallback taking ``Failure[...]`` gets the input, node, error type, message and attempts;
* the fallback runs only after the node's retries are exhausted (``attempts`` says how many);
* ``PermanentError`` skips the retries and goes straight to the fallback;
* a fallback may feed the main path again, fan out to several nodes, or be terminal;
* a failed step's context changes are discarded before the fallback runs;
* a failure inside the fallback fails the run, naming the fallback node;
* without a fallback, ``NodeFailed`` names the node and chains the original exception.
"""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from floxide import (
    Failure,
    Merge,
    NodeFailed,
    PermanentError,
    RetryPolicy,
    Workflow,
    WorkflowCtx,
    edge,
    node,
    on_failure,
)


@node
async def fragile(x: int) -> int:
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x


@node
async def done(x: int) -> str:
    return f"done {x}"


async def test_fallback_receives_the_original_input() -> None:
    @node
    async def use_default(x: int) -> int:
        return abs(x) * 100

    workflow = Workflow(
        "w",
        start=fragile,
        edges=[edge(fragile, done), on_failure(fragile, use_default), edge(use_default, done)],
    )
    assert await workflow.run(3) == "done 3"
    assert await workflow.run(-2) == "done 200"


async def test_fallback_receiving_failure() -> None:
    got: list[Failure[int]] = []

    @node
    async def report(failure: Failure[int]) -> str:
        got.append(failure)
        return failure.error

    workflow = Workflow("w", start=fragile, edges=[edge(fragile, done), on_failure(fragile, report)])
    assert await workflow.run(-7) == "negative: -7"
    assert got[0].input == -7
    assert (got[0].node, got[0].error_type, got[0].attempts) == ("fragile", "ValueError", 1)


async def test_fallback_after_retries() -> None:
    calls: list[int] = []

    @node
    async def flaky(ctx: WorkflowCtx[Any], x: int) -> int:
        calls.append(ctx.attempt)
        raise ConnectionError("down")

    @node
    async def report(failure: Failure[int]) -> int:
        return failure.attempts

    workflow = Workflow(
        "w",
        start=flaky,
        edges=[on_failure(flaky, report)],
        retry={flaky: RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.001)},
    )
    assert await workflow.run(1) == 3
    assert calls == [1, 2, 3]


async def test_permanent_error_is_not_retried() -> None:
    calls: list[int] = []

    @node
    async def invalid(x: int) -> int:
        calls.append(x)
        raise PermanentError("bad request")

    @node
    async def report(failure: Failure[int]) -> str:
        return f"{failure.error_type} after {failure.attempts}"

    workflow = Workflow(
        "w", start=invalid, edges=[on_failure(invalid, report)], retry={invalid: RetryPolicy(max_attempts=5)}
    )
    assert await workflow.run(1) == "PermanentError after 1"
    assert calls == [1]


async def test_fallback_fans_out() -> None:
    @node
    async def alert(x: int) -> str:
        return f"alert {x}"

    @node
    async def log(x: int) -> str:
        return f"log {x}"

    workflow = Workflow("w", start=fragile, edges=[edge(fragile, done), on_failure(fragile, alert, log)])
    assert (await workflow.execute(-1)).outputs == ["alert -1", "log -1"]


class Counts(BaseModel):
    seen: Annotated[int, Merge.sum()] = 0


async def test_failed_step_changes_are_discarded() -> None:
    @node
    async def count_then_fail(ctx: WorkflowCtx[Counts], x: int) -> int:
        ctx.store.seen += 10
        raise RuntimeError("after counting")

    @node
    async def read(ctx: WorkflowCtx[Counts], x: int) -> int:
        return ctx.store.seen

    workflow = Workflow("w", start=count_then_fail, context=Counts, edges=[on_failure(count_then_fail, read)])
    result = await workflow.execute(1)
    assert result.output == 0
    assert result.context.seen == 0


async def test_failing_fallback_fails_the_run() -> None:
    @node
    async def broken_rescue(x: int) -> int:
        raise KeyError("rescue failed too")

    workflow = Workflow("w", start=fragile, edges=[on_failure(fragile, broken_rescue)])
    with pytest.raises(NodeFailed, match="node 'broken_rescue' failed: KeyError"):
        await workflow.run(-1)


async def test_without_fallback_node_failed() -> None:
    workflow = Workflow("w", start=fragile, edges=[edge(fragile, done)])
    with pytest.raises(NodeFailed) as info:
        await workflow.run(-1)
    assert str(info.value) == "node 'fragile' failed: ValueError: negative: -1"
    assert (info.value.node, info.value.attempts) == ("fragile", 1)
    assert isinstance(info.value.__cause__, ValueError)
