"""Steering a run through its spec: suspend and resume, shutdown, deadline, retry.

Cases:
- ``spec.suspend`` pauses a running run (Suspended: no new step starts) and resumes it;
- ``spec.shutdown: Terminate`` cancels the run and its running steps; ``Stop`` lets running
  steps finish and starts none;
- ``activeDeadlineSeconds`` fails a run that runs too long;
- raising ``spec.retryGeneration`` retries a Failed run from where it failed, to Succeeded;
- each transition posts an Event.
"""

from __future__ import annotations

import asyncio
from typing import Any

from floxide.distributed.models import RunStatus
from tests.operator.kopfharness import (
    RUNS,
    WORKFLOWS,
    Cluster,
    eventually,
    operator,
    redis_backend,
    run_manifest,
    workflow_manifest,
)


def countdown(name: str, steps: int, delay: float, **spec: Any) -> dict[str, Any]:
    return run_manifest(name, {"steps": steps, "delay": delay}, workflow="countdown", **spec)


async def start_countdown(cluster: Cluster, name: str, *, steps: int, delay: float, **spec: Any) -> None:
    """Create the countdown Workflow and a run of it; return once the run has done a step."""
    await cluster.api.create(WORKFLOWS, workflow_manifest("countdown", "examples.countdown:workflow"))
    await cluster.api.create(RUNS, countdown(name, steps, delay, **spec))
    await eventually(lambda: done(cluster, name) >= 1, timeout=60, what="a first step")


def done(cluster: Cluster, name: str) -> int:
    return int(cluster.api.status(RUNS, name).get("completedItems") or 0)


def phase(cluster: Cluster, name: str) -> str | None:
    return cluster.api.status(RUNS, name).get("phase")


async def test_suspend_and_resume(cluster: Cluster) -> None:
    api = cluster.api
    async with operator(cluster.kmock):
        await start_countdown(cluster, "pausable", steps=20, delay=0.3)  # suspended mid-run
        await api.patch(RUNS, "pausable", {"spec": {"suspend": True}})
        await eventually(lambda: phase(cluster, "pausable") == "Suspended", what="Suspended")
        await asyncio.sleep(1.5)  # a step in flight may finish; then nothing moves
        held = done(cluster, "pausable")
        await asyncio.sleep(1.5)
        assert done(cluster, "pausable") == held
        assert held < 20
        suspended = {c["type"]: c for c in api.status(RUNS, "pausable")["conditions"]}["Suspended"]
        assert suspended["status"] == "True"

        await api.patch(RUNS, "pausable", {"spec": {"suspend": False}})
        await eventually(lambda: phase(cluster, "pausable") == "Succeeded", timeout=60, what="Succeeded")
        assert api.status(RUNS, "pausable")["output"] == 20
    reasons = [reason for _, reason, _ in api.events("pausable")]
    assert reasons.index("Suspended") < len(reasons) - reasons[::-1].index("Running") - 1
    assert reasons[-1] == "Succeeded"


async def test_terminate_cancels_running_steps(cluster: Cluster) -> None:
    api = cluster.api
    async with operator(cluster.kmock):
        await start_countdown(cluster, "doomed", steps=30, delay=1.0)
        await api.patch(RUNS, "doomed", {"spec": {"shutdown": "Terminate"}})
        await eventually(lambda: phase(cluster, "doomed") == "Cancelled", timeout=10, what="Cancelled")
        status = api.status(RUNS, "doomed")
        run_id = status["runId"]
        async with redis_backend(cluster.redis_url, "countdown") as backend:
            info = await backend.runs.get(run_id)
    assert info is not None
    assert (info.status, info.interrupt) == (RunStatus.CANCELLED, True)
    assert status["message"] == "cancelled by spec.shutdown: Terminate"
    assert "Cancelled" in [reason for _, reason, _ in api.events("doomed")]


async def test_stop_lets_running_steps_finish(cluster: Cluster) -> None:
    api = cluster.api
    async with operator(cluster.kmock):
        await start_countdown(cluster, "stopped", steps=30, delay=1.0)
        await api.patch(RUNS, "stopped", {"spec": {"shutdown": "Stop"}})
        await eventually(lambda: phase(cluster, "stopped") == "Cancelled", timeout=10, what="Cancelled")
        run_id = api.status(RUNS, "stopped")["runId"]
        async with redis_backend(cluster.redis_url, "countdown") as backend:
            info = await backend.runs.get(run_id)
            await asyncio.sleep(2.0)  # the step in flight finishes; none follows it
            after = await backend.runs.get(run_id)
    assert info is not None and after is not None
    assert (info.status, info.interrupt) == (RunStatus.CANCELLED, False)
    assert after.items_done <= info.items_done + 1
    assert api.status(RUNS, "stopped")["message"] == "cancelled by spec.shutdown: Stop"


async def test_deadline_fails_a_run_that_takes_too_long(cluster: Cluster) -> None:
    api = cluster.api
    async with operator(cluster.kmock):
        await start_countdown(cluster, "slow", steps=30, delay=0.5, activeDeadlineSeconds=3)
        await eventually(lambda: phase(cluster, "slow") == "Failed", timeout=15, what="Failed")
        status = api.status(RUNS, "slow")
    assert "deadline" in status["error"]
    assert status["completedItems"] < 30
    assert ("Warning", "Failed") in [(kind, reason) for kind, reason, _ in api.events("slow")]


async def test_retry_generation_retries_a_failed_run(cluster: Cluster) -> None:
    api = cluster.api
    async with operator(cluster.kmock):
        # long enough that the failure lands mid-run: the first status showing a step done may
        # come a second or more after it (the status interval, a loaded machine)
        await start_countdown(cluster, "flaky", steps=15, delay=0.3)
        run_id = api.status(RUNS, "flaky")["runId"]
        async with redis_backend(cluster.redis_url, "countdown") as backend:
            now = await backend.set_status(run_id, RunStatus.FAILED, reason="node 'tick' failed: injected")
        assert now is RunStatus.FAILED, now
        await eventually(lambda: phase(cluster, "flaky") == "Failed", timeout=10, what="Failed")
        assert api.status(RUNS, "flaky")["error"] == "node 'tick' failed: injected"

        await api.patch(RUNS, "flaky", {"spec": {"retryGeneration": 1}})
        await eventually(lambda: phase(cluster, "flaky") == "Succeeded", timeout=60, what="Succeeded")
        status = api.status(RUNS, "flaky")
    assert status["output"] == 15
    assert status["observedRetryGeneration"] == 1
    assert "error" not in status
    reasons = [reason for _, reason, _ in api.events("flaky")]
    # Events follow the published status: a Running shown between the two may be coalesced away.
    assert reasons[-1] == "Succeeded" and "Failed" in reasons[:-1], reasons
