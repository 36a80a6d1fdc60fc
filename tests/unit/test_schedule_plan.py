"""The schedule planner (floxide.schedule.plan), with times given, never the clock.

* cron in a time zone, six-field seconds, macros; a bad expression or zone names the problem;
* fire times reached while watching start, each one;
* missed fire times (before the scheduler began watching): None skips them, Latest starts the
  most recent, All starts them oldest first up to maxRuns;
* startingDeadlineSeconds skips late fire times; suspend skips everything;
* Forbid starts nothing while a run is active and one fire time otherwise; Replace starts the
  latest and asks to cancel the active runs;
* run names are one per fire time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from floxide.schedule import ConcurrencyPolicy, SchedulePolicy, fire_times, plan, run_name

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def policy(**fields: object) -> SchedulePolicy:
    return SchedulePolicy.model_validate({"schedule": "* * * * *", **fields})


def test_cron_is_read_in_its_time_zone_across_daylight_saving() -> None:
    berlin = policy(schedule="30 2 * * *", timeZone="Europe/Berlin")
    times = fire_times(berlin, datetime(2026, 3, 28, tzinfo=UTC))
    # 2026-03-29 has no 02:30 in Berlin (clocks jump 02:00 -> 03:00); cron runs it at 03:00 local
    assert [next(times) for _ in range(3)] == [
        datetime(2026, 3, 28, 1, 30, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),
    ]
    seconds = fire_times(policy(schedule="*/20 * * * * *"), T0)
    assert [next(seconds) for _ in range(2)] == [T0 + timedelta(seconds=20), T0 + timedelta(seconds=40)]
    assert next(fire_times(policy(schedule="@hourly"), T0)) == T0 + minutes(60)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"schedule": "61 * * * *"}, "not a cron expression"),
        ({"schedule": "every minute"}, "should match pattern"),
        ({"timeZone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"catchUp": {"policy": "Some"}}, "'None', 'Latest' or 'All'"),
    ],
)
def test_bad_fields_name_the_problem(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        policy(**fields)


def test_fire_times_reached_while_watching_all_start() -> None:
    decided = plan(policy(), since=T0, now=T0 + minutes(2.5), watching_since=T0 - minutes(10))
    assert decided.start == [T0 + minutes(1), T0 + minutes(2)]
    assert (decided.skipped, decided.last, decided.next) == (0, T0 + minutes(2), T0 + minutes(3))
    exact = plan(policy(), since=T0, now=T0 + minutes(1), watching_since=T0)
    assert exact.start == [T0 + minutes(1)]  # a fire time at exactly now is due
    nothing = plan(policy(), since=T0 + minutes(1), now=T0 + minutes(1.5), watching_since=T0)
    assert (nothing.start, nothing.last) == ([], T0 + minutes(1))


@pytest.mark.parametrize(
    ("catch_up", "started"),
    [
        ({"policy": "None"}, []),
        ({"policy": "Latest"}, [5]),
        ({"policy": "All", "maxRuns": 10}, [1, 2, 3, 4, 5]),
        ({"policy": "All", "maxRuns": 2}, [4, 5]),
    ],
)
def test_missed_fire_times_follow_the_catch_up_policy(
    catch_up: dict[str, object], started: list[int]
) -> None:
    # down from T0 to T0+5.5min: the fire times at minutes 1..5 were missed
    decided = plan(
        policy(catchUp=catch_up), since=T0, now=T0 + minutes(5.5), watching_since=T0 + minutes(5.5)
    )
    assert decided.start == [T0 + minutes(m) for m in started]
    assert decided.skipped == 5 - len(started)
    assert decided.last == T0 + minutes(5)


def test_starting_deadline_and_suspend_skip() -> None:
    late = policy(catchUp={"policy": "All"}, startingDeadlineSeconds=120)
    decided = plan(late, since=T0, now=T0 + minutes(5.5), watching_since=T0 + minutes(5.5))
    assert decided.start == [T0 + minutes(4), T0 + minutes(5)]  # 1..3 are more than 120 s late
    suspended = plan(policy(suspend=True), since=T0, now=T0 + minutes(3.5), watching_since=T0)
    assert (suspended.start, suspended.skipped, suspended.last) == ([], 3, T0 + minutes(3))


def test_forbid_and_replace() -> None:
    forbid = policy(concurrencyPolicy="Forbid", catchUp={"policy": "All"})
    busy = plan(forbid, since=T0, now=T0 + minutes(3.5), watching_since=T0, active=1)
    assert (busy.start, busy.skipped) == ([], 3)
    idle = plan(forbid, since=T0, now=T0 + minutes(3.5), watching_since=T0, active=0)
    assert (idle.start, idle.skipped) == ([T0 + minutes(3)], 2)
    replace = policy(concurrencyPolicy=ConcurrencyPolicy.REPLACE)
    replaced = plan(replace, since=T0, now=T0 + minutes(1.5), watching_since=T0, active=2)
    assert (replaced.start, replaced.cancel_active) == ([T0 + minutes(1)], True)
    first = plan(replace, since=T0, now=T0 + minutes(1.5), watching_since=T0, active=0)
    assert first.cancel_active is False


def test_a_run_name_per_fire_time() -> None:
    assert run_name("nightly", T0) == f"nightly-{int(T0.timestamp())}"
    long = run_name("x" * 80, T0)
    assert len(long) == 63 and long.endswith(str(int(T0.timestamp())))
