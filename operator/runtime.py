"""What one running operator holds: its settings, clients, metrics, and what it has seen.

The views are filled by kopf's watch events (``on.event`` handlers in :mod:`.handlers`), so a
handler about one resource can look at others without an API call: a run finds its Workflow, a
Workflow counts its runs and reads its Deployment's readiness.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .kube import Kube
from .metrics import OperatorMetrics
from .models import Phase
from .projection import Coalescer
from .redis_users import NamespaceUsers
from .settings import OperatorSettings
from .store import Connection, Redises

__all__ = ["DeploymentView", "Key", "RunSeen", "Runtime"]

Key = tuple[str, str]
"""(namespace, name)."""


@dataclass
class RunSeen:
    """A WorkflowRun as last seen."""

    namespace: str
    workflow: str
    phase: Phase | None
    seeded: bool
    name: str = ""
    schedule: str | None = None
    """The WorkflowSchedule that created the run (its ``floxide.io/schedule`` label), if any."""
    created: str = ""
    """The run's creationTimestamp (RFC 3339), for ordering a schedule's runs."""
    finished: str = ""
    """The run's status.finishedAt (RFC 3339), if it finished."""


@dataclass
class DeploymentView:
    """A worker Deployment as last seen."""

    spec_replicas: int | None
    replicas: int
    ready: int
    template_hash: str | None


@dataclass
class Runtime:
    """The state of one operator process."""

    settings: OperatorSettings
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    redises: Redises | None = None
    kube: Kube | None = None
    operator_secret: dict[str, str] | None = None
    """The Redis connection mirrored to Workflows: the operator Secret's entries, read at startup."""
    workflows: set[Key] = field(default_factory=set)
    """The Workflows that exist."""
    runs: dict[str, RunSeen] = field(default_factory=dict)
    deployments: dict[Key, DeploymentView] = field(default_factory=dict)
    connections: dict[Key, Connection] = field(default_factory=dict)
    """Workflow -> its own Redis (``spec.redis``); absent: the operator's."""
    users: NamespaceUsers | None = None
    """The namespaces' Redis users (:mod:`.tenancy`), when the operator gives each one its own."""
    users_sweep: asyncio.Task[None] | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    """The time schedules are planned at (tests move it)."""
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    """When this operator began watching: schedules' fire times before it were missed."""

    def runs_of(self, namespace: str, workflow: str) -> list[RunSeen]:
        """The runs of one Workflow."""
        return [run for run in self.runs.values() if run.namespace == namespace and run.workflow == workflow]

    def connection_of(self, namespace: str, workflow: str) -> Connection | None:
        """The Redis of a Workflow's runs (None: the operator's own)."""
        return self.connections.get((namespace, workflow))

    def require_redis(self) -> Redises:
        if self.redises is None:
            raise RuntimeError("the operator has not started: no Redis client")
        return self.redises

    def coalescer(self, status: dict[str, Any], *, volatile: frozenset[str]) -> Coalescer:
        """A status coalescer for one resource, starting from the status it has now."""
        sent = {key: value for key, value in status.items() if key != "kopf"}
        settings = self.settings
        return Coalescer(
            settings.status_min_interval, settings.status_refresh_interval, volatile=volatile, sent=sent
        )

    def require_kube(self) -> Kube:
        if self.kube is None:
            raise RuntimeError("the operator has not logged in: no Kubernetes client")
        return self.kube


def phase_in(status: dict[str, Any] | Any) -> Phase | None:
    """The phase recorded in a status, if it is one."""
    value = status.get("phase") if hasattr(status, "get") else None
    try:
        return Phase(value) if value else None
    except ValueError:
        return None
