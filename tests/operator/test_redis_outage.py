"""Redis goes away and comes back: the operator keeps running, says so, and catches up.

Cases:
- with Redis down, the Workflow's RedisAvailable condition turns False with the reason, and a
  new run waits (Pending, RedisAvailable False, a message saying why) instead of failing;
- nothing scales down while the backlog is unknown;
- once Redis is back (with its append-only file), the run is seeded and reaches Succeeded, and
  the conditions turn True again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.operator.kopfharness import (
    DEPLOYMENTS,
    DURABLE,
    RUNS,
    WORKFLOWS,
    Cluster,
    eventually,
    operator,
    run_manifest,
    workflow_manifest,
)
from tests.redis.conftest import RedisServer


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", args=DURABLE)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(durable_redis: RedisServer) -> str:
    """This module's runs use a Redis of their own, which the test stops and starts."""
    return durable_redis.url


def condition(cluster: Cluster, resource: str, name: str, kind: str) -> dict[str, Any]:
    status = cluster.api.status(resource, name)
    return {item["type"]: item for item in status.get("conditions", [])}.get(kind, {})


async def test_operator_rides_out_a_redis_outage(cluster: Cluster, durable_redis: RedisServer) -> None:
    api = cluster.api
    async with operator(cluster.kmock):
        await api.create(WORKFLOWS, workflow_manifest(scaling={"minWorkers": 1}))
        await api.create(RUNS, run_manifest("before", 42))
        await eventually(lambda: api.status(RUNS, "before").get("phase") == "Succeeded", timeout=60)

        durable_redis.stop()
        await eventually(
            lambda: condition(cluster, WORKFLOWS, "examples", "RedisAvailable").get("status") == "False",
            timeout=20,
            what="RedisAvailable=False on the Workflow",
        )
        assert (
            "Redis at redis://127.0.0.1"
            in condition(cluster, WORKFLOWS, "examples", "RedisAvailable")["message"]
        )
        await api.create(RUNS, run_manifest("during", 42))
        await eventually(
            lambda: condition(cluster, RUNS, "during", "RedisAvailable").get("status") == "False",
            timeout=20,
            what="RedisAvailable=False on the run",
        )
        status = api.status(RUNS, "during")
        assert status["phase"] == "Pending"
        assert status["message"].startswith("Redis unavailable: ")
        assert (api.get(DEPLOYMENTS, "examples-workers") or {})["spec"]["replicas"] >= 1

        durable_redis.start()
        await eventually(lambda: api.status(RUNS, "during").get("phase") == "Succeeded", timeout=60)
        await eventually(
            lambda: condition(cluster, WORKFLOWS, "examples", "RedisAvailable").get("status") == "True",
            timeout=20,
        )
    assert api.status(RUNS, "during")["output"] == "BigNode: 84"
    assert condition(cluster, RUNS, "during", "RedisAvailable")["status"] == "True"
