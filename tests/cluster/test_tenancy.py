"""Per-namespace Redis users on a real API server, with the chart's RBAC and real worker processes.

* a run in a namespace of its own succeeds with the namespace's Redis user; neither the
  namespace's Secret nor its worker pods hold the admin password, and that user reaches no key of
  another namespace;
* annotating the user's Secret rotates its password: the workers' Secret follows, the pods roll
  onto it, runs go on;
* Redis losing the user (a restart without persistence) gets it back from the operator;
* the namespace's last Workflow deleted: its user is deleted and its Secret removed.
"""

from __future__ import annotations

import contextlib
import json
import time

import pytest
import redis as sync_redis
from kubernetes.client.exceptions import ApiException

from tests.cluster.conftest import REDIS_PASSWORD
from tests.cluster.installation import Installation, eventually, workflow, workflow_run
from tests.cluster.kubelet import LocalKubelet
from tests.redis.conftest import RedisServer

NS = "floxide-system"
TENANT = "tenant-a"
USER = f"floxide-ns-{TENANT}"
USER_SECRET = f"floxide-redis-user-{TENANT}"


def _phase(floxide: Installation, run: str) -> str | None:
    phase = floxide.kube.status("workflowruns", TENANT, run).get("phase")
    return str(phase) if phase else None


@pytest.fixture(scope="module")
def tenant(floxide: Installation, kubelet: LocalKubelet) -> str:
    """A namespace of its own with a Workflow of one worker (the worker ServiceAccount created there)."""
    kube = floxide.kube
    kube.ensure_namespace(TENANT)
    with contextlib.suppress(ApiException):
        kube.core.create_namespaced_service_account(TENANT, {"metadata": {"name": "floxide-worker"}})
    kube.create(
        "workflows", TENANT, workflow("isolated", "examples.branching:workflow", scaling={"minWorkers": 1})
    )
    eventually(lambda: kube.status("workflows", TENANT, "isolated").get("graph"), timeout=90, what="workers")
    return TENANT


def test_a_run_succeeds_with_its_namespace_user_and_no_admin_password_in_the_namespace(
    floxide: Installation, kubelet: LocalKubelet, redis_server: RedisServer, tenant: str
) -> None:
    kube = floxide.kube
    kube.create("workflowruns", tenant, workflow_run("first", "isolated", 42))
    eventually(lambda: _phase(floxide, "first") == "Succeeded", timeout=90, what="the run")
    assert json.loads(kube.status("workflowruns", tenant, "first")["outputPreview"]) == "BigNode: 84"

    mirrored = kube.secret(tenant, "isolated-redis")
    assert mirrored is not None and mirrored["redis-username"] == USER
    assert REDIS_PASSWORD not in json.dumps(mirrored)  # nor in the URL
    stored = kube.secret(NS, USER_SECRET)  # the operator's copy, in its own namespace
    assert stored is not None and stored["password"] == mirrored["redis-password"]
    pods = kubelet.running(tenant, "isolated-workers-")
    assert pods and all(pod.environment["FLOXIDE_REDIS_USERNAME"] == USER for pod in pods)
    assert all(REDIS_PASSWORD not in json.dumps(pod.environment) for pod in pods)

    # what those credentials reach: their own namespace's keys, nothing of floxide-system
    port = redis_server.port
    with sync_redis.Redis(port=port, username=USER, password=mirrored["redis-password"]) as worker:
        assert worker.smembers(f"fx:{{wf:{tenant}/}}:workflows") == {b"isolated"}
        with pytest.raises(sync_redis.exceptions.NoPermissionError):
            worker.smembers(f"fx:{{wf:{NS}/}}:workflows")
        with pytest.raises(sync_redis.exceptions.NoPermissionError):
            worker.keys("*")
    with redis_server.sync_client() as admin:  # the operator's view: every namespace, and the users
        assert admin.smembers(f"fx:{{wf:{tenant}/}}:workflows") == {"isolated"}
        assert any(key.startswith(f"fx:{{wf:{tenant}/isolated}}:run:") for key in admin.keys("*"))
        assert f"~fx:{{wf:{tenant}/*" in admin.acl_getuser(USER)["keys"]


@pytest.mark.timeout(300)
def test_rotating_a_namespace_password_rolls_its_workers(
    floxide: Installation, kubelet: LocalKubelet, redis_server: RedisServer, tenant: str
) -> None:
    kube = floxide.kube
    before = (kube.secret(tenant, "isolated-redis") or {})["redis-password"]
    pods_before = {pod.name for pod in kubelet.running(tenant, "isolated-workers-")}
    assert pods_before
    kube.core.patch_namespaced_secret(
        USER_SECRET, NS, {"metadata": {"annotations": {"floxide.io/rotate": str(time.time())}}}
    )
    after = eventually(
        lambda: (
            (kube.secret(tenant, "isolated-redis") or {}).get("redis-password") not in (None, before)
            and kube.secret(tenant, "isolated-redis")["redis-password"]
        ),  # type: ignore[index]
        timeout=60,
        what="the workers' Secret to get the new password",
    )

    def rolled() -> bool:
        running = kubelet.running(tenant, "isolated-workers-")
        return bool(running) and all(
            pod.name not in pods_before and pod.environment["FLOXIDE_REDIS_PASSWORD"] == after
            for pod in running
        )

    eventually(rolled, timeout=120, what="new worker pods with the new password")
    kube.create("workflowruns", tenant, workflow_run("after-rotation", "isolated", 42))
    eventually(lambda: _phase(floxide, "after-rotation") == "Succeeded", timeout=90, what="the run")


def test_redis_losing_the_user_gets_it_back(
    floxide: Installation, kubelet: LocalKubelet, redis_server: RedisServer, tenant: str
) -> None:
    with redis_server.sync_client() as admin:  # as a Redis restarted without its data
        admin.acl_deluser(USER)
        eventually(lambda: USER in admin.acl_users(), timeout=30, what="the operator to set the user again")
    floxide.kube.create("workflowruns", tenant, workflow_run("after-loss", "isolated", 42))
    eventually(lambda: _phase(floxide, "after-loss") == "Succeeded", timeout=90, what="the run")


def test_the_last_workflow_of_a_namespace_takes_its_user_along(
    floxide: Installation, redis_server: RedisServer, tenant: str
) -> None:
    kube = floxide.kube
    kube.delete("workflows", tenant, "isolated")
    eventually(lambda: kube.secret(NS, USER_SECRET) is None, timeout=60, what="the user's Secret to go")
    with redis_server.sync_client() as admin:
        assert USER not in admin.acl_users()
