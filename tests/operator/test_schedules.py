"""WorkflowSchedule on the KMock tier, with the operator's clock moved by the test.

Cases:
- the operator was down across five fire times: catchUp None creates none of them, Latest the
  most recent, All the most recent maxRuns; each run is owned by its schedule (controller owner
  reference) and labelled; status shows last and next fire time and the active runs; the next
  fire time, reached while watching, starts on every schedule; a fire time is never created twice;
- Forbid skips fire times while a run is active (counted in skippedRuns), starts once it finished;
- Replace sets spec.shutdown: Terminate on the active run and creates the new one;
- history limits delete the oldest finished runs; suspend creates nothing;
- a bad spec is a Ready=False condition naming the field.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from floxide.schedule import run_name
from tests.operator.fakeclock import CLOCK, Clock
from tests.operator.kopfharness import GROUP, RUNS, SCHEDULES, VERSION, Cluster, eventually
from tests.operator.kopfharness import operator as run_operator

pytestmark = [pytest.mark.timeout(300)]


ENTRY = Path(__file__).with_name("clock_entry.py")


@pytest.fixture
def clock() -> Iterator[Clock]:
    """The operator's clock, at the real time now (KMock's creationTimestamps are real time)."""
    CLOCK.now = datetime.now(UTC)
    yield CLOCK


@pytest.fixture
async def base() -> datetime:
    """Minute 0 of a test: the next minute boundary, after the schedules' creation (the tests
    create them within seconds: at most 40 s before the boundary, it waits for the next one)."""
    now = datetime.now(UTC)
    if now.second >= 20:
        await asyncio.sleep(61 - now.second)
        now = datetime.now(UTC)
    CLOCK.now = now
    return now.replace(second=0, microsecond=0) + timedelta(minutes=1)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def operator(cluster: Cluster) -> Any:
    """The operator with the test's clock (it begins watching at the clock's time when started)."""
    return run_operator(cluster.kmock, entry=ENTRY)


def schedule(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkflowSchedule",
        "metadata": {"name": name, "namespace": "probe"},
        "spec": {"schedule": "* * * * *", "runTemplate": {"workflow": "absent", "input": 1}, **spec},
    }


def runs_of(cluster: Cluster, name: str) -> list[str]:
    return sorted(
        r["metadata"]["name"]
        for r in cluster.api.items(RUNS)
        if (r["metadata"].get("labels") or {}).get("floxide.io/schedule") == name
    )


def at(base: datetime, name: str, minute: int) -> str:
    return run_name(name, base + timedelta(minutes=minute))


async def test_catch_up_after_the_operator_was_down(cluster: Cluster, clock: Clock, base: datetime) -> None:
    api = cluster.api
    policies = {"none": "None", "latest": "Latest", "all": "All"}
    async with operator(cluster):
        for name, policy in policies.items():
            template = {"workflow": "absent", "input": 1, **({"priority": "high"} if name == "all" else {})}
            await api.create(
                SCHEDULES, schedule(name, catchUp={"policy": policy, "maxRuns": 2}, runTemplate=template)
            )
        for name in policies:
            await eventually(
                lambda n=name: api.status(SCHEDULES, n).get("nextScheduleTime"), what="next time"
            )
        assert api.status(SCHEDULES, "all")["nextScheduleTime"] <= iso(base)
    clock.now = base + timedelta(minutes=5, seconds=30)  # down across minutes 0..5
    async with operator(cluster):
        await eventually(lambda: len(runs_of(cluster, "all")) == 2, what="the All catch-up")
        await eventually(lambda: len(runs_of(cluster, "latest")) == 1, what="the Latest catch-up")
        await eventually(lambda: api.status(SCHEDULES, "none").get("skippedRuns") == 6, what="None skips")
        assert runs_of(cluster, "none") == []
        assert runs_of(cluster, "latest") == [at(base, "latest", 5)]
        assert runs_of(cluster, "all") == [at(base, "all", 4), at(base, "all", 5)]
        created = api.get(RUNS, at(base, "all", 5))
        assert created is not None
        [owner] = created["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("WorkflowSchedule", "all", True)
        assert owner["uid"] == api.get(SCHEDULES, "all")["metadata"]["uid"]  # type: ignore[index]
        assert created["spec"] == {"workflow": "absent", "input": 1, "priority": "high"}
        latest = api.get(RUNS, at(base, "latest", 5)) or {}
        assert latest["spec"] == {"workflow": "absent", "input": 1, "priority": "normal"}
        status = await eventually(lambda: api.status(SCHEDULES, "all").get("activeRuns") == 2 and
                                  api.status(SCHEDULES, "all"), what="the status")  # fmt: skip
        assert status["lastScheduleTime"] == iso(base + timedelta(minutes=5))
        assert [a["name"] for a in status["active"]] == runs_of(cluster, "all")
        assert (status["startedRuns"], status["skippedRuns"]) == (2, 4)
        clock.now += timedelta(minutes=1)  # watching now: minute 6 starts everywhere
        for name in policies:
            await eventually(lambda n=name: at(base, n, 6) in runs_of(cluster, n), what=f"{name} at minute 6")
        # kopf posts Events from a queue that a stopping operator drops: wait for the third one
        await eventually(lambda: started(cluster, "all") == 3, what="the third Started event")
    async with operator(cluster):
        await eventually(lambda: api.status(SCHEDULES, "all").get("startedRuns") == 3, what="status")
    assert len(runs_of(cluster, "all")) == 3  # nothing created twice after a restart
    reasons = [reason for _, reason, _ in api.events("all", kind="WorkflowSchedule")]
    assert reasons.count("Started") == 3 and "Skipped" in reasons  # none posted again after the restart


def started(cluster: Cluster, name: str) -> int:
    """How many Started events the schedule ``name`` has had."""
    return [reason for _, reason, _ in cluster.api.events(name, kind="WorkflowSchedule")].count("Started")


async def finish(cluster: Cluster, run: str, phase: str = "Succeeded") -> None:
    """Play the run's end (the run has no Workflow: it would stay Pending)."""
    await eventually(lambda: cluster.api.status(RUNS, run).get("phase") == "Pending", what=f"{run} Pending")
    await cluster.api.patch(RUNS, run, {"status": {"phase": phase, "finishedAt": "2026-01-01T00:00:00Z"}},
                            subresource="status")  # fmt: skip


