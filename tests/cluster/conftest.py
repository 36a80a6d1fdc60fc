"""Fixtures of the cluster tier: a real API server, the chart installed by Helm, the operator running
with the chart's own ServiceAccount, worker pods run as local processes, a private Redis.

* ``control_plane`` (session): etcd, kube-apiserver, kube-controller-manager (:mod:`.controlplane`);
* ``kubelet`` (session): runs worker pods as ``floxide worker`` processes (:mod:`.kubelet`);
* ``redis_server`` (session): a private redis-server with a password;
* ``floxide`` (session): the chart installed as release ``floxide`` in ``floxide-system`` against
  that Redis, and ``floxide operator`` running with exactly the chart's environment and a token
  of the chart's ServiceAccount, so the chart's RBAC is what it can do.

Without the binaries (no Go, no ``KUBEBUILDER_ASSETS``) the tier is skipped on a workstation and
fails in CI (``CI=true``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.controlplane import ControlPlane, ControlPlaneError, binaries
from tests.cluster.installation import Installation, Operator
from tests.cluster.kubelet import LocalKubelet
from tests.helm.helmchart import HELM, in_ci, require
from tests.redis.conftest import RedisServer

RELEASE_NAMESPACE = "floxide-system"
REDIS_PASSWORD = "cluster-tier-password"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def assets() -> Path:
    try:
        return binaries()
    except ControlPlaneError as exc:
        if in_ci():
            pytest.fail(f"CI=true, but the cluster tier cannot run: {exc}", pytrace=False)
        pytest.skip(f"no API server binaries: {exc}")


@pytest.fixture(scope="session")
def control_plane(assets: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = ControlPlane(assets, tmp_path_factory.mktemp("control-plane"))
    try:
        plane.start()
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def kubelet(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKubelet]:
    node = LocalKubelet(control_plane, tmp_path_factory.mktemp("pods"))
    node.start()
    yield node
    node.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(
        tmp_path_factory.mktemp("redis"), args=["--save", "", "--appendonly", "no"], password=REDIS_PASSWORD
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def floxide(
    control_plane: ControlPlane,
    kubelet: LocalKubelet,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Installation]:
    """The chart installed against the session's Redis, with its operator running."""
    require(HELM.is_file(), f"{HELM} is missing: run scripts/install-helm.sh")
    installation = Installation.create(
        control_plane,
        namespace=RELEASE_NAMESPACE,
        release="floxide",
        redis_url=redis_server.url,
        redis_password=REDIS_PASSWORD,
        directory=tmp_path_factory.mktemp("operator"),
    )
    operator = installation.start_operator()
    try:
        yield installation
    finally:
        operator.stop()


@pytest.fixture
def operator(floxide: Installation) -> Operator:
    """The running operator of the session's installation."""
    assert floxide.operator is not None
    return floxide.operator
