"""Every rendered manifest is valid for the Kubernetes API it targets.

Cases:
- built-in kinds validate, strictly (no unknown fields), against the Kubernetes 1.30 OpenAPI
  schemas shipped by kubernetes-validate;
  (a kind without a schema there fails, so nothing unknown slips through);
- the prometheus-operator kinds (no schema shipped) are checked loosely: API version, selectors
  that match what they scrape, ports that exist, durations Prometheus understands;
- the kopf peering CRDs the operator's peering object needs are rendered (group, version, kind, scope).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.helm.helmchart import VALUE_SETS, Rendered, render_chart, require

KUBERNETES_VERSION = "1.30"
MONITORING_KINDS = {"ServiceMonitor", "PodMonitor"}
PEERING_KINDS = {"ClusterKopfPeering", "KopfPeering"}
CUSTOM_KINDS = MONITORING_KINDS | PEERING_KINDS
DURATION = re.compile(r"^([0-9]+(ms|s|m|h))+$")

try:
    import kubernetes_validate
except ImportError:  # pragma: no cover - depends on the environment
    kubernetes_validate = None


def _validate(doc: dict[str, Any]) -> None:
    require(
        kubernetes_validate is not None,
        "kubernetes-validate is not installed (pip install kubernetes-validate)",
    )
    assert kubernetes_validate is not None
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        pytest.fail(f"{doc['apiVersion']} {doc['kind']} is not a Kubernetes {KUBERNETES_VERSION} kind")
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(part) for part in error.path)
        pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {error.message}")


def test_builtin_manifests_match_the_kubernetes_openapi_schemas(rendered: Rendered) -> None:
    checked = 0
    for doc in rendered.docs:
        if doc["kind"] in CUSTOM_KINDS:
            continue
        _validate(doc)
        checked += 1
    assert checked > 0


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_service_monitor_selects_the_operator_metrics_service() -> None:
    rendered = render_chart(VALUE_SETS["servicemonitor"])
    monitor = rendered.one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    spec = monitor["spec"]
    services = [
        service
        for service in rendered.all("Service")
        if _matches(spec["selector"]["matchLabels"], service["metadata"]["labels"])
    ]
    assert [service["metadata"]["name"] for service in services] == ["fx-floxide-operator-metrics"]
    assert spec["namespaceSelector"] == {"matchNames": [services[0]["metadata"]["namespace"]]}
    port_names = {port["name"] for port in services[0]["spec"]["ports"]}
    assert spec["endpoints"], "no endpoints"
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout"}
        assert endpoint["port"] in port_names
        assert endpoint["path"] == "/metrics"
        assert DURATION.match(endpoint["interval"]) and DURATION.match(endpoint["scrapeTimeout"])


def test_metrics_service_reaches_the_operator_metrics_port() -> None:
    rendered = render_chart()
    service = rendered.one("Service", "-operator-metrics")
    operator = rendered.one("Deployment", "-operator")
    pod_labels = operator["spec"]["template"]["metadata"]["labels"]
    assert _matches(service["spec"]["selector"], pod_labels)
    container = operator["spec"]["template"]["spec"]["containers"][0]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == "metrics" and ports["metrics"] == 9090 == service_port["port"]


def test_pod_monitor_selects_worker_pods_in_every_namespace() -> None:
    rendered = render_chart(VALUE_SETS["servicemonitor"])
    monitor = rendered.one("PodMonitor")
    spec = monitor["spec"]
    assert spec["selector"]["matchLabels"] == {
        "app.kubernetes.io/component": "worker",
        "app.kubernetes.io/part-of": "floxide",
    }
    assert spec["namespaceSelector"] == {"any": True}
    for endpoint in spec["podMetricsEndpoints"]:
        assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
        assert DURATION.match(endpoint["interval"]) and DURATION.match(endpoint["scrapeTimeout"])


def test_pod_monitor_of_a_namespaced_install_stays_in_its_namespace() -> None:
    rendered = render_chart(VALUE_SETS["namespaced"], **{"metrics.podMonitor.enabled": True})
    monitor = rendered.one("PodMonitor")
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["floxide-system"]}


def test_the_peering_crds_are_rendered_for_the_operator_to_create_its_object() -> None:
    crds = {doc["spec"]["names"]["kind"]: doc for doc in render_chart().all("CustomResourceDefinition")}
    for kind, namespaced in (("ClusterKopfPeering", False), ("KopfPeering", True)):
        crd = crds[kind]
        assert crd["spec"]["group"] == "kopf.dev"
        assert [version["name"] for version in crd["spec"]["versions"]] == ["v1"]
        assert crd["spec"]["scope"] == ("Namespaced" if namespaced else "Cluster")
