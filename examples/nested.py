"""A workflow used as a node of another (``CompositeNode``): 5 -> 10 -> 20.

The inner workflow doubles then adds ten; the outer one runs it as its ``sub`` node and
prints the result.
"""

from __future__ import annotations

import asyncio

from floxide import CompositeNode, Workflow, edge, node


@node
async def double(x: int) -> int:
    return x * 2


@node
async def add_ten(x: int) -> int:
    return x + 10


inner: Workflow[int, int] = Workflow("inner", start=double, edges=[edge(double, add_ten)])
sub = CompositeNode(workflow=inner).named("sub")


@node(name="print")
async def print_output(x: int) -> int:
    print(f"final output = {x}")
    return x


workflow: Workflow[int, int] = Workflow("nested", start=sub, edges=[edge(sub, print_output)])


def main() -> None:
    print(asyncio.run(workflow.run(5)))


if __name__ == "__main__":
    main()
