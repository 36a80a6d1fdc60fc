"""Workflows the distributed tests run, in memory and on Redis with real worker processes.

Worker processes load them as ``tests.distributed.flows:<name>`` (from the repository root).
Nodes that tests watch write *marks*: one line per event (``start``, ``end``,
``interrupted``, ...) with the item id, the process id and the time, appended to
``$FLOXIDE_TEST_MARKS/<run id>.log``. A mark is a side effect outside the run, so it shows
how often node code ran, while the run's context and metrics show what was committed.

* ``fanout``: ``spread(Job)`` opens ``count`` branches of ``work`` (each sleeps ``seconds``
  and adds 1 to the ``Merge.sum()`` field ``total``), joined by ``gather``, whose output is
  the branch values in order and the total it sees.
* ``tally``: ``count`` branches each add 1 to key ``i % 5`` of a dict merged by a custom
  function (compare-and-set in Redis), joined by ``summary``.
* ``fragile``: ``prepare -> attempt``; ``attempt`` fails (retried with backoff through the
  delayed queue) until the file ``switch-on`` exists in the marks directory.

``EXAMPLE_CASES`` are the inputs each example of ``examples/`` is run with distributed.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field

from floxide import (
    BackoffStrategy,
    Merge,
    NextAll,
    RetryPolicy,
    Workflow,
    WorkflowCtx,
    edge,
    join,
    node,
)

MARKS_ENV = "FLOXIDE_TEST_MARKS"


# -- marks --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mark:
    """One line of a marks file."""

    event: str
    item_id: str
    pid: int
    at: float


def mark(ctx: WorkflowCtx[Any], event: str) -> None:
    """Append ``event`` for the current step to its run's marks file (if marks are on)."""
    directory = os.environ.get(MARKS_ENV)
    if not directory:
        return
    line = f"{event} {ctx.item_id} {os.getpid()} {time.time():.6f}\n"
    with open(Path(directory) / f"{ctx.run_id}.log", "a", encoding="utf-8") as file:
        file.write(line)


def read_marks(directory: Path, run_id: str, event: str | None = None) -> list[Mark]:
    """The marks of ``run_id`` (only ``event`` ones if given), oldest first."""
    path = directory / f"{run_id}.log"
    if not path.exists():
        return []
    marks = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 4:
            marks.append(Mark(parts[0], parts[1], int(parts[2]), float(parts[3])))
    return [m for m in marks if event is None or m.event == event]


def switch_on(directory: Path) -> None:
    """Make ``fragile``'s ``attempt`` node succeed from now on."""
    (directory / "switch-on").touch()


# -- fanout: spread -> work x count -> join gather ------------------------------------------


class Tally(BaseModel):
    total: Annotated[int, Merge.sum()] = 0


class Job(BaseModel):
    count: int = Field(ge=0)
    seconds: float = Field(0.0, ge=0)


class Task(BaseModel):
    index: int
    seconds: float = 0.0


class Gathered(BaseModel):
    values: list[int]
    total: int


@node
async def spread(job: Job) -> NextAll[Task]:
    return NextAll([Task(index=i, seconds=job.seconds) for i in range(job.count)])


@node
async def work(ctx: WorkflowCtx[Tally], task: Task) -> int:
    mark(ctx, "start")
    try:
        if task.seconds:
            await asyncio.sleep(task.seconds)
    except asyncio.CancelledError:
        mark(ctx, "interrupted")
        raise
    ctx.store.total += 1
    mark(ctx, "end")
    return task.index


@node
async def gather(ctx: WorkflowCtx[Tally], values: list[int]) -> Gathered:
    return Gathered(values=values, total=ctx.store.total)


fanout: Workflow[Job, Gathered] = Workflow(
    "fanout", start=spread, context=Tally, edges=[edge(spread, work), join(work, gather)]
)


# -- tally: a custom merge under contention ---------------------------------------------------


def add_counts(current: dict[str, int], before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Three-way merge of counters: the step's increments are added to the current counts."""
    merged = dict(current or {})
    for key in set(before) | set(after):
        merged[key] = merged.get(key, 0) + after.get(key, 0) - before.get(key, 0)
    return merged


class Counts(BaseModel):
    counts: Annotated[dict[str, int], Merge.custom(add_counts)] = Field(default_factory=dict)


@node
async def spread_keys(n: int) -> NextAll[int]:
    return NextAll(list(range(n)))


@node
async def count(ctx: WorkflowCtx[Counts], i: int) -> int:
    key = str(i % 5)
    ctx.store.counts[key] = ctx.store.counts.get(key, 0) + 1
    return i


@node
async def summary(ctx: WorkflowCtx[Counts], values: list[int]) -> dict[str, int]:
    return dict(ctx.store.counts)


tally: Workflow[int, dict[str, int]] = Workflow(
    "tally", start=spread_keys, context=Counts, edges=[edge(spread_keys, count), join(count, summary)]
)


# -- fragile: a node that fails until it is fixed ---------------------------------------------


@node
async def prepare(ctx: WorkflowCtx[Any], n: int) -> int:
    mark(ctx, "prepare")
    return n + 1


@node
async def attempt(ctx: WorkflowCtx[Any], n: int) -> str:
    mark(ctx, f"attempt-{ctx.attempt}")
    directory = os.environ.get(MARKS_ENV)
    if not directory or not (Path(directory) / "switch-on").exists():
        raise RuntimeError(f"switch is off (attempt {ctx.attempt})")
    return f"fixed {n}"


FRAGILE_RETRY = RetryPolicy(
    max_attempts=3, initial_backoff=0.8, max_backoff=5.0, strategy=BackoffStrategy.EXPONENTIAL
)
"""Waits of 0.8 s, then 1.6 s: long enough to see the item wait in the delayed queue."""

fragile: Workflow[int, str] = Workflow(
    "fragile", start=prepare, edges=[edge(prepare, attempt)], retry={attempt: FRAGILE_RETRY}
)


# -- the examples' inputs ------------------------------------------------------------------------


def order(item: str, quantity: int = 1) -> dict[str, Any]:
    return {"order_id": f"ORD-{item}", "item": item, "quantity": quantity}


EXAMPLE_CASES: dict[str, list[Any]] = {
    "terminal_node": [7],
    "node_config": [3],
    "branching": [5, 42, 10],
    "split": [10],
    "merge": [10],
    "batch": [[1, 2, 3, 4, 5], [1, 2]],
    "error_fallback": [None],
    "retry": ["flaky call"],
    "retry_declared": [None],
    "orders": [order("Laptop"), order("FailPayment"), order("RetryStock"), order("Laptop", quantity=0)],
    "nested": [5],
    "generics": [123],
    "sum_branches": [100],
    "countdown": [{"steps": 3, "delay": 0.01}],
    "article": ["Rust Programming Language"],
    "dot_export": [2, 3, -1],
    "limits": [
        {"orders": [{"order_id": f"O{n}", "customer": f"c{n % 2}", "amount": n} for n in range(8)]}
    ],
}
