"""A WorkflowRun's input over the operator's size limit (``FLOXIDE_MAX_PAYLOAD_BYTES``), on KMock with
the real operator, Redis and worker processes.

Cases:
- with a limit of 8 KiB, a run whose input (inline, or from a labelled ConfigMap) is over it is
  Failed with the reason ``InputTooLarge`` and a message naming the size and the limit (never
  the value), is not seeded, and leaves nothing in Redis; a run within the limit succeeds;
- the operator hands its limit to the workers it starts (``FLOXIDE_MAX_PAYLOAD_BYTES`` in the
  worker Deployment's environment, which a Workflow's ``spec.env`` cannot override).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.operator.kopfharness import (
    CONFIG_MAPS,
    DEPLOYMENTS,
    RUNS,
    WORKFLOWS,
    Cluster,
    eventually,
    operator,
    run_manifest,
    workflow_manifest,
)

LIMIT = 8192


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["type"]: item for item in status.get("conditions", [])}


async def test_an_input_over_the_limit_fails_the_run_naming_size_and_limit(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOXIDE_MAX_PAYLOAD_BYTES", str(LIMIT))
    api = cluster.api
    big = {"steps": 1, "delay": 0, "note": "secret-" + "x" * LIMIT}
    size = len(json.dumps(big, separators=(",", ":")))
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "inputs", "namespace": "probe", "labels": {"floxide.io/run-input": "true"}},
        "data": {"input.json": json.dumps(big)},
    }
    workflow = workflow_manifest("countdown", "examples.countdown:workflow")
    workflow["spec"]["env"] = [{"name": "FLOXIDE_MAX_PAYLOAD_BYTES", "value": "99999999"}]
    async with operator(cluster.kmock):
        await api.create(CONFIG_MAPS, config_map)
        await api.create(WORKFLOWS, workflow)
        await api.create(RUNS, run_manifest("inline", big, workflow="countdown"))
        source = {"configMapKeyRef": {"name": "inputs", "key": "input.json"}}
        await api.create(RUNS, run_manifest("from-config-map", workflow="countdown", inputFrom=source))
        await api.create(RUNS, run_manifest("small", {"steps": 2, "delay": 0}, workflow="countdown"))
        for name in ("inline", "from-config-map", "small"):
            await eventually(
                lambda name=name: api.status(RUNS, name).get("phase") in ("Failed", "Succeeded"),
                timeout=60,
                what=f"{name} finished",
            )
        deployment = api.get(DEPLOYMENTS, "countdown-workers") or {}
    assert api.status(RUNS, "small")["phase"] == "Succeeded"
    assert api.status(RUNS, "small")["output"] == 2
    expected = (
        f"the run's input is {size:,} bytes, over the limit of {LIMIT:,} bytes (FLOXIDE_MAX_PAYLOAD_BYTES)"
    )
    for name in ("inline", "from-config-map"):
        status = api.status(RUNS, name)
        assert status["phase"] == "Failed" and status["seeded"] is False
        assert status["error"].startswith(expected), status["error"]
        assert "secret-" not in json.dumps(status)
        accepted = conditions(status)["Accepted"]
        assert (accepted["status"], accepted["reason"]) == ("False", "InputTooLarge")
    client = Redis.from_url(cluster.redis_url, decode_responses=True)
    try:
        assert any("small" in key for key in await client.keys("*"))
        assert not [key for key in await client.keys("*") if "inline" in key or "from-config-map" in key]
    finally:
        await client.aclose()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    limits = [var for var in container["env"] if var["name"] == "FLOXIDE_MAX_PAYLOAD_BYTES"]
    assert limits == [{"name": "FLOXIDE_MAX_PAYLOAD_BYTES", "value": str(LIMIT)}]
