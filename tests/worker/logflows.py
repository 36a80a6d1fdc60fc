"""Workflows whose nodes log through ``ctx.log`` and print (loaded by worker processes).

* ``chatty``: ``spread(n)`` fans out to ``n`` items of ``say``; ``say`` logs a line with its
  index, prints one, and item 0 also logs a 10 KB line, a warning with a traceback, and
  1,200 more lines (over the per-step bound); ``collect`` joins them.
* ``slow``: ``pace(gate)`` logs ``tick 0``, waits until the file ``gate`` exists, then logs
  ``tick 1`` to ``tick 4`` (for ``--follow``: the test opens the gate once it saw ``tick 0``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
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
async def pace(ctx: WorkflowCtx[Any], gate: str) -> int:
    ctx.log.info("tick 0")
    for _ in range(1200):  # 60 s at most
        if await asyncio.to_thread(Path(gate).exists):
            break
        await asyncio.sleep(0.05)
    for i in range(1, 5):
        ctx.log.info("tick %d", i)
        await asyncio.sleep(0.05)
    return 5


slow: Workflow[str, int] = Workflow("slow", start=pace)
