"""In-memory implementations of every distributed protocol, for tests and single-process use.

They behave like the Redis ones: records are stored as JSON and handed out as fresh copies
(never shared objects), leases expire and are reclaimed, commits are atomic (no ``await``
inside one), and the same frame and merge rules apply. A test passing here means something
for Redis.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from floxide.distributed.limits import MemoryLimiter
from floxide.distributed.models import (
    Claim,
    ErrorRecord,
    ItemStatus,
    NodeMetrics,
    RunInfo,
    RunMetrics,
    RunStatus,
    WorkerHealth,
    WorkItemState,
    can_move,
    reclaim_error,
    utcnow,
)
from floxide.distributed.protocols import Commit, Handoff, Promoted, StepInput
from floxide.frames import Arrival, FrameTable
from floxide.merge import apply_json
from floxide.workitem import WorkItem

__all__ = ["InMemoryBackend"]


@dataclass(slots=True)
class _Entry:
    item: str
    consumer: str | None = None
    delivered_at: float = 0.0
    deliveries: int = 0
    released: bool = False


class _Run:
    """Everything stored for one run."""

    def __init__(self, info: RunInfo, context: dict[str, Any] | None) -> None:
        self.info = info.model_dump_json()
        self.context = context
        self.done: set[str] = set()
        self.frames = FrameTable()
        self.outputs: list[Any] = []
        self.errors: list[str] = []
        self.items: dict[str, str] = {}
        self.metrics: dict[str, NodeMetrics] = {}
        self.parked: list[str] = []
        self.failed: dict[str, str] = {}

    def load(self) -> RunInfo:
        return RunInfo.model_validate_json(self.info)

    def save(self, info: RunInfo) -> None:
        self.info = info.model_dump_json()

    def mark(self, item: WorkItem, status: ItemStatus) -> None:
        state = WorkItemState(item_id=item.item_id, node=item.node, status=status, attempt=item.attempt)
        self.items[item.item_id] = state.model_dump_json()

    def node(self, name: str) -> NodeMetrics:
        return self.metrics.setdefault(name, NodeMetrics())


class InMemoryBackend:
    """All stores of one workflow in this process's memory, with atomic operations."""

    def __init__(self, workflow: str, *, context_type: type[BaseModel] | None = None) -> None:
        self.workflow = workflow
        self.context_type = context_type
        self._runs: dict[str, _Run] = {}
        self._entries: dict[str, _Entry] = {}
        self._new: deque[str] = deque()
        self._delayed: list[tuple[float, str]] = []
        self._dead: list[str] = []
        self._workers: dict[str, tuple[float, str]] = {}
        self._graph: str | None = None
        self._sequence = 0
        self._arrived = asyncio.Condition()
        self.queue = _Queue(self)
        self.contexts = _Contexts(self)
        self.runs = _Runs(self)
        self.metrics = _Metrics(self)
        self.errors = _Errors(self)
        self.liveness = _Liveness(self)
        self.items = _Items(self)
        self.limits = MemoryLimiter(self)
        self._idempotency: dict[str, str] = {}

    # -- queue internals ----------------------------------------------------------------------

    def _enqueue(self, item: WorkItem) -> None:
        self._sequence += 1
        delivery = f"{self._sequence}-0"
        self._entries[delivery] = _Entry(item.model_dump_json())
        self._new.append(delivery)
        run = self._runs.get(item.run_id)
        if run is not None:
            run.mark(item, ItemStatus.QUEUED)

    def _notify(self) -> None:
        async def wake() -> None:
            async with self._arrived:
                self._arrived.notify_all()

        asyncio.ensure_future(wake())  # noqa: RUF006 - fire and forget; waiters re-check

    def _ack(self, claim: Claim) -> None:
        self._entries.pop(claim.delivery, None)

    # -- atomic operations ----------------------------------------------------------------------

    async def start_run(self, run: RunInfo, item: WorkItem, context: dict[str, Any] | None) -> bool:
        if run.run_id in self._runs:
            return False
        info = run.model_copy(update={"items_total": 1})
        stored = _Run(info, None if context is None else dict(context))
        stored.frames.seed()
        stored.node(item.node).created += 1
        self._runs[run.run_id] = stored
        self._enqueue(item)
        self._notify()
        return True

    async def claim_idempotency_key(self, key: str, run_id: str) -> str:
        return self._idempotency.setdefault(key, run_id)

    async def step_inputs(self, claims: Sequence[Claim]) -> list[StepInput]:
        return [await self.step_input(claim) for claim in claims]

    async def step_input(self, claim: Claim) -> StepInput:
        run = self._runs.get(claim.item.run_id)
        if run is None:
            return StepInput(None, None)
        info = run.load()
        if info.status is RunStatus.PENDING:
            info.status, info.started_at = RunStatus.RUNNING, utcnow()
            run.save(info)
        if info.status is RunStatus.RUNNING and claim.item.item_id not in run.done:
            run.mark(claim.item, ItemStatus.RUNNING)
        deadline = info.deadline.timestamp() if info.deadline else None
        # a run seeded without a context gets the defaults (as in Redis), unless it is cancelled
        seeded_without = run.context is None and info.status is not RunStatus.CANCELLED
        if seeded_without and self.context_type is not None:
            run.context = self.context_type().model_dump(mode="json")
        context = None if run.context is None else dict(run.context)
        return StepInput(info.status, context, deadline, info.interrupt)

    async def commit(self, claim: Claim, commit: Commit, *, handoff: Handoff | None = None) -> str:
        result = self._commit(claim, commit)
        if handoff is not None and not handoff.withdrawn:
            claims = await self.queue.claim(handoff.consumer, count=1, block=0)
            if claims:
                handoff.claim = claims[0]
                if handoff.want_state and claims[0].item.run_id == commit.item.run_id:
                    handoff.state = await self.step_input(claims[0])
        return result

    def _fence(self, claim: Claim) -> _Run | str:
        """Acknowledge ``claim``; its run, or why the run takes nothing from it: ``duplicate``,
        or one of ``FENCED`` (``gone``, ``cancelled``), as commit.lua, retry.lua and fail.lua decide."""
        self._ack(claim)
        run = self._runs.get(claim.item.run_id)
        if run is None:
            return "gone"
        if claim.item.item_id in run.done:
            return "duplicate"
        if run.load().status is RunStatus.CANCELLED:
            return "cancelled"
        return run

    def _count_reclaim(self, claim: Claim, silent_for: float) -> None:
        """A crash reclaim, as reclaimed.lua counts it: fenced, and not for a committed item."""
        run = self._runs.get(claim.item.run_id)
        if run is None or run.load().status is RunStatus.CANCELLED or claim.item.item_id in run.done:
            return
        run.node(claim.item.node).reclaimed += 1
        run.errors.append(reclaim_error(claim, silent_for).model_dump_json())

    def _commit(self, claim: Claim, commit: Commit) -> str:
        item = commit.item
        run = self._fence(claim)
        if isinstance(run, str):
            return run
        run.done.add(item.item_id)
        info = run.load()
        if commit.changes and run.context is not None and self.context_type is not None:
            run.context = apply_json(self.context_type, run.context, commit.changes)
        metrics = run.node(item.node)
        metrics.completed += 1
        metrics.seconds += commit.seconds
        for output in commit.outputs:
            run.outputs.append(output)
            if not info.has_output:
                info.output, info.has_output = output, True
        arrivals = [Arrival(node, value) for node, value in commit.arrivals]
        _, fired, finished = run.frames.commit(
            item.item_id,
            item.scope,
            len(commit.children),
            arrivals,
            commit.opened is not None,
            commit.frame_joins,
        )
        successors = [
            *commit.child_items(),
            *(
                WorkItem(
                    run_id=item.run_id,
                    item_id=f.item_id,
                    node=f.node,
                    payload=f.values,
                    scope=f.scope,
                    trace=commit.trace,
                )
                for f in fired
            ),
        ]
        info.items_done += 1
        info.items_total += len(successors)
        run.mark(item, ItemStatus.COMPLETED)
        for successor in successors:
            run.node(successor.node).created += 1
            self._route(run, info, successor)
        if finished and info.status in (RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.PENDING):
            self._finish(info, run)
        run.save(info)
        if successors:
            self._notify()
        return "ok"

    def _route(self, run: _Run, info: RunInfo, item: WorkItem) -> None:
        if info.status in (RunStatus.RUNNING, RunStatus.PENDING):
            self._enqueue(item)
        elif info.status in (RunStatus.PAUSED, RunStatus.FAILED):
            run.parked.append(item.model_dump_json())
            run.mark(item, ItemStatus.PARKED)

    def _finish(self, info: RunInfo, run: _Run) -> None:
        info.finished_at = utcnow()
        if info.has_output:
            info.status = RunStatus.COMPLETED
        else:
            info.status = RunStatus.FAILED
            info.error = f"workflow '{self.workflow}' ended without reaching a terminal node"

    async def retry_later(self, claim: Claim, *, delay: float, error: ErrorRecord) -> str:
        run = self._fence(claim)
        if isinstance(run, str):
            return run
        item = claim.item.model_copy(update={"attempt": claim.item.attempt + 1})
        raw = item.model_dump_json()  # a set of items, like Redis's sorted set: a repeated report moves it
        self._delayed = [entry for entry in self._delayed if entry[1] != raw]
        self._delayed.append((time.time() + delay, raw))
        run.errors.append(error.model_dump_json())
        run.node(item.node).retries += 1
        run.mark(item, ItemStatus.WAITING_RETRY)
        return "ok"

    async def fail(self, claim: Claim, error: ErrorRecord) -> str:
        run = self._fence(claim)
        if isinstance(run, str):
            return run
        run.errors.append(error.model_dump_json())
        run.failed[claim.item.item_id] = claim.item.model_dump_json()
        run.node(claim.item.node).failed += 1
        run.mark(claim.item, ItemStatus.FAILED)
        self._dead.append(claim.item.model_dump_json())
        info = run.load()
        if can_move(info.status, RunStatus.FAILED):
            info.status, info.finished_at = RunStatus.FAILED, utcnow()
            info.error = f"node '{error.node}' failed: {error.error_type}: {error.message}"
            run.save(info)
        return "ok"

    async def set_aside(self, claim: Claim, *, keep: bool) -> str:
        self._ack(claim)
        run = self._runs.get(claim.item.run_id)
        if run is None:
            return "gone"
        if run.load().status is RunStatus.CANCELLED:
            return "cancelled"
        if not keep or claim.item.item_id in run.done:
            return "dropped"
        run.parked.append(claim.item.model_dump_json())
        run.mark(claim.item, ItemStatus.PARKED)
        return "parked"

    async def promote_due(self) -> Promoted:
        now = time.time()
        due = [entry for entry in self._delayed if entry[0] <= now]
        self._delayed = [entry for entry in self._delayed if entry[0] > now]
        wake_in = min(entry[0] for entry in self._delayed) - now if self._delayed else None
        if not due:
            return Promoted(0, wake_in)
        for _, raw in sorted(due):  # the item stays WaitingRetry until a worker runs it (as in Redis)
            self._sequence += 1
            delivery = f"{self._sequence}-0"
            self._entries[delivery] = _Entry(raw)
            self._new.append(delivery)
        self._notify()
        return Promoted(len(due), wake_in)

    async def set_status(
        self,
        run_id: str,
        status: RunStatus,
        *,
        reason: str | None = None,
        interrupt: bool = False,
        deadline: datetime | None = None,
    ) -> RunStatus | None:
        run = self._runs.get(run_id)
        if run is None:
            return None
        info = run.load()
        if not can_move(info.status, status):
            return info.status
        previous, info.status = info.status, status
        if status.finished:
            info.finished_at = utcnow()
            info.interrupt = interrupt
        if reason is not None:
            info.error = reason
        if status is RunStatus.RUNNING:
            if previous is RunStatus.FAILED:
                info.error, info.finished_at, info.deadline = None, None, deadline
                info.interrupt = False
                for raw in run.failed.values():
                    item = WorkItem.model_validate_json(raw).model_copy(update={"attempt": 1})
                    run.parked.append(item.model_dump_json())
                    run.node(item.node).failed -= 1
                run.failed.clear()
            for raw in run.parked:
                self._enqueue(WorkItem.model_validate_json(raw))
            run.parked.clear()
            self._notify()
        if status is RunStatus.CANCELLED:
            run.parked.clear()
        run.save(info)
        return status

    async def publish_graph(self, graph: dict[str, Any]) -> None:
        self._graph = json.dumps(graph)

    async def graph(self) -> dict[str, Any] | None:
        return None if self._graph is None else dict(json.loads(self._graph))


