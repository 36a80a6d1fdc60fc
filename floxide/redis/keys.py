"""Every Redis key the project uses, in one place.

All keys of one workflow share the Redis Cluster hash tag ``{wf:<namespace>/<workflow>}``,
so the multi-key Lua scripts stay legal on a cluster while workflows spread over shards,
and two namespaces never collide. Run keys expire with the run (``ttl``); the work stream
is trimmed only below what every consumer has acknowledged.

Every key of a namespace, including the two it shares among its workflows (:class:`NamespaceKeys`),
starts with ``fx:{wf:<namespace>/``: one glob (:func:`namespace_pattern`) covers a namespace's
keys and nothing of another's, so a Redis ACL user can be limited to one namespace.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

__all__ = ["GROUP", "KeySpace", "NamespaceKeys", "RunKeys", "namespace_pattern"]

GROUP = "floxide-workers"
"""The consumer group every worker of a workflow reads the stream with."""


def namespace_pattern(namespace: str) -> str:
    """The glob matching every key of ``namespace`` and no key of another namespace (for ACLs)."""
    escaped = "".join(f"\\{c}" if c in "*?[]\\" else c for c in namespace)
    return f"fx:{{wf:{escaped}/*"


@dataclass(frozen=True)
class NamespaceKeys:
    """The keys one namespace's workflows share (under the hash tag ``{wf:<namespace>/}``)."""

    namespace: str

    @cached_property
    def base(self) -> str:
        return f"fx:{{wf:{self.namespace}/}}"

    @property
    def workflows(self) -> str:
        """Set of the namespace's workflow names known to this Redis (for listing across workflows)."""
        return f"{self.base}:workflows"

    @property
    def run_index(self) -> str:
        """Hash run id -> workflow name (see :mod:`floxide.redis.index`)."""
        return f"{self.base}:run-index"


@dataclass(frozen=True)
class KeySpace:
    """The keys of one workflow in one namespace.

    ``priority``: the run priority class whose queue keys (``stream``, ``delayed``,
    ``throttled``) these are; the ``normal`` class has the plain names, every other key is
    shared by the classes (:mod:`floxide.redis.priority`).
    """

    namespace: str
    workflow: str
    priority: str = "normal"

    @property
    def _class(self) -> str:
        return "" if self.priority == "normal" else f":{self.priority}"

    @cached_property
    def tag(self) -> str:
        """The hash tag shared by every key of the workflow."""
        return f"{{wf:{self.namespace}/{self.workflow}}}"

    @cached_property
    def base(self) -> str:
        return f"fx:{self.tag}"

    @property
    def stream(self) -> str:
        """The work stream (consumer group :data:`GROUP`) of the priority class."""
        return f"{self.base}:stream{self._class}"

    @property
    def control(self) -> str:
        """Stream of interrupts (a run cancelled with ``interrupt``), read by every worker of the
        workflow so that running steps stop at once; capped at about 1,000 entries."""
        return f"{self.base}:control"

    @property
    def delayed(self) -> str:
        """Sorted set of items waiting to be retried, scored by due time (ms)."""
        return f"{self.base}:delayed{self._class}"

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

    @property
    def throttled(self) -> str:
        """Sorted set of items set aside by a node limit (item JSON by the time they are due, ms)."""
        return f"{self.base}:throttled{self._class}"

    @property
    def priorities(self) -> str:
        """Set of the priority classes other than ``normal`` that runs were submitted with."""
        return f"{self.base}:priorities"

    @property
    def node_limits(self) -> str:
        """Sorted set of ``<kind>:<ident>`` of the node limits in use, by last use (ms)."""
        return f"{self.base}:nodelimits"

    @property
    def limit_stats(self) -> str:
        """Hash of ``<kind>:<ident>:granted|throttled`` counters and ``<kind>:<ident>:def`` (the limit)."""
        return f"{self.base}:nodelimitstats"

    def limit(self, kind: str, ident: str, part: str) -> str:
        """One node limit's key: ``slots`` and ``waiting`` (concurrency), ``bucket`` and ``queue`` (rate)."""
        return f"{self.base}:nodelimit:{kind}:{ident}:{part}"

    @property
    def shared(self) -> NamespaceKeys:
        """The keys the workflow shares with the other workflows of its namespace."""
        return NamespaceKeys(self.namespace)

    @property
    def limits(self) -> str:
        """Hash of the workflow's run limits (``max_active_runs``), see :mod:`floxide.redis.runqueue`."""
        return f"{self.base}:limits"

    @property
    def active(self) -> str:
        """Set of the ids of runs admitted under the run limit (pruned of finished runs on admission)."""
        return f"{self.base}:active"

    @property
    def queued(self) -> str:
        """Sorted set of the ids of runs waiting for a slot, scored by submission order."""
        return f"{self.base}:queued"

    @property
    def queue_seq(self) -> str:
        """Counter giving each queued run its place in :attr:`queued`."""
        return f"{self.base}:qseq"

    def schedule(self, name: str) -> str:
        """Hash of one ``floxide schedule`` schedule's state (last and next fire time, its runs)."""
        return f"{self.base}:schedule:{name}"

    def idempotency(self, key: str) -> str:
        """The run id submitted under an idempotency key (expires with the workflow's retention)."""
        return f"{self.base}:idem:{key}"

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

    @property
    def logs(self) -> str:
        """Stream of the run's step logs (what nodes log through ``ctx.log``), capped in length."""
        return f"{self.base}:logs"

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
            self.logs,
        ]
