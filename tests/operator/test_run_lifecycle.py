"""A WorkflowRun from creation to its end, with the real operator, Redis and worker processes.

Cases:
- applying a Workflow creates its worker Deployment (controlled by the Workflow, the worker pod
  template, the mirrored Redis Secret) at zero workers; a run (priority high, passed on to
  Redis) scales it up, reaches Succeeded with the output "BigNode: 84" and progress 2/2 (within
  2 s of finishing in Redis), posts an Event per phase, drops its finalizer, and its status
  patches come at most once per second; the Workflow's status shows the workers' graph,
  readiness and runs (and no node-limit slots or throttled items); /metrics counts it all;
- a run of a Workflow that does not exist waits in Pending, naming it, and runs once it appears;
- an input that does not fit the published input schema fails the run, naming the field;
- large inputs, inline or from a ConfigMap, are never copied into kopf's annotations.
"""

from __future__ import annotations

import itertools
import sys
import urllib.request
from typing import Any

from redis.asyncio import Redis

from floxide.redis import RedisBackend
from tests.operator.kopfharness import (
    CONFIG_MAPS,
    DEPLOYMENTS,
    ENTRY,
    RUNS,
    SECRETS,
    WORKFLOWS,
    Cluster,
    eventually,
    operator,
    redis_backend,
    run_manifest,
    workflow_manifest,
)

DIFF_BASE = "kopf.zalando.org/last-handled-configuration"


def phase_is(cluster: Cluster, name: str, phase: str) -> Any:
    return lambda: cluster.api.status(RUNS, name).get("phase") == phase


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["type"]: item for item in status.get("conditions", [])}


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


