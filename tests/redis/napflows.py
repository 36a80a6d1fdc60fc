"""Workflows for the flow-control tests: a run of ``nap`` is one step that sleeps.

The step marks ``begin`` and ``end`` (see :func:`tests.distributed.flows.mark`), so a test
can tell when each run's step ran, and how many ran at once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from floxide import Workflow, WorkflowCtx, node
from tests.distributed.flows import mark, read_marks


class Nap(BaseModel):
    seconds: float = Field(0.0, ge=0)
    label: str = ""


@node
async def doze(ctx: WorkflowCtx[Any], nap: Nap) -> str:
    mark(ctx, "begin")
    await asyncio.sleep(nap.seconds)
    mark(ctx, "end")
    return nap.label or "rested"


nap: Workflow[Nap, str] = Workflow("nap", start=doze, edges=[])


def intervals(directory: Path, run_ids: list[str]) -> dict[str, tuple[float, float]]:
    """Each finished run's (begin, end) time, from its marks."""
    found = {}
    for run_id in run_ids:
        begins, ends = read_marks(directory, run_id, "begin"), read_marks(directory, run_id, "end")
        if begins and ends:
            found[run_id] = (begins[0].at, ends[-1].at)
    return found


def peak(spans: list[tuple[float, float]]) -> int:
    """The most spans open at one moment."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    most = current = 0
    for _, change in events:
        current += change
        most = max(most, current)
    return most
