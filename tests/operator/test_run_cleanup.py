"""The end of a WorkflowRun resource: TTL, deletion, and the run's Redis data.

Cases:
- ``ttlSecondsAfterFinished`` deletes a finished run, and its Redis data, after the TTL;
- a finished run carries no finalizer: it is deleted at once even while the operator is down
  (its Redis data expires with the run's TTL).

Deleting a running run, and an operator restart in the middle of one, are checked on a real API
server (tests/cluster/test_lifecycle.py).
"""

from __future__ import annotations

from floxide.redis import RedisBackend
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


async def run_keys(backend: RedisBackend, run_id: str) -> list[str]:
    """Every key in Redis that belongs to the run."""
    return [key async for key in backend.client.scan_iter(match=f"*:run:{run_id}*")]


async def test_ttl_deletes_a_finished_run_and_its_data(cluster: Cluster) -> None:
    api = cluster.api
    async with operator(cluster.kmock):
        await api.create(WORKFLOWS, workflow_manifest())
        await api.create(RUNS, run_manifest("short-lived", 42, ttlSecondsAfterFinished=1))
        await eventually(
            lambda: api.status(RUNS, "short-lived").get("phase") == "Succeeded", timeout=60, what="Succeeded"
        )
        run_id = api.status(RUNS, "short-lived")["runId"]
        await eventually(lambda: not api.exists(RUNS, "short-lived"), timeout=15, what="the TTL deletion")
    async with redis_backend(cluster.redis_url, "examples") as backend:
        assert await run_keys(backend, run_id) == []
    assert "Expired" in [reason for _, reason, _ in api.events("short-lived")]


async def test_finished_run_is_deleted_without_the_operator(cluster: Cluster) -> None:
    api = cluster.api
    async with operator(cluster.kmock):
        await api.create(WORKFLOWS, workflow_manifest())
        await api.create(RUNS, run_manifest("done", 42))
        await eventually(lambda: api.status(RUNS, "done").get("phase") == "Succeeded", timeout=60)
        await eventually(lambda: not (api.get(RUNS, "done") or {})["metadata"].get("finalizers"))
    await api.delete(RUNS, "done")  # the operator is not running
    assert not api.exists(RUNS, "done")
