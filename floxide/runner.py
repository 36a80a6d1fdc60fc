"""The local runner: one run, in this process, on the in-memory default.

Ready work items run concurrently (up to the workflow's ``concurrency``); a lone ready item
runs inline without a task, which keeps long chains fast. Commits happen one at a time in
the runner's loop, so the context, frames and outputs need no locks. The run ends when no
work remains — not at the first terminal — and fails with :class:`NoTerminalReached` if no
branch produced an output.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic_core import to_jsonable_python

from floxide.checkpoint import Checkpoint, CheckpointStore, OutputRecord
from floxide.context import WorkflowCtx
from floxide.errors import Cancelled, NodeFailed, NoTerminalReached, StepLimitExceeded, Timeout
from floxide.frames import Arrival, FrameTable, Scope
from floxide.limits import LocalLimits
from floxide.merge import apply
from floxide.step import Outcome, execute, node_failed
from floxide.tracing import tracing
from floxide.workitem import WorkItem

if TYPE_CHECKING:
    from floxide.otel import Tracing
    from floxide.workflow import Workflow

__all__ = ["Progress", "RunResult", "Runner"]


@dataclass(frozen=True, slots=True)
class Progress:
    """Counts reported to a progress callback after each step."""

    done: int
    queued: int
    running: int


@dataclass(slots=True)
class RunResult:
    """A finished run: its first output (Floxide's ``output``), all outputs, and the final context."""

    run_id: str
    output: Any
    outputs: list[Any]
    context: Any
    steps: int


@dataclass(slots=True)
class _Item:
    seq: int
    node: str
    value: Any
    attempt: int = 1
    scope: Scope = ()

    @property
    def item_id(self) -> str:
        return str(self.seq)


@dataclass(slots=True)
class Runner:
    """Drives one run of ``workflow``; build it with :meth:`start` or :meth:`restore`."""

    workflow: Workflow[Any, Any]
    ctx: WorkflowCtx[Any]
    run_id: str
    store: CheckpointStore | None = None
    on_progress: Callable[[Progress], None] | None = None
    context: Any = None
    ready: deque[_Item] = field(default_factory=deque)
    delayed: list[tuple[float, int, _Item]] = field(default_factory=list)
    inflight: dict[int, _Item] = field(default_factory=dict)
    frames: FrameTable = field(default_factory=FrameTable)
    outputs: list[tuple[str, Any]] = field(default_factory=list)
    ended: dict[str, int] = field(default_factory=dict)
    steps: int = 0
    next_id: int = 0
    tracing: Tracing | None = None

    @classmethod
    def start(
        cls, workflow: Workflow[Any, Any], ctx: WorkflowCtx[Any], run_id: str, value: Any, **kw: Any
    ) -> Runner:
        """A runner for a new run with ``value`` as the start node's input."""
        runner = cls(workflow, ctx, run_id, context=ctx.store, **kw)
        runner.ready.append(runner._new(workflow.graph.start, value, ()))
        runner.frames.seed()
        return runner

    @classmethod
    def restore(
        cls, workflow: Workflow[Any, Any], ctx: WorkflowCtx[Any], checkpoint: Checkpoint, **kw: Any
    ) -> Runner:
        """A runner continuing from ``checkpoint``."""
        context = workflow.load_context(checkpoint.context)
        runner = cls(workflow, ctx, checkpoint.run_id, context=context, **kw)
        runner.frames = FrameTable.from_json(checkpoint.frames) if checkpoint.frames else FrameTable()
        runner.steps, runner.next_id = checkpoint.steps, checkpoint.next_id
        for record in checkpoint.outputs:
            runner.outputs.append((record.node, record.value))
        for item in checkpoint.items:
            value = workflow.load_input(item.node, item.payload)
            runner.ready.append(_Item(int(item.item_id), item.node, value, item.attempt, item.scope))
        return runner

    async def run(self) -> RunResult:
        """Run to the end; raises the run's error (``NodeFailed``, ``Cancelled``, ``Timeout``, ...).

        A node over its own time limit fails the run with ``NodeTimeout`` (both a ``NodeFailed``
        and a ``Timeout``). Whatever the end, ``self.context`` is the context as of the last
        committed step (the workflow hands it to the caller's ``ctx``). With tracing on
        (:mod:`floxide.tracing`), the run has a span, and each step one beneath it.
        """
        self.tracing = tracing()
        if self.tracing is None:
            return await self._run()
        with self.tracing.run(self.workflow.name, self.run_id):
            return await self._run()

    async def _run(self) -> RunResult:
        loop_task = asyncio.ensure_future(self._guarded())

        def stop_loop() -> None:
            loop_task.cancel()

        unsubscribe = self.ctx.cancel_token.on_cancel(stop_loop)
        try:
            return await loop_task
        except asyncio.CancelledError:
            if self.ctx.cancel_token.reason is not None and not _outer_cancelled():
                raise Cancelled(self.ctx.cancel_token.reason) from None
            raise
        finally:
            unsubscribe()

    async def _guarded(self) -> RunResult:
        deadline = self.ctx.deadline
        try:
            if deadline is None:
                await self._loop()
            else:
                async with asyncio.timeout_at(deadline):
                    await self._loop()
        except TimeoutError as exc:
            if deadline is not None and time.monotonic() >= deadline:
                await self._save("failed", error=f"run timed out after {self.ctx.timeout:g}s")
                raise Timeout(self.ctx.timeout or 0.0, scope="run") from exc
            raise
        except (NodeFailed, StepLimitExceeded) as exc:
            await self._save("failed", error=str(exc))
            raise
        return await self._finish()

    async def _loop(self) -> None:
        ready, running = self.ready, dict[asyncio.Task[Outcome], _Item]()
        limit = self.workflow.concurrency
        try:
            while ready or running or self.delayed:
                if self.delayed:
                    self._release_due()
                elif not running and len(ready) == 1:
                    item = ready.popleft()
                    self.inflight[item.seq] = item
                    self._commit(item, await self._execute(item))
                    if self.store is not None:
                        await self._save("running")
                    continue
                while ready and len(running) < limit:
                    item = ready.popleft()
                    self.inflight[item.seq] = item
                    running[asyncio.ensure_future(self._execute(item))] = item
                timeout = self._next_due()
                if not running:
                    await asyncio.sleep(timeout or 0)
                    continue
                done, _ = await asyncio.wait(running, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=lambda t: running[t].seq):
                    item = running.pop(task)
                    self._commit(item, task.result())
                    if self.store is not None:
                        await self._save("running")
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    def _execute(self, item: _Item) -> Any:
        spec = self.workflow.graph.nodes[item.node]
        step_ctx = self.ctx.for_step(
            self.context, run_id=self.run_id, node=item.node, item_id=item.item_id, attempt=item.attempt
        )
        if spec.limits:  # concurrency and rate limits: wait for a slot and a token
            graph = self.workflow.graph
            step = lambda: execute(graph, spec, step_ctx, item.value)  # noqa: E731
            running = LocalLimits.of(self.workflow).run(item.node, spec.limits, item.value, step)
        else:
            running = execute(self.workflow.graph, spec, step_ctx, item.value)
        if self.tracing is None:
            return running
        return self.tracing.local_step(running, self.run_id, item.node, item.item_id, item.attempt)

    def _commit(self, item: _Item, outcome: Outcome) -> None:
        """Apply a step's outcome to the run's state (the caller saves the checkpoint)."""
        self.steps += 1
        limit = self.workflow.max_steps
        if limit is not None and self.steps > limit:
            raise StepLimitExceeded(f"workflow '{self.workflow.name}' exceeded max_steps={limit} (a loop?)")
        if outcome.status == "retry":
            del self.inflight[item.seq]
            retry = _Item(item.seq, item.node, item.value, item.attempt + 1, item.scope)
            heapq.heappush(self.delayed, (time.monotonic() + outcome.retry_delay, item.seq, retry))
            return
        if outcome.status == "failed":
            assert outcome.error is not None
            raise node_failed(item.node, outcome.error, item.attempt)
        del self.inflight[item.seq]
        if outcome.changes:
            self.context = apply(self.context, outcome.changes)
        for value in outcome.outputs:
            self.outputs.append((item.node, value))
        emits = outcome.emits
        if emits and any(e.join for e in emits):
            children = [e for e in emits if not e.join]
            arrivals = [Arrival(e.node, e.value) for e in emits if e.join]
        else:
            children, arrivals = emits, []
        if not emits and not outcome.outputs:
            self.ended[item.node] = self.ended.get(item.node, 0) + 1
        joins = self.workflow.graph.nodes[item.node].frame_joins if outcome.fan_out else ()
        opened, fired, _ = self.frames.commit(
            item.seq, item.scope, len(children), arrivals, outcome.fan_out, joins
        )
        ready = self.ready
        if opened is None:
            for emit in children:
                self.next_id += 1
                ready.append(_Item(self.next_id, emit.node, emit.value, 1, item.scope))
        else:
            for index, emit in enumerate(children):
                ready.append(self._new(emit.node, emit.value, (*item.scope, (opened, index))))
        for join in fired:
            values = self.workflow.load_input(join.node, join.values, python=True)
            ready.append(self._new(join.node, values, join.scope))
        if self.on_progress is not None:
            self.on_progress(Progress(self.steps, len(self.ready) + len(self.delayed), len(self.inflight)))

    async def _finish(self) -> RunResult:
        if not self.outputs:
            where = ", ".join(f"'{n}' ({c}x)" for n, c in self.ended.items()) or "nowhere"
            error = NoTerminalReached(
                f"workflow '{self.workflow.name}' ended without reaching a terminal node; "
                f"its branches ended at {where}"
            )
            await self._save("failed", error=str(error))
            raise error
        await self._save("completed")
        values = [value for _, value in self.outputs]
        return RunResult(self.run_id, values[0], values, self.context, self.steps)

    def _new(self, node: str, value: Any, scope: Scope) -> _Item:
        self.next_id += 1
        return _Item(self.next_id, node, value, 1, scope)

    def _release_due(self) -> None:
        now = time.monotonic()
        while self.delayed and self.delayed[0][0] <= now:
            self.ready.append(heapq.heappop(self.delayed)[2])

    def _next_due(self) -> float | None:
        return max(0.0, self.delayed[0][0] - time.monotonic()) if self.delayed else None

    async def _save(
        self, status: Literal["running", "completed", "failed"], *, error: str | None = None
    ) -> None:
        if self.store is None:
            return
        pending = [*self.inflight.values(), *self.ready, *(entry[2] for entry in self.delayed)]
        checkpoint = Checkpoint(
            workflow=self.workflow.name,
            run_id=self.run_id,
            status=status,
            context=self.workflow.dump_context(self.context),
            items=[
                WorkItem(
                    run_id=self.run_id,
                    item_id=i.item_id,
                    node=i.node,
                    payload=to_jsonable_python(i.value),
                    attempt=i.attempt,
                    scope=i.scope,
                )
                for i in sorted(pending, key=lambda i: i.seq)
            ],
            frames=to_jsonable_python(self.frames.to_json()),
            outputs=[OutputRecord(node=n, value=to_jsonable_python(v)) for n, v in self.outputs],
            steps=self.steps,
            next_id=self.next_id,
            error=error,
        )
        await self.store.save(self.run_id, checkpoint)


def _outer_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