async def test_branching_run_succeeds(cluster: Cluster) -> None:
    api = cluster.api
    async with operator(cluster.kmock):
        created = await api.create(WORKFLOWS, workflow_manifest())
        deployment = await eventually(lambda: api.get(DEPLOYMENTS, "examples-workers"), what="the Deployment")
        assert deployment["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "floxide.io/v1alpha1",
                "kind": "Workflow",
                "name": "examples",
                "uid": created["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert deployment["spec"]["replicas"] == 0  # minWorkers 0 and nothing to do
        [worker] = deployment["spec"]["template"]["spec"]["containers"]
        assert worker["args"] == ["worker", "examples.branching:workflow"]
        assert {"name": "FLOXIDE_NAMESPACE", "value": "probe"} in worker["env"]
        secret = await eventually(lambda: api.get(SECRETS, "examples-redis"), what="the mirrored Secret")
        assert secret["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]

        await api.create(RUNS, run_manifest("big", 42, priority="high"))
        await eventually(lambda: (api.get(DEPLOYMENTS, "examples-workers") or {})["spec"]["replicas"] >= 1)
        await eventually(phase_is(cluster, "big", "Succeeded"), timeout=60, what="Succeeded")
        status = api.status(RUNS, "big")
        # Succeeded runs never change again: their timer stops and kopf's finalizer goes.
        await eventually(lambda: not (api.get(RUNS, "big") or {})["metadata"].get("finalizers"))
        run = api.get(RUNS, "big") or {}

        # The Workflow learnt the graph from its workers.
        await eventually(lambda: api.status(WORKFLOWS, "examples").get("activeRuns") == 0)
        workflow_status = api.status(WORKFLOWS, "examples")
        port = sys.modules[f"__kopf_script_0__{ENTRY}"].RUNTIME.metrics.port
        metrics = scrape(port)

    uid8 = run["metadata"]["uid"].replace("-", "")[:8]
    assert status["output"] == "BigNode: 84"
    assert status["outputPreview"] == '"BigNode: 84"'
    assert status["progress"] == "2/2"
    assert (status["completedItems"], status["totalItems"]) == (2, 2)
    assert status["nodes"] == {
        "foo": {"completed": 1, "failed": 0, "retries": 0, "pending": 0, "throttled": 0},
        "big": {"completed": 1, "failed": 0, "retries": 0, "pending": 0, "throttled": 0},
    }
    assert status["runId"] == f"big-{uid8}"
    assert status["seeded"] is True
    assert status["observedGeneration"] == 1
    assert status["message"] == "Succeeded after 2 steps"
    assert {"startedAt", "finishedAt", "duration"} <= set(status)
    assert set(conditions(status)) == {"Accepted", "Completed", "Suspended", "RedisAvailable"}
    assert conditions(status)["Completed"]["status"] == "True"
    assert conditions(status)["Completed"]["reason"] == "Succeeded"
    assert conditions(status)["Accepted"]["reason"] == "Seeded"
    assert DIFF_BASE not in (run["metadata"].get("annotations") or {})  # no diff-base copy is kept

    reasons = [reason for _, reason, _ in api.events("big")]
    assert reasons[-1] == "Succeeded" and len(reasons) == len(set(reasons))  # one Event per phase shown
    assert set(reasons) <= {"Pending", "Running", "Succeeded"}

    # Completion shows within 2 s of the run finishing in Redis; patches at most once a second.
    async with redis_backend(cluster.redis_url, "examples") as backend:
        info = await backend.runs.get(status["runId"])
    assert info is not None and info.finished_at is not None
    assert info.priority == "high"  # spec.priority, passed on when the run was seeded
    patches = api.requests("PATCH", RUNS, subresource="status")
    succeeded = next(
        cluster.kmock.arrivals[r.id] for r in patches if r.data["status"].get("phase") == "Succeeded"
    )
    assert succeeded - info.finished_at.timestamp() < 2.0
    times = [cluster.kmock.arrivals[r.id] for r in patches if r.name == "big"]
    assert all(later - earlier >= 0.9 for earlier, later in itertools.pairwise(times)), times

    assert workflow_status["graph"]["name"] == "branching"
    assert workflow_status["graph"]["startNode"] == "foo"
    assert workflow_status["graph"]["inputSchema"] == {"type": "integer"}
    assert {node["name"] for node in workflow_status["graph"]["nodes"]} == {"foo", "big", "small"}
    assert conditions(workflow_status)["RedisAvailable"]["status"] == "True"
    assert workflow_status["selector"].endswith("app.kubernetes.io/instance=examples")
    assert (workflow_status["slotsInUse"], workflow_status["throttledItems"]) == (0, 0)  # no node limits

    assert 'floxide_operator_runs{phase="Succeeded"} 1.0' in metrics
    assert 'floxide_operator_reconcile_seconds_count{resource="workflowrun"}' in metrics
    assert 'floxide_operator_status_patches_total{resource="workflowrun"}' in metrics


async def test_run_waits_for_its_workflow(cluster: Cluster) -> None:
    api = cluster.api
    async with operator(cluster.kmock):
        await api.create(RUNS, run_manifest("early", 5))
        await eventually(phase_is(cluster, "early", "Pending"), what="Pending")
        accepted = conditions(api.status(RUNS, "early"))["Accepted"]
        assert (accepted["status"], accepted["reason"]) == ("False", "WorkflowNotFound")
        assert "Workflow 'examples' does not exist" in accepted["message"]
        assert "examples" in api.status(RUNS, "early")["message"]

        await api.create(WORKFLOWS, workflow_manifest())
        await eventually(phase_is(cluster, "early", "Succeeded"), timeout=60, what="Succeeded")
        assert api.status(RUNS, "early")["output"] == "SmallNode: 5 <= 10"


async def test_input_that_does_not_fit_the_schema_fails_naming_the_field(cluster: Cluster) -> None:
    api = cluster.api
    async with operator(cluster.kmock):
        await api.create(WORKFLOWS, workflow_manifest("countdown", "examples.countdown:workflow"))
        await api.create(RUNS, run_manifest("bad", {"steps": "many"}, workflow="countdown"))
        await eventually(phase_is(cluster, "bad", "Failed"), timeout=60, what="Failed")
        status = api.status(RUNS, "bad")
    assert status["error"] == "input.steps: expected type integer"  # the field, not the value
    assert status["seeded"] is False
    assert conditions(status)["Accepted"]["reason"] == "InvalidInput"
    assert ("Warning", "Failed", "input.steps: expected type integer") in api.events("bad")
    client = Redis.from_url(cluster.redis_url, decode_responses=True)
    try:
        assert await RedisBackend(client, "countdown", namespace="probe").runs.list() == []
    finally:
        await client.aclose()


async def test_large_inputs_stay_out_of_annotations(cluster: Cluster) -> None:
    api = cluster.api
    note = "x" * 300_000  # more than the 256 KiB all annotations of an object may hold
    big = {"steps": 1, "delay": 0, "note": note}
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "inputs", "namespace": "probe", "labels": {"floxide.io/run-input": "true"}},
        "data": {"input.json": '{"steps": 2, "delay": 0, "note": "' + note + '"}'},
    }
    async with operator(cluster.kmock):
        await api.create(CONFIG_MAPS, config_map)
        await api.create(WORKFLOWS, workflow_manifest("countdown", "examples.countdown:workflow"))
        await api.create(RUNS, run_manifest("inline", big, workflow="countdown"))
        source = {"configMapKeyRef": {"name": "inputs", "key": "input.json"}}
        await api.create(RUNS, run_manifest("from-config-map", workflow="countdown", inputFrom=source))
        await eventually(phase_is(cluster, "inline", "Succeeded"), timeout=60, what="inline Succeeded")
        await eventually(phase_is(cluster, "from-config-map", "Succeeded"), timeout=60, what="Succeeded")
        inline, from_config_map = api.get(RUNS, "inline") or {}, api.get(RUNS, "from-config-map") or {}
    assert inline["status"]["output"] == 1
    assert from_config_map["status"]["output"] == 2
    for run in (inline, from_config_map):
        annotations = run["metadata"].get("annotations", {})
        assert sum(len(key) + len(value) for key, value in annotations.items()) < 1000, annotations
