"""Conditional routing with ``route``/``when``/``otherwise``.

Cases:
* on the output's class (``isinstance``), with ``payload=`` naming an attribute;
* on an enum member without payload (the target receives the member);
* on a constant (equality) and on a predicate;
* ``guard=`` narrows a case; cases are tried in order, the first match wins;
* ``payload=`` as a function;
* a case without targets makes the value an output of the run (terminal arm);
* ``otherwise`` catches the rest;
* an arm with several targets fans out; a route can loop back to its source;
* a value that matches no case fails the run, naming the node and the value;
* ``NextAll`` through a route matches each value separately.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import pytest

from floxide import NextAll, NodeFailed, Workflow, node, otherwise, route, when


@dataclass(frozen=True)
class Big:
    value: int


@dataclass(frozen=True)
class Small:
    note: str


class Status(enum.Enum):
    READY = "ready"
    WAITING = "waiting"


@node
async def classify(x: int) -> Big | Small:
    return Big(x) if x > 10 else Small(f"{x} is small")


@node
async def on_big(value: int) -> str:
    return f"big {value}"


@node
async def on_small(note: str) -> str:
    return f"small: {note}"


async def test_route_on_class_with_attribute_payload() -> None:
    workflow = Workflow(
        "w",
        start=classify,
        edges=[route(classify, when(Big, on_big, payload="value"), when(Small, on_small, payload="note"))],
    )
    assert await workflow.run(11) == "big 11"
    assert await workflow.run(3) == "small: 3 is small"


async def test_route_on_enum_member_without_payload() -> None:
    @node
    async def check(x: int) -> Status:
        return Status.READY if x else Status.WAITING

    @node
    async def go(status: Status) -> str:
        return f"go ({status.value})"

    @node
    async def wait(status: Status) -> str:
        return f"wait ({status.value})"

    workflow = Workflow(
        "w", start=check, edges=[route(check, when(Status.READY, go), when(Status.WAITING, wait))]
    )
    assert await workflow.run(1) == "go (ready)"
    assert await workflow.run(0) == "wait (waiting)"


async def test_route_on_constant_and_predicate() -> None:
    @node
    async def echo(x: int) -> int:
        return x

    @node
    async def zero(x: int) -> str:
        return "zero"

    @node
    async def negative(x: int) -> str:
        return "negative"

    @node
    async def positive(x: int) -> str:
        return "positive"

    workflow = Workflow(
        "w",
        start=echo,
        edges=[route(echo, when(0, zero), when(lambda x: x < 0, negative), otherwise(positive))],
    )
    assert [await workflow.run(x) for x in (0, -3, 8)] == ["zero", "negative", "positive"]


async def test_guard_and_first_match_wins() -> None:
    @node
    async def huge(value: int) -> str:
        return "huge"

    workflow = Workflow(
        "w",
        start=classify,
        edges=[
            route(
                classify,
                when(Big, huge, guard=lambda b: b.value > 100, payload="value"),
                when(Big, on_big, payload="value"),
                when(Big, huge, payload="value"),  # never reached: the case above matches first
                when(Small, on_small, payload="note"),
            )
        ],
    )
    assert await workflow.run(500) == "huge"
    assert await workflow.run(50) == "big 50"


async def test_payload_function() -> None:
    workflow = Workflow(
        "w",
        start=classify,
        edges=[
            route(
                classify, when(Big, on_big, payload=lambda b: b.value * 2), otherwise(on_small, payload=str)
            )
        ],
    )
    assert await workflow.run(20) == "big 40"
    assert await workflow.run(1) == "small: Small(note='1 is small')"


async def test_case_without_targets_is_an_output() -> None:
    workflow = Workflow(
        "w",
        start=classify,
        edges=[route(classify, when(Big, payload="value"), otherwise(on_small, payload="note"))],
    )
    assert await workflow.run(30) == 30
    assert await workflow.run(2) == "small: 2 is small"


async def test_arm_fans_out_and_loops_back() -> None:
    @node
    async def count(x: int) -> int:
        return x + 1

    @node
    async def tag(x: int) -> str:
        return f"tag {x}"

    workflow = Workflow(
        "w",
        start=count,
        edges=[route(count, when(lambda x: x < 3, count, tag), otherwise())],
    )
    result = await workflow.execute(0)
    assert sorted(map(str, result.outputs)) == ["3", "tag 1", "tag 2"]
    assert result.steps == 5


async def test_no_matching_case_fails_the_run() -> None:
    workflow = Workflow("w", start=classify, edges=[route(classify, when(Big, on_big, payload="value"))])
    with pytest.raises(NodeFailed) as info:
        await workflow.run(1)
    assert str(info.value) == (
        "node 'classify' failed: RoutingError: "
        "no route case of node 'classify' matches Small(note='1 is small')"
    )


async def test_next_all_routes_each_value() -> None:
    @node
    async def spread(x: int) -> NextAll[Big | Small]:
        return NextAll([Big(x), Small("s"), Big(x + 1)])

    workflow = Workflow(
        "w",
        start=spread,
        edges=[route(spread, when(Big, on_big, payload="value"), when(Small, on_small, payload="note"))],
    )
    assert (await workflow.execute(20)).outputs == ["big 20", "small: s", "big 21"]
