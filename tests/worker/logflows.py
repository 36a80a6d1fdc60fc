"""Workflows whose nodes log through ``ctx.log`` and print (loaded by worker processes).

* ``chatty``: ``spread(n)`` fans out to ``n`` items of ``say``; ``say`` logs a line with its
  index, prints one, and item 0 also logs a 10 KB line, a warning with a traceback, and
  1,200 more lines (over the per-step bound); ``collect`` joins them.
* ``slow``: ``pace(n)`` logs ``tick i`` ``n`` times, 0.5 s apart (for ``--follow``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from floxide import NextAll, Workflow, WorkflowCtx, edge, join, node


@node
async def spread(n: int) -> NextAll[int]:
    return NextAll(list(range(n)))


@node
async def say(ctx: WorkflowCtx[Any], index: int) -> int:
    ctx.log.info("hello from %d", index)
    print(f"printed {index}")
    if index == 0:
        ctx.log.info("x" * 10_000)
        try:
            raise ValueError("bad value")
        except ValueError:
            ctx.log.warning("caught it", exc_info=True)
        for i in range(1200):
            ctx.log.info("line %d", i)
    return index


@node
async def collect(ctx: WorkflowCtx[Any], values: list[int]) -> int:
    ctx.log.info("collected %d", len(values))
    return sum(values)


chatty: Workflow[int, int] = Workflow("chatty", start=spread, edges=[edge(spread, say), join(say, collect)])


@node
async def pace(ctx: WorkflowCtx[Any], n: int) -> int:
    for i in range(n):
        ctx.log.info("tick %d", i)
        await asyncio.sleep(0.5)
    return n


slow: Workflow[int, int] = Workflow("slow", start=pace)
