"""The distributed protocols: the work queue, the stores, and the backend that commits atomically.

Each store is a protocol with an in-memory implementation (:mod:`floxide.distributed.memory`)
and a Redis one (:mod:`floxide.redis`). A step touches several of them at once — successors,
context, counters, item state, outputs, acknowledgement — so the atomic operations live on
the :class:`Backend`, which owns one of each store over the same storage.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from floxide.checkpoint import CheckpointStore
from floxide.distributed.limits import Limiter
from floxide.distributed.models import (
    Claim,
    ErrorRecord,
    RunInfo,
    RunMetrics,
    RunStatus,
    WorkerHealth,
    WorkItemState,
)
from floxide.workitem import WorkItem

__all__ = [
    "FENCED",
    "Backend",
    "CheckpointStore",
    "Commit",
    "ContextStore",
    "ControlFeed",
    "ErrorStore",
    "Handoff",
    "LivenessStore",
    "MetricsStore",
    "Promoted",
    "RunInfoStore",
    "StepInput",
    "Successor",
    "WorkItemStateStore",
    "WorkQueue",
]


FENCED = frozenset({"cancelled", "gone"})
"""What the atomic operations on a claimed item return when its run is Cancelled, or gone
(deleted, or expired): the fence. The item is acknowledged and nothing else is written: a
step still running when its run is cancelled or deleted changes nothing when it ends."""


class WorkQueue(Protocol):
    """The work items of one workflow, shared by all its workers, with leases."""

    async def claim(self, consumer: str, *, count: int, block: float) -> list[Claim]:
        """Up to ``count`` new items for ``consumer``, waiting up to ``block`` seconds."""

    async def reclaim(self, consumer: str, *, min_idle: float, count: int) -> list[Claim]:
        """Items whose lease expired (idle longer than ``min_idle`` seconds), now ``consumer``'s.

        An item taken from a worker that went silent holding it is a crash: the claim is
        marked ``reclaimed`` and the run counts it (its node's ``reclaimed`` metric, and an
        error naming the worker), unless the run is gone or Cancelled (the fence). An item
        handed back with :meth:`release` is no crash: not marked, not counted, and its
        delivery count stays as it was.
        """

    async def extend(self, consumer: str, claims: Sequence[Claim]) -> None:
        """Renew the lease of ``claims`` (long steps call this periodically)."""

    async def release(self, consumer: str, claims: Sequence[Claim]) -> None:
        """Give ``claims`` back unfinished (a draining worker does): other workers may reclaim
        them at once, and that reclaim is no crash."""

    async def pending(self, run_id: str) -> list[WorkItem]:
        """The run's items not yet committed: queued, claimed, delayed or parked."""

    async def backlog(self) -> tuple[int, int]:
        """``(lag, pending)``: items not yet delivered, and delivered but not acknowledged."""


class ContextStore(Protocol):
    """Each run's context, in JSON form."""

    async def get(self, run_id: str) -> dict[str, Any] | None:
        """The run's context, or ``None`` if the run has none."""


class RunInfoStore(Protocol):
    """Run records."""

    async def get(self, run_id: str) -> RunInfo | None:
        """The run's record, or ``None``."""

    async def list(self, status: RunStatus | None = None, *, limit: int = 1000) -> list[RunInfo]:
        """Runs, newest first, optionally only those in ``status``."""

    async def outputs(self, run_id: str) -> builtins.list[Any]:
        """Every terminal output of the run, in commit order (JSON)."""


class MetricsStore(Protocol):
    """Per-run and per-node counters."""

    async def get(self, run_id: str) -> RunMetrics:
        """The run's metrics (zeros for an unknown run)."""


class ErrorStore(Protocol):
    """Each failure of a run's items."""

    async def list(self, run_id: str) -> list[ErrorRecord]:
        """The run's errors, oldest first."""


