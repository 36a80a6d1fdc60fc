"""The CRDs on a real API server: accepted as written, defaulting, pruning, and bad resources
refused at ``kubectl apply`` with the field named.

The server checks what an emulator and cel-python do not (a CEL rule on a ``default`` as written,
structural schemas, strict field validation, transition rules with ``oldSelf``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.cluster.controlplane import ControlPlane
from tests.cluster.installation import Installation, workflow, workflow_run

ROOT = Path(__file__).resolve().parents[2]
NS = "crd-checks"
CRD_FILES = sorted((ROOT / "crds").glob("*.yaml")) + sorted((ROOT / "helm/floxide/files/crds").glob("*.yaml"))


@pytest.fixture(scope="module")
def namespace(floxide: Installation) -> str:
    floxide.kube.ensure_namespace(NS)
    return NS


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_the_api_server_accepts_each_crd_as_written(control_plane: ControlPlane, path: Path) -> None:
    result = control_plane.kubectl(
        "apply", "--server-side", "--dry-run=server", "--force-conflicts", "-f", str(path)
    )
    assert "serverside-applied (server dry run)" in result.stdout


def test_the_installed_crds_are_established(floxide: Installation, control_plane: ControlPlane) -> None:
    for name in ("workflows.floxide.io", "workflowruns.floxide.io", "workflowschedules.floxide.io"):
        crd = yaml.safe_load(control_plane.kubectl("get", "crd", name, "-o", "yaml").stdout)
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions["Established"] == "True" and conditions["NamesAccepted"] == "True"
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_defaults_are_applied_by_the_server(floxide: Installation, namespace: str) -> None:
    body = workflow("defaults", "examples.branching:workflow")
    del body["spec"]["scaling"]
    created = floxide.kube.create("workflows", namespace, body)
    try:
        assert created["spec"]["scaling"] == {
            "mode": "Auto",
            "minWorkers": 0,
            "maxWorkers": 10,
            "targetBacklogPerWorker": 10,
            "scaleDownStabilizationSeconds": 60,
            "idleSecondsBeforeScaleToZero": 300,
        }
        assert created["spec"]["concurrency"] == 4
        partial = workflow("partial", "examples.branching:workflow", scaling={"maxWorkers": 3})
        made = floxide.kube.create("workflows", namespace, partial)
        assert made["spec"]["scaling"]["maxWorkers"] == 3 and made["spec"]["scaling"]["mode"] == "Auto"
    finally:
        floxide.kube.delete("workflows", namespace, "defaults")
        floxide.kube.delete("workflows", namespace, "partial")


REFUSALS = [
    (
        "workflow",
        {"scaling": {"minWorkers": 5, "maxWorkers": 2}},
        "scaling.minWorkers must be less than or equal to scaling.maxWorkers",
    ),
    ("workflow", {"concurrency": 0}, "spec.concurrency: Invalid value: 0"),
    ("workflow", {"imagePullPolicy": "Sometimes"}, 'spec.imagePullPolicy: Unsupported value: "Sometimes"'),
    ("workflow", {"entrypoint": None}, "spec.entrypoint: Required value"),
    ("workflow", {"scaling": {"maxWorkers": 2, "maxWorker": 3}}, 'unknown field "spec.scaling.maxWorker"'),
    ("run", {"workflow": None}, "spec.workflow: Required value"),
    ("run", {"inputt": 1}, 'unknown field "spec.inputt"'),
    (
        "run",
        {
            "inputFrom": {
                "configMapKeyRef": {"name": "a", "key": "b"},
                "secretKeyRef": {"name": "a", "key": "b"},
            }
        },
        "inputFrom needs exactly one of configMapKeyRef or secretKeyRef",
    ),
    ("run", {"activeDeadlineSeconds": -1}, "spec.activeDeadlineSeconds: Invalid value: -1"),
    ("run", {"shutdown": "Later"}, 'spec.shutdown: Unsupported value: "Later"'),
    ("run", {"priority": "urgent"}, 'spec.priority: Unsupported value: "urgent"'),
]


@pytest.mark.parametrize(("kind", "change", "message"), REFUSALS, ids=[r[2][:40] for r in REFUSALS])
def test_bad_resources_are_refused_at_apply_naming_the_field(
    floxide: Installation, control_plane: ControlPlane, namespace: str, kind: str, change: dict, message: str
) -> None:
    body = (
        workflow("bad", "examples.branching:workflow") if kind == "workflow" else workflow_run("bad", "wf", 1)
    )
    spec = body["spec"]
    for key, value in change.items():
        if value is None:
            spec.pop(key, None)
        elif isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    result = control_plane.kubectl(
        "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(body), check=False
    )
    assert result.returncode != 0, f"accepted: {body}"
    assert message in result.stderr, result.stderr


def test_a_runs_workflow_cannot_be_changed(
    floxide: Installation, control_plane: ControlPlane, namespace: str
) -> None:
    floxide.kube.create("workflowruns", namespace, workflow_run("pinned", "first", 1, suspend=True))
    try:
        changed = yaml.safe_dump(workflow_run("pinned", "second", 1, suspend=True))
        result = control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=changed, check=False)
        assert result.returncode != 0
        assert "workflow is immutable; create a new WorkflowRun instead" in result.stderr
    finally:
        floxide.kube.delete("workflowruns", namespace, "pinned")


def test_a_runs_priority_defaults_to_normal_and_cannot_be_changed(
    floxide: Installation, control_plane: ControlPlane, namespace: str
) -> None:
    made = floxide.kube.create("workflowruns", namespace, workflow_run("plain", "wf", 1, suspend=True))
    urgent = workflow_run("urgent", "wf", 1, suspend=True)
    urgent["spec"]["priority"] = "high"
    try:
        assert made["spec"]["priority"] == "normal"
        assert floxide.kube.create("workflowruns", namespace, urgent)["spec"]["priority"] == "high"
        urgent["spec"]["priority"] = "low"
        result = control_plane.kubectl(
            "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(urgent), check=False
        )
        assert result.returncode != 0 and "priority is immutable" in result.stderr, result.stderr
    finally:
        floxide.kube.delete("workflowruns", namespace, "plain")
        floxide.kube.delete("workflowruns", namespace, "urgent")


def test_unknown_status_fields_are_pruned(floxide: Installation, namespace: str) -> None:
    """What the operator writes must be in the schema: the server drops anything else silently."""
    floxide.kube.create("workflowruns", namespace, workflow_run("pruned", "none", 1))
    try:
        floxide.kube.custom.patch_namespaced_custom_object_status(
            "floxide.io", "v1alpha1", namespace, "workflowruns", "pruned",
            {"status": {"phase": "Pending", "notInTheSchema": 1}},
        )  # fmt: skip
        status = floxide.kube.status("workflowruns", namespace, "pruned")
        assert "notInTheSchema" not in status
    finally:
        floxide.kube.delete("workflowruns", namespace, "pruned")
