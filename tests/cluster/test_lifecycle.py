"""Life-cycle behaviour that only a real API server (and its controllers) shows.

* deleting a Workflow garbage-collects its worker Deployment and mirrored Secret;
* deleting an active run leaves no Redis key of it behind (its in-flight steps are fenced);
* the operator killed mid-run: the run goes on, the new operator seeds nothing twice;
* a new admin Redis password (Secret rotation, or a reinstall) reaches the restarted operator and
  never the workers, which keep their namespace's own Redis user and go on running.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.cluster.installation import Installation, eventually, workflow, workflow_run
from tests.cluster.kubelet import LocalKubelet
from tests.redis.conftest import RedisServer

NS = "floxide-system"


def _phase(floxide: Installation, run: str) -> str | None:
    phase = floxide.kube.status("workflowruns", NS, run).get("phase")
    return str(phase) if phase else None


def _run_keys(redis_server: RedisServer, run_id: str) -> list[str]:
    with redis_server.sync_client() as client:
        return sorted(client.scan_iter(match=f"*:run:{run_id}*", count=1000))


def test_deleting_a_workflow_collects_its_deployment_and_secret(floxide: Installation) -> None:
    floxide.kube.create("workflows", NS, workflow("collected", "examples.branching:workflow"))
    apps, core = floxide.kube.apps, floxide.kube.core
    eventually(
        lambda: apps.list_namespaced_deployment(NS, field_selector="metadata.name=collected-workers").items
    )
    eventually(lambda: core.list_namespaced_secret(NS, field_selector="metadata.name=collected-redis").items)
    floxide.kube.delete("workflows", NS, "collected")
    eventually(
        lambda: (
            not apps.list_namespaced_deployment(NS, field_selector="metadata.name=collected-workers").items
        ),
        what="the garbage collector to delete the Deployment",
    )
    eventually(
        lambda: not core.list_namespaced_secret(NS, field_selector="metadata.name=collected-redis").items,
        what="the garbage collector to delete the Secret",
    )


def test_deleting_an_active_run_leaves_no_redis_key(
    floxide: Installation, kubelet: LocalKubelet, redis_server: RedisServer
) -> None:
    floxide.kube.create("workflows", NS, workflow("erased", "examples.countdown:workflow", concurrency=4))
    floxide.kube.create("workflowruns", NS, workflow_run("erased", "erased", {"steps": 40, "delay": 0.15}))
    eventually(lambda: int(floxide.kube.status("workflowruns", NS, "erased").get("completedItems") or 0) >= 3)
    run_id = floxide.kube.status("workflowruns", NS, "erased")["runId"]
    assert _run_keys(redis_server, run_id)
    floxide.kube.delete("workflowruns", NS, "erased")
    eventually(lambda: floxide.kube.get("workflowruns", NS, "erased") is None, what="the run to be deleted")
    time.sleep(2.0)  # steps in flight at the deletion finish and try to commit meanwhile
    assert _run_keys(redis_server, run_id) == []
    with redis_server.sync_client() as client:
        assert client.zscore(f"fx:{{wf:{NS}/erased}}:runs", run_id) is None


def test_the_operator_killed_mid_run_resumes_without_seeding_twice(
    floxide: Installation, kubelet: LocalKubelet, redis_server: RedisServer
) -> None:
    operator = floxide.operator
    assert operator is not None
    floxide.kube.create("workflows", NS, workflow("resumed", "examples.countdown:workflow"))
    floxide.kube.create("workflowruns", NS, workflow_run("resumed", "resumed", {"steps": 15, "delay": 0.2}))
    eventually(
        lambda: int(floxide.kube.status("workflowruns", NS, "resumed").get("completedItems") or 0) >= 2
    )
    operator.stop(kill=True)
    time.sleep(2.0)  # the run goes on without the operator
    operator.start()
    eventually(lambda: _phase(floxide, "resumed") == "Succeeded", timeout=90, what="the run to succeed")
    status = floxide.kube.status("workflowruns", NS, "resumed")
    assert json.loads(status["outputPreview"]) == 15
    assert status["progress"] == "15/15"
    with redis_server.sync_client() as client:
        assert client.zrange(f"fx:{{wf:{NS}/resumed}}:runs", 0, -1) == [status["runId"]]
    assert "Traceback" not in operator.output()


@pytest.mark.timeout(300)
def test_a_new_admin_password_reaches_the_operator_and_not_the_workers(
    floxide: Installation, kubelet: LocalKubelet, redis_server: RedisServer
) -> None:
    """As after ``helm uninstall`` + ``helm install``, or a rotation: Redis has a new password; the
    existing Secret the chart names holds it; the operator restarts (as the docs say to do after a
    rotation). The workers log in as their namespace's Redis user (``redis.acl.namespaceUsers``):
    the admin password never reaches them, and they go on (a namespace user's own rotation rolls
    them: tests/cluster/test_tenancy.py)."""
    operator = floxide.operator
    assert operator is not None
    floxide.kube.create(
        "workflows", NS, workflow("rotated", "examples.branching:workflow", scaling={"minWorkers": 1})
    )
    floxide.kube.create("workflowruns", NS, workflow_run("before-rotation", "rotated", 42))
    eventually(lambda: _phase(floxide, "before-rotation") == "Succeeded", timeout=90)
    before = {pod.name for pod in kubelet.running(NS, "rotated-workers-")}
    assert before

    new_password = "rotated-" + str(int(time.time()))
    with redis_server.sync_client() as client:
        client.config_set("requirepass", new_password)
        client.client_kill_filter(_type="normal", skipme=False)
    redis_server.password = new_password
    floxide.kube.put_secret(NS, "redis-auth", {"redis-password": new_password})
    floxide.helm_upgrade(floxide.directory / "values.yaml")
    operator.restart()  # kubectl rollout restart deployment/floxide-operator
    assert operator.environment["FLOXIDE_REDIS_PASSWORD"] == new_password

    pods = kubelet.running(NS, "rotated-workers-")
    assert pods and all(
        pod.environment["FLOXIDE_REDIS_USERNAME"] == f"floxide-ns-{NS}"
        and pod.environment["FLOXIDE_REDIS_PASSWORD"] != new_password
        for pod in pods
    )
    assert floxide.kube.secret(NS, "rotated-redis")["redis-password"] != new_password  # type: ignore[index]
    floxide.kube.create("workflowruns", NS, workflow_run("after-rotation", "rotated", 42))
    eventually(lambda: _phase(floxide, "after-rotation") == "Succeeded", timeout=120)


def test_a_run_deleted_while_redis_is_away_leaves_no_data_behind(
    floxide: Installation, kubelet: LocalKubelet, redis_server: RedisServer
) -> None:
    """The deletion does not wait for Redis; a tombstone on the Workflow has the run's data
    deleted once Redis answers again."""
    kube = floxide.kube
    kube.create("workflows", NS, workflow("tombs", "examples.countdown:workflow"))
    kube.create("workflowruns", NS, workflow_run("buried", "tombs", {"steps": 60, "delay": 0.2}))
    eventually(lambda: int(kube.status("workflowruns", NS, "buried").get("completedItems") or 0) >= 2)
    run_id = kube.status("workflowruns", NS, "buried")["runId"]

    password = redis_server.password
    with redis_server.sync_client() as client:  # Redis away: every client's login is refused
        client.config_set("requirepass", "nobody-knows-this")
        client.client_kill_filter(_type="normal", skipme=False)
    try:
        started = time.monotonic()
        kube.delete("workflowruns", NS, "buried")
        eventually(lambda: kube.get("workflowruns", NS, "buried") is None, timeout=30, what="the deletion")
        assert time.monotonic() - started < 30
        tombstone = eventually(
            lambda: [value for key, value in (kube.get("workflows", NS, "tombs") or {})["metadata"].get(
                "annotations", {}).items() if key.startswith("cleanup.floxide.io/")],
            what="the tombstone",
        )  # fmt: skip
        assert tombstone == [run_id]
    finally:
        redis_server.password = "nobody-knows-this"
        with redis_server.sync_client() as client:
            client.config_set("requirepass", password or "")
        redis_server.password = password

    def cleared() -> bool:
        annotations = (kube.get("workflows", NS, "tombs") or {})["metadata"].get("annotations", {})
        return not any(key.startswith("cleanup.floxide.io/") for key in annotations)

    eventually(cleared, timeout=60, what="the tombstone to be cleared")
    time.sleep(2.0)  # steps that were in flight try to commit meanwhile
    assert _run_keys(redis_server, run_id) == []
