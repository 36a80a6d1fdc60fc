"""The dashboard component (``ui.enabled``): its Deployment and Service, read-only by default,
Redis credentials like the operator's, no Kubernetes API token, no RBAC, and the bundled Redis
lets it in.

Cases:
- off by default: nothing of the dashboard is rendered, and the Redis NetworkPolicy does not name it;
- on: a Deployment running ``floxide ui`` on 0.0.0.0:8080 with probes on ``/healthz``, a Service
  to it, the Redis URL and password from the same Secrets as the operator, no token mounted, no
  ServiceAccount, Role or binding of its own, a secure pod; read-only unless ``ui.allowActions``;
  ``ui.namespaces`` and ``ui.refreshSeconds`` become its options;
- with an external Redis the dashboard reads the external connection;
- the schema refuses a bad namespace name and an unknown Service type, naming the value;
- NOTES.txt says how to open it, and whether it is read-only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helm.helmchart import CHART, NAMESPACE, HelmError, Rendered, render_chart


def _ui(rendered: Rendered) -> dict[str, Any]:
    return rendered.one("Deployment", "-ui")


def _container(rendered: Rendered) -> dict[str, Any]:
    containers = _ui(rendered)["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["ui"]
    return dict(containers[0])


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("valueFrom", e.get("value")) for e in container["env"]}


def test_off_by_default() -> None:
    rendered = render_chart()
    assert not any(
        doc["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "ui" for doc in rendered.docs
    )
    policy = rendered.one("NetworkPolicy")
    components = [
        peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")
        for peer in policy["spec"]["ingress"][0]["from"]
    ]
    assert "ui" not in components


def test_on_read_only_with_the_operators_redis_credentials() -> None:
    rendered = render_chart(**{"ui.enabled": True})
    container = _container(rendered)
    assert container["args"] == ["ui", "--host", "0.0.0.0", "--port", "8080", "--refresh", "1"]
    assert "--allow-actions" not in container["args"]
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}

    operator = rendered.one("Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
    ui_env, operator_env = _env(container), _env(operator)
    for name in ("FLOXIDE_REDIS_URL", "FLOXIDE_REDIS_PASSWORD"):
        assert ui_env[name] == operator_env[name], name
    assert not [name for name in ui_env if name.startswith("FLOXIDE_OPERATOR_")]

    pod = _ui(rendered)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in pod
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]

    for kind in ("ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"):
        assert not any(doc["metadata"]["name"].endswith("-ui") for doc in rendered.all(kind)), kind

    service = rendered.one("Service", "-ui")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    labels = _ui(rendered)["spec"]["template"]["metadata"]["labels"]
    assert all(labels[key] == value for key, value in service["spec"]["selector"].items())

    policy = rendered.one("NetworkPolicy")
    selectors = [
        peer.get("podSelector", {}).get("matchLabels") for peer in policy["spec"]["ingress"][0]["from"]
    ]
    assert service["spec"]["selector"] in selectors


def test_actions_namespaces_and_refresh() -> None:
    rendered = render_chart(CHART / "ci" / "ui-values.yaml")
    args = _container(rendered)["args"]
    assert args[-1] == "--allow-actions"
    assert args[args.index("--refresh") + 1] == "2"
    flags = [args[i + 1] for i, arg in enumerate(args) if arg == "--namespace"]
    assert flags == ["floxide-system", "payments"]
    service = rendered.one("Service", "-ui")
    assert service["spec"]["type"] == "NodePort" and service["spec"]["ports"][0]["port"] == 8080


def test_external_redis() -> None:
    rendered = render_chart(CHART / "ci" / "external-redis-values.yaml", **{"ui.enabled": True})
    env = _env(_container(rendered))
    reference = env["FLOXIDE_REDIS_PASSWORD"]["secretKeyRef"]
    assert (reference["name"], reference["key"]) == ("managed-redis", "auth-token")
    assert not rendered.all("NetworkPolicy")


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"ui.enabled": True, "ui.namespaces[0]": "Not A Namespace!"}, "ui.namespaces.0"),
        ({"ui.enabled": True, "ui.service.type": "Ingress"}, "ui.service.type"),
    ],
)
def test_schema_refuses_bad_values(values: dict[str, Any], named: str) -> None:
    with pytest.raises(HelmError) as refused:
        render_chart(**values)
    message = str(refused.value)
    assert named.replace(".", "/") in message.replace(".", "/") or named in message, message


def test_notes_say_how_to_open_it(tmp_path: Path) -> None:
    from tests.helm.test_chart_notes import _notes

    notes = _notes(tmp_path / "on", CHART / "ci" / "ui-values.yaml")
    forward = f"kubectl --namespace {NAMESPACE} port-forward service/fx-floxide-ui 8080:8080"
    assert forward in notes and "actions allowed: put authentication in front of it" in notes
    assert notes.index(forward) < notes.index("docs/operations.md")
    assert "(read-only)" in _notes(tmp_path / "readonly", None, "ui.enabled=true")
    assert "port-forward" not in _notes(tmp_path / "off", None)
