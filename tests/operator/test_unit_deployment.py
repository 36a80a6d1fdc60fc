"""The worker Deployment and the mirrored Secret, built without a server.

Cases:
- the pod template: image, pull policy, ``worker <entrypoint>``, the worker's environment (Redis
  from a Secret, namespace, concurrency, HTTP port, drain), spec.env appended (reserved names
  dropped, valueFrom kept), port ``metrics`` with /healthz and /readyz probes, hardened security
  contexts, /tmp emptyDir, resources, grace period above the drain, no API token, no service links;
- labels and selector; the Workflow's own Redis Secret versus the mirrored one;
- the ServiceAccount: the Workflow's, else the operator's setting, else none;
- ``replicas=None`` leaves the count alone;
- ``kopf.adopt`` makes the Workflow the controlling owner;
- long names stay within Kubernetes' limits, distinctly; the template hash follows the template;
- the mirrored Secret holds base64 entries, and a missing password is removed by a merge patch.
"""

from __future__ import annotations

import base64
from typing import Any

import kopf
from floxide_operator import deployment, models

SPEC = models.WorkflowSpec.model_validate(
    {
        "image": "registry.example/wf:1.2.3",
        "imagePullPolicy": "Always",
        "entrypoint": "examples.branching:workflow",
        "concurrency": 8,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "env": [
            {"name": "LOG_LEVEL", "value": "DEBUG"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
            {"name": "FLOXIDE_NAMESPACE", "value": "elsewhere"},
        ],
    }
)


def build(spec: models.WorkflowSpec = SPEC, **options: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {"workflow": "orders", "namespace": "team-a", "replicas": 2}
    return deployment.worker_deployment(spec, **{**defaults, **options})


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    [only] = manifest["spec"]["template"]["spec"]["containers"]
    return only


def test_container_runs_the_worker_command_from_the_workflow_image() -> None:
    worker = container(build())
    assert worker["image"] == "registry.example/wf:1.2.3"
    assert worker["imagePullPolicy"] == "Always"
    assert worker["args"] == ["worker", "examples.branching:workflow"]
    assert worker["ports"] == [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert worker["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"memory": "256Mi"},
    }


def test_worker_environment_then_the_workflows_own() -> None:
    env = container(build(drain_seconds=40))["env"]
    assert env[:8] == [
        {
            "name": "FLOXIDE_REDIS_URL",
            "valueFrom": {"secretKeyRef": {"name": "orders-redis", "key": "redis-url"}},
        },
        {
            "name": "FLOXIDE_REDIS_PASSWORD",
            "valueFrom": {
                "secretKeyRef": {"name": "orders-redis", "key": "redis-password", "optional": True}
            },
        },
        {
            "name": "FLOXIDE_REDIS_USERNAME",
            "valueFrom": {
                "secretKeyRef": {"name": "orders-redis", "key": "redis-username", "optional": True}
            },
        },
        {"name": "FLOXIDE_NAMESPACE", "value": "team-a"},
        {"name": "FLOXIDE_WORKER_CONCURRENCY", "value": "8"},
        {"name": "FLOXIDE_WORKER_HTTP_PORT", "value": "9090"},
        {"name": "FLOXIDE_WORKER_DRAIN_SECONDS", "value": "40"},
        {"name": "FLOXIDE_WORKER_SERVE_AS", "value": "orders"},
    ]
    assert env[8:] == [
        {"name": "LOG_LEVEL", "value": "DEBUG"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
    ]


def test_pod_is_hardened_and_gets_no_api_token() -> None:
    pod = build(drain_seconds=40)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert pod["terminationGracePeriodSeconds"] > 40
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert container(build())["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }
    assert container(build())["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"][0]["name"] == "tmp" and "emptyDir" in pod["volumes"][0]
    assert "serviceAccountName" not in pod


def test_labels_and_selector() -> None:
    manifest = build()
    labels = {
        "app.kubernetes.io/name": "floxide",
        "app.kubernetes.io/component": "worker",
        "app.kubernetes.io/part-of": "floxide",
        "app.kubernetes.io/instance": "orders",
    }
    assert manifest["metadata"]["labels"] == labels
    assert manifest["spec"]["template"]["metadata"]["labels"] == labels
    selector = manifest["spec"]["selector"]["matchLabels"]
    assert selector == {key: value for key, value in labels.items() if key != "app.kubernetes.io/part-of"}
    assert deployment.selector_string("orders") == (
        "app.kubernetes.io/name=floxide,app.kubernetes.io/component=worker,app.kubernetes.io/instance=orders"
    )
    assert manifest["metadata"]["name"] == "orders-workers"
    assert manifest["spec"]["replicas"] == 2


def test_the_workflows_own_redis_secret_wins() -> None:
    spec = SPEC.model_copy(
        update={
            "redis": models.RedisConnection.model_validate({"secretRef": {"name": "mine", "urlKey": "url"}})
        }
    )
    env = {var["name"]: var for var in container(build(spec))["env"]}
    assert env["FLOXIDE_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "mine", "key": "url"}
    assert env["FLOXIDE_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "redis-password"


def test_service_account_from_the_workflow_else_the_operator() -> None:
    assert build(service_account="workers")["spec"]["template"]["spec"]["serviceAccountName"] == "workers"
    own = SPEC.model_copy(update={"service_account_name": "mine"})
    assert build(own, service_account="workers")["spec"]["template"]["spec"]["serviceAccountName"] == "mine"


def test_no_replicas_leaves_the_count_to_others() -> None:
    assert "replicas" not in build(replicas=None)["spec"]


def test_adopt_makes_the_workflow_the_controller() -> None:
    manifest = build()
    owner = {
        "apiVersion": "floxide.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "orders", "namespace": "team-a", "uid": "1234-abcd", "labels": {"team": "a"}},
    }
    kopf.adopt(manifest, owner=owner)
    assert manifest["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "floxide.io/v1alpha1",
            "kind": "Workflow",
            "name": "orders",
            "uid": "1234-abcd",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert manifest["metadata"]["namespace"] == "team-a"


def test_long_names_fit_and_stay_distinct() -> None:
    long_a, long_b = "a" * 250, "a" * 249 + "b"
    assert len(deployment.deployment_name(long_a)) <= 253
    assert deployment.deployment_name(long_a) != deployment.deployment_name(long_b)
    assert deployment.deployment_name(long_a).endswith("-workers")
    assert len(deployment.label_value(long_a)) <= 63
    assert deployment.label_value(long_a) != deployment.label_value(long_b)
    assert deployment.label_value("orders") == "orders"


def test_template_hash_follows_the_template() -> None:
    first = build()["metadata"]["annotations"][deployment.TEMPLATE_HASH_ANNOTATION]
    assert build(replicas=5)["metadata"]["annotations"][deployment.TEMPLATE_HASH_ANNOTATION] == first
    changed = build(SPEC.model_copy(update={"image": "registry.example/wf:1.2.4"}))
    assert changed["metadata"]["annotations"][deployment.TEMPLATE_HASH_ANNOTATION] != first


def test_mirrored_secret() -> None:
    secret = deployment.mirrored_secret(
        workflow="orders", namespace="team-a", url="redis://r:6379/0", password="pw"
    )
    assert secret["metadata"]["name"] == "orders-redis"
    assert secret["metadata"]["namespace"] == "team-a"
    decoded = {key: base64.b64decode(value).decode() for key, value in secret["data"].items() if value}
    assert decoded == {"redis-url": "redis://r:6379/0", "redis-password": "pw"}
    bare = deployment.mirrored_secret(workflow="orders", namespace="team-a", url="redis://r", password=None)
    assert bare["data"]["redis-password"] is None  # a merge patch removes it
    assert bare["data"]["redis-username"] is None  # no namespace user: the default one
    own = deployment.mirrored_secret(
        workflow="orders", namespace="team-a", url="redis://r", password="pw-a", username="floxide-ns-team-a"
    )
    assert base64.b64decode(own["data"]["redis-username"]).decode() == "floxide-ns-team-a"
    assert deployment.connection_hash("redis://r", "pw-a", "floxide-ns-team-a") != deployment.connection_hash(
        "redis://r", "pw-a"
    )


def test_a_new_redis_connection_changes_the_pod_template() -> None:
    spec = models.WorkflowSpec.model_validate({"image": "orders:1", "entrypoint": "orders.flow:workflow"})

    def template(url: str, password: str | None) -> dict[str, Any]:
        hashed = deployment.connection_hash(url, password)
        built = deployment.worker_deployment(
            spec, workflow="orders", namespace="team-a", replicas=1, connection_hash=hashed
        )
        return built

    old, rotated = template("redis://r:6379/0", "pw-one-x7"), template("redis://r:6379/0", "pw-two-x7")
    annotation = deployment.REDIS_HASH_ANNOTATION
    assert (
        old["spec"]["template"]["metadata"]["annotations"][annotation]
        != (rotated["spec"]["template"]["metadata"]["annotations"][annotation])
    )
    assert "pw-one-x7" not in str(old) and "pw-two-x7" not in str(rotated)  # a hash, never the password
    hashes = deployment.TEMPLATE_HASH_ANNOTATION
    assert old["metadata"]["annotations"][hashes] != rotated["metadata"]["annotations"][hashes]
    assert template("redis://r:6379/0", "pw-one-x7") == old
