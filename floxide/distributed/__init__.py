"""Distributed execution: protocols, in-memory implementations, the worker and the orchestrator.

Everything here is storage-agnostic; :mod:`floxide.redis` provides the Redis backend.
"""

from floxide.distributed.execution import process_claim, start_run
from floxide.distributed.memory import InMemoryBackend
from floxide.distributed.models import (
    Claim,
    ErrorRecord,
    ItemStatus,
    NodeMetrics,
    RunInfo,
    RunMetrics,
    RunStatus,
    WorkerHealth,
    WorkerStatus,
    WorkItemState,
)
from floxide.distributed.orchestrator import DistributedOrchestrator
from floxide.distributed.protocols import (
    Backend,
    CheckpointStore,
    Commit,
    ContextStore,
    ErrorStore,
    LivenessStore,
    MetricsStore,
    Promoted,
    RunInfoStore,
    StepInput,
    Successor,
    WorkItemStateStore,
    WorkQueue,
)
from floxide.distributed.worker import DEFAULT_RETRY, DistributedWorker, WorkerHooks, worker_identity

__all__ = [
    "DEFAULT_RETRY",
    "Backend",
    "CheckpointStore",
    "Claim",
    "Commit",
    "ContextStore",
    "DistributedOrchestrator",
    "DistributedWorker",
    "ErrorRecord",
    "ErrorStore",
    "InMemoryBackend",
    "ItemStatus",
    "LivenessStore",
    "MetricsStore",
    "NodeMetrics",
    "Promoted",
    "RunInfo",
    "RunInfoStore",
    "RunMetrics",
    "RunStatus",
    "StepInput",
    "Successor",
    "WorkItemState",
    "WorkItemStateStore",
    "WorkQueue",
    "WorkerHealth",
    "WorkerHooks",
    "WorkerStatus",
    "process_claim",
    "start_run",
    "worker_identity",
]
