"""Floxide: typed workflow graphs that run locally, on Redis workers, and on Kubernetes.

The engine is pure Python (asyncio and pydantic); it imports no Redis or Kubernetes code.
Distributed execution lives in :mod:`floxide.distributed` (protocols, in-memory stores) and
:mod:`floxide.redis` (Redis Streams); the operator and the worker process are separate
packages (``floxide_operator``, ``floxide_worker``).
"""

from floxide.batch import BatchNode
from floxide.checkpoint import Checkpoint, CheckpointStore, FileCheckpointStore, InMemoryCheckpointStore
from floxide.composite import CompositeNode
from floxide.context import CancelToken, Context, WorkflowCtx
from floxide.errors import (
    AlreadyCompleted,
    Cancelled,
    CheckpointError,
    FloxideError,
    GraphError,
    InputError,
    MergeError,
    NodeFailed,
    NodeTimeout,
    NoTerminalReached,
    NotStarted,
    PayloadTooLarge,
    PermanentError,
    RetryableError,
    StepLimitExceeded,
    Timeout,
)
from floxide.graph import Failure, edge, join, on_failure, otherwise, route, when
from floxide.limits import ConcurrencyLimit, RateLimit
from floxide.merge import Merge
from floxide.node import FunctionNode, Node, node
from floxide.retry import BackoffStrategy, RetryNode, RetryPolicy, with_retry
from floxide.runner import Progress, RunResult
from floxide.source import Sender, Source, source
from floxide.split import SplitNode
from floxide.transition import Abort, Hold, Next, NextAll, Transition
from floxide.workflow import Workflow
from floxide.workitem import WorkItem

__all__ = [
    "Abort",
    "AlreadyCompleted",
    "BackoffStrategy",
    "BatchNode",
    "CancelToken",
    "Cancelled",
    "Checkpoint",
    "CheckpointError",
    "CheckpointStore",
    "CompositeNode",
    "ConcurrencyLimit",
    "Context",
    "Failure",
    "FileCheckpointStore",
    "FloxideError",
    "FunctionNode",
    "GraphError",
    "Hold",
    "InMemoryCheckpointStore",
    "InputError",
    "Merge",
    "MergeError",
    "Next",
    "NextAll",
    "NoTerminalReached",
    "Node",
    "NodeFailed",
    "NodeTimeout",
    "NotStarted",
    "PayloadTooLarge",
    "PermanentError",
    "Progress",
    "RateLimit",
    "RetryNode",
    "RetryPolicy",
    "RetryableError",
    "RunResult",
    "Sender",
    "Source",
    "SplitNode",
    "StepLimitExceeded",
    "Timeout",
    "Transition",
    "WorkItem",
    "Workflow",
    "WorkflowCtx",
    "edge",
    "join",
    "node",
    "on_failure",
    "otherwise",
    "route",
    "source",
    "when",
    "with_retry",
]
