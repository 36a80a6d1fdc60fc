"""Checkpointed runs and the checkpoint stores.

Cases:
* ``run_with_checkpoint`` saves after every committed step; the last save is ``completed``
  with the outputs;
* after a failure the checkpoint keeps the failed item (and the context), and ``resume``
  runs it again and finishes the run;
* resuming mid fan-out: the join fires once with every value, and summed context fields
  count each committed step once;
* ``resume`` of a completed run raises ``AlreadyCompleted``; ``run_with_checkpoint`` of it
  returns the recorded output without running anything;
* ``resume`` of an unknown run raises ``NotStarted``; so does a run of another workflow;
* a caller's ``ctx`` ends with the run's context in ``ctx.store``: after a failed
  ``run_with_checkpoint`` (its committed steps), after ``resume`` (which starts from the
  checkpoint, not from ``ctx.store``), and for a run that had already completed;
* ``FileCheckpointStore``: round trip, missing run, unsafe run id, damaged file, no
  temporary files left behind;
* a run killed in another process (``os._exit`` inside a step) resumes here from its file.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import sys
import textwrap
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from floxide import (
    AlreadyCompleted,
    Checkpoint,
    CheckpointError,
    FileCheckpointStore,
    InMemoryCheckpointStore,
    Merge,
    NextAll,
    NodeFailed,
    NotStarted,
    Workflow,
    WorkflowCtx,
    WorkItem,
    edge,
    join,
    node,
    otherwise,
    route,
    when,
)
from floxide.checkpoint import OutputRecord
from floxide.cli import load_workflow


class RecordingStore(InMemoryCheckpointStore):
    def __init__(self) -> None:
        super().__init__()
        self.saves: list[Checkpoint] = []

    async def save(self, run_id: str, checkpoint: Checkpoint) -> None:
        self.saves.append(checkpoint)
        await super().save(run_id, checkpoint)


class Tally(BaseModel):
    total: Annotated[int, Merge.sum()] = 0


def counter_workflow(fail_at: set[int]) -> tuple[Workflow[int, int], list[int]]:
    calls: list[int] = []

    @node
    async def count(ctx: WorkflowCtx[Tally], n: int) -> int:
        calls.append(n)
        if n in fail_at:
            fail_at.discard(n)
            raise RuntimeError(f"failed at {n}")
        ctx.store.total += 1
        return n + 1

    workflow: Workflow[int, int] = Workflow(
        "counter", start=count, context=Tally, edges=[route(count, when(lambda n: n < 5, count), otherwise())]
    )
    return workflow, calls


async def test_saves_after_every_step() -> None:
    workflow, _ = counter_workflow(set())
    store = RecordingStore()
    assert await workflow.run_with_checkpoint(0, store=store, run_id="r") == 5
    assert [c.steps for c in store.saves] == [1, 2, 3, 4, 5, 5]
    assert [c.status for c in store.saves] == ["running"] * 5 + ["completed"]
    final = store.saves[-1]
    assert (final.items, final.context, [o.value for o in final.outputs]) == ([], {"total": 5}, [5])


async def test_failure_keeps_the_item_and_resume_finishes() -> None:
    workflow, calls = counter_workflow({2})
    store = InMemoryCheckpointStore()
    with pytest.raises(NodeFailed, match="failed at 2"):
        await workflow.run_with_checkpoint(0, store=store, run_id="r")
    saved = await store.load("r")
    assert saved is not None
    assert (saved.status, saved.error) == ("failed", "node 'count' failed: RuntimeError: failed at 2")
    assert [(i.node, i.payload) for i in saved.items] == [("count", 2)]
    assert saved.context == {"total": 2}
    assert await workflow.resume(store=store, run_id="r") == 5
    assert calls == [0, 1, 2, 2, 3, 4]
    final = await store.load("r")
    assert final is not None and final.context == {"total": 5}


async def test_resume_mid_fan_out_joins_once() -> None:
    failing = {3}
    joined: list[list[int]] = []

    @node
    async def spread(ctx: WorkflowCtx[Tally], n: int) -> NextAll[int]:
        return NextAll(list(range(n)))

    @node
    async def work(ctx: WorkflowCtx[Tally], i: int) -> int:
        if i in failing:
            failing.discard(i)
            raise RuntimeError("branch 3 down")
        ctx.store.total += 1
        return i * i

    @node
    async def collect(ctx: WorkflowCtx[Tally], values: list[int]) -> list[int]:
        joined.append(values)
        return values

    workflow: Workflow[int, list[int]] = Workflow(
        "fan", start=spread, context=Tally, edges=[edge(spread, work), join(work, collect)], concurrency=1
    )
    store = InMemoryCheckpointStore()
    with pytest.raises(NodeFailed):
        await workflow.run_with_checkpoint(6, store=store, run_id="f")
    assert await workflow.resume(store=store, run_id="f") == [0, 1, 4, 9, 16, 25]
    assert joined == [[0, 1, 4, 9, 16, 25]]
    final = await store.load("f")
    assert final is not None and final.context == {"total": 6}


async def test_completed_run() -> None:
    workflow, calls = counter_workflow(set())
    store = InMemoryCheckpointStore()
    await workflow.run_with_checkpoint(0, store=store, run_id="done")
    with pytest.raises(AlreadyCompleted, match="run 'done' already completed"):
        await workflow.resume(store=store, run_id="done")
    before = len(calls)
    assert await workflow.run_with_checkpoint(99, store=store, run_id="done") == 5
    assert len(calls) == before


async def test_unknown_run_and_other_workflow() -> None:
    workflow, _ = counter_workflow(set())
    store = InMemoryCheckpointStore()
    with pytest.raises(NotStarted) as info:
        await workflow.resume(store=store, run_id="ghost")
    assert str(info.value) == "run 'ghost' has no checkpoint: it was never started with this store"

    other: Workflow[int, int] = Workflow("other", start=node(lambda x: x).named("same"))
    with pytest.raises(NodeFailed):
        await counter_workflow({0})[0].run_with_checkpoint(0, store=store, run_id="mine")
    with pytest.raises(NotStarted, match="run 'mine' belongs to workflow 'counter', not 'other'"):
        await other.resume(store=store, run_id="mine")


async def test_caller_ctx_sees_the_final_context() -> None:
    workflow, _ = counter_workflow({2})
    store = InMemoryCheckpointStore()
    ctx = WorkflowCtx(Tally(total=10))
    with pytest.raises(NodeFailed, match="failed at 2"):
        await workflow.run_with_checkpoint(0, store=store, run_id="c", ctx=ctx)
    assert ctx.store.total == 12  # the steps committed before the failure

    resumed = WorkflowCtx(Tally(total=100))  # not used: the run continues from its checkpoint
    assert await workflow.resume(store=store, run_id="c", ctx=resumed) == 5
    assert resumed.store.total == 15

    again = WorkflowCtx(Tally())
    assert await workflow.run_with_checkpoint(0, store=store, run_id="c", ctx=again) == 5
    assert again.store == Tally(total=15)  # the recorded context of the completed run

    other, _ = counter_workflow({3})
    with pytest.raises(NodeFailed, match="failed at 3"):
        await other.run_with_checkpoint(0, store=store, run_id="d")
    continued = WorkflowCtx(Tally())
    assert await other.run_with_checkpoint(0, store=store, run_id="d", ctx=continued) == 5
    assert continued.store.total == 5


async def test_in_memory_store_keeps_copies() -> None:
    store = InMemoryCheckpointStore()
    checkpoint = Checkpoint(workflow="w", run_id="r", context={"a": 1})
    await store.save("r", checkpoint)
    assert checkpoint.context is not None
    checkpoint.context["a"] = 2
    loaded = await store.load("r")
    assert loaded is not None and loaded.context == {"a": 1}


async def test_file_store(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path / "runs", fsync=False)
    assert await store.load("nothing") is None
    await store.save("r-1", Checkpoint(workflow="w", run_id="r-1", steps=3))
    loaded = await store.load("r-1")
    assert loaded is not None and (loaded.workflow, loaded.steps) == ("w", 3)
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["r-1.json"]

    with pytest.raises(CheckpointError, match=re.escape("run id '../x' is not usable as a file name")):
        await store.load("../x")
    (tmp_path / "runs" / "bad.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="is damaged"):
        await store.load("bad")


@pytest.mark.parametrize("kind", ["memory", "file"])
async def test_stores_keep_nan_and_infinities(kind: str, tmp_path: Path) -> None:
    store = InMemoryCheckpointStore() if kind == "memory" else FileCheckpointStore(tmp_path, fsync=False)
    odd = {"nan": math.nan, "up": math.inf, "down": -math.inf}
    item = WorkItem(run_id="r", item_id="i", node="n", payload=[math.nan])
    await store.save("r", Checkpoint(workflow="w", run_id="r", context=odd, items=[item],
                                     outputs=[OutputRecord(node="n", value=math.inf)]))  # fmt: skip
    loaded = await store.load("r")
    assert loaded is not None and loaded.context is not None
    assert {k: repr(v) for k, v in loaded.context.items()} == {"nan": "nan", "up": "inf", "down": "-inf"}
    assert math.isnan(loaded.items[0].payload[0]) and loaded.outputs[0].value == math.inf


CRASHING = """
    import os
    from floxide import Workflow, node, otherwise, route, when

    @node
    async def count(n: int) -> int:
        if n == 3 and os.environ.get("CRASH_AT_3"):
            os._exit(17)  # the process dies in the middle of a step
        return n + 1

    workflow = Workflow(
        "crashing", start=count, edges=[route(count, when(lambda n: n < 6, count), otherwise())]
    )
