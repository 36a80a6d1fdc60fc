"""Redis state projected into resource status, and the rule that decides when to patch.

Pure functions: the handlers read Redis and the cluster, these turn what was read into the
``status`` of a WorkflowRun or a Workflow (built with the CRD models, so it matches the schema),
and :class:`Coalescer` decides whether a status change is worth a patch now.

A run's status stays bounded whatever the run's size: counts and a summary, one entry per graph
node at most (never one per work item), the output only when its JSON fits in
:data:`OUTPUT_LIMIT` bytes (else a preview and the Redis key that holds it), and messages cut to
a few hundred characters.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from floxide.distributed.models import RunInfo, RunMetrics, RunStatus

from . import models
from .models import ConditionStatus, Phase

__all__ = [
    "FINISHED",
    "MAX_NODES",
    "OUTPUT_LIMIT",
    "PREVIEW_LENGTH",
    "Coalescer",
    "RunView",
    "condition",
    "diff",
    "format_duration",
    "phase_of",
    "project_run",
    "short",
]

OUTPUT_LIMIT = 4096
"""Largest output (bytes of compact JSON) kept in ``status.output``."""

PREVIEW_LENGTH = 80
"""Characters of ``status.outputPreview``."""

MAX_NODES = 100
"""Most entries in ``status.nodes`` when the graph is not known (one per node otherwise)."""

MESSAGE_LENGTH = 300
"""Characters of ``status.message`` and the condition messages."""

ERROR_LENGTH = 2000
"""Characters of ``status.error``."""

FINISHED = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED})
"""Phases a run does not leave (but for a retry of a Failed run)."""

_PHASES = {
    RunStatus.QUEUED: Phase.QUEUED,  # waiting for a slot under the Workflow's spec.maxActiveRuns
    RunStatus.PENDING: Phase.RUNNING,  # seeded: the operator's part is done, a worker starts it
    RunStatus.RUNNING: Phase.RUNNING,
    RunStatus.PAUSED: Phase.SUSPENDED,
    RunStatus.COMPLETED: Phase.SUCCEEDED,
    RunStatus.FAILED: Phase.FAILED,
    RunStatus.CANCELLED: Phase.CANCELLED,
}


def phase_of(status: RunStatus) -> Phase:
    """The WorkflowRun phase of a run in ``status``."""
    return _PHASES[status]


def short(text: str, limit: int = MESSAGE_LENGTH) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def format_duration(seconds: float) -> str:
    """A duration as kubectl prints ages: ``45s``, ``1m12s``, ``2h3m``, ``3d4h``."""
    total = max(int(seconds), 0)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


def condition(
    type: str, ok: bool, reason: str, message: str = "", *, generation: int | None = None
) -> models.Condition:
    """A condition observed now (``ok`` is its status)."""
    return models.Condition.new(
        type=type,
        status=ConditionStatus.TRUE if ok else ConditionStatus.FALSE,
        reason=reason,
        message=short(message),
        observed_generation=generation,
    )


def merge_conditions(
    previous: Sequence[Mapping[str, Any]] | None, new: Iterable[models.Condition]
) -> list[models.Condition]:
    """``previous`` (status JSON) updated with ``new``; transition times kept where status held."""
    merged = [models.Condition.model_validate(item) for item in previous or ()]
    for item in new:
        merged = models.merge_condition(merged, item)
    return merged


@dataclass(frozen=True)
class RunView:
    """What the operator read about one seeded run: its record and metrics from Redis."""

    run_id: str
    info: RunInfo
    metrics: RunMetrics
    nodes: Sequence[str] = ()
    """The graph's node names, in order (empty when the graph is unknown)."""
    output_key: str = ""
    """The Redis key of the run's output list (its first entry is the output)."""


def _counts(view: RunView) -> dict[str, models.NodeCounts]:
    names = list(view.nodes) or sorted(view.metrics.nodes)[:MAX_NODES]
    counts: dict[str, models.NodeCounts] = {}
    for name in names:
        metrics = view.metrics.nodes.get(name)
        if metrics is None:
            continue
        counts[name] = models.NodeCounts(
            completed=metrics.completed,
            failed=metrics.failed,
            retries=metrics.retries,
            pending=metrics.pending,
            throttled=metrics.throttled,
        )
    return counts


