"""Runs on a real API server: the chart's operator, with the chart's RBAC, runs the examples.

Worker pods are created by the real Deployment and ReplicaSet controllers and run as local
processes with the environment their pod spec gives them (tests/cluster/kubelet.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from types import SimpleNamespace
from typing import Any

import yaml

from tests.cluster.controlplane import ControlPlane
from tests.cluster.installation import (
    FLOXIDE,
    ROOT,
    Installation,
    eventually,
    helm,
    resolve_env,
    workflow,
    workflow_run,
)
from tests.cluster.kubelet import LocalKubelet
from tests.redis.conftest import RedisServer

NS = "floxide-system"


def _finished(floxide: Installation, name: str, timeout: float = 90) -> dict[str, object]:
    def done() -> dict[str, object] | None:
        status = floxide.kube.status("workflowruns", NS, name)
        return status if status.get("phase") in ("Succeeded", "Failed", "Cancelled") else None

    try:
        status: dict[str, object] = eventually(done, timeout=timeout, what=f"WorkflowRun {name} to finish")
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\noperator log:\n{floxide.operator.output()[-6000:] if floxide.operator else ''}"
        ) from exc
    return status


def test_an_example_run_succeeds_and_kubectl_shows_it(
    floxide: Installation, kubelet: LocalKubelet, control_plane: ControlPlane
) -> None:
    floxide.kube.create("workflows", NS, workflow("branching", "examples.branching:workflow"))
    floxide.kube.create("workflowruns", NS, workflow_run("big", "branching", 42))

    status = _finished(floxide, "big")
    assert status["phase"] == "Succeeded", status
    assert json.loads(str(status["outputPreview"])) == "BigNode: 84"

    table = control_plane.kubectl("get", "workflowruns", "-n", NS).stdout
    header, *rows = table.splitlines()
    assert header.split() == ["NAME", "WORKFLOW", "PHASE", "PROGRESS", "AGE", "DURATION", "MESSAGE"]
    (row,) = [line for line in rows if line.startswith("big ")]
    assert re.match(r"big\s+branching\s+Succeeded\s+2/2\s+\S+\s+\S+", row), row
    wide = control_plane.kubectl("get", "fxrun", "big", "-n", NS, "-o", "wide").stdout
    assert "RUN-ID" in wide.splitlines()[0] and '"BigNode: 84"' in wide


def test_each_workflow_resource_has_its_own_queue(
    floxide: Installation, kubelet: LocalKubelet, redis_server: RedisServer
) -> None:
    """Two Workflows running the same code: each run goes through its own Workflow's queue."""
    for name in ("orders-eu", "orders-us"):
        floxide.kube.create("workflows", NS, workflow(name, "examples.branching:workflow"))
        floxide.kube.create("workflowruns", NS, workflow_run(f"{name}-run", name, 3))
    for name in ("orders-eu", "orders-us"):
        status = _finished(floxide, f"{name}-run")
        assert status["phase"] == "Succeeded", status
        assert json.loads(str(status["outputPreview"])) == "SmallNode: 3 <= 10"
    with redis_server.sync_client() as client:
        for name in ("orders-eu", "orders-us"):
            runs = client.zrange(f"fx:{{wf:{NS}/{name}}}:runs", 0, -1)
            assert runs == [floxide.kube.status("workflowruns", NS, f"{name}-run")["runId"]]
            graph = json.loads(client.get(f"fx:{{wf:{NS}/{name}}}:graph") or "null")
            assert graph["name"] == "branching"


def test_the_charts_helm_test_pod_succeeds(floxide: Installation, kubelet: LocalKubelet) -> None:
    """What ``helm test`` runs: the chart's test Pod, its command and environment, run locally."""
    hooks = helm(floxide.plane, "get", "hooks", floxide.release, "--namespace", NS).stdout
    (pod,) = [doc for doc in yaml.safe_load_all(hooks) if doc and doc["kind"] == "Pod"]
    (container,) = pod["spec"]["containers"]
    env = resolve_env(floxide.kube, NS, [_EnvVar(var) for var in container.get("env", [])])
    floxide.kube.create("workflows", NS, workflow("examples", "examples.branching:workflow"))
    result = subprocess.run(
        [FLOXIDE, *container["args"], "--timeout", "120"],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), **env},
        capture_output=True, text=True, timeout=150, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == "BigNode: 84"


class _EnvVar:
    """A container's environment variable as the kubernetes client's model shows it."""

    def __init__(self, var: dict[str, Any]) -> None:
        source = var.get("valueFrom") or {}
        secret, field = source.get("secretKeyRef"), source.get("fieldRef")
        self.name, self.value = var["name"], var.get("value")
        self.value_from = (
            None
            if not source
            else SimpleNamespace(
                secret_key_ref=SimpleNamespace(
                    name=secret["name"], key=secret["key"], optional=secret.get("optional", False)
                )
                if secret
                else None,
                field_ref=SimpleNamespace(field_path=field["fieldPath"]) if field else None,
            )
        )