class _Queue:
    def __init__(self, backend: InMemoryBackend) -> None:
        self._b = backend

    async def claim(self, consumer: str, *, count: int, block: float) -> list[Claim]:
        b = self._b
        if not b._new and block > 0:
            async with b._arrived:
                try:
                    await asyncio.wait_for(b._arrived.wait_for(lambda: bool(b._new)), block)
                except TimeoutError:
                    return []
        claims: list[Claim] = []
        now = time.monotonic()
        while b._new and len(claims) < count:
            delivery = b._new.popleft()
            entry = b._entries.get(delivery)
            if entry is None:
                continue
            entry.consumer, entry.delivered_at = consumer, now
            entry.deliveries += 1
            claims.append(
                Claim(item=WorkItem.model_validate_json(entry.item), delivery=delivery, deliveries=1)
            )
        return claims

    async def reclaim(self, consumer: str, *, min_idle: float, count: int) -> list[Claim]:
        now = time.monotonic()
        claims: list[Claim] = []
        for delivery, entry in list(self._b._entries.items()):
            if entry.consumer is not None and now - entry.delivered_at >= min_idle and len(claims) < count:
                previous, silent_for, released = entry.consumer, now - entry.delivered_at, entry.released
                entry.consumer, entry.delivered_at, entry.released = consumer, now, False
                if not released:  # a hand-back is no crash: its delivery does not count
                    entry.deliveries += 1
                item = WorkItem.model_validate_json(entry.item)
                claim = Claim(item=item, delivery=delivery, deliveries=entry.deliveries)
                if not released:
                    claim.reclaimed, claim.lost_by = True, previous
                    self._b._count_reclaim(claim, silent_for)
                claims.append(claim)
        return claims

    async def extend(self, consumer: str, claims: Sequence[Claim]) -> None:
        now = time.monotonic()
        for claim in claims:
            entry = self._b._entries.get(claim.delivery)
            if entry is not None and entry.consumer == consumer:
                entry.delivered_at, entry.released = now, False

    async def release(self, consumer: str, claims: Sequence[Claim]) -> None:
        for claim in claims:
            entry = self._b._entries.get(claim.delivery)
            if entry is not None and entry.consumer == consumer:
                entry.delivered_at, entry.released = float("-inf"), True

    async def pending(self, run_id: str) -> list[WorkItem]:
        b = self._b
        raws = [e.item for e in b._entries.values()] + [raw for _, raw in b._delayed]
        run = b._runs.get(run_id)
        if run is not None:
            raws += run.parked + list(run.failed.values())
        items = [WorkItem.model_validate_json(raw) for raw in raws]
        return [item for item in items if item.run_id == run_id]

    async def backlog(self) -> tuple[int, int]:
        b = self._b
        lag = len(b._new) + len(b._delayed)
        return lag, len(b._entries) - len(b._new)


