"""Redis: bundled (StatefulSet, persistence, password, NetworkPolicy) or external, and the Secret
the operator mirrors to the workers.

Cases:
- bundled: redis:7.2-alpine, appendonly, a PVC from volumeClaimTemplates (no chart version in
  its labels: they cannot change later), the password from the generated or the existing Secret,
  never on the command line; emptyDir without persistence;
- the operator's connection Secret has exactly `redis-url` and `redis-password`; the bundled URL is
  the Service's cluster-wide DNS name, since workers run in other namespaces;
- a generated password is random, 32 characters, and not rendered twice differently inside one
  release (redis-server and the operator read the same Secret);
- external: the URL from values (rediss:// kept), no Redis pod, no NetworkPolicy;
- the NetworkPolicy admits only the operator, the test Pod and floxide worker pods, on the Redis port.
"""

from __future__ import annotations

import base64
from typing import Any

from tests.helm.helmchart import CHART, NAMESPACE, VALUE_SETS, render_chart, run_helm


def _secret_data(secret: dict[str, Any]) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def _redis_container(rendered: Any) -> dict[str, Any]:
    statefulset = rendered.one("StatefulSet", "-redis")
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    return container


def test_bundled_redis_is_persistent_and_append_only() -> None:
    rendered = render_chart()
    statefulset = rendered.one("StatefulSet", "-redis")
    assert statefulset["spec"]["replicas"] == 1
    assert statefulset["spec"]["serviceName"] == "fx-floxide-redis-headless"
    container = _redis_container(rendered)
    assert container["image"] == "redis:7.2-alpine"
    script = " ".join(container["command"])
    assert "--appendonly yes" in script and "--dir /data" in script
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert "helm.sh/chart" not in claim["metadata"]["labels"]
    assert "app.kubernetes.io/version" not in claim["metadata"]["labels"]
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert mounts["/data"] == "data"


