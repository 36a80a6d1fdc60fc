"""The built-in join (fan-in).

Cases:
* a join after a dynamic fan-out gets every branch's value, in branch order, even when
  the branches finish in reverse order;
* a join straight from the ``NextAll`` node collects its values;
* a join after a static fan-out (``edge(a, b, c)``) gets ``[b's, c's]``;
* a join fires exactly once per fan-out, after all branches;
* nested fan-outs: the inner join fires once per outer branch, the outer join gets
  the inner results in order;
* multi-step branches are joined when their last step ends;
* a held branch contributes nothing; the join still fires with the others' values;
* an empty fan-out (``NextAll([])``), or one whose branches all hold, fires its join with
  ``[]``; so does an empty inner fan-out of a nested one;
* independent runs of one workflow do not mix their joins;
* a join's values are validated as the join node's input (``list[int]`` of ints).
"""

from __future__ import annotations

import asyncio
from typing import Any

from floxide import Hold, Next, NextAll, Transition, Workflow, edge, join, node


@node
async def spread(n: int) -> NextAll[int]:
    return NextAll(list(range(n)))


@node
async def collect(values: list[int]) -> list[int]:
    return values


async def test_join_after_dynamic_fan_out_keeps_branch_order() -> None:
    @node
    async def slow_first(i: int) -> int:
        await asyncio.sleep(0.01 * (5 - i))  # branch 0 finishes last
        return i * 10

    workflow = Workflow("w", start=spread, edges=[edge(spread, slow_first), join(slow_first, collect)])
    result = await workflow.execute(5)
    assert result.outputs == [[0, 10, 20, 30, 40]]


async def test_join_straight_from_next_all() -> None:
    workflow = Workflow("w", start=spread, edges=[join(spread, collect)])
    assert await workflow.run(4) == [0, 1, 2, 3]


async def test_join_after_static_fan_out() -> None:
    @node
    async def start(x: int) -> int:
        return x

    @node
    async def plus(x: int) -> int:
        await asyncio.sleep(0.02)
        return x + 1

    @node
    async def times(x: int) -> int:
        return x * 3

    workflow = Workflow("w", start=start, edges=[edge(start, plus, times), join([plus, times], collect)])
    assert await workflow.run(5) == [6, 15]


async def test_join_fires_once_after_all_branches() -> None:
    finished: list[int] = []
    fired: list[list[int]] = []

    @node
    async def work(i: int) -> int:
        await asyncio.sleep(0.001 * i)
        finished.append(i)
        return i

    @node
    async def merge(values: list[int]) -> int:
        fired.append(list(finished))
        return sum(values)

    workflow = Workflow("w", start=spread, edges=[edge(spread, work), join(work, merge)])
    assert await workflow.run(20) == sum(range(20))
    assert len(fired) == 1
    assert sorted(fired[0]) == list(range(20))


async def test_nested_fan_outs() -> None:
    @node
    async def rows(n: int) -> NextAll[int]:
        return NextAll(list(range(n)))

    @node
    async def cells(row: int) -> NextAll[int]:
        return NextAll([row * 10 + c for c in range(3)])

    @node
    async def cell(value: int) -> int:
        await asyncio.sleep(0.001 * (value % 7))
        return value

    @node
    async def row_sum(values: list[int]) -> list[int]:
        return values

    @node
    async def table(rows: list[list[int]]) -> list[list[int]]:
        return rows

    workflow = Workflow(
        "w",
        start=rows,
        edges=[edge(rows, cells), edge(cells, cell), join(cell, row_sum), join(row_sum, table)],
    )
    result = await workflow.execute(3)
    assert result.outputs == [[[0, 1, 2], [10, 11, 12], [20, 21, 22]]]
    assert result.steps == 1 + 3 + 9 + 3 + 1


async def test_multi_step_branches() -> None:
    @node
    async def first(i: int) -> int:
        return i + 1

    @node
    async def second(i: int) -> int:
        await asyncio.sleep(0.001 * (3 - i))
        return i * 2

    workflow = Workflow(
        "w", start=spread, edges=[edge(spread, first), edge(first, second), join(second, collect)]
    )
    assert await workflow.run(3) == [2, 4, 6]


async def test_held_branch_contributes_nothing() -> None:
    @node
    async def evens(i: int) -> Transition[int]:
        return Next(i) if i % 2 == 0 else Hold()

    workflow = Workflow("w", start=spread, edges=[edge(spread, evens), join(evens, collect)])
    assert await workflow.run(6) == [0, 2, 4]


async def test_runs_do_not_mix() -> None:
    @node
    async def work(i: int) -> int:
        await asyncio.sleep(0.001)
        return i

    workflow = Workflow("w", start=spread, edges=[edge(spread, work), join(work, collect)])
    results = await asyncio.gather(*(workflow.run(n) for n in (3, 5, 1)))
    assert results == [[0, 1, 2], [0, 1, 2, 3, 4], [0]]


async def test_join_values_are_validated() -> None:
    @node
    async def numbers(values: list[int]) -> int:
        return sum(values)

    @node
    async def anything(i: int) -> Any:
        return str(i)

    workflow = Workflow("w", start=spread, edges=[edge(spread, anything), join(anything, numbers)])
    assert await workflow.run(4) == 6  # "0".."3" validated (lax) as ints


async def test_empty_fan_out_fires_join_with_nothing() -> None:
    @node
    async def total(values: list[int]) -> int:
        return sum(values)

    workflow = Workflow("empty", start=spread, edges=[join(spread, total)])
    assert await workflow.run(0) == 0
    assert await workflow.run(4) == 6


async def test_all_branches_held_fire_join_with_nothing() -> None:
    @node
    async def drop(i: int) -> Transition[int]:
        return Hold()

    workflow = Workflow("held", start=spread, edges=[edge(spread, drop), join(drop, collect)])
    assert await workflow.run(3) == []


async def test_empty_inner_fan_out_of_nested_fan_outs() -> None:
    @node
    async def inner(n: int) -> NextAll[int]:
        return NextAll(list(range(n)))

    @node
    async def one(i: int) -> int:
        return 1

    @node
    async def count(values: list[int]) -> int:
        return len(values)

    @node
    async def counts(values: list[int]) -> list[int]:
        return values

    workflow = Workflow(
        "nested-empty",
        start=spread,
        edges=[edge(spread, inner), edge(inner, one), join(one, count), join(count, counts)],
    )
    assert await workflow.run(4) == [0, 1, 2, 3]
