"""Nested workflows (``CompositeNode``).

Cases:
* the inner workflow's first output is the node's output (5 -> 10 -> 20);
* the node takes the inner workflow's name, input and output types (checked in the outer graph);
* an inner failure fails the outer run, naming the composite node;
* a composite node can be retried and have a fallback like any node;
* with the same context type, the inner run's changes merge into the outer context;
* the inner run shares the outer run's cancellation.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from floxide import (
    Cancelled,
    CompositeNode,
    GraphError,
    Merge,
    NodeFailed,
    Workflow,
    WorkflowCtx,
    edge,
    node,
    on_failure,
)


@node
async def double(x: int) -> int:
    return x * 2


@node
async def add_ten(x: int) -> int:
    return x + 10


@node
async def show(x: int) -> str:
    return f"={x}"


inner: Workflow[int, int] = Workflow("inner", start=double, edges=[edge(double, add_ten)])


async def test_inner_output_is_the_node_output() -> None:
    sub = CompositeNode(workflow=inner)
    assert sub.name == "inner"
    assert (sub.input_type, sub.output_type) == (int, int)
    outer = Workflow("outer", start=sub, edges=[edge(sub, show)])
    assert await outer.run(5) == "=20"


async def test_inner_types_are_checked_in_the_outer_graph() -> None:
    @node
    async def wants_text(x: str) -> str:
        return x

    sub = CompositeNode(workflow=inner)
    with pytest.raises(GraphError, match="'inner' sends int but 'wants_text' takes str"):
        Workflow("outer", start=sub, edges=[edge(sub, wants_text)])


@node
async def explode(x: int) -> int:
    raise ValueError("inner boom")


async def test_inner_failure_fails_the_outer_run() -> None:
    sub = CompositeNode(workflow=Workflow("bad", start=explode)).named("sub")
    with pytest.raises(
        NodeFailed, match="node 'sub' failed: NodeFailed: node 'explode' failed: ValueError: inner boom"
    ):
        await Workflow("outer", start=sub).run(1)


async def test_inner_failure_takes_the_fallback() -> None:
    sub = CompositeNode(workflow=Workflow("bad", start=explode)).named("sub")

    @node
    async def rescue(x: int) -> int:
        return -1

    assert await Workflow("outer", start=sub, edges=[on_failure(sub, rescue)]).run(1) == -1


class Tally(BaseModel):
    count: Annotated[int, Merge.sum()] = 0
    log: Annotated[list[str], Merge.append()] = []


async def test_shared_context_changes_merge_back() -> None:
    @node
    async def bump(ctx: WorkflowCtx[Tally], x: int) -> int:
        ctx.store.count += x
        ctx.store.log.append(f"inner {x}")
        return x

    @node
    async def after(ctx: WorkflowCtx[Tally], x: int) -> int:
        ctx.store.log.append("outer")
        return ctx.store.count

    sub = CompositeNode(workflow=Workflow("tally", start=bump, context=Tally)).named("sub")
    outer = Workflow("outer", start=sub, context=Tally, edges=[edge(sub, after)])
    result = await outer.execute(7, ctx=WorkflowCtx(Tally(count=1)))
    assert result.output == 8
    assert result.context.count == 8
    assert result.context.log == ["inner 7", "outer"]


async def test_cancellation_reaches_the_inner_run() -> None:
    stopped: list[bool] = []

    @node
    async def sleepy(ctx: WorkflowCtx[Any], x: int) -> int:
        try:
            await asyncio.sleep(5)
        finally:
            stopped.append(ctx.is_cancelled())
        return x

    sub = CompositeNode(workflow=Workflow("sleepy", start=sleepy)).named("sub")
    ctx: WorkflowCtx[None] = WorkflowCtx()
    asyncio.get_running_loop().call_later(0.02, ctx.cancel)
    with pytest.raises(Cancelled):
        await Workflow("outer", start=sub).run(1, ctx=ctx)
    assert stopped == [True]
