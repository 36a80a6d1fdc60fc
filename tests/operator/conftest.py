"""Fixtures of the operator tier: KMock with our CRDs, a private Redis, the environment of the
operator (short intervals), and the kubelet that runs real worker processes.

``cluster`` is the usual entry point: it prepares everything but the operator, which a test
starts with ``async with operator(cluster.kmock):`` (so that it can also restart it). When the
test is over, every status patch the operator sent is checked against the CRD schema.
"""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.operator.kopfharness import (
    NAMESPACE,
    NO_PERSISTENCE,
    SECRETS,
    Api,
    Cluster,
    Emulator,
    Kubelet,
    contract_violations,
    register_resources,
    write_kubeconfig,
)
from tests.redis.conftest import RedisServer

OPERATOR_NAMESPACE = "floxide-system"
OPERATOR_SECRET = "floxide-redis-connection"

INTERVALS = {
    "FLOXIDE_OPERATOR_RUN_INTERVAL": "0.25",
    "FLOXIDE_OPERATOR_WORKFLOW_INTERVAL": "0.25",
}
"""Short timer intervals for tests (production: 1 s); patches stay limited to one per second."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents and item.path.name != "test_crds.py":
            item.add_marker(pytest.mark.operator)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), args=NO_PERSISTENCE)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, flushed for this test."""
    redis_server.flushall()
    return redis_server.url


@pytest.fixture
def kmock_options() -> dict[str, Any]:
    """KMock with the server-side metadata the operator relies on (see kopfharness.Emulator)."""
    return {"cls": Emulator}


@pytest.fixture
async def cluster(
    kmock: Emulator,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Cluster]:
    """KMock serving our resources, the operator's environment, the operator's Redis Secret."""
    register_resources(kmock)
    for name in list(os.environ):
        if name.startswith(("FLOXIDE_", "KOPF_")):
            monkeypatch.delenv(name)
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", str(kmock.url))
    environment = {
        "KUBECONFIG": str(kubeconfig),
        "FLOXIDE_REDIS_URL": redis_url,
        "FLOXIDE_OPERATOR_METRICS_PORT": "0",
        "FLOXIDE_OPERATOR_POD_NAMESPACE": OPERATOR_NAMESPACE,
        "FLOXIDE_OPERATOR_REDIS_SECRET": OPERATOR_SECRET,
        "FLOXIDE_LOG_FORMAT": "text",
        **INTERVALS,
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    operator_api = Api(kmock, OPERATOR_NAMESPACE)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": OPERATOR_SECRET, "namespace": OPERATOR_NAMESPACE},
        "data": {"redis-url": base64.b64encode(redis_url.encode()).decode()},
    }
    await operator_api.create(SECRETS, secret)
    kubelet = Kubelet(Api(kmock, NAMESPACE), tmp_path)
    with kubelet:
        yield Cluster(api=Api(kmock, NAMESPACE), redis_url=redis_url, kubelet=kubelet, kmock=kmock)
        await kubelet.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(kubelet.logs())  # the workers' side of a failure
    assert contract_violations(kmock) == [], "a status patch breaks the CRD schema"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item, for fixtures that act on failures."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