class LivenessStore(Protocol):
    """Worker heartbeats."""

    async def heartbeat(self, health: WorkerHealth, *, ttl: float) -> None:
        """Record ``health``; the worker counts as gone after ``ttl`` seconds without one."""

    async def list(self) -> list[WorkerHealth]:
        """Workers with a live heartbeat."""

    async def remove(self, worker_id: str) -> None:
        """Forget a worker (on shutdown)."""


class WorkItemStateStore(Protocol):
    """Each work item's status and attempts."""

    async def get(self, run_id: str, item_id: str) -> WorkItemState | None:
        """One item's state."""

    async def list(self, run_id: str) -> list[WorkItemState]:
        """Every item of the run."""


@dataclass(slots=True)
class StepInput:
    """What a worker needs before running a claimed item: the run's status and context."""

    status: RunStatus | None
    context: dict[str, Any] | None
    deadline: float | None = None
    interrupt: bool = False


@dataclass(frozen=True, slots=True)
class Promoted:
    """What :meth:`Backend.promote_due` did: ``moved`` items back into the queue, and
    ``wake_in``, the seconds until it has something to do again (``None``: nothing waits)."""

    moved: int
    wake_in: float | None = None


@dataclass(slots=True)
class Successor:
    """A new item a step's commit creates: ``node``'s input ``payload`` (JSON data).

    ``index`` is its place in the frame the step opens (``None`` when the step opens none: it
    stays in the step's own frames). The commit makes it a :class:`WorkItem` of the step's run:
    attempt 1, the commit's trace, and its scope (:meth:`Commit.scope_of`).
    """

    item_id: str
    node: str
    payload: Any = None
    index: int | None = None


@dataclass(slots=True)
class Commit:
    """A finished step, ready to be committed atomically.

    ``children`` are new items; ``opened`` the fan-out frame they open (or ``None``);
    ``arrivals`` are ``(join node, value)`` pairs collected by the item's (or the opened)
    frame; ``changes`` are context deltas (:meth:`floxide.merge.FieldChange.to_json`);
    ``frame_joins`` are the joins that close the opened frame (they fire even with no
    arrival); ``trace`` is the step span's trace context, carried by the children and by the
    joins the commit fires (``None`` when tracing is off).
    """

    item: WorkItem
    children: list[Successor] = field(default_factory=list)
    opened: str | None = None
    arrivals: list[tuple[str, Any]] = field(default_factory=list)
    outputs: list[Any] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    frame_joins: tuple[str, ...] = ()
    trace: dict[str, str] | None = None

    def scope_of(self, child: Successor) -> tuple[tuple[str, int], ...]:
        """The fan-out frames of ``child``: the step's, and the one it opens (if any)."""
        if self.opened is None or child.index is None:
            return self.item.scope
        return (*self.item.scope, (self.opened, child.index))

    def child_items(self) -> list[WorkItem]:
        """The children as the work items they become."""
        item = self.item
        return [
            WorkItem(
                run_id=item.run_id,
                item_id=child.item_id,
                node=child.node,
                payload=child.payload,
                scope=self.scope_of(child),
                trace=self.trace,
            )
            for child in self.children
        ]


@dataclass(slots=True)
class Handoff:
    """Asks a commit to claim the next new item for ``consumer`` in the same round trip.

    The backend fills in the claim (``None``: nothing new) and, when it could read it in the
    same call (a run of the commit), its ``state``, the context included. A worker that stops
    while the step runs sets ``withdrawn``: a commit issued after that claims nothing (one
    already under way may still bring a claim, which the worker then hands back).
    """

    consumer: str
    want_state: bool = True
    claim: Claim | None = None
    state: StepInput | None = None
    withdrawn: bool = False


@runtime_checkable
class ControlFeed(Protocol):
    """A backend that tells its workers at once which runs to interrupt (optional).

    Workers of a backend without it learn of a cancel only when they poll the runs of their
    running steps (``control_interval``).
    """

    async def interrupts(self, after: str | None, *, block: float) -> tuple[str, builtins.list[str]]:
        """The runs interrupted since position ``after`` (``None``: from now on, returning at
        once), waiting up to ``block`` seconds for one; and the position to pass next time."""


