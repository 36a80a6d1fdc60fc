"""A workflow for the priority tests (``tests.redis.priority_flows:batch``), run by worker processes.

``fan(Chunk)`` opens ``count`` branches of ``step``; each sleeps ``hold`` seconds and appends
``<label> <time>`` to ``$FLOXIDE_TEST_MARKS/steps.log`` when it ends, so a test sees when each
run's steps ran.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from pydantic import BaseModel

from floxide import NextAll, Workflow, edge, node


class Chunk(BaseModel):
    label: str
    count: int
    hold: float = 0.05


class Piece(BaseModel):
    label: str
    hold: float


@node
async def fan(chunk: Chunk) -> NextAll[Piece]:
    return NextAll([Piece(label=chunk.label, hold=chunk.hold) for _ in range(chunk.count)])


def _mark(label: str) -> None:
    directory = os.environ.get("FLOXIDE_TEST_MARKS")
    if directory:
        with open(Path(directory) / "steps.log", "a", encoding="utf-8") as out:
            out.write(f"{label} {time.time():.6f}\n")


@node
async def step(piece: Piece) -> str:
    await asyncio.sleep(piece.hold)
    _mark(piece.label)
    return piece.label


def ends(directory: Path) -> dict[str, list[float]]:
    """The end times of each label's steps."""
    found: dict[str, list[float]] = {}
    path = directory / "steps.log"
    for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        label, at = line.split()
        found.setdefault(label, []).append(float(at))
    return found


batch: Workflow[Chunk, str] = Workflow("batch", start=fan, edges=[edge(fan, step)])