def _output_fields(info: RunInfo, key: str) -> dict[str, Any]:
    if not info.has_output:
        return {"output": None, "output_preview": None, "output_key": None}
    dump = functools.partial(json.dumps, info.output, separators=(",", ":"), ensure_ascii=False)
    try:
        text, strict = dump(allow_nan=False), True
    except ValueError:  # NaN or infinities: no JSON the API server takes, so only previewed
        text, strict = dump(), False
    preview = text if len(text) <= PREVIEW_LENGTH else text[: PREVIEW_LENGTH - 1] + "…"
    if strict and len(text.encode()) <= OUTPUT_LIMIT:
        return {"output": info.output, "output_preview": preview, "output_key": None}
    return {"output": None, "output_preview": preview, "output_key": key}


def _message(view: RunView, phase: Phase, counts: Mapping[str, models.NodeCounts]) -> str:
    info = view.info
    if phase is Phase.SUCCEEDED:
        return f"Succeeded after {info.items_done} steps"
    if phase in (Phase.FAILED, Phase.CANCELLED):
        return short(info.error or phase.value)
    if phase is Phase.SUSPENDED:
        return "Suspended: running steps finish, no new step starts"
    if info.status is RunStatus.PENDING:
        return "Waiting for a worker to start the run"
    if info.status is RunStatus.QUEUED:
        return "Queued: the Workflow's spec.maxActiveRuns runs are active; it starts when one finishes"
    busy = [name for name, count in counts.items() if count.pending]
    if not busy:
        return "Running"
    more = f" (+{len(busy) - 3})" if len(busy) > 3 else ""
    return short(f"Running {', '.join(busy[:3])}{more}")


def project_run(view: RunView, *, now: datetime) -> models.WorkflowRunStatus:
    """The status fields a run's Redis state determines (the caller adds conditions and the rest)."""
    info = view.info
    phase = phase_of(info.status)
    counts = _counts(view)
    started = info.started_at or info.created_at
    end = info.finished_at if phase in FINISHED and info.finished_at else now
    return models.WorkflowRunStatus(
        phase=phase,
        run_id=view.run_id,
        progress=f"{info.items_done}/{info.items_total}",
        completed_items=info.items_done,
        total_items=info.items_total,
        nodes=counts,
        started_at=started.replace(microsecond=0),
        finished_at=info.finished_at.replace(microsecond=0)
        if phase in FINISHED and info.finished_at
        else None,
        duration=format_duration((end - started).total_seconds()),
        message=_message(view, phase, counts),
        error=short(info.error, ERROR_LENGTH) if info.error and phase is not Phase.SUCCEEDED else None,
        **_output_fields(info, view.output_key),
    )


# -- patching ----------------------------------------------------------------------------------


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch from ``old`` to ``new`` (top-level keys; a key gone from ``new`` becomes None)."""
    patch = {key: value for key, value in new.items() if old.get(key) != value}
    patch.update({key: None for key in old if key not in new and old[key] is not None})
    return patch


@dataclass
class Coalescer:
    """Decides when one resource's status is patched: at most once per ``min_interval`` seconds.

    Changes wait (and merge) until the interval has passed since the last patch. A change that
    touches only ``volatile`` fields (counters that move all the time, such as a duration) waits
    for ``refresh_interval`` instead. ``sent`` is the status as last patched.
    """

    min_interval: float
    refresh_interval: float
    volatile: frozenset[str] = frozenset()
    sent: dict[str, Any] = field(default_factory=dict)
    last_patch: float | None = None

    def due(self, status: Mapping[str, Any], *, now: float) -> dict[str, Any] | None:
        """The patch to send now for ``status`` (its full JSON), or None to wait."""
        patch = diff(self.sent, status)
        if not patch:
            return None
        since = None if self.last_patch is None else now - self.last_patch
        wait = self.refresh_interval if set(patch) <= self.volatile else self.min_interval
        if since is not None and since < wait:
            return None
        return patch

    def mark_sent(self, status: Mapping[str, Any], *, now: float) -> None:
        """Record that ``status`` was patched at ``now``."""
        self.sent = dict(status)
        self.last_patch = now