class Backend(Protocol):
    """One storage technology: the queue, the stores, and the atomic operations on them."""

    @property
    def workflow(self) -> str:
        """The workflow whose runs this backend stores."""

    @property
    def queue(self) -> WorkQueue: ...
    @property
    def contexts(self) -> ContextStore: ...
    @property
    def runs(self) -> RunInfoStore: ...
    @property
    def metrics(self) -> MetricsStore: ...
    @property
    def errors(self) -> ErrorStore: ...
    @property
    def liveness(self) -> LivenessStore: ...
    @property
    def items(self) -> WorkItemStateStore: ...
    @property
    def limits(self) -> Limiter:
        """The slots and buckets of the workflow's node limits (:mod:`floxide.distributed.limits`)."""

    async def start_run(self, run: RunInfo, item: WorkItem, context: dict[str, Any] | None) -> bool:
        """Create the run and enqueue its first item, once: ``False`` if the run exists."""

    async def claim_idempotency_key(self, key: str, run_id: str) -> str:
        """Bind ``key`` to ``run_id`` unless a submission holds it already, atomically; the run id
        bound to ``key`` (a retried submission gets the first one's)."""

    async def step_input(self, claim: Claim) -> StepInput:
        """The run status and context for a claimed item (and mark the item running)."""

    async def step_inputs(self, claims: Sequence[Claim]) -> list[StepInput]:
        """:meth:`step_input` for a batch of claims, at once (one round trip in Redis)."""

    async def commit(self, claim: Claim, commit: Commit, *, handoff: Handoff | None = None) -> str:
        """Apply a step atomically and acknowledge it: ``ok``, ``duplicate`` (committed before),
        or ``cancelled`` / ``gone`` (:data:`FENCED`: only acknowledged).

        With ``handoff`` (unless ``withdrawn``), also claim the next new item for its consumer
        (see :class:`Handoff`), whatever the result.
        """

    async def retry_later(self, claim: Claim, *, delay: float, error: ErrorRecord) -> str:
        """Acknowledge the item and queue it again, attempt + 1, after ``delay`` seconds: ``ok``,
        ``duplicate`` (committed meanwhile) or :data:`FENCED` (only acknowledged)."""

    async def fail(self, claim: Claim, error: ErrorRecord) -> str:
        """The item failed for good: record it, dead-letter it, fail the run: ``ok``,
        ``duplicate`` (committed meanwhile) or :data:`FENCED` (only acknowledged)."""

    async def set_aside(self, claim: Claim, *, keep: bool) -> str:
        """Acknowledge an item its run cannot take now: ``parked`` (``keep``), ``dropped``, or
        :data:`FENCED` (only acknowledged, even with ``keep``)."""

    async def promote_due(self) -> Promoted:
        """Move delayed items whose time has come back into the queue; says how many, and
        when the earliest item still delayed is due."""

    async def set_status(
        self,
        run_id: str,
        status: RunStatus,
        *,
        reason: str | None = None,
        interrupt: bool = False,
        deadline: datetime | None = None,
    ) -> RunStatus | None:
        """Move the run to ``status`` if that is a legal move; returns the status it is in now.

        Pausing parks nothing at once (workers park items as they meet them); resuming, and
        retrying a Failed run (``Failed -> Running``), put parked and failed items back in
        the queue; cancelling drops them, and with ``interrupt`` running steps are cancelled.
        A retried run's old deadline is cleared; ``deadline`` gives it a new one.
        ``None``: the run does not exist.
        """

    async def publish_graph(self, graph: dict[str, Any]) -> None:
        """Store the workflow's graph metadata (nodes, edges, start node, input schema)."""

    async def graph(self) -> dict[str, Any] | None:
        """The published graph metadata, if any worker published it."""
