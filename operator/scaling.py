"""How many workers a Workflow wants: the scaling arithmetic, free of I/O.

The load is the stream's backlog (lag plus pending: items waiting and items being worked on)
plus the runs not yet seeded: a Workflow at zero workers has no worker to publish its graph, and
a run cannot be seeded without the graph, so a waiting run must bring up at least one worker.

* ``desired = ceil(load / targetBacklogPerWorker)`` within ``[minWorkers, maxWorkers]``;
* up at once; down to the highest recommendation of the last ``scaleDownStabilizationSeconds``
  (as the HorizontalPodAutoscaler does), so a short lull does not stop workers;
* to zero only after ``idleSecondsBeforeScaleToZero`` with no load at all; until then at least
  one worker stays;
* an unknown load (Redis unreachable) is busy: nothing scales down, and idleness restarts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import models

__all__ = ["Recommendation", "ScaleState", "desired_workers"]


@dataclass(frozen=True)
class Recommendation:
    """A worker count recommended at a moment (monotonic seconds)."""

    at: float
    workers: int


@dataclass
class ScaleState:
    """What the scaler remembers about one Workflow between two decisions (in memory only).

    After an operator restart the state is empty, which is safe: the current count counts as a
    recent recommendation, so nothing scales down before a full stabilization window.
    """

    history: list[Recommendation] = field(default_factory=list)
    idle_since: float | None = None


def _recommend(spec: models.ScalingSpec, load: int) -> int:
    floor = max(spec.min_workers, 1) if load > 0 else spec.min_workers
    wanted = math.ceil(load / spec.target_backlog_per_worker)
    return min(max(wanted, floor), spec.max_workers)


def desired_workers(
    spec: models.ScalingSpec,
    *,
    load: int | None,
    current: int,
    state: ScaleState,
    now: float,
) -> int:
    """The worker count to run now; updates ``state``.

    ``load`` is backlog plus unseeded runs (``None`` when unknown); ``current`` is the count the
    Deployment has now; ``now`` is a monotonic clock in seconds.
    """
    if not state.history:
        state.history.append(Recommendation(now, current))
    if load is None:
        state.idle_since = None
        recommended = min(max(current, spec.min_workers), spec.max_workers)
    elif load > 0:
        state.idle_since = None
        recommended = _recommend(spec, load)
    else:
        if state.idle_since is None:
            state.idle_since = now
        idle_long_enough = now - state.idle_since >= spec.idle_seconds_before_scale_to_zero
        if spec.min_workers == 0 and (current == 0 or idle_long_enough):
            # Idleness has its own stabilization: once it has lasted, stop every worker at once.
            state.history = [Recommendation(now, 0)]
            return 0
        recommended = min(max(spec.min_workers, 1), spec.max_workers)
    window = now - spec.scale_down_stabilization_seconds
    state.history = [r for r in state.history if r.at > window]
    state.history.append(Recommendation(now, recommended))
    highest = max(r.workers for r in state.history)  # also from before a change of the bounds
    return min(max(highest, spec.min_workers), spec.max_workers)