"""

DRIVER = """
    import asyncio, sys
    from floxide import FileCheckpointStore
    from floxide.cli import load_workflow

    workflow = load_workflow(sys.argv[1])
    asyncio.run(workflow.run_with_checkpoint(0, store=FileCheckpointStore(sys.argv[2]), run_id="job"))
"""


async def test_file_store_survives_a_process_crash(tmp_path: Path) -> None:
    (tmp_path / "crashing.py").write_text(textwrap.dedent(CRASHING))
    target = f"{tmp_path / 'crashing.py'}:workflow"
    runs = tmp_path / "runs"
    env = {**os.environ, "CRASH_AT_3": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        textwrap.dedent(DRIVER),
        target,
        str(runs),
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await proc.communicate()
    assert proc.returncode == 17, stderr.decode()
    store = FileCheckpointStore(runs)
    saved = await store.load("job")
    assert saved is not None and saved.status == "running"
    assert [(i.node, i.payload) for i in saved.items] == [("count", 3)]

    workflow = load_workflow(target)
    assert await workflow.resume(store=store, run_id="job") == 6
    assert [p.name for p in runs.iterdir()] == ["job.json"]  # no temporary files left


class Point(BaseModel):
    x: int


async def test_resume_input_is_typed_again() -> None:
    seen: list[Any] = []

    @node
    async def first(p: Point) -> Point:
        return Point(x=p.x + 1)

    @node
    async def second(p: Point) -> int:
        seen.append(p)
        if len(seen) == 1:
            raise RuntimeError("once")
        return p.x

    workflow: Workflow[Point, int] = Workflow("typed", start=first, edges=[edge(first, second)])
    store = InMemoryCheckpointStore()
    with pytest.raises(NodeFailed):
        await workflow.run_with_checkpoint(Point(x=1), store=store, run_id="t")
    assert await workflow.resume(store=store, run_id="t") == 2
    assert isinstance(seen[-1], Point)
