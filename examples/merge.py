"""Fan-out then fan-in with the built-in ``join``: 10 -> [9, 10, 11].

``join(split, merge)`` waits for every branch of the split and hands ``merge`` the list of
their values in branch order (Floxide needs a hand-written ``Hold`` counter for this).
"""

from __future__ import annotations

import asyncio

from floxide import NextAll, Workflow, edge, join, node


@node
async def split(n: int) -> NextAll[int]:
    return NextAll([n - 1, n, n + 1])


@node
async def merge(values: list[int]) -> list[int]:
    print(f"merged {len(values)} values")
    return values


@node
async def terminal(values: list[int]) -> list[int]:
    return values


workflow: Workflow[int, list[int]] = Workflow(
    "merge", start=split, edges=[join(split, merge), edge(merge, terminal)]
)


def main() -> None:
    print(asyncio.run(workflow.run(10)))


if __name__ == "__main__":
    main()