class _Contexts:
    def __init__(self, backend: InMemoryBackend) -> None:
        self._b = backend

    async def get(self, run_id: str) -> dict[str, Any] | None:
        run = self._b._runs.get(run_id)
        return None if run is None or run.context is None else dict(run.context)


class _Runs:
    def __init__(self, backend: InMemoryBackend) -> None:
        self._b = backend

    async def get(self, run_id: str) -> RunInfo | None:
        run = self._b._runs.get(run_id)
        return None if run is None else run.load()

    async def list(self, status: RunStatus | None = None, *, limit: int = 1000) -> list[RunInfo]:
        infos = [run.load() for run in self._b._runs.values()]
        infos = [i for i in infos if status is None or i.status is status]
        return sorted(infos, key=lambda i: i.created_at, reverse=True)[:limit]

    async def outputs(self, run_id: str) -> builtins.list[Any]:
        run = self._b._runs.get(run_id)
        return [] if run is None else list(run.outputs)


class _Metrics:
    def __init__(self, backend: InMemoryBackend) -> None:
        self._b = backend

    async def get(self, run_id: str) -> RunMetrics:
        run = self._b._runs.get(run_id)
        if run is None:
            return RunMetrics()
        return RunMetrics.of_nodes({name: m.model_copy() for name, m in run.metrics.items()})


