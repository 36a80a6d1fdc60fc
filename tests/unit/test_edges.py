"""Edge forms other than routing, joins and fallbacks: sequences, fan-outs, terminals, cycles.

Cases:
* a sequence passes each output to the next node;
* ``edge(a, b, c)`` (static fan-out) runs both targets on the same value;
* edges declared separately from one source add up;
* dynamic fan-out (``NextAll``) runs one branch per value;
* a node without success edges is terminal, wherever it is in the graph;
* every terminal output is kept, in the order the branches finished;
* a self-loop and a two-node cycle run until their route exits;
* ``max_steps`` stops an endless loop with ``StepLimitExceeded``.
"""

from __future__ import annotations

import asyncio

import pytest

from floxide import NextAll, StepLimitExceeded, Workflow, edge, node, otherwise, route, when


@node
async def add_one(x: int) -> int:
    return x + 1


@node
async def double(x: int) -> int:
    return x * 2


@node
async def show(x: int) -> str:
    return f"={x}"


async def test_sequence() -> None:
    workflow = Workflow("w", start=add_one, edges=[edge(add_one, double), edge(double, show)])
    assert await workflow.run(4) == "=10"


async def test_static_fan_out() -> None:
    workflow = Workflow("w", start=add_one, edges=[edge(add_one, double, show)])
    assert (await workflow.execute(1)).outputs == [4, "=2"]


async def test_edges_from_one_source_add_up() -> None:
    workflow = Workflow("w", start=add_one, edges=[edge(add_one, double), edge(add_one, show)])
    assert (await workflow.execute(1)).outputs == [4, "=2"]


async def test_dynamic_fan_out() -> None:
    @node
    async def spread(n: int) -> NextAll[int]:
        return NextAll(list(range(n)))

    result = await Workflow("w", start=spread, edges=[edge(spread, double)]).execute(5)
    assert result.outputs == [0, 2, 4, 6, 8]
    assert result.steps == 6


async def test_terminal_in_the_middle() -> None:
    workflow = Workflow(
        "w", start=add_one, edges=[edge(add_one, double, show), edge(double, add_one.named("again"))]
    )
    result = await workflow.execute(1)
    assert sorted(map(str, result.outputs)) == ["5", "=2"]


async def test_outputs_in_finishing_order() -> None:
    @node
    async def spread(x: int) -> NextAll[float]:
        return NextAll([0.06, 0.0, 0.03])

    @node
    async def nap(seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds

    result = await Workflow("w", start=spread, edges=[edge(spread, nap)]).execute(0)
    assert result.outputs == [0.0, 0.03, 0.06]
    assert result.output == 0.0


async def test_self_loop() -> None:
    workflow = Workflow(
        "w", start=add_one, edges=[route(add_one, when(lambda x: x < 10, add_one), otherwise())]
    )
    result = await workflow.execute(0)
    assert (result.output, result.steps) == (10, 10)


async def test_two_node_cycle() -> None:
    @node
    async def ping(x: int) -> int:
        return x + 1

    @node
    async def pong(x: int) -> int:
        return x * 2

    workflow = Workflow(
        "w", start=ping, edges=[edge(ping, pong), route(pong, when(lambda x: x < 20, ping), otherwise(show))]
    )
    assert await workflow.run(0) == "=30"  # 1, 2, 3, 6, 7, 14, 15, 30


async def test_max_steps_stops_an_endless_loop() -> None:
    @node
    async def forever(x: int) -> int:
        return x

    workflow = Workflow(
        "loop",
        start=forever,
        edges=[route(forever, when(lambda x: True, forever), otherwise())],
        max_steps=50,
    )
    with pytest.raises(StepLimitExceeded) as info:
        await workflow.run(0)
    assert str(info.value) == "workflow 'loop' exceeded max_steps=50 (a loop?)"
