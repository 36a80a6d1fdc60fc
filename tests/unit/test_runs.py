"""How a local run executes: concurrency, its end, its outputs, its errors.

Cases:
* ready branches run concurrently: 10 branches sleeping 0.2 s take well under 2 s;
* ``concurrency`` bounds the steps in flight (1 runs them one at a time);
* a run ends when no work remains, not at the first terminal: every output is kept,
  the first one is the run's output;
* a failing branch fails the run and interrupts the other branches in flight;
* ``NoTerminalReached`` names where the branches ended;
* many runs of one workflow can run at the same time;
* ``RunResult`` carries the run id, outputs, final context and step count.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from floxide import NextAll, NodeFailed, NoTerminalReached, Workflow, edge, node


@node
async def spread(n: int) -> NextAll[int]:
    return NextAll(list(range(n)))


async def test_branches_run_concurrently() -> None:
    @node
    async def nap(i: int) -> int:
        await asyncio.sleep(0.2)
        return i

    started = time.monotonic()
    result = await Workflow("w", start=spread, edges=[edge(spread, nap)]).execute(10)
    assert time.monotonic() - started < 0.6
    assert sorted(result.outputs) == list(range(10))


@pytest.mark.parametrize("limit", [1, 3])
async def test_concurrency_bounds_steps_in_flight(limit: int) -> None:
    running, peak = 0, 0

    @node
    async def track(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.005)
        running -= 1
        return i

    workflow = Workflow("w", start=spread, edges=[edge(spread, track)], concurrency=limit)
    assert sorted((await workflow.execute(9)).outputs) == list(range(9))
    assert peak == limit


async def test_run_ends_when_no_work_remains() -> None:
    @node
    async def fast_or_slow(i: int) -> int:
        await asyncio.sleep(0.05 if i == 0 else 0)
        return i

    result = await Workflow("w", start=spread, edges=[edge(spread, fast_or_slow)]).execute(3)
    assert result.outputs == [1, 2, 0]  # the slow branch still ran
    assert result.output == 1
    assert result.steps == 4


async def test_failing_branch_interrupts_the_others() -> None:
    finished: list[int] = []
    interrupted: list[int] = []

    @node
    async def work(i: int) -> int:
        if i == 0:
            await asyncio.sleep(0.01)
            raise RuntimeError("branch 0 broke")
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            interrupted.append(i)
            raise
        finished.append(i)
        return i

    started = time.monotonic()
    with pytest.raises(NodeFailed, match="node 'work' failed: RuntimeError: branch 0 broke"):
        await Workflow("w", start=spread, edges=[edge(spread, work)]).run(4)
    assert time.monotonic() - started < 0.5
    assert finished == []
    assert sorted(interrupted) == [1, 2, 3]


async def test_no_terminal_reached_names_where_work_stopped() -> None:
    @node
    async def drop(i: int) -> NextAll[int]:
        return NextAll([])

    @node
    async def never(i: int) -> int:
        return i

    workflow = Workflow("stuck", start=spread, edges=[edge(spread, drop), edge(drop, never)])
    with pytest.raises(NoTerminalReached) as info:
        await workflow.run(2)
    assert str(info.value) == (
        "workflow 'stuck' ended without reaching a terminal node; its branches ended at 'drop' (2x)"
    )


async def test_parallel_runs() -> None:
    @node
    async def slow_double(x: int) -> int:
        await asyncio.sleep(0.05)
        return x * 2

    workflow = Workflow("w", start=slow_double)
    started = time.monotonic()
    assert await asyncio.gather(*(workflow.run(i) for i in range(20))) == [i * 2 for i in range(20)]
    assert time.monotonic() - started < 0.5


async def test_run_result() -> None:
    result = await Workflow("w", start=spread).execute(3, run_id="r1")
    assert (result.run_id, result.output, result.outputs, result.context, result.steps) == (
        "r1",
        0,
        [0, 1, 2],
        None,
        1,
    )
