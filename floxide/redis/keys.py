"""Every Redis key the project uses, in one place.

All keys of one workflow share the Redis Cluster hash tag ``{wf:<namespace>/<workflow>}``,
so the multi-key Lua scripts stay legal on a cluster while workflows spread over shards,
and two namespaces never collide. Run keys expire with the run (``ttl``); the work stream
is trimmed only below what every consumer has acknowledged.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

__all__ = ["GROUP", "REGISTRY", "KeySpace", "RunKeys"]

GROUP = "floxide-workers"
"""The consumer group every worker of a workflow reads the stream with."""

REGISTRY = "floxide:workflows"
"""A set of ``<namespace>/<workflow>`` known to this Redis (for listing across workflows)."""


@dataclass(frozen=True)
class KeySpace:
    """The keys of one workflow in one namespace."""

    namespace: str
    workflow: str

    @cached_property
    def tag(self) -> str:
        """The hash tag shared by every key of the workflow."""
        return f"{{wf:{self.namespace}/{self.workflow}}}"

    @cached_property
    def base(self) -> str:
        return f"fx:{self.tag}"

    @property
    def stream(self) -> str:
        """The work stream (consumer group :data:`GROUP`)."""
        return f"{self.base}:stream"

    @property
    def delayed(self) -> str:
        """Sorted set of items waiting to be retried, scored by due time (ms)."""
        return f"{self.base}:delayed"

    @property
    def dead(self) -> str:
        """Dead-letter stream: items that failed for good."""
        return f"{self.base}:dead"

    @property
    def runs(self) -> str:
        """Sorted set of run ids by creation time (ms)."""
        return f"{self.base}:runs"

    @property
    def workers(self) -> str:
        """Hash of worker id -> health JSON."""
        return f"{self.base}:workers"

    @property
    def heartbeats(self) -> str:
        """Sorted set of worker id by heartbeat expiry (epoch s)."""
        return f"{self.base}:heartbeats"

    @property
    def graph(self) -> str:
        """The workflow's graph metadata (JSON), published by workers."""
        return f"{self.base}:graph"

    def run(self, run_id: str) -> RunKeys:
        """The keys of one run."""
        return RunKeys(f"{self.base}:run:{run_id}")


@dataclass(frozen=True)
class RunKeys:
    """The keys of one run (all under the workflow's hash tag)."""

    base: str

    @property
    def info(self) -> str:
        return self.base

    @property
    def ctx(self) -> str:
        return f"{self.base}:ctx"

    def ctx_field(self, kind: str, field: str) -> str:
        """The key holding a list (append), set (union) or dict (update) context field."""
        return f"{self.base}:ctx:{kind}:{field}"

    @property
    def done(self) -> str:
        return f"{self.base}:done"

    @property
    def items(self) -> str:
        return f"{self.base}:items"

    @property
    def frames(self) -> str:
        return f"{self.base}:frames"

    @property
    def fparent(self) -> str:
        return f"{self.base}:fparent"

    @property
    def fscope(self) -> str:
        return f"{self.base}:fscope"

    @property
    def fjoins(self) -> str:
        return f"{self.base}:fjoins"

    def inbox(self, frame: str) -> str:
        """The join inbox of a fan-out frame (``""`` is the run itself)."""
        return f"{self.base}:inbox:{frame or 'root'}"

    @property
    def outputs(self) -> str:
        return f"{self.base}:outputs"

    @property
    def metrics(self) -> str:
        return f"{self.base}:metrics"

    @property
    def parked(self) -> str:
        return f"{self.base}:parked"

    @property
    def errors(self) -> str:
        return f"{self.base}:errors"

    @property
    def failed(self) -> str:
        return f"{self.base}:failed"

    @property
    def checkpoint(self) -> str:
        return f"{self.base}:checkpoint"

    def fixed(self) -> list[str]:
        """The run's keys whose names do not depend on its context type or frames."""
        return [
            self.info,
            self.ctx,
            self.done,
            self.items,
            self.frames,
            self.fparent,
            self.fscope,
            self.outputs,
            self.metrics,
            self.parked,
            self.errors,
            self.failed,
            self.fjoins,
        ]
