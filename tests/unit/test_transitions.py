"""What each Transition does to the work that follows.

Cases:
* ``Next(v)`` sends ``v`` to every successor; a plain return value means ``Next``;
* ``Next`` from a terminal node is an output of the run;
* ``NextAll(vs)`` fans out one item per value and per successor, value-major;
* ``NextAll`` from a terminal node makes every value an output; ``NextAll([])`` ends the branch;
* ``Hold()`` ends a branch without output while other branches go on;
* a run where every branch holds fails with ``NoTerminalReached`` naming the nodes;
* ``Abort("msg")`` fails the run with the message; ``Abort(exc)`` keeps the exception;
* ``Abort`` is caught by a fallback edge like a raised exception;
* sync node functions work like async ones.
"""

from __future__ import annotations

import pytest

from floxide import (
    Abort,
    Hold,
    Next,
    NextAll,
    NodeFailed,
    NoTerminalReached,
    Transition,
    Workflow,
    edge,
    node,
    on_failure,
)
from floxide.transition import AbortError


@node
async def identity(x: int) -> int:
    return x


async def test_next_goes_to_every_successor() -> None:
    @node
    async def start(x: int) -> Next[int]:
        return Next(x + 1)

    @node
    async def left(x: int) -> str:
        return f"left {x}"

    @node
    async def right(x: int) -> str:
        return f"right {x}"

    result = await Workflow("w", start=start, edges=[edge(start, left, right)]).execute(1)
    assert result.outputs == ["left 2", "right 2"]


async def test_plain_value_means_next() -> None:
    @node
    async def start(x: int) -> int:
        return x * 10

    result = await Workflow("w", start=start, edges=[edge(start, identity)]).execute(4)
    assert result.outputs == [40]
    assert result.steps == 2


async def test_next_from_terminal_is_output() -> None:
    @node
    async def only(x: int) -> Transition[int]:
        return Next(x)

    assert await Workflow("w", start=only).run(3) == 3


async def test_next_all_fans_out_value_major() -> None:
    seen: list[str] = []

    @node
    async def start(x: int) -> NextAll[int]:
        return NextAll([x, x + 1])

    @node
    async def a(x: int) -> str:
        seen.append(f"a{x}")
        return f"a{x}"

    @node
    async def b(x: int) -> str:
        seen.append(f"b{x}")
        return f"b{x}"

    result = await Workflow("w", start=start, edges=[edge(start, a, b)]).execute(1)
    assert seen == ["a1", "b1", "a2", "b2"]
    assert result.outputs == ["a1", "b1", "a2", "b2"]


async def test_next_all_from_terminal_outputs_every_value() -> None:
    @node
    async def many(x: int) -> NextAll[int]:
        return NextAll([x, x * 2, x * 3])

    result = await Workflow("w", start=many).execute(2)
    assert result.outputs == [2, 4, 6]
    assert result.output == 2


async def test_empty_next_all_ends_the_branch() -> None:
    @node
    async def none(x: int) -> NextAll[int]:
        return NextAll([])

    with pytest.raises(NoTerminalReached, match="branches ended at 'none' \\(1x\\)"):
        await Workflow("w", start=none, edges=[edge(none, identity)]).run(1)


async def test_hold_ends_one_branch_only() -> None:
    @node
    async def start(x: int) -> NextAll[int]:
        return NextAll([1, 2, 3, 4])

    @node
    async def odd_only(x: int) -> Transition[int]:
        return Next(x) if x % 2 else Hold()

    result = await Workflow("w", start=start, edges=[edge(start, odd_only)]).execute(0)
    assert result.outputs == [1, 3]


async def test_all_branches_held_is_no_terminal_reached() -> None:
    @node
    async def start(x: int) -> NextAll[int]:
        return NextAll([1, 2, 3])

    @node
    async def gate(x: int) -> Transition[int]:
        return Hold()

    with pytest.raises(NoTerminalReached) as info:
        await Workflow("held", start=start, edges=[edge(start, gate), edge(gate, identity)]).run(0)
    assert str(info.value) == (
        "workflow 'held' ended without reaching a terminal node; its branches ended at 'gate' (3x)"
    )


async def test_abort_with_message_fails_the_run() -> None:
    @node
    async def stop(x: int) -> Transition[int]:
        return Abort("out of range")

    with pytest.raises(NodeFailed) as info:
        await Workflow("w", start=stop).run(1)
    assert str(info.value) == "node 'stop' failed: AbortError: out of range"
    assert info.value.node == "stop"
    assert isinstance(info.value.__cause__, AbortError)


async def test_abort_with_exception_keeps_it() -> None:
    @node
    async def stop(x: int) -> Transition[int]:
        return Abort(LookupError("missing"))

    with pytest.raises(NodeFailed, match="LookupError: missing") as info:
        await Workflow("w", start=stop).run(1)
    assert isinstance(info.value.__cause__, LookupError)
    assert info.value.error_type == "LookupError"


async def test_abort_goes_to_fallback() -> None:
    @node
    async def stop(x: int) -> Transition[int]:
        return Abort("no")

    @node
    async def rescue(x: int) -> int:
        return -x

    workflow = Workflow("w", start=stop, edges=[edge(stop, identity), on_failure(stop, rescue)])
    assert await workflow.run(5) == -5


async def test_sync_node_functions() -> None:
    @node
    def double(x: int) -> int:
        return x * 2

    @node
    def many(x: int) -> NextAll[int]:
        return NextAll([x, x])

    result = await Workflow("w", start=double, edges=[edge(double, many)]).execute(3)
    assert result.outputs == [6, 6]
