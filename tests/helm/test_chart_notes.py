"""NOTES.txt: warnings first, then next steps that match what was installed.

`helm template` does not print NOTES.txt, so the tests render a copy of the chart in which the notes
are wrapped in a ConfigMap.

Cases:
- every value set renders notes that end with the next steps (operator rollout, examples,
  `kubectl get workflowruns`, `helm test`) and point to the operators' guide;
- warnings come before the next steps: a missing password Secret, CRDs left to someone else,
  Redis without TLS or without persistence.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.helm.helmchart import CHART, KUBE_VERSION, NAMESPACE, VALUE_SETS, run_helm


def _notes(tmp_path: Path, values_file: Path | None, *sets: str) -> str:
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    wrapped = "\n".join("    " + line for line in notes.splitlines())
    header = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: |\n    NOTES\n"
    (chart / "templates" / "zz-notes.yaml").write_text(f"{header}{wrapped}\n")
    args = ["template", "fx", str(chart), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION]
    args += ["--show-only", "templates/zz-notes.yaml"]
    if values_file is not None:
        args += ["--values", str(values_file)]
    for item in sets:
        args += ["--set", item]
    text: str = yaml.safe_load(run_helm(*args))["data"]["notes"]
    return text.removeprefix("NOTES\n")


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_notes_give_next_steps(tmp_path: Path, value_set: str) -> None:
    notes = _notes(tmp_path, VALUE_SETS[value_set])
    steps = [
        f"kubectl --namespace {NAMESPACE} rollout status deployment/fx-floxide-operator",
        f"kubectl apply --namespace {NAMESPACE} -f examples/k8s/",
        f"kubectl get workflowruns --namespace {NAMESPACE}",
        f"helm test fx --namespace {NAMESPACE}",
        "docs/operations.md",
    ]
    positions = [notes.index(step) for step in steps]
    assert positions == sorted(positions)


def test_warnings_come_first(tmp_path: Path) -> None:
    notes = _notes(tmp_path, VALUE_SETS["external-redis"])
    # Under `helm template` there is no cluster to find the Secret in: the warning shows.
    assert notes.index('WARNING: the Secret "managed-redis"') < notes.index("Floxide 0.1.0 is installed")

    plain = _notes(tmp_path / "plain", None, "redis.enabled=false", "redis.external.url=redis://r:6379/0")
    assert plain.index("NOTE: the external Redis URL uses redis:// (no TLS)") < plain.index("1. Check")

    namespaced = _notes(tmp_path / "namespaced", VALUE_SETS["namespaced"])
    assert "NOTE: crds.enabled=false" in namespaced
    assert "no persistence: a restart loses every run" in namespaced
    assert f"Workflows in namespace {NAMESPACE} only" in namespaced


def test_defaults_need_no_warning(tmp_path: Path) -> None:
    notes = _notes(tmp_path, None)
    assert "WARNING" not in notes and "NOTE:" not in notes
    assert notes.lstrip().startswith("Floxide 0.1.0 is installed as release fx")
