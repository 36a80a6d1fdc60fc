"""An operator restart in the middle of a run changes nothing for the run.

Cases:
- the countdown run (20 steps of 0.2 s) keeps going while the operator is away; the new
  operator process picks it up from its status and Redis: it is never seeded again (one run,
  one start item), its Deployment is not recreated, and it reaches Succeeded.
"""

from __future__ import annotations

from tests.operator.kopfharness import (
    DEPLOYMENTS,
    RUNS,
    WORKFLOWS,
    Cluster,
    eventually,
    operator,
    redis_backend,
    run_manifest,
)
from tests.operator.kopfharness import workflow_manifest as workflow


async def test_restart_in_the_middle_of_a_run(cluster: Cluster) -> None:
    api = cluster.api
    async with operator(cluster.kmock):
        await api.create(WORKFLOWS, workflow("countdown", "examples.countdown:workflow"))
        await api.create(RUNS, run_manifest("countdown", {"steps": 20, "delay": 0.2}, workflow="countdown"))
        await eventually(
            lambda: int(api.status(RUNS, "countdown").get("completedItems") or 0) >= 3,
            timeout=60,
            what="3 steps",
        )
    progress_while_away = api.status(RUNS, "countdown")["completedItems"]
    deployments_created = len(api.requests("POST", DEPLOYMENTS))

    async with operator(cluster.kmock):
        await eventually(
            lambda: api.status(RUNS, "countdown").get("phase") == "Succeeded", timeout=60, what="Succeeded"
        )
        status = api.status(RUNS, "countdown")

    assert progress_while_away < 20
    assert status["output"] == 20
    assert status["progress"] == "20/20"  # one item per step, none twice
    assert len(api.requests("POST", DEPLOYMENTS)) == deployments_created == 1
    async with redis_backend(cluster.redis_url, "countdown") as backend:
        [run] = await backend.runs.list()
        assert run.run_id == status["runId"]
        metrics = await backend.metrics.get(run.run_id)
        assert metrics.total_work_items == 20
        items = await backend.items.list(run.run_id)
        assert [item.item_id for item in items].count("root") == 1
