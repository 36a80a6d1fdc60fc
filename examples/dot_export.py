"""Graph export: the DOT (and Mermaid) of a graph with fallback, routing and join edges.

``task_a`` falls back to ``fallback_a``; ``task_b`` routes ``Branch`` to both ``task_c`` and
``task_d`` (a fan-out that ``join_point`` joins) and ``Skip`` straight to ``end_node``.
Fallback edges are dotted red, routing edges carry the variant, joins are bold.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from floxide import Workflow, edge, join, node, on_failure, route, when


@dataclass(frozen=True)
class Branch:
    value: int


@dataclass(frozen=True)
class Skip:
    value: int


@node
async def start(x: int) -> int:
    return x


@node
async def task_a(x: int) -> int:
    if x < 0:
        raise ValueError("negative input")
    return x + 1


@node
async def fallback_a(x: int) -> int:
    return 0


@node
async def task_b(x: int) -> Branch | Skip:
    return Branch(x) if x % 2 else Skip(x)


@node
async def task_c(x: int) -> int:
    return x * 10


@node
async def task_d(x: int) -> int:
    return x * 100


@node
async def join_point(values: list[int]) -> int:
    return sum(values)


@node
async def end_node(x: int) -> int:
    return x


workflow: Workflow[int, int] = Workflow(
    "dot-export",
    start=start,
    edges=[
        edge(start, task_a),
        edge(task_a, task_b),
        on_failure(task_a, fallback_a),
        edge(fallback_a, end_node),
        route(task_b, when(Branch, task_c, task_d, payload="value"), when(Skip, end_node, payload="value")),
        join([task_c, task_d], join_point),
        edge(join_point, end_node),
    ],
)


def main() -> None:
    print(workflow.to_dot())
    print(workflow.to_mermaid())
    print(f"run(2) = {asyncio.run(workflow.run(2))}")


if __name__ == "__main__":
    main()
