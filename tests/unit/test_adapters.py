"""Adapters: ``BatchNode``, ``SplitNode`` and ``Source``.

Cases:
* BatchNode keeps input order whatever the finishing order, and runs at most
  ``batch_size`` elements at once;
* BatchNode flattens ``NextAll``, drops ``Hold``, and fails on the first failure
  (``Abort`` or exception), cancelling the elements still running;
* a batch's failure keeps the element's error type (a ``PermanentError`` is not retried);
* BatchNode wraps a ``Node`` subclass as well as a function node; types come from it;
* SplitNode fans out its function's elements; name and types come from the function;
* Source runs the workflow once per value sent, in order, until closed; ``run`` counts;
  a closed sender refuses values; a failing run stops the source with its error.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from floxide import (
    Abort,
    BatchNode,
    Hold,
    Next,
    NextAll,
    Node,
    NodeFailed,
    PermanentError,
    RetryPolicy,
    SplitNode,
    Transition,
    Workflow,
    WorkflowCtx,
    edge,
    node,
    source,
)


async def test_batch_keeps_order_and_bounds_concurrency() -> None:
    running, peak = 0, 0

    @node
    async def slow_square(x: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.002 * (10 - x))  # later elements finish first
        running -= 1
        return x * x

    batch = BatchNode(inner=slow_square, batch_size=3)
    assert batch.name == "slow_square_batch"
    assert (batch.input_type, batch.output_type) == (list[int], list[int])
    assert await Workflow("w", start=batch).run(list(range(10))) == [x * x for x in range(10)]
    assert peak == 3


async def test_batch_flattens_and_drops() -> None:
    @node
    async def expand(x: int) -> Transition[int]:
        if x == 0:
            return Hold()
        if x == 1:
            return NextAll([10, 11])
        return Next(x)

    assert await Workflow("w", start=BatchNode(inner=expand)).run([0, 1, 2, 3]) == [10, 11, 2, 3]


@pytest.mark.parametrize("how", ["abort", "raise"])
async def test_batch_fails_on_first_failure(how: str) -> None:
    finished: list[int] = []

    @node
    async def picky(x: int) -> Transition[int]:
        if x == 2:
            if how == "abort":
                return Abort("two is bad")
            raise ValueError("two is bad")
        await asyncio.sleep(0.5 if x == 3 else 0)
        finished.append(x)
        return Next(x)

    with pytest.raises(NodeFailed, match="two is bad"):
        await Workflow("w", start=BatchNode(inner=picky, batch_size=4)).run([0, 1, 2, 3])
    assert 3 not in finished


async def test_batch_failure_keeps_its_type() -> None:
    calls = 0

    @node
    async def refuse(x: int) -> int:
        nonlocal calls
        calls += 1
        raise PermanentError(f"bad element {x}")

    batch = BatchNode(inner=refuse)
    workflow = Workflow("w", start=batch, retry={batch: RetryPolicy(max_attempts=3, initial_backoff=0)})
    with pytest.raises(NodeFailed, match="node 'refuse_batch' failed: PermanentError: bad element 7"):
        await workflow.run([7])
    assert calls == 1


async def test_batch_wraps_a_node_subclass() -> None:
    class AddN(Node[int, int]):
        n: int

        async def process(self, ctx: WorkflowCtx[Any], x: int) -> int:
            return x + self.n

    batch = BatchNode(inner=AddN(n=5), batch_size=2)
    assert batch.input_type == list[int]
    assert await Workflow("w", start=batch).run([1, 2]) == [6, 7]


def neighbours(n: int) -> list[int]:
    return [n - 1, n, n + 1]


async def test_split_node() -> None:
    split = SplitNode(splitter=neighbours)
    assert (split.name, split.input_type, split.output_type) == ("neighbours", int, int)

    @node
    async def double(x: int) -> int:
        return x * 2

    assert (await Workflow("w", start=split, edges=[edge(split, double)]).execute(10)).outputs == [18, 20, 22]


@node
async def triple(x: int) -> int:
    return x * 3


async def test_source_runs_once_per_value() -> None:
    sender, values = source()
    workflow = Workflow("w", start=triple)

    async def produce() -> None:
        for i in range(5):
            await sender.send(i)
            await asyncio.sleep(0)
        await sender.close()

    task = asyncio.ensure_future(produce())
    assert [output async for output in values.outputs(workflow)] == [0, 3, 6, 9, 12]
    await task
    with pytest.raises(RuntimeError, match="closed source"):
        await sender.send(5)

    sender, values = source(capacity=2)
    task = asyncio.ensure_future(values.run(workflow))
    for i in range(4):
        await sender.send(i)
    await sender.close()
    assert await task == 4


async def test_failing_run_stops_the_source() -> None:
    @node
    async def no_twos(x: int) -> int:
        if x == 2:
            raise ValueError("two")
        return x

    sender, values = source()
    for i in range(4):
        await sender.send(i)
    await sender.close()
    got: list[int] = []
    with pytest.raises(NodeFailed, match="ValueError: two"):
        async for output in values.outputs(Workflow("w", start=no_twos)):
            got.append(output)
    assert got == [0, 1]
