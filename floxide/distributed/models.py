"""The records distributed runs keep: runs, metrics, errors, workers and work-item states.

These are the pydantic models every store reads and writes, in memory and in Redis.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from floxide.workitem import WorkItem

__all__ = [
    "Claim",
    "ErrorRecord",
    "ItemStatus",
    "NodeMetrics",
    "RunInfo",
    "RunMetrics",
    "RunStatus",
    "WorkItemState",
    "WorkerHealth",
    "WorkerStatus",
    "can_move",
    "reclaim_error",
    "utcnow",
]


def utcnow() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


class RunStatus(StrEnum):
    """Where a run stands. It only moves forward, except that a Failed run may be retried.

    ``Queued``: the run waits for a slot under its workflow's run limit (``max_active_runs``).
    """

    QUEUED = "Queued"
    PENDING = "Pending"
    RUNNING = "Running"
    PAUSED = "Paused"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def finished(self) -> bool:
        """Completed, Failed or Cancelled."""
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


class RunInfo(BaseModel):
    """A run's record."""

    model_config = ConfigDict(ser_json_inf_nan="constants")  # an output's NaN and infinities kept

    run_id: str
    workflow: str
    status: RunStatus = RunStatus.PENDING
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    deadline: datetime | None = None
    output: Any = None
    has_output: bool = False
    error: str | None = None
    items_total: int = 0
    items_done: int = 0
    interrupt: bool = False
    priority: str = Field("normal", description="high, normal or low (floxide.distributed.priority).")


class NodeMetrics(BaseModel):
    """Counts and time of one node within a run.

    ``reclaimed`` counts items taken over from a worker that went silent mid-step (its lease
    expired: it crashed, or stalled): a crash loop shows here while ``retries`` stays 0. An
    item a draining worker handed back (released) is no crash and is not counted.
    ``throttled`` counts the times an item was set aside by a node limit (no failure).
    """

    created: int = 0
    completed: int = 0
    failed: int = 0
    retries: int = 0
    reclaimed: int = 0
    throttled: int = 0
    seconds: float = 0.0

    @property
    def pending(self) -> int:
        """Items of this node not finished yet (queued, running or waiting to retry)."""
        return max(self.created - self.completed - self.failed, 0)


class RunMetrics(BaseModel):
    """Per-run and per-node counts (Floxide's four counters, and durations)."""

    total_work_items: int = 0
    completed: int = 0
    failed: int = 0
    retries: int = 0
    reclaimed: int = 0
    nodes: dict[str, NodeMetrics] = Field(default_factory=dict)

    @classmethod
    def of_nodes(cls, nodes: dict[str, NodeMetrics]) -> RunMetrics:
        """The run's totals over its nodes' counts."""
        return cls(
            total_work_items=sum(m.created for m in nodes.values()),
            completed=sum(m.completed for m in nodes.values()),
            failed=sum(m.failed for m in nodes.values()),
            retries=sum(m.retries for m in nodes.values()),
            reclaimed=sum(m.reclaimed for m in nodes.values()),
            nodes=nodes,
        )


class ErrorRecord(BaseModel):
    """One failure of one work item."""

    run_id: str
    item_id: str
    node: str
    attempt: int
    error_type: str
    message: str
    traceback: str = ""
    permanent: bool = False
    timestamp: datetime = Field(default_factory=utcnow)


class WorkerStatus(StrEnum):
    """What a worker is doing."""

    IDLE = "Idle"
    BUSY = "Busy"
    DRAINING = "Draining"


class WorkerHealth(BaseModel):
    """A worker's heartbeat record."""

    worker_id: str
    workflow: str
    status: WorkerStatus = WorkerStatus.IDLE
    last_heartbeat: datetime = Field(default_factory=utcnow)
    started_at: datetime = Field(default_factory=utcnow)
    in_flight: list[str] = Field(default_factory=list, description="'run_id/item_id' of running steps")
    processed: int = 0
    errors: int = 0
    concurrency: int = 1


class ItemStatus(StrEnum):
    """A work item's state."""

    QUEUED = "Queued"
    RUNNING = "Running"
    WAITING_RETRY = "WaitingRetry"
    COMPLETED = "Completed"
    FAILED = "Failed"
    PARKED = "Parked"
    THROTTLED = "Throttled"


class WorkItemState(BaseModel):
    """A work item's status, attempts and node."""

    item_id: str
    node: str
    status: ItemStatus
    attempt: int = 1
    updated_at: datetime = Field(default_factory=utcnow)


class Claim(BaseModel):
    """A work item a worker has claimed: commit or release it before its lease runs out.

    ``delivery`` is the queue's id for this delivery (the Stream entry id in Redis);
    ``deliveries`` counts how often the item was handed out (crash loops are dead-lettered;
    a hand-back, see :meth:`~floxide.distributed.protocols.WorkQueue.release`, does not count).
    ``reclaimed``: the item was taken over from a worker that went silent holding it (its
    lease expired), ``lost_by`` (if known); the queue counted it in the run's metrics and
    errors. Not set for a new item, nor for one a draining worker handed back.
    """

    item: WorkItem
    delivery: str
    deliveries: int = 1
    reclaimed: bool = False
    lost_by: str | None = None
    priority: str = "normal"
    """The priority class of the queue the item was claimed from (its run's)."""


_MOVES: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.PENDING, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.PENDING: frozenset(
        {RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.COMPLETED}
    ),
    RunStatus.RUNNING: frozenset(
        {RunStatus.PAUSED, RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED}
    ),
    RunStatus.PAUSED: frozenset(
        {RunStatus.RUNNING, RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED}
    ),
    RunStatus.FAILED: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED}),
    RunStatus.COMPLETED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}


def reclaim_error(claim: Claim, silent_for: float | None = None) -> ErrorRecord:
    """The error a run records when ``claim``'s item was reclaimed from a silent worker."""
    item = claim.item
    who = f"silent worker '{claim.lost_by}'" if claim.lost_by else "a silent worker"
    quiet = f" (not heard from for {silent_for:.1f}s)" if silent_for is not None else ""
    return ErrorRecord(
        run_id=item.run_id,
        item_id=item.item_id,
        node=item.node,
        attempt=item.attempt,
        error_type="LeaseExpired",
        message=f"reclaimed from {who} after its lease expired{quiet}: the worker died or stalled "
        f"mid-step; delivery {claim.deliveries} of the item",
    )


def can_move(current: RunStatus, target: RunStatus) -> bool:
    """Whether a run may go from ``current`` to ``target`` (``Failed -> Running`` is a retry)."""
    return target in _MOVES[current]
