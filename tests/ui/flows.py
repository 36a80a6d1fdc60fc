"""Workflows the dashboard tests run (served by worker processes as ``tests/ui/flows.py:<name>``).

* ``batch``: ``spread`` fans a :class:`Batch` out into ``count`` items; ``work`` logs a line
  (``ctx.log``) on each, sleeps ``delay`` seconds and fails with a ``ValueError`` on the values
  listed in ``bad`` (after the workers' 3 attempts the run fails); ``total`` joins the branches
  and sums their values.
* ``wide``: a start node fanned out to ``WIDTH`` nodes in parallel, joined by none: a graph of
  ``WIDTH + 1`` nodes, to check a run page stays readable with many nodes.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from floxide import SplitNode, Workflow, WorkflowCtx, edge, join, node

WIDTH = 200


class Batch(BaseModel):
    count: int = Field(ge=0)
    delay: float = 0.0
    bad: list[int] = Field(default_factory=list)


class Piece(BaseModel):
    value: int
    delay: float = 0.0
    bad: bool = False


def pieces(batch: Batch) -> list[Piece]:
    return [Piece(value=i, delay=batch.delay, bad=i in batch.bad) for i in range(batch.count)]


spread = SplitNode(splitter=pieces).named("spread")


@node
async def work(ctx: WorkflowCtx[Any], piece: Piece) -> int:
    ctx.log.info("working on piece %d", piece.value)
    await ctx.sleep(piece.delay)
    if piece.bad:
        raise ValueError(f"piece {piece.value} is bad")
    return piece.value


@node
async def total(values: list[int]) -> int:
    return sum(values)


batch: Workflow[Batch, int] = Workflow("batch", start=spread, edges=[edge(spread, work), join(work, total)])


@node
async def fan(n: int) -> int:
    return n


def _leaf(index: int) -> Any:
    @node(name=f"leaf_{index:03d}")
    async def leaf(n: int) -> int:
        return n + index

    return leaf


LEAVES = [_leaf(i) for i in range(WIDTH)]

wide: Workflow[int, int] = Workflow("wide", start=fan, edges=[edge(fan, *LEAVES)])
