"""``helm install`` of the chart into a real API server, with the default values and every
``helm/floxide/ci/*.yaml`` set: every object is accepted (schemas, admission, RBAC escalation
checks), exists afterwards, and ``helm uninstall`` keeps the CRDs when told to.

Each case gets a fresh control plane (a few seconds), so that each release owns its CRDs, as on
a new cluster. What a values set expects to exist already is created first, as its comment says:
the Secrets it names, the namespaces it serves, the prometheus-operator CRDs, or our CRDs when the
release does not manage them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.cluster.controlplane import ControlPlane
from tests.cluster.installation import Kube, helm
from tests.helm.helmchart import CHART, HELM, VALUE_SETS, render_chart, require

NS = "floxide-system"
RELEASE = "fx"

PROMETHEUS_CRDS = [
    ("monitoring.coreos.com", "servicemonitors", "ServiceMonitor"),
    ("monitoring.coreos.com", "podmonitors", "PodMonitor"),
]


@pytest.fixture
def plane(assets: Path, tmp_path: Path) -> Iterator[ControlPlane]:
    plane = ControlPlane(assets, tmp_path / "control-plane")
    try:
        plane.start()
        yield plane
    finally:
        plane.stop()


def _stand_in_crd(group: str, plural: str, kind: str) -> dict[str, object]:
    """A CRD that accepts any object of ``kind`` (what the prometheus-operator would install)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "kind": kind, "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }


def _prepare(plane: ControlPlane, values: dict[str, object]) -> None:
    """What the values set expects the cluster to hold before the install."""
    kube = Kube(plane)
    kube.ensure_namespace(NS)
    redis = values.get("redis") or {}
    assert isinstance(redis, dict)
    for source in (redis.get("auth") or {}, redis.get("external") or {}):
        if source.get("existingSecret"):
            key = source.get("existingSecretPasswordKey", "redis-password")
            kube.put_secret(NS, source["existingSecret"], {key: "a-password-from-a-secret"})
    worker = values.get("worker") or {}
    assert isinstance(worker, dict)
    for namespace in (worker.get("serviceAccount") or {}).get("namespaces") or []:
        kube.ensure_namespace(namespace)
    metrics = values.get("metrics") or {}
    assert isinstance(metrics, dict)
    if (metrics.get("serviceMonitor") or {}).get("enabled") or (metrics.get("podMonitor") or {}).get(
        "enabled"
    ):
        for crd in PROMETHEUS_CRDS:
            plane.apply(_stand_in_crd(*crd))
    if (values.get("crds") or {}).get("enabled") is False:
        rendered = render_chart(namespace=NS, release=RELEASE)
        for doc in rendered.all("CustomResourceDefinition"):
            plane.apply(doc)
    if plane.kubectl("get", "crd", "-o", "name").stdout.strip():
        plane.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_the_chart_installs_on_a_real_api_server(plane: ControlPlane, name: str) -> None:
    require(HELM.is_file(), f"{HELM} is missing: run scripts/install-helm.sh")
    path = VALUE_SETS[name]
    values = yaml.safe_load(path.read_text()) if path is not None else {}
    _prepare(plane, values)
    extra = ["--values", str(path)] if path is not None else []
    result = helm(plane, "install", RELEASE, str(CHART), "--namespace", NS, *extra)
    assert result.returncode == 0, f"helm install ({name}) failed:\n{result.stderr}"

    manifest = helm(plane, "get", "manifest", RELEASE, "--namespace", NS).stdout
    objects = [doc for doc in yaml.safe_load_all(manifest) if doc]
    assert objects
    found = plane.kubectl("get", "-f", "-", "-o", "name", input=manifest).stdout.split()
    assert len(found) == len(objects), found

    uninstalled = helm(plane, "uninstall", RELEASE, "--namespace", NS)
    assert uninstalled.returncode == 0, uninstalled.stderr
    crds = values.get("crds") or {}
    if crds.get("enabled", True) and not crds.get("keep", True):  # deleted with the release
        plane.kubectl("wait", "--for=delete", "crd/workflows.floxide.io", "--timeout=60s")
    else:  # kept by helm.sh/resource-policy, or never the release's
        assert "workflows.floxide.io" in plane.kubectl("get", "crd", "-o", "name").stdout
