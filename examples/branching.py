"""Routing on the output's variant: 5 -> "SmallNode: 5 <= 10", 42 -> "BigNode: 84".

``FooNode`` returns ``Above`` or ``Below``; ``route`` sends each variant to its own node,
and ``payload=`` picks the field the target receives. Both targets are terminal.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from floxide import Node, Workflow, WorkflowCtx, node, route, when


@dataclass(frozen=True)
class Above:
    value: int


@dataclass(frozen=True)
class Below:
    reason: str


class FooNode(Node[int, Above | Below]):
    threshold: int = 10

    async def process(self, ctx: WorkflowCtx[Any], x: int) -> Above | Below:
        if x > self.threshold:
            return Above(x * 2)
        return Below(f"{x} <= {self.threshold}")


@node
async def big(value: int) -> str:
    return f"BigNode: {value}"


@node
async def small(reason: str) -> str:
    return f"SmallNode: {reason}"


foo = FooNode(threshold=10)
workflow: Workflow[int, str] = Workflow(
    "branching",
    start=foo,
    edges=[route(foo, when(Above, big, payload="value"), when(Below, small, payload="reason"))],
)


def main() -> None:
    for x in (5, 42):
        print(asyncio.run(workflow.run(x)))


if __name__ == "__main__":
    main()
