"""A node with configuration fields (``Multiplier(factor=4)``) and a context: 3 -> 12.

Subclass ``Node`` for nodes that carry settings; fields are validated by pydantic.
The context (here a label) is the run's shared state, visible to every node.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel

from floxide import Next, Node, Transition, Workflow, WorkflowCtx, edge, node


class MyCtx(BaseModel):
    label: str = "demo"


class Multiplier(Node[int, int]):
    factor: int = 2

    async def process(self, ctx: WorkflowCtx[Any], x: int) -> Transition[int]:
        print(f"[{ctx.store.label}] {x} * {self.factor} = {x * self.factor}")
        return Next(x * self.factor)


@node(name="print")
async def print_output(ctx: WorkflowCtx[MyCtx], x: int) -> int:
    print(f"[{ctx.store.label}] final output = {x}")
    return x


mult = Multiplier(factor=4).named("mult")
workflow: Workflow[int, int] = Workflow(
    "node-config", start=mult, context=MyCtx, edges=[edge(mult, print_output)]
)


def main() -> None:
    print(asyncio.run(workflow.run(3, ctx=WorkflowCtx(MyCtx(label="example")))))


if __name__ == "__main__":
    main()
