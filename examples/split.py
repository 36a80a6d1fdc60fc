"""Fan-out with ``SplitNode``: n -> [n-1, n, n+1], each through ``print`` to a terminal.

Every branch runs (Floxide drops the branches after the first terminal; we do not): input 10
gives the outputs [9, 10, 11], and the run's output is the first one, 9.
"""

from __future__ import annotations

import asyncio

from floxide import SplitNode, Workflow, edge, node


def neighbours(n: int) -> list[int]:
    return [n - 1, n, n + 1]


split = SplitNode(splitter=neighbours).named("split")


@node(name="print")
async def print_value(x: int) -> int:
    print(f"branch value = {x}")
    return x


@node
async def terminal(x: int) -> int:
    return x


workflow: Workflow[int, int] = Workflow(
    "split", start=split, edges=[edge(split, print_value), edge(print_value, terminal)]
)


def main() -> None:
    result = asyncio.run(workflow.execute(10))
    print(f"outputs = {result.outputs}, output = {result.output}")


if __name__ == "__main__":
    main()
