"""The chart's CRDs: rendered from templates, equal to the repository's crds/, kept on uninstall.

Cases:
- helm/floxide/files/crds/ holds exactly the CRDs of crds/, byte for byte (never skipped: a
  missing file is a failure);
- the rendered Workflow and WorkflowRun CRDs equal crds/ apart from the chart's labels and the
  keep annotation;
- kopf's peering CRDs (ClusterKopfPeering, KopfPeering; kopf.dev/v1) are rendered as kopf declares them;
- `helm.sh/resource-policy: keep` is on every CRD by default and on none with crds.keep=false;
- crds.enabled=false renders no CRD at all.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from tests.helm.helmchart import CHART, REPO, render_chart

SOURCE = REPO / "crds"
CHART_FILES = CHART / "files" / "crds"
FLOXIDE_CRDS = ("workflows.floxide.io", "workflowruns.floxide.io", "workflowschedules.floxide.io")
KOPF_CRDS = ("clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev")
KEEP = "helm.sh/resource-policy"


def _rendered_crds(**set_values: Any) -> dict[str, dict[str, Any]]:
    rendered = render_chart(**set_values)
    return {doc["metadata"]["name"]: doc for doc in rendered.all("CustomResourceDefinition")}


def _without_chart_metadata(crd: dict[str, Any], chart_labels: set[str]) -> dict[str, Any]:
    crd = copy.deepcopy(crd)
    metadata = crd["metadata"]
    labels = {k: v for k, v in metadata.pop("labels", {}).items() if k not in chart_labels}
    annotations = {k: v for k, v in metadata.pop("annotations", {}).items() if k != KEEP}
    if labels:
        metadata["labels"] = labels
    if annotations:
        metadata["annotations"] = annotations
    return crd


@pytest.mark.parametrize("name", FLOXIDE_CRDS)
def test_chart_files_are_byte_identical_to_crds_folder(name: str) -> None:
    source = SOURCE / f"{name}.yaml"
    packaged = CHART_FILES / f"{name}.yaml"
    assert source.is_file(), f"{source} is missing: generate the CRDs (python -m floxide_operator.crds)"
    assert packaged.is_file(), f"{packaged} is missing: the chart packages a copy of {source}"
    assert packaged.read_bytes() == source.read_bytes(), (
        f"{packaged} differs from {source}: regenerate the CRDs"
    )


def test_chart_files_hold_no_other_crd() -> None:
    assert sorted(path.name for path in CHART_FILES.glob("*")) == sorted(
        f"{name}.yaml" for name in FLOXIDE_CRDS
    )


@pytest.mark.parametrize("name", FLOXIDE_CRDS)
def test_rendered_crd_equals_the_crds_folder_apart_from_helm_metadata(name: str) -> None:
    source = SOURCE / f"{name}.yaml"
    assert source.is_file(), f"{source} is missing"
    expected = yaml.safe_load(source.read_text())
    crd = _rendered_crds()[name]
    chart_labels = {
        "helm.sh/chart",
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/component",
        "app.kubernetes.io/version",
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/part-of",
    }
    assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert _without_chart_metadata(crd, chart_labels) == _without_chart_metadata(expected, set())


def test_kopf_peering_crds_are_rendered_as_kopf_declares_them() -> None:
    crds = _rendered_crds()
    expected = {
        "clusterkopfpeerings.kopf.dev": (
            "Cluster",
            "ClusterKopfPeering",
            "clusterkopfpeerings",
            "clusterkopfpeering",
        ),
        "kopfpeerings.kopf.dev": ("Namespaced", "KopfPeering", "kopfpeerings", "kopfpeering"),
    }
    for name, (scope, kind, plural, singular) in expected.items():
        spec = crds[name]["spec"]
        assert spec["group"] == "kopf.dev"
        assert spec["scope"] == scope
        assert spec["names"] == {"kind": kind, "plural": plural, "singular": singular}
        (version,) = spec["versions"]
        assert version["name"] == "v1" and version["served"] and version["storage"]
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def test_keep_annotation_is_on_every_crd_by_default() -> None:
    crds = _rendered_crds()
    assert set(crds) == {*FLOXIDE_CRDS, *KOPF_CRDS}
    for name, crd in crds.items():
        assert crd["metadata"].get("annotations", {}).get(KEEP) == "keep", name


def test_keep_annotation_is_absent_with_crds_keep_false() -> None:
    crds = _rendered_crds(**{"crds.keep": False})
    assert set(crds) == {*FLOXIDE_CRDS, *KOPF_CRDS}
    for name, crd in crds.items():
        assert KEEP not in crd["metadata"].get("annotations", {}), name


def test_crds_enabled_false_renders_no_crd() -> None:
    assert _rendered_crds(**{"crds.enabled": False}) == {}
