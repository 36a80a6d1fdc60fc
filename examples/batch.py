"""``BatchNode``: double [1, 2, 3, 4, 5], two at a time, order kept -> [2, 4, 6, 8, 10].

The batch's output is routed on a predicate: a sum above 20 goes to ``large``, otherwise
to ``small``. Both are terminal and return the list they receive.
"""

from __future__ import annotations

import asyncio

from floxide import BatchNode, Workflow, node, otherwise, route, when


@node
async def multiply2(x: int) -> int:
    await asyncio.sleep(0.01)  # pretend to work: the batch runs two of these at once
    return x * 2


def is_large(values: list[int]) -> bool:
    return sum(values) > 20


@node
async def large(values: list[int]) -> list[int]:
    print(f"large batch, sum {sum(values)}")
    return values


@node
async def small(values: list[int]) -> list[int]:
    print(f"small batch, sum {sum(values)}")
    return values


multiply = BatchNode(inner=multiply2, batch_size=2).named("multiply")
workflow: Workflow[list[int], list[int]] = Workflow(
    "batch", start=multiply, edges=[route(multiply, when(is_large, large), otherwise(small))]
)


def main() -> None:
    print(asyncio.run(workflow.run([1, 2, 3, 4, 5])))


if __name__ == "__main__":
    main()
