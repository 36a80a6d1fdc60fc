"""The operator Deployment, the worker ServiceAccount and the `helm test` Pod.

Cases:
- one replica, `Recreate`, `floxide operator` from the pinned image, probes on kopf's /healthz (8080),
  the metrics port, resources;
- the FLOXIDE_ environment: Redis from the connection Secret, key prefix, logging, watched
  namespace, Redis Secret name, worker ServiceAccount, metrics port; extra env appended;
- the kopf peering object: created by the operator at start (its CRD is in the same release),
  cluster-scoped or namespaced like the operator, named like FLOXIDE_OPERATOR_PEERING_NAME;
- the worker ServiceAccount (no token) exists in the release namespace and in listed namespaces;
- the test Pod is a `helm test` hook that runs `floxide submit examples.branching:workflow --input 42
  --wait` from the examples image against the chart's Redis, with a deadline.
"""

from __future__ import annotations

from typing import Any

from tests.helm.helmchart import NAMESPACE, VALUE_SETS, Rendered, render_chart


def _operator(**set_values: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    deployment = render_chart(**set_values).one("Deployment", "-operator")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return deployment, container


def test_operator_is_one_replica_recreated() -> None:
    deployment, container = _operator()
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert container["image"] == "floxide:0.1.0"
    assert container["args"] == ["operator"]
    assert "command" not in container  # the image's ENTRYPOINT is `floxide`
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


def test_operator_probes_use_the_kopf_health_endpoint() -> None:
    _, container = _operator()
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"health": 8080, "metrics": 9090}
    for probe in (container["livenessProbe"], container["readinessProbe"]):
        assert probe["httpGet"] == {"path": "/healthz", "port": "health"}
        assert probe["periodSeconds"] > 0 and probe["failureThreshold"] > 0


def test_operator_environment() -> None:
    _, container = _operator(**{"operator.extraEnv[0].name": "EXTRA", "operator.extraEnv[0].value": "on"})
    env = {item["name"]: item for item in container["env"]}
    values = {name: item.get("value") for name, item in env.items() if "value" in item}
    assert values == {
        "FLOXIDE_LOG_FORMAT": "json",
        "FLOXIDE_LOG_LEVEL": "INFO",
        "FLOXIDE_MAX_PAYLOAD_BYTES": "1048576",
        "FLOXIDE_OPERATOR_NAMESPACE": "",
        "FLOXIDE_OPERATOR_REDIS_SECRET": "fx-floxide-redis-connection",
        "FLOXIDE_OPERATOR_WORKER_SERVICE_ACCOUNT": "fx-floxide-worker",
        "FLOXIDE_OPERATOR_METRICS_PORT": "9090",
        "FLOXIDE_OPERATOR_PEERING_NAME": "floxide",
        "FLOXIDE_OPERATOR_CREATE_PEERING": "true",
        "FLOXIDE_OPERATOR_REDIS_ACL": "true",
        "FLOXIDE_OPERATOR_REDIS_ACL_ROTATION_GRACE": "600",
        "EXTRA": "on",
    }
    assert set(env) - set(values) == {"FLOXIDE_REDIS_URL", "FLOXIDE_REDIS_PASSWORD"}
    assert [item["name"] for item in container["env"]][-1] == "EXTRA"


def test_operator_settings_follow_values() -> None:
    _, container = _operator(
        **{
            "logging.format": "text",
            "logging.level": "DEBUG",
            "metrics.service.port": 9191,
            "worker.serviceAccount.name": "runner",
        },
    )
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["FLOXIDE_LOG_FORMAT"] == "text" and env["FLOXIDE_LOG_LEVEL"] == "DEBUG"
    assert env["FLOXIDE_OPERATOR_METRICS_PORT"] == "9191"
    assert env["FLOXIDE_OPERATOR_WORKER_SERVICE_ACCOUNT"] == "runner"
    assert {port["name"]: port["containerPort"] for port in container["ports"]}["metrics"] == 9191


def test_operator_replica_count_zero_stops_it() -> None:
    deployment, _ = _operator(**{"operator.replicaCount": 0})
    assert deployment["spec"]["replicas"] == 0


def _operator_env(rendered: Rendered) -> dict[str, str | None]:
    container = rendered.one("Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item.get("value") for item in container["env"]}


def test_the_operator_creates_its_peering_object() -> None:
    """Not the chart: Helm cannot map a kind whose CRD it creates in the same release."""
    rendered = render_chart(**{"operator.peering.name": "fx-peers"})
    assert not {"ClusterKopfPeering", "KopfPeering"} & rendered.kinds()
    env = _operator_env(rendered)
    assert env["FLOXIDE_OPERATOR_PEERING_NAME"] == "fx-peers"
    assert env["FLOXIDE_OPERATOR_CREATE_PEERING"] == "true"
    (rule,) = [r for r in rendered.one("ClusterRole")["rules"] if r["apiGroups"] == ["kopf.dev"]]
    assert rule["resources"] == ["clusterkopfpeerings"] and "create" in rule["verbs"]


def test_namespaced_operator_peers_in_its_namespace() -> None:
    rendered = render_chart(VALUE_SETS["namespaced"])
    (rule,) = [r for r in rendered.one("Role")["rules"] if r["apiGroups"] == ["kopf.dev"]]
    assert rule["resources"] == ["kopfpeerings"] and "create" in rule["verbs"]
    assert _operator_env(rendered)["FLOXIDE_OPERATOR_NAMESPACE"] == NAMESPACE


def test_peering_object_can_be_left_to_someone_else() -> None:
    rendered = render_chart(**{"operator.peering.create": False})
    assert _operator_env(rendered)["FLOXIDE_OPERATOR_CREATE_PEERING"] == "false"
    (rule,) = [r for r in rendered.one("ClusterRole")["rules"] if r["apiGroups"] == ["kopf.dev"]]
    assert "create" not in rule["verbs"]


def test_worker_service_account_exists_where_workflows_run() -> None:
    rendered = render_chart(VALUE_SETS["bundled-redis"])
    accounts = [sa for sa in rendered.all("ServiceAccount") if sa["metadata"]["name"] == "fx-floxide-worker"]
    assert sorted(sa["metadata"]["namespace"] for sa in accounts) == sorted([NAMESPACE, "team-a", "team-b"])
    assert all(sa["automountServiceAccountToken"] is False for sa in accounts)


def test_without_a_worker_service_account_workers_use_the_default_one() -> None:
    rendered = render_chart(**{"worker.serviceAccount.create": False})
    assert not rendered.has("ServiceAccount", "-worker")
    container = rendered.one("Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["FLOXIDE_OPERATOR_WORKER_SERVICE_ACCOUNT"] == ""


def test_helm_test_pod_submits_a_small_run() -> None:
    rendered = render_chart()
    pod = rendered.one("Pod", "-test")
    annotations = pod["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "test"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation"
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] == 300
    (container,) = spec["containers"]
    assert container["image"] == "floxide-examples:0.1.0"
    # To the queue of the example Workflow resource (its workers serve it under that name).
    assert container["args"] == [
        "submit", "examples.branching:workflow", "--input", "42", "--wait", "--serve-as", "examples"
    ]  # fmt: skip
    env = {item["name"]: item for item in container["env"]}
    assert env["FLOXIDE_REDIS_URL"]["valueFrom"]["secretKeyRef"]["name"] == "fx-floxide-redis-connection"
    assert env["FLOXIDE_NAMESPACE"]["value"] == NAMESPACE  # where the example Workflow's workers are


def test_helm_test_pod_can_be_turned_off() -> None:
    assert not render_chart(**{"tests.enabled": False}).all("Pod")
