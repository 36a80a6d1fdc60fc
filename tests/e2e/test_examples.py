"""The example manifests on a real cluster, through the installed chart.

Cases:
- ``kubectl apply`` of ``examples/k8s/`` (pointed at the examples image under test): every run
  reaches Succeeded; the branching run's output is "BigNode: 84" with progress 2/2;
- ``kubectl get workflowruns`` shows the printer columns WORKFLOW, PHASE, PROGRESS, AGE,
  DURATION, MESSAGE (and RUN-ID, STARTED, OUTPUT with ``-o wide``);
- the status the operator writes survives the apiserver's schema: no field is pruned, so the
  operator log has no "inconsistencies";
- deleting a Workflow garbage-collects its worker Deployment and its Redis Secret.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.e2e.kubecluster import EXAMPLES_IMAGE, ROOT, Cluster

MANIFEST_IMAGE = "floxide-examples:0.1.0"


def example_manifests() -> str:
    """examples/k8s/*.yaml as one stream, pointed at the examples image under test."""
    documents = []
    for path in sorted((ROOT / "examples" / "k8s").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document["kind"] == "Workflow" and document["spec"]["image"] == MANIFEST_IMAGE:
                document["spec"]["image"] = EXAMPLES_IMAGE
            if document:
                documents.append(document)
    return yaml.safe_dump_all(documents)


def run_names() -> list[str]:
    return [
        document["metadata"]["name"]
        for path in sorted(Path(ROOT / "examples" / "k8s").glob("run-*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def test_examples_succeed(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", input=example_manifests())
    for name in run_names():
        cluster.wait_for(
            lambda name=name: (
                (cluster.get("workflowrun", name) or {}).get("status", {}).get("phase") == "Succeeded"
            ),
            what=f"workflowrun/{name} to succeed",
        )
    status = (cluster.get("workflowrun", "branching-big") or {})["status"]
    assert status["output"] == "BigNode: 84"
    assert status["progress"] == "2/2"

    table = cluster.kubectl("get", "workflowruns", "-l", "!floxide.io/schedule").splitlines()  # not scheduled
    assert table[0].split() == ["NAME", "WORKFLOW", "PHASE", "PROGRESS", "AGE", "DURATION", "MESSAGE"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert set(rows) == set(run_names())
    assert rows["branching-big"][1:4] == ["examples", "Succeeded", "2/2"]
    wide = cluster.kubectl("get", "workflowruns", "-o", "wide").splitlines()[0].split()
    assert wide[-3:] == ["RUN-ID", "STARTED", "OUTPUT"]
    assert cluster.kubectl("get", "workflows").splitlines()[0].split() == ["NAME", "READY", "ACTIVE", "AGE"]

    log = cluster.operator_log()
    assert "inconsistencies" not in log, "the apiserver pruned a status field the operator wrote"


def test_deleting_a_workflow_collects_its_deployment(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", input=example_manifests())
    cluster.wait_for(lambda: cluster.get("deployment", "orders-workers"), what="the orders Deployment")
    assert cluster.get("secret", "orders-redis") is not None
    cluster.kubectl("delete", "workflow", "orders", "--timeout=120s")
    cluster.wait_for(
        lambda: (
            cluster.get("deployment", "orders-workers") is None
            and cluster.get("secret", "orders-redis") is None
        ),
        what="the garbage collection of the orders Deployment and Secret",
    )
