"""The e2e tier: the chart, the operator and the examples on a real Kubernetes cluster.

It runs whenever ``$KUBECONFIG`` names a cluster that answers, and is skipped otherwise. In CI
(``CI=true``) a configured cluster that does not answer fails the tier instead of skipping it.

The cluster must be able to run the images (on kind: ``kind load docker-image``; or run
``scripts/e2e-kind.sh --keep`` once, which builds and loads them). Settings, all optional:

* ``FLOXIDE_E2E_IMAGE`` — the operator image (default ``floxide:0.1.0``);
* ``FLOXIDE_E2E_EXAMPLES_IMAGE`` — the image of the example workers and of ``helm test``
  (default ``floxide-examples:0.1.0``; the example manifests are pointed at it);
* ``FLOXIDE_E2E_REDIS_IMAGE`` — the bundled Redis' image, ``repository[:tag][@digest]`` (default:
  the chart's, ``redis:7.2-alpine``), for clusters that cannot pull from Docker Hub: a mirror, or
  an image loaded into the nodes beforehand;
* ``FLOXIDE_E2E_TIMEOUT`` — seconds to wait for each step (default 300): the install (helm's
  ``--wait --timeout``), each run to succeed, each garbage collection;
* ``FLOXIDE_E2E_TEST_TIMEOUT`` — seconds each test function may take in all (default five times
  ``FLOXIDE_E2E_TIMEOUT``): pytest-timeout's limit for this tier, in place of the suite's
  ``timeout = 120`` (pyproject.toml);
* ``FLOXIDE_E2E_HELM`` — the helm binary (default ``.tools/bin/helm``, installed by
  ``scripts/install-helm.sh`` if missing, else helm on ``PATH``).

Each session installs the chart into a namespace of its own (namespaced RBAC and peering, the
bundled Redis), runs there, and deletes it all at the end.

Timeouts. pytest-timeout counts fixture setup and teardown into a test's time unless
``func_only`` is set, so the suite's 120 s would stop the first test while the session fixture
still waits for ``helm --wait`` (up to ``FLOXIDE_E2E_TIMEOUT``), and the fixture's cleanup would
never run. Here every test gets ``@pytest.mark.timeout(FLOXIDE_E2E_TEST_TIMEOUT, func_only=True,
method="signal")``: the limit covers the test function only, and a test that overruns it fails
with an exception (the ``signal`` method), so fixtures still tear down. The fixture's own steps
are bounded by the timeouts of the commands they run (helm's ``--timeout``, kubectl's
``--timeout``, and a deadline on every subprocess).

Failures. A failed install fails the session with helm's output and the namespace's pods,
events and operator logs (current and previous container), read before anything is removed; a
failed test gets the same diagnostics as a report section. Whatever happened, the cleanup runs:
Workflows and runs are deleted (their finalizers removed if no operator does it), the release is
uninstalled (a failed one too, so no half-made release is left), and the namespace is deleted.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.kubecluster import (
    DIAGNOSTICS_HEADER,
    IN_CI,
    TEST_TIMEOUT,
    TIMEOUT,
    Cluster,
    cluster_problem,
    crds_installed,
    helm_binary,
)

HERE = Path(__file__).parent

if TEST_TIMEOUT <= TIMEOUT:
    raise pytest.UsageError(
        f"FLOXIDE_E2E_TEST_TIMEOUT ({TEST_TIMEOUT:g}) must be larger than FLOXIDE_E2E_TIMEOUT "
        f"({TIMEOUT:g}), the longest single wait of a test"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE not in Path(str(item.path)).parents:
            continue
        item.add_marker(pytest.mark.e2e)
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT, func_only=True, method="signal"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    """A failed test's report carries the namespace's diagnostics (unless its message already does)."""
    report: pytest.TestReport = yield
    cluster = getattr(item, "funcargs", {}).get("cluster")
    if (
        report.when == "call"
        and report.failed
        and isinstance(cluster, Cluster)
        and DIAGNOSTICS_HEADER not in report.longreprtext
    ):
        report.sections.append(("cluster diagnostics", cluster.diagnostics()))
    return report


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
        namespace=f"floxide-e2e-{suffix}",
        release=f"fx{suffix}",
        kubeconfig=kubeconfig,
        helm=helm_binary(),
        # The CRDs belong to one release per cluster: install them only where no one has yet.
        crds=not crds_installed(kubeconfig),
    )
    try:
        failure = installed.install()
    except BaseException:
        installed.remove()
        raise
    if failure is not None:
        leftovers = installed.remove()
        if leftovers:
            failure += "\n\nThe cleanup after the failed install left:\n" + "\n".join(leftovers)
        pytest.fail(failure, pytrace=False)
    try:
        yield installed
    finally:
        leftovers = installed.remove()
        if leftovers:
            pytest.fail(
                f"the cleanup of namespace {installed.namespace} left:\n" + "\n".join(leftovers),
                pytrace=False,
            )