async def test_forbid_replace_history_and_suspend(cluster: Cluster, clock: Clock, base: datetime) -> None:
    api = cluster.api
    async with operator(cluster):
        await api.create(SCHEDULES, schedule("forbid", concurrencyPolicy="Forbid"))
        await api.create(SCHEDULES, schedule("replace", concurrencyPolicy="Replace"))
        await api.create(
            SCHEDULES, schedule("history", successfulRunsHistoryLimit=1, failedRunsHistoryLimit=0)
        )
        await api.create(SCHEDULES, schedule("paused", suspend=True))
        for name in ("forbid", "replace", "history", "paused"):
            await eventually(
                lambda n=name: api.status(SCHEDULES, n).get("nextScheduleTime"), what="next time"
            )
        clock.now = base + timedelta(seconds=1)
        for name in ("forbid", "replace", "history"):
            await eventually(
                lambda n=name: runs_of(cluster, n) == [at(base, n, 0)], what=f"{name}'s first run"
            )

        clock.now = base + timedelta(minutes=1, seconds=1)
        replaced = [at(base, "replace", 0), at(base, "replace", 1)]
        await eventually(lambda: runs_of(cluster, "replace") == replaced, what="the replacement")
        assert api.get(RUNS, at(base, "replace", 0))["spec"]["shutdown"] == "Terminate"  # type: ignore[index]
        assert api.get(RUNS, at(base, "replace", 1))["spec"].get("shutdown") is None  # type: ignore[index]
        await eventually(lambda: api.status(SCHEDULES, "forbid").get("skippedRuns") == 1, what="Forbid skips")
        assert runs_of(cluster, "forbid") == [at(base, "forbid", 0)]

        await finish(cluster, at(base, "forbid", 0))
        await finish(cluster, at(base, "history", 0))
        await finish(cluster, at(base, "history", 1), "Failed")
        clock.now = base + timedelta(minutes=2, seconds=1)
        await eventually(
            lambda: at(base, "forbid", 2) in runs_of(cluster, "forbid"), what="Forbid starts again"
        )
        kept = [at(base, "history", 0), at(base, "history", 2)]
        await eventually(lambda: runs_of(cluster, "history") == kept, what="the failed run deleted, one kept")
        await finish(cluster, at(base, "history", 2))
        await eventually(
            lambda: runs_of(cluster, "history") == [at(base, "history", 2)], what="history trimmed"
        )

        paused = api.status(SCHEDULES, "paused")
        assert runs_of(cluster, "paused") == [] and paused["skippedRuns"] == 3
        ready = {c["type"]: c for c in paused["conditions"]}["Ready"]
        assert (ready["status"], ready["reason"]) == ("True", "Suspended")

        await api.create(SCHEDULES, schedule("broken", timeZone="Mars/Olympus"))
        broken = await eventually(lambda: api.status(SCHEDULES, "broken").get("conditions"), what="condition")
        assert broken[0]["reason"] == "InvalidSpec" and "spec.timeZone" in broken[0]["message"]
