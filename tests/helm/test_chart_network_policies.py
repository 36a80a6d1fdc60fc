"""NetworkPolicies for the operator's and the workers' metrics and probe ports, and the payload limit.

Cases:
- off by default: only the bundled Redis' NetworkPolicy is rendered;
- on (ci/network-policies-values.yaml): one policy for the operator pod, one for worker pods in the
  release namespace and in every namespace of `worker.serviceAccount.namespaces`; each selects exactly
  the pods it is for (the operator Deployment's pod labels; the labels the operator gives worker
  pods), restricts ingress only, and admits one port, the metrics port (the operator's health port
  8080 admits nobody but the kubelet), only from the configured Prometheus namespace and pod
  selector and the extra peers;
- `limits.maxPayloadBytes` reaches the operator as FLOXIDE_MAX_PAYLOAD_BYTES, as an integer (never
  in exponent notation), 1 MiB by default; the operator hands it to the workers itself.
"""

from __future__ import annotations

from typing import Any

from floxide_operator import deployment as manifests

from tests.helm.helmchart import NAMESPACE, VALUE_SETS, render_chart

VALUES = VALUE_SETS["network-policies"]
PROMETHEUS = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
}


def _selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    wanted = policy["spec"]["podSelector"]["matchLabels"]
    return all(labels.get(key) == value for key, value in wanted.items())


def test_no_metrics_policies_by_default() -> None:
    policies = render_chart().all("NetworkPolicy")
    assert [policy["metadata"]["name"] for policy in policies] == ["fx-floxide-redis"]


def test_the_operator_admits_only_prometheus_on_its_metrics_port() -> None:
    rendered = render_chart(VALUES)
    policy = rendered.one("NetworkPolicy", "-operator")
    operator_pod = rendered.one("Deployment", "-operator")["spec"]["template"]["metadata"]["labels"]
    assert policy["metadata"]["namespace"] == NAMESPACE
    assert _selects(policy, operator_pod)
    for other in ("redis", "test"):  # it selects no other component
        assert not _selects(policy, {**operator_pod, "app.kubernetes.io/component": other})
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": 9090, "protocol": "TCP"}]  # not 8080: probes come from the node
    assert rule["from"] == [PROMETHEUS, {"ipBlock": {"cidr": "10.20.0.0/16"}}]


def test_workers_admit_only_prometheus_on_their_metrics_port_in_every_workflow_namespace() -> None:
    policies = [
        p
        for p in render_chart(VALUES).all("NetworkPolicy")
        if p["metadata"]["name"].endswith("-worker-metrics")
    ]
    assert sorted(p["metadata"]["namespace"] for p in policies) == [NAMESPACE, "team-a"]
    worker_pod = manifests.worker_labels("examples")  # what the operator puts on worker pods
    for policy in policies:
        assert _selects(policy, worker_pod)
        assert not _selects(policy, {**worker_pod, "app.kubernetes.io/component": "operator"})
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        (rule,) = policy["spec"]["ingress"]
        assert rule["ports"] == [{"port": manifests.WORKER_HTTP_PORT, "protocol": "TCP"}]
        assert rule["from"] == [PROMETHEUS, {"ipBlock": {"cidr": "10.20.0.0/16"}}]


def test_any_prometheus_selector() -> None:
    rendered = render_chart(
        **{
            "networkPolicy.metrics.enabled": True,
            "networkPolicy.metrics.prometheus.namespaceSelector.matchLabels.team": "observability",
        }
    )
    (rule,) = rendered.one("NetworkPolicy", "-operator")["spec"]["ingress"]
    assert rule["from"] == [
        {
            "namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": "monitoring", "team": "observability"}
            },
            "podSelector": {},
        }
    ]


def _operator_env(*files: Any, **values: Any) -> dict[str, str]:
    deployment = render_chart(*files, **values).one("Deployment", "-operator")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {item["name"]: item.get("value") for item in container["env"]}


def test_the_payload_limit_reaches_the_operator() -> None:
    assert _operator_env()["FLOXIDE_MAX_PAYLOAD_BYTES"] == "1048576"
    assert _operator_env(VALUES)["FLOXIDE_MAX_PAYLOAD_BYTES"] == "4194304"
    assert _operator_env(**{"limits.maxPayloadBytes": 16777216})["FLOXIDE_MAX_PAYLOAD_BYTES"] == "16777216"
