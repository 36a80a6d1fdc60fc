"""The operator and its workers on a TLS-only Redis (``rediss://``, a private CA), on KMock with the real
operator, a real ``redis-server --tls-port`` and real worker processes.

Cases:
- the operator, given ``FLOXIDE_REDIS_TLS_CA_FILE``, reaches Redis over TLS (its Workflow is
  RedisAvailable), and writes that CA's text into the worker pods' environment
  (``FLOXIDE_REDIS_TLS_CA_DATA``; a Workflow's ``spec.env`` cannot replace it); worker processes
  started with only the Deployment's environment (no CA file anywhere) run a WorkflowRun to
  Succeeded over TLS;
- a Workflow with its own Redis (``spec.redis``) gets no CA from the operator.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from floxide_operator import deployment as manifests

from tests.operator.kopfharness import (
    DEPLOYMENTS,
    RUNS,
    SECRETS,
    WORKFLOWS,
    Cluster,
    eventually,
    operator,
    run_manifest,
    workflow_manifest,
)
from tests.redis.conftest import RedisServer
from tests.redis.tls import tls_redis_server


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[RedisServer, Path]]:
    with tls_redis_server(tmp_path) as started:
        yield started


@pytest.fixture
def redis_url(tls_redis: tuple[RedisServer, Path]) -> str:
    """The operator's Redis (and its connection Secret's URL): TLS only."""
    return f"rediss://127.0.0.1:{tls_redis[0].port}/0"


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["type"]: item for item in status.get("conditions", [])}


def worker_env(cluster: Cluster, deployment: str) -> dict[str, Any]:
    body = cluster.api.get(DEPLOYMENTS, deployment) or {}
    (container,) = body["spec"]["template"]["spec"]["containers"]
    return {var["name"]: var.get("value", var.get("valueFrom")) for var in container["env"]}


async def test_the_operator_and_its_workers_over_tls(
    cluster: Cluster, tls_redis: tuple[RedisServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, cert = tls_redis
    monkeypatch.setenv("FLOXIDE_REDIS_TLS_CA_FILE", str(cert))
    api = cluster.api
    workflow = workflow_manifest("countdown", "examples.countdown:workflow")
    workflow["spec"]["env"] = [{"name": "FLOXIDE_REDIS_TLS_CA_DATA", "value": "not a certificate"}]
    own = workflow_manifest("own-redis", "examples.countdown:workflow")
    own["spec"]["redis"] = {"secretRef": {"name": "elsewhere"}}
    elsewhere = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "elsewhere", "namespace": "probe"},
        "data": {"redis-url": base64.b64encode(b"rediss://redis.example.invalid:6380/0").decode()},
    }
    async with operator(cluster.kmock):
        await api.create(SECRETS, elsewhere)
        await api.create(WORKFLOWS, workflow)
        await api.create(WORKFLOWS, own)
        await eventually(lambda: api.get(DEPLOYMENTS, "countdown-workers"), what="the Deployment")
        await eventually(lambda: api.get(DEPLOYMENTS, "own-redis-workers"), what="the other Deployment")
        # From here on, nothing but the Deployment's environment tells a worker about the CA.
        monkeypatch.delenv("FLOXIDE_REDIS_TLS_CA_FILE")
        env = worker_env(cluster, "countdown-workers")
        assert env["FLOXIDE_REDIS_TLS_CA_DATA"] == cert.read_text()
        assert env["FLOXIDE_REDIS_URL"] == {
            "secretKeyRef": {"name": manifests.secret_name("countdown"), "key": "redis-url"}
        }
        assert "FLOXIDE_REDIS_TLS_CA_FILE" not in env
        assert "FLOXIDE_REDIS_TLS_CA_DATA" not in worker_env(cluster, "own-redis-workers")

        await api.create(RUNS, run_manifest("secure", {"steps": 2, "delay": 0}, workflow="countdown"))
        await eventually(
            lambda: api.status(RUNS, "secure").get("phase") == "Succeeded", timeout=90, what="Succeeded"
        )
        workflow_status = api.status(WORKFLOWS, "countdown")
    assert api.status(RUNS, "secure")["output"] == 2
    available = conditions(workflow_status)["RedisAvailable"]
    assert available["status"] == "True" and available["message"].startswith("rediss://127.0.0.1:")
