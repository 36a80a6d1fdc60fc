"""The scaling arithmetic, with a hand-moved clock.

Cases:
- desired = ceil(load / targetBacklogPerWorker) within [minWorkers, maxWorkers];
- any load wants at least one worker, even with minWorkers 0 (a run waiting for its graph);
- up at once; down only to the highest recommendation of the stabilization window;
- to zero only after idleSecondsBeforeScaleToZero without load, and at once when already there;
- an unknown load (Redis unreachable) changes nothing and restarts the idle clock;
- a fresh state (operator restart) counts the current size as recent: no sudden scale-down;
- minWorkers above zero is never undercut.
"""

from __future__ import annotations

import pytest
from floxide_operator.models import ScalingSpec
from floxide_operator.scaling import ScaleState, desired_workers


def scaling(**fields: int) -> ScalingSpec:
    base = {
        "minWorkers": 0,
        "maxWorkers": 10,
        "targetBacklogPerWorker": 10,
        "scaleDownStabilizationSeconds": 60,
        "idleSecondsBeforeScaleToZero": 300,
    }
    return ScalingSpec.model_validate({**base, **fields})


class Scaler:
    """One Workflow's scaler with its state and a clock the test moves."""

    def __init__(self, spec: ScalingSpec, current: int = 0) -> None:
        self.spec = spec
        self.state = ScaleState()
        self.current = current
        self.now = 1000.0

    def __call__(self, load: int | None, *, after: float = 0.0) -> int:
        self.now += after
        self.current = desired_workers(
            self.spec, load=load, current=self.current, state=self.state, now=self.now
        )
        return self.current


@pytest.mark.parametrize(
    ("load", "expected"),
    [(1, 1), (10, 1), (11, 2), (25, 3), (100, 10), (1000, 10)],
)
def test_desired_is_the_backlog_over_the_target_within_bounds(load: int, expected: int) -> None:
    assert Scaler(scaling())(load) == expected


def test_minimum_is_kept_and_any_load_wants_a_worker() -> None:
    assert Scaler(scaling(minWorkers=3))(1) == 3
    assert Scaler(scaling(minWorkers=0, targetBacklogPerWorker=1000))(1) == 1


def test_up_at_once_down_after_the_stabilization_window() -> None:
    scaler = Scaler(scaling(scaleDownStabilizationSeconds=60))
    assert scaler(50) == 5
    assert scaler(95, after=1) == 10
    assert scaler(20, after=1) == 10  # lower, but the window remembers 10
    assert scaler(20, after=30) == 10
    assert scaler(20, after=31) == 2  # 60 s after the last recommendation of 10
    assert scaler(45, after=1) == 5  # up again at once


def test_window_keeps_the_highest_recent_recommendation() -> None:
    scaler = Scaler(scaling(scaleDownStabilizationSeconds=10), current=8)
    assert scaler(80) == 8
    assert scaler(50, after=4) == 8
    assert scaler(10, after=4) == 8
    assert scaler(10, after=3) == 5  # the 8 has left the window, the 5 has not
    assert scaler(10, after=5) == 1


def test_to_zero_only_after_the_idle_time() -> None:
    scaler = Scaler(scaling(scaleDownStabilizationSeconds=0, idleSecondsBeforeScaleToZero=120), current=3)
    assert scaler(0) == 1  # idle, but not for long: one worker stays
    assert scaler(0, after=60) == 1
    assert scaler(5, after=30) == 1  # work came back: the idle clock restarts
    assert scaler(0, after=1) == 1
    assert scaler(0, after=119) == 1
    assert scaler(0, after=1) == 0
    assert scaler(0, after=1000) == 0


def test_zero_stays_zero_without_load() -> None:
    assert Scaler(scaling(), current=0)(0) == 0


def test_unknown_load_is_busy() -> None:
    scaler = Scaler(scaling(scaleDownStabilizationSeconds=0, idleSecondsBeforeScaleToZero=10), current=4)
    assert scaler(None) == 4
    assert scaler(None, after=100) == 4
    assert scaler(0, after=1) == 1
    assert scaler(None, after=9) == 1
    assert scaler(0, after=9) == 1  # the idle clock restarted after the unknown load
    assert scaler(0, after=10) == 0


def test_fresh_state_does_not_scale_down_at_once() -> None:
    scaler = Scaler(scaling(scaleDownStabilizationSeconds=60, minWorkers=1), current=6)
    assert scaler(0) == 6
    assert scaler(0, after=61) == 1


def test_unknown_load_respects_the_bounds() -> None:
    assert Scaler(scaling(minWorkers=2), current=0)(None) == 2
    assert Scaler(scaling(maxWorkers=3), current=7)(None) == 3
