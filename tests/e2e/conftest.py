"""The e2e tier: the chart, the operator and the examples on a real Kubernetes cluster.

It runs whenever ``$KUBECONFIG`` names a cluster that answers, and is skipped otherwise. In CI
(``CI=true``) a configured cluster that does not answer fails the tier instead of skipping it.

The cluster must be able to run the images (on kind: ``kind load docker-image``; or run
``scripts/e2e-kind.sh --keep`` once, which builds and loads them):

* ``FLOXIDE_E2E_IMAGE`` — the operator image (default ``floxide:0.1.0``);
* ``FLOXIDE_E2E_EXAMPLES_IMAGE`` — the image of the example workers (default
  ``floxide-examples:0.1.0``; the example manifests are pointed at it);
* ``FLOXIDE_E2E_TIMEOUT`` — seconds to wait for each step (default 300).

Each session installs the chart into a namespace of its own (namespaced RBAC and peering, the
bundled Redis), runs there, and deletes it all at the end.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.kubecluster import (
    EXAMPLES_IMAGE,
    IMAGE,
    IN_CI,
    ROOT,
    TIMEOUT,
    Cluster,
    cluster_problem,
    crds_installed,
    helm_binary,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """The chart installed in a fresh namespace; removed at the end of the session."""
    problem = cluster_problem()
    if problem is not None:
        if IN_CI and os.environ.get("KUBECONFIG"):
            pytest.fail(f"a cluster is configured for CI, but {problem}", pytrace=False)
        pytest.skip(problem)
    kubeconfig = os.environ["KUBECONFIG"]
    suffix = secrets.token_hex(3)
    installed = Cluster(
        namespace=f"floxide-e2e-{suffix}", release=f"fx{suffix}", kubeconfig=kubeconfig, helm=helm_binary()
    )
    repository, _, tag = IMAGE.rpartition(":")
    examples_repository, _, examples_tag = EXAMPLES_IMAGE.rpartition(":")
    # The CRDs belong to one release per cluster: install them only where no one has yet.
    crds = "false" if crds_installed(kubeconfig) else "true"
    install = [
        installed.helm, "upgrade", "--install", installed.release, str(ROOT / "helm" / "floxide"),
        "--kubeconfig", kubeconfig, "--namespace", installed.namespace, "--create-namespace",
        "--set", f"fullnameOverride={installed.release}",
        "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
        "--set", f"tests.image.repository={examples_repository}", "--set", f"tests.image.tag={examples_tag}",
        "--set", "rbac.clusterWide=false", "--set", f"crds.enabled={crds}", "--set", "crds.keep=false",
        "--set", "redis.enabled=true", "--set", "logging.format=text",
        "--wait", "--timeout", f"{int(TIMEOUT)}s",
    ]  # fmt: skip
    result = subprocess.run(install, capture_output=True, text=True, timeout=TIMEOUT + 60)
    try:
        assert result.returncode == 0, f"helm install failed:\n{result.stdout}\n{result.stderr}"
        yield installed
    finally:
        # Runs and Workflows first, while the operator still removes their finalizers.
        installed.kubectl(
            "delete", "workflowruns,workflows", "--all", "--timeout=180s", check=False, timeout=240
        )
        subprocess.run(
            [installed.helm, "uninstall", installed.release, "--kubeconfig", kubeconfig, "--namespace",
             installed.namespace, "--wait", "--timeout", "300s"],
            capture_output=True, timeout=360,
        )  # fmt: skip
        subprocess.run(
            [
                "kubectl",
                "--kubeconfig",
                kubeconfig,
                "delete",
                "namespace",
                installed.namespace,
                "--wait=false",
            ],
            capture_output=True,
            timeout=120,
        )