def test_bundled_redis_without_persistence_uses_an_empty_dir() -> None:
    rendered = render_chart(**{"redis.persistence.enabled": False})
    statefulset = rendered.one("StatefulSet", "-redis")
    assert "volumeClaimTemplates" not in statefulset["spec"]
    volumes = {volume["name"]: volume for volume in statefulset["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes["data"]


def test_redis_password_comes_from_a_secret_and_stays_off_the_command_line() -> None:
    rendered = render_chart()
    container = _redis_container(rendered)
    (env,) = [item for item in container["env"] if item["name"] == "REDIS_PASSWORD"]
    assert env["valueFrom"]["secretKeyRef"] == {
        "name": "fx-floxide-redis-connection",
        "key": "redis-password",
    }
    script = container["command"][-2]
    assert "redis-server - " in script and 'requirepass "$escaped"' in script
    assert "--requirepass" not in " ".join(container["command"])
    for probe in (container["livenessProbe"], container["readinessProbe"]):
        command = " ".join(probe["exec"]["command"])
        assert 'REDISCLI_AUTH="$REDIS_PASSWORD"' in command and " -a " not in command


def test_existing_password_secret_is_used_by_redis() -> None:
    rendered = render_chart(VALUE_SETS["bundled-redis"])
    (env,) = [item for item in _redis_container(rendered)["env"] if item["name"] == "REDIS_PASSWORD"]
    assert env["valueFrom"]["secretKeyRef"] == {"name": "floxide-redis-password", "key": "password"}
    statefulset = rendered.one("StatefulSet", "-redis")
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "standard"
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert _redis_container(rendered)["command"][-4:] == [
        "--maxmemory",
        "256mb",
        "--maxmemory-policy",
        "noeviction",
    ]


def test_connection_secret_for_bundled_redis() -> None:
    rendered = render_chart()
    secret = rendered.one("Secret", "-redis-connection")
    data = _secret_data(secret)
    assert set(data) == {"redis-url", "redis-password"}
    assert data["redis-url"] == f"redis://fx-floxide-redis.{NAMESPACE}.svc.cluster.local:6379/0"
    assert len(data["redis-password"]) == 32 and data["redis-password"].isalnum()
    service = rendered.one("Service", "-redis")
    assert service["metadata"]["name"] == "fx-floxide-redis"
    assert service["spec"]["ports"][0]["port"] == 6379


def test_generated_password_is_random_per_install() -> None:
    first = _secret_data(render_chart(release="one").one("Secret", "-redis-connection"))
    second = _secret_data(render_chart(release="two").one("Secret", "-redis-connection"))
    assert first["redis-password"] != second["redis-password"]


def test_connection_secret_for_external_redis() -> None:
    rendered = render_chart(VALUE_SETS["external-redis"])
    data = _secret_data(rendered.one("Secret", "-redis-connection"))
    assert data["redis-url"] == "rediss://redis.example.internal:6380/0"
    # The password stays in the existing Secret: nothing is copied from it with a lookup.
    assert "redis-password" not in data


def test_operator_and_test_pod_read_the_password_from_the_existing_secret() -> None:
    rendered = render_chart(VALUE_SETS["external-redis"])
    container = rendered.one("Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item for item in container["env"]}
    assert env["FLOXIDE_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "fx-floxide-redis-connection",
        "key": "redis-url",
    }
    existing = {"name": "managed-redis", "key": "auth-token", "optional": True}
    assert env["FLOXIDE_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == existing
    assert env["FLOXIDE_OPERATOR_REDIS_SECRET"]["value"] == "fx-floxide-redis-connection"
    test_env = {item["name"]: item for item in rendered.one("Pod", "-test")["spec"]["containers"][0]["env"]}
    assert test_env["FLOXIDE_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == existing


def test_a_generated_password_is_read_from_the_connection_secret() -> None:
    rendered = render_chart()
    container = rendered.one("Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item for item in container["env"]}
    assert env["FLOXIDE_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "fx-floxide-redis-connection",
        "key": "redis-password",
        "optional": True,
    }


def test_gitops_renders_are_stable_with_an_existing_secret() -> None:
    """Argo CD and Flux run `helm template` on every sync: with the password in an existing Secret,
    two renders are the same (no generated password, nothing read with a lookup), so a sync does not
    change the connection Secret and restart the operator."""
    for values in (VALUE_SETS["external-redis"], VALUE_SETS["bundled-redis"]):
        first = run_helm("template", "fx", str(CHART), "--namespace", NAMESPACE, "--values", str(values))
        second = run_helm("template", "fx", str(CHART), "--namespace", NAMESPACE, "--values", str(values))
        assert first == second
    generated = [run_helm("template", "fx", str(CHART), "--namespace", NAMESPACE) for _ in range(2)]
    assert generated[0] != generated[1]  # a generated password: what the docs steer GitOps users away from


def test_network_policy_admits_only_floxide_pods_on_the_redis_port() -> None:
    rendered = render_chart()
    policy = rendered.one("NetworkPolicy", "-redis")
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    redis_labels = rendered.one("StatefulSet", "-redis")["spec"]["template"]["metadata"]["labels"]
    assert all(redis_labels[key] == value for key, value in spec["podSelector"]["matchLabels"].items())
    (rule,) = spec["ingress"]
    assert rule["ports"] == [{"port": 6379, "protocol": "TCP"}]
    peers = rule["from"]
    operator_labels = rendered.one("Deployment", "-operator")["spec"]["template"]["metadata"]["labels"]
    test_labels = rendered.one("Pod", "-test")["metadata"]["labels"]
    assert peers[0] == {"podSelector": {"matchLabels": _selector(operator_labels)}}
    assert peers[1] == {"podSelector": {"matchLabels": _selector(test_labels)}}
    assert peers[2] == {
        "namespaceSelector": {},
        "podSelector": {
            "matchLabels": {"app.kubernetes.io/component": "worker", "app.kubernetes.io/part-of": "floxide"}
        },
    }
    assert len(peers) == 3


def _selector(labels: dict[str, str]) -> dict[str, str]:
    keys = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component")
    return {key: labels[key] for key in keys}


def test_network_policy_can_be_disabled_or_widened() -> None:
    assert not render_chart(**{"networkPolicy.enabled": False}).all("NetworkPolicy")
    rendered = render_chart(**{"networkPolicy.extraRedisIngressFrom[0].podSelector.matchLabels.app": "debug"})
    (rule,) = rendered.one("NetworkPolicy")["spec"]["ingress"]
    assert rule["from"][-1] == {"podSelector": {"matchLabels": {"app": "debug"}}}
