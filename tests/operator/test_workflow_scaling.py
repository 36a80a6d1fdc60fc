"""The worker Deployment of a Workflow: sized from the backlog, or by someone else; kept in shape.

Cases:
- Auto: a Workflow idles at zero workers, a run scales it up, and once idle for
  ``idleSecondsBeforeScaleToZero`` it is back at zero (status Ready, reason ScaledToZero); the
  next run scales it up again;
- External: the operator applies ``spec.replicas`` (as an HPA writes it through the scale
  subresource) and never sizes the Deployment itself; status.replicas and status.selector
  serve the scale subresource;
- a change of the spec rolls the pod template; a deleted Deployment comes back.
"""

from __future__ import annotations

from typing import Any

from tests.operator.kopfharness import (
    DEPLOYMENTS,
    RUNS,
    WORKFLOWS,
    Cluster,
    eventually,
    operator,
    run_manifest,
    workflow_manifest,
)


def replicas(cluster: Cluster, name: str = "examples-workers") -> int | None:
    deployment = cluster.api.get(DEPLOYMENTS, name)
    return None if deployment is None else deployment["spec"].get("replicas")


def ready_condition(cluster: Cluster, name: str = "examples") -> dict[str, Any]:
    status = cluster.api.status(WORKFLOWS, name)
    return {item["type"]: item for item in status.get("conditions", [])}.get("Ready", {})


async def test_scale_to_zero_after_idle_and_back(cluster: Cluster) -> None:
    api = cluster.api
    async with operator(cluster.kmock):
        await api.create(WORKFLOWS, workflow_manifest(scaling={"idleSecondsBeforeScaleToZero": 2}))
        await eventually(lambda: replicas(cluster) == 0, what="zero workers")
        await api.create(RUNS, run_manifest("first", 42))
        await eventually(lambda: replicas(cluster) == 1, timeout=10, what="one worker")
        await eventually(lambda: api.status(RUNS, "first").get("phase") == "Succeeded", timeout=60)
        await eventually(lambda: replicas(cluster) == 0, timeout=15, what="back to zero")
        await eventually(lambda: cluster.kubelet.count("examples-workers") == 0, timeout=15)
        await eventually(lambda: ready_condition(cluster).get("reason") == "ScaledToZero", timeout=10)
        await eventually(lambda: api.status(WORKFLOWS, "examples")["ready"] == "0/0", timeout=10)

        await api.create(RUNS, run_manifest("second", 7))
        await eventually(lambda: api.status(RUNS, "second").get("phase") == "Succeeded", timeout=60)
    assert api.status(RUNS, "second")["output"] == "SmallNode: 7 <= 10"
    assert cluster.kubelet.started == 2  # one worker for each run, stopped in between


async def test_external_scaling_applies_spec_replicas_only(cluster: Cluster) -> None:
    api = cluster.api
    async with operator(cluster.kmock):
        spec = workflow_manifest(replicas=2, scaling={"mode": "External", "minWorkers": 0, "maxWorkers": 5})
        await api.create(WORKFLOWS, spec)
        await eventually(lambda: replicas(cluster) == 2, what="spec.replicas applied")
        await eventually(
            lambda: api.status(WORKFLOWS, "examples").get("replicas") == 2, what="status.replicas"
        )
        status = api.status(WORKFLOWS, "examples")
        assert status["selector"] == (
            "app.kubernetes.io/name=floxide,app.kubernetes.io/component=worker,app.kubernetes.io/instance=examples"
        )
        await api.patch(WORKFLOWS, "examples", {"spec": {"replicas": 3}})  # as the scale subresource does
        await eventually(lambda: replicas(cluster) == 3, what="the new spec.replicas")
        await api.create(RUNS, run_manifest("big", 42))
        await eventually(lambda: api.status(RUNS, "big").get("phase") == "Succeeded", timeout=60)
        assert replicas(cluster) == 3
        await eventually(lambda: api.status(WORKFLOWS, "examples").get("desiredWorkers") == 3)


async def test_spec_changes_roll_the_template_and_a_lost_deployment_returns(cluster: Cluster) -> None:
    api = cluster.api
    async with operator(cluster.kmock):
        await api.create(WORKFLOWS, workflow_manifest())
        first = await eventually(lambda: api.get(DEPLOYMENTS, "examples-workers"), what="the Deployment")
        await api.patch(
            WORKFLOWS, "examples", {"spec": {"image": "floxide-examples:0.2.0", "concurrency": 2}}
        )

        def template() -> dict[str, Any]:
            return (api.get(DEPLOYMENTS, "examples-workers") or {})["spec"]["template"]["spec"]["containers"][
                0
            ]

        await eventually(lambda: template()["image"] == "floxide-examples:0.2.0", what="the new image")
        assert {"name": "FLOXIDE_WORKER_CONCURRENCY", "value": "2"} in template()["env"]
        assert (api.get(DEPLOYMENTS, "examples-workers") or {})["metadata"]["uid"] == first["metadata"]["uid"]
        await eventually(lambda: api.status(WORKFLOWS, "examples").get("observedGeneration") == 2)

        await api.delete(DEPLOYMENTS, "examples-workers")
        await eventually(lambda: api.get(DEPLOYMENTS, "examples-workers"), what="the Deployment again")
        assert (api.get(DEPLOYMENTS, "examples-workers") or {})["metadata"]["uid"] != first["metadata"]["uid"]
