"""The context nodes see, and how their changes merge during real runs.

Cases:
* a step sees the run id, its node name, a unique item id and the attempt number;
* ``ctx.store`` starts from the context given to the run (or the model's defaults);
* the caller's context object is not modified; the final context is in the result and,
  with a caller's ``ctx``, in ``ctx.store`` (also with a workflow deadline, a ``store=None``
  ctx, concurrent branches, and after a failed run: the context of its committed steps);
* a node running another workflow with its own step ``ctx`` gets the nested run's changes,
  merged like any step's (concurrent branches each add theirs);
* 1,000 concurrent branches adding 1 to a summed field give exactly 1,000;
* appends, unions, max and dict updates from concurrent branches are all kept;
* last writer wins for plain fields;
* a step that breaks a merge rule (a fixed field, a removal from an append-only list)
  fails with ``MergeError`` naming the field;
* a workflow without context gives ``store = None``; a wrong context type is refused.
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field

from floxide import (
    InputError,
    Merge,
    MergeError,
    NextAll,
    NodeFailed,
    Workflow,
    WorkflowCtx,
    edge,
    join,
    node,
    otherwise,
    route,
    when,
)


class Shared(BaseModel):
    count: Annotated[int, Merge.sum()] = 0
    best: Annotated[int, Merge.max()] = 0
    lowest: Annotated[int, Merge.min()] = 1000
    log: Annotated[list[int], Merge.append()] = Field(default_factory=list)
    tags: Annotated[set[str], Merge.union()] = Field(default_factory=set)
    by_key: Annotated[dict[str, int], Merge.update()] = Field(default_factory=dict)
    last: str = ""
    limit: Annotated[int, Merge.fixed()] = 10


Ctx = WorkflowCtx[Shared]


@node
async def spread(ctx: Ctx, n: int) -> NextAll[int]:
    return NextAll(list(range(n)))


@node
async def touch(ctx: Ctx, i: int) -> int:
    await asyncio.sleep(0)
    ctx.store.count += 1
    ctx.store.best = max(ctx.store.best, i)
    ctx.store.lowest = min(ctx.store.lowest, i)
    ctx.store.log.append(i)
    ctx.store.tags.add(f"t{i % 3}")
    ctx.store.by_key[f"k{i}"] = i
    ctx.store.last = f"item {i}"
    return i


@node
async def summary(ctx: Ctx, values: list[int]) -> Shared:
    return ctx.store


async def test_step_identity() -> None:
    seen: list[tuple[str, str, str, int]] = []

    @node
    async def record(ctx: WorkflowCtx[Any], i: int) -> int:
        seen.append((ctx.run_id, ctx.node, ctx.item_id, ctx.attempt))
        return i

    workflow: Workflow[int, Any] = Workflow("w", start=spread, context=Shared, edges=[edge(spread, record)])
    await workflow.execute(3, run_id="run-7")
    assert {s[0] for s in seen} == {"run-7"}
    assert {s[1] for s in seen} == {"record"}
    assert len({s[2] for s in seen}) == 3
    assert {s[3] for s in seen} == {1}


async def test_initial_and_final_context() -> None:
    @node
    async def bump(ctx: Ctx, x: int) -> int:
        ctx.store.count += x
        return ctx.store.count

    workflow: Workflow[int, int] = Workflow("w", start=bump, context=Shared)
    initial = Shared(count=5)
    result = await workflow.execute(2, ctx=WorkflowCtx(initial))
    assert result.output == 7
    assert result.context.count == 7
    assert initial.count == 5
    assert (await workflow.execute(2)).context.count == 2


@pytest.mark.parametrize("deadline", [None, 30.0])
async def test_caller_ctx_sees_the_final_context(deadline: float | None) -> None:
    @node
    async def bump(ctx: Ctx, x: int) -> int:
        ctx.store.count += x
        return ctx.store.count

    workflow: Workflow[int, int] = Workflow("w", start=bump, context=Shared, timeout=deadline)
    initial = Shared(count=5)
    ctx = WorkflowCtx(initial)
    assert await workflow.run(2, ctx=ctx) == 7
    assert ctx.store.count == 7 and initial.count == 5
    result = await workflow.execute(3, ctx=ctx)  # the next run starts from there
    assert result.output == 10 and ctx.store is result.context

    empty: WorkflowCtx[Shared] = WorkflowCtx()
    assert await workflow.run(4, ctx=empty) == 4
    assert empty.store.count == 4


async def test_caller_ctx_after_concurrent_branches() -> None:
    workflow: Workflow[int, Shared] = Workflow(
        "w", start=spread, context=Shared, edges=[edge(spread, touch), join(touch, summary)]
    )
    ctx = WorkflowCtx(Shared(count=5, log=[-1]))
    await workflow.run(100, ctx=ctx)
    assert ctx.store.count == 105
    assert sorted(ctx.store.log) == list(range(-1, 100))
    assert ctx.store.by_key == {f"k{i}": i for i in range(100)}


async def test_caller_ctx_after_a_failed_run() -> None:
    @node
    async def bump(ctx: Ctx, x: int) -> int:
        if x == 3:
            raise RuntimeError("stop at 3")
        ctx.store.count += 1
        return x + 1

    workflow: Workflow[int, int] = Workflow(
        "w", start=bump, context=Shared, edges=[route(bump, when(lambda x: x < 9, bump), otherwise())]
    )
    ctx = WorkflowCtx(Shared())
    with pytest.raises(NodeFailed, match="stop at 3"):
        await workflow.run(0, ctx=ctx)
    assert ctx.store.count == 3


async def test_nested_run_with_the_step_ctx_merges() -> None:
    @node
    async def add(ctx: Ctx, i: int) -> int:
        ctx.store.count += 1
        ctx.store.log.append(i)
        return i

    inner: Workflow[int, int] = Workflow("inner", start=add, context=Shared)

    @node
    async def call_inner(ctx: Ctx, i: int) -> int:
        await asyncio.sleep(0)
        return await inner.run(i, ctx=ctx)

    outer: Workflow[int, Shared] = Workflow(
        "outer", start=spread, context=Shared, edges=[edge(spread, call_inner), join(call_inner, summary)]
    )
    final = (await outer.execute(50)).context
    assert final.count == 50
    assert sorted(final.log) == list(range(50))


async def test_concurrent_branches_merge_every_change() -> None:
    workflow: Workflow[int, Shared] = Workflow(
        "w", start=spread, context=Shared, edges=[edge(spread, touch), join(touch, summary)]
    )
    result = await workflow.execute(1000)
    final = result.context
    assert result.output == final
    assert final.count == 1000
    assert (final.best, final.lowest) == (999, 0)
    assert sorted(final.log) == list(range(1000))
    assert final.tags == {"t0", "t1", "t2"}
    assert final.by_key == {f"k{i}": i for i in range(1000)}
    assert final.last.startswith("item ")


async def test_fixed_field_change_fails_the_step() -> None:
    @node
    async def cheat(ctx: Ctx, x: int) -> int:
        ctx.store.limit = 99
        return x

    with pytest.raises(
        NodeFailed, match=re.escape("MergeError: context field 'Shared.limit' is Merge.fixed")
    ) as info:
        await Workflow("w", start=cheat, context=Shared).run(1)
    assert isinstance(info.value.__cause__, MergeError)


async def test_removing_from_append_only_fails_the_step() -> None:
    @node
    async def rewrite(ctx: Ctx, x: int) -> int:
        ctx.store.log.clear()
        return x

    with pytest.raises(NodeFailed, match=re.escape("'Shared.log' uses Merge.append")):
        await Workflow("w", start=rewrite, context=Shared).run(1, ctx=WorkflowCtx(Shared(log=[1])))


async def test_no_context() -> None:
    stores: list[Any] = []

    @node
    async def peek(ctx: WorkflowCtx[None], x: int) -> int:
        stores.append(ctx.store)
        return x

    assert await Workflow("w", start=peek).run(1) == 1
    assert stores == [None]


async def test_wrong_context_type_is_refused() -> None:
    class Other(BaseModel):
        x: int = 0

    workflow: Workflow[int, Any] = Workflow("w", start=touch, context=Shared)
    with pytest.raises(InputError, match="workflow 'w' expects a Shared context, got Other"):
        await workflow.run(1, ctx=WorkflowCtx(Other()))
