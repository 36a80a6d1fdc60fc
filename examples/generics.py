"""Generic nodes: ``FooNode[int](value=42)`` -> "foo-42" -> ``BarNode[str]`` -> 6.

Node classes can be generic in their input type, like Floxide's ``FooNode<T>``; each use
is parametrized (``FooNode[int]``), and the type parameters read as ``Any`` to the graph check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sized
from typing import Any, Generic, TypeVar

from floxide import Node, Workflow, WorkflowCtx, edge

T = TypeVar("T")
S = TypeVar("S", bound=Sized)


class FooNode(Node[T, str], Generic[T]):
    """Ignores its input; sends ``foo-<value>``."""

    value: int

    async def process(self, ctx: WorkflowCtx[Any], input: T) -> str:
        return f"foo-{self.value}"


class BarNode(Node[S, int], Generic[S]):
    """Sends the length of its input."""

    async def process(self, ctx: WorkflowCtx[Any], input: S) -> int:
        return len(input)


foo = FooNode[int](value=42).named("foo")
bar = BarNode[str]().named("bar")
workflow: Workflow[int, int] = Workflow("generics", start=foo, edges=[edge(foo, bar)])


def main() -> None:
    print(asyncio.run(workflow.run(123)))


if __name__ == "__main__":
    main()