class _Errors:
    def __init__(self, backend: InMemoryBackend) -> None:
        self._b = backend

    async def list(self, run_id: str) -> list[ErrorRecord]:
        run = self._b._runs.get(run_id)
        return [] if run is None else [ErrorRecord.model_validate_json(raw) for raw in run.errors]


class _Liveness:
    def __init__(self, backend: InMemoryBackend) -> None:
        self._b = backend

    async def heartbeat(self, health: WorkerHealth, *, ttl: float) -> None:
        self._b._workers[health.worker_id] = (time.monotonic() + ttl, health.model_dump_json())

    async def list(self) -> list[WorkerHealth]:
        now = time.monotonic()
        return [
            WorkerHealth.model_validate_json(raw) for expiry, raw in self._b._workers.values() if expiry > now
        ]

    async def remove(self, worker_id: str) -> None:
        self._b._workers.pop(worker_id, None)


class _Items:
    def __init__(self, backend: InMemoryBackend) -> None:
        self._b = backend

    async def get(self, run_id: str, item_id: str) -> WorkItemState | None:
        run = self._b._runs.get(run_id)
        raw = None if run is None else run.items.get(item_id)
        return None if raw is None else WorkItemState.model_validate_json(raw)

    async def list(self, run_id: str) -> list[WorkItemState]:
        run = self._b._runs.get(run_id)
        return [] if run is None else [WorkItemState.model_validate_json(raw) for raw in run.items.values()]
