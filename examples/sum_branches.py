"""Concurrent branches merging into one context field: N branches each add 1 -> N.

``fan_out`` opens N branches; each ``add_one`` adds 1 to ``total``, a ``Merge.sum()``
field. Each step works on its own copy and only its increment is merged, so no update is
lost however the branches interleave. ``total`` joins the branches and reads the sum.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from pydantic import BaseModel, Field

from floxide import Merge, NextAll, Workflow, WorkflowCtx, edge, join, node


class Totals(BaseModel):
    total: Annotated[int, Merge.sum()] = 0


@node
async def fan_out(n: Annotated[int, Field(ge=1)]) -> NextAll[int]:
    return NextAll(list(range(n)))


@node
async def add_one(ctx: WorkflowCtx[Totals], i: int) -> int:
    await asyncio.sleep(0)  # let the other branches interleave
    ctx.store.total += 1
    return i


@node
async def total(ctx: WorkflowCtx[Totals], values: list[int]) -> int:
    return ctx.store.total


workflow: Workflow[int, int] = Workflow(
    "sum-branches", start=fan_out, context=Totals, edges=[edge(fan_out, add_one), join(add_one, total)]
)


def main() -> None:
    print(asyncio.run(workflow.run(100)))


if __name__ == "__main__":
    main()
