"""A workflow whose steps wait at a gate the test opens, for races driven step by step.

``gated``: ``open_gates(Gates)`` fans out ``count`` ``hold`` items, joined by ``tally``.
Each ``hold`` marks ``start`` (see :func:`tests.distributed.flows.mark`), waits until the
file ``release-<run id>`` exists in the marks directory, adds 1 to the ``Merge.sum()`` field
``total`` and marks ``end``. Interrupted, it marks ``interrupted``; with ``stubborn`` it then
goes on as if the interrupt came a moment too late: it waits for the gate, finishes and
returns (a step that ends just as its run is cancelled).

Target: ``tests.redis.gateflows:gated``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field

from floxide import Merge, NextAll, Workflow, WorkflowCtx, edge, join, node
from tests.distributed.flows import MARKS_ENV, mark

__all__ = ["Gates", "gated", "release"]


class Count(BaseModel):
    total: Annotated[int, Merge.sum()] = 0


class Gates(BaseModel):
    count: int = Field(ge=0)
    stubborn: bool = False


def release(directory: Path, run_id: str) -> None:
    """Open the gate of ``run_id``: its waiting steps go on."""
    (directory / f"release-{run_id}").touch()


async def _gate(run_id: str) -> None:
    gate = Path(os.environ[MARKS_ENV]) / f"release-{run_id}"
    while not gate.exists():  # noqa: ASYNC110 - the gate is a file the test process creates
        await asyncio.sleep(0.005)


@node
async def open_gates(gates: Gates) -> NextAll[bool]:
    return NextAll([gates.stubborn] * gates.count)


@node
async def hold(ctx: WorkflowCtx[Count], stubborn: bool) -> int:
    mark(ctx, "start")
    try:
        await _gate(ctx.run_id)
    except asyncio.CancelledError:
        mark(ctx, "interrupted")
        if not stubborn:
            raise
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        await _gate(ctx.run_id)
    ctx.store.total += 1
    mark(ctx, "end")
    return 1


@node
async def tally(ctx: WorkflowCtx[Count], values: list[int]) -> int:
    return ctx.store.total + sum(values)


gated: Workflow[Gates, int] = Workflow(
    "gated", start=open_gates, context=Count, edges=[edge(open_gates, hold), join(hold, tally)]
)
