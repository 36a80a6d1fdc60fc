"""The operator's RBAC grants exactly what it needs, and nothing with a wildcard.

Cases:
- cluster-wide (default): one ClusterRole whose rules are exactly the listed (group, resource, verbs),
  bound to the operator's ServiceAccount; with per-namespace Redis users (the default with the bundled
  Redis), a Role in the release namespace that deletes Secrets there, and nothing else;
- namespaced: a Role with the namespaced rules and KopfPeering access in the release namespace,
  plus a ClusterRole with nothing but read-only scanning of namespaces and CRDs;
  without rbac.clusterScanning, no cluster-scoped RBAC at all;
- no rule anywhere uses `*`, resourceNames tricks, nonResourceURLs, or escalation verbs;
- rbac.create=false renders no RBAC.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tests.helm.helmchart import NAMESPACE, VALUE_SETS, Rendered, render_chart

RBAC_KINDS = {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}

# What the operator sends, as tests/cluster/test_rbac.py observes it on a real API server.
NAMESPACED_GRANTS = {
    ("floxide.io", "workflows"): {"list", "watch", "patch"},
    ("floxide.io", "workflowruns"): {"list", "watch", "patch", "create", "delete"},
    ("floxide.io", "workflowschedules"): {"list", "watch", "patch"},
    ("floxide.io", "workflows/status"): {"patch"},
    ("floxide.io", "workflowruns/status"): {"patch"},
    ("floxide.io", "workflowschedules/status"): {"patch"},
    ("apps", "deployments"): {"list", "watch", "create", "patch"},
    ("", "secrets"): {"get", "create", "patch"},
    ("", "configmaps"): {"get"},
    ("", "events"): {"create"},
}
OWN_NAMESPACE_GRANTS = {("", "secrets"): {"delete"}}
"""With per-namespace Redis users: the Secret of a namespace's user goes with its last Workflow."""
CRD_SCANNING = {("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"}}
SCANNING_GRANTS = {**CRD_SCANNING, ("", "namespaces"): {"list", "watch"}}
"""A namespaced operator also scans namespaces; a cluster-wide one only CRDs."""
CLUSTER_PEERING = {("kopf.dev", "clusterkopfpeerings"): {"list", "watch", "patch", "create"}}
NAMESPACED_PEERING = {("kopf.dev", "kopfpeerings"): {"list", "watch", "patch", "create"}}


def _grants(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    grants: dict[tuple[str, str], set[str]] = defaultdict(set)
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants[(group, resource)] |= set(rule["verbs"])
    return dict(grants)


def _assert_bound_to_operator(binding: dict[str, Any], role: dict[str, Any]) -> None:
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": role["kind"],
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "fx-floxide-operator", "namespace": NAMESPACE},
    ]


def test_no_wildcards_or_escalation_anywhere(rendered: Rendered) -> None:
    for kind in ("ClusterRole", "Role"):
        for role in rendered.all(kind):
            for rule in role["rules"]:
                values = [*rule.get("apiGroups", []), *rule.get("resources", []), *rule.get("verbs", [])]
                assert "*" not in values and not any("*" in value for value in values), rule
                assert "nonResourceURLs" not in rule and "resourceNames" not in rule, rule
                assert not {"escalate", "bind", "impersonate", "deletecollection"} & set(rule["verbs"]), rule


def test_cluster_wide_rbac_is_exactly_the_listed_grants() -> None:
    rendered = render_chart()
    role = rendered.one("ClusterRole")
    assert _grants(role) == {**NAMESPACED_GRANTS, **CRD_SCANNING, **CLUSTER_PEERING}
    _assert_bound_to_operator(rendered.one("ClusterRoleBinding"), role)
    own = rendered.one("Role")  # per-namespace Redis users: their Secrets, in its own namespace
    assert own["metadata"]["namespace"] == NAMESPACE and _grants(own) == OWN_NAMESPACE_GRANTS
    _assert_bound_to_operator(rendered.one("RoleBinding"), own)

    without = render_chart(**{"redis.acl.namespaceUsers": False})
    assert not without.all("Role") and not without.all("RoleBinding")


def test_namespaced_rbac_keeps_writes_in_the_release_namespace() -> None:
    rendered = render_chart(VALUE_SETS["namespaced"])
    role = rendered.one("Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert _grants(role) == {
        **NAMESPACED_GRANTS,
        **NAMESPACED_PEERING,
        ("", "secrets"): {"get", "create", "patch", "delete"},
    }
    binding = rendered.one("RoleBinding")
    assert binding["metadata"]["namespace"] == NAMESPACE
    _assert_bound_to_operator(binding, role)

    scanning = rendered.one("ClusterRole")
    assert _grants(scanning) == SCANNING_GRANTS
    _assert_bound_to_operator(rendered.one("ClusterRoleBinding"), scanning)


def test_namespaced_rbac_without_cluster_scanning_has_no_cluster_rbac() -> None:
    rendered = render_chart(VALUE_SETS["namespaced"], **{"rbac.clusterScanning": False})
    assert not rendered.all("ClusterRole") and not rendered.all("ClusterRoleBinding")
    assert rendered.all("Role") and rendered.all("RoleBinding")


def test_operator_watches_what_its_rbac_allows() -> None:
    def watched(rendered: Rendered) -> str:
        container = rendered.one("Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
        env = {item["name"]: item.get("value") for item in container["env"]}
        return str(env["FLOXIDE_OPERATOR_NAMESPACE"])

    assert watched(render_chart()) == ""
    assert watched(render_chart(VALUE_SETS["namespaced"])) == NAMESPACE


def test_rbac_create_false_renders_no_rbac() -> None:
    rendered = render_chart(**{"rbac.create": False})
    assert not RBAC_KINDS & rendered.kinds()
