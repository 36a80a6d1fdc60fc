"""The chart lints and renders for every value set, and renders what each value set asks for.

Cases:
- `helm lint --strict` passes for the defaults and each ci/*-values.yaml;
- every manifest is named, labelled, placed in the release namespace when namespaced, and unique;
- names stay within 63 characters even with a long release name, and fullnameOverride renames all;
- the defaults render the operator, its RBAC, the bundled Redis, the CRDs and the test Pod;
- each ci value set renders what it is about;
- a missing external Redis URL, or a ServiceMonitor without its Service, is refused with a message
  that names the values.
"""

from __future__ import annotations

import pytest
import yaml

from tests.helm.helmchart import CHART, NAMESPACE, VALUE_SETS, HelmError, Rendered, render_chart, run_helm

CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "ClusterKopfPeering"}


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_helm_lint_is_clean(value_set: str) -> None:
    args = ["lint", str(CHART), "--strict", "--namespace", NAMESPACE]
    values_file = VALUE_SETS[value_set]
    if values_file is not None:
        args += ["--values", str(values_file)]
    output = run_helm(*args)
    assert "1 chart(s) linted, 0 chart(s) failed" in output
    assert "[WARNING]" not in output and "[ERROR]" not in output, output


def test_every_manifest_is_named_labelled_and_placed(rendered: Rendered) -> None:
    assert rendered.docs
    for doc in rendered.docs:
        meta = doc["metadata"]
        assert meta.get("name"), doc
        labels = meta.get("labels", {})
        assert labels.get("app.kubernetes.io/managed-by") == "Helm", meta["name"]
        assert labels.get("app.kubernetes.io/part-of") == "floxide", meta["name"]
        assert labels.get("app.kubernetes.io/instance") == "fx", meta["name"]
        if doc["kind"] not in CLUSTER_SCOPED:
            assert meta.get("namespace"), f"{doc['kind']}/{meta['name']} has no namespace"


def test_namespaced_manifests_go_to_the_release_namespace(rendered: Rendered, value_set: str) -> None:
    extra_namespaces = set()
    if value_set == "bundled-redis":
        extra_namespaces = {"team-a", "team-b"}  # worker ServiceAccounts for Workflows there
    if value_set == "network-policies":
        extra_namespaces = {"team-a"}  # and the workers' NetworkPolicies
    for doc in rendered.docs:
        if doc["kind"] in CLUSTER_SCOPED:
            continue
        namespace = doc["metadata"]["namespace"]
        if doc["kind"] in ("ServiceAccount", "NetworkPolicy") and namespace in extra_namespaces:
            continue
        assert namespace == NAMESPACE, f"{doc['kind']}/{doc['metadata']['name']} in {namespace}"


def test_no_two_manifests_share_kind_namespace_and_name(rendered: Rendered) -> None:
    seen = set()
    for doc in rendered.docs:
        key = (doc["apiVersion"], doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"])
        assert key not in seen, key
        seen.add(key)


def test_names_fit_63_characters_with_a_long_release_name() -> None:
    release = "a-very-long-release-name-that-goes-on-and-on-for-ever"  # 53, the limit
    output = run_helm("template", release, str(CHART), "--namespace", NAMESPACE, "--kube-version", "1.30.0")
    docs = [doc for doc in yaml.safe_load_all(output) if doc and doc["kind"] != "CustomResourceDefinition"]
    keys = [(doc["kind"], doc["metadata"]["name"]) for doc in docs]
    assert len(keys) == len(set(keys)), "truncation made two names equal"
    for _, name in keys:
        assert len(name) <= 63, name
        assert not name.endswith("-"), name


def test_fullname_override_renames_everything() -> None:
    rendered = render_chart(fullnameOverride="flx")
    names = {
        doc["metadata"]["name"]
        for doc in rendered.docs
        if doc["kind"] not in {"CustomResourceDefinition", "ClusterKopfPeering"}  # fixed names
    }
    assert all(name.startswith("flx-") for name in names), names


def test_defaults_render_the_whole_system() -> None:
    rendered = render_chart()
    assert rendered.kinds() == {
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",  # per-namespace Redis users: their Secrets, in the release namespace
        "RoleBinding",
        "Deployment",
        "Secret",
        "Service",
        "StatefulSet",
        "NetworkPolicy",
        "Pod",
    }
    assert rendered.has("Deployment", "-operator")
    assert rendered.has("StatefulSet", "-redis")
    assert rendered.has("ServiceAccount", "-operator")
    assert rendered.has("ServiceAccount", "-worker")
    assert rendered.has("Service", "-operator-metrics")


def test_external_redis_value_set_has_no_redis_pod() -> None:
    rendered = render_chart(VALUE_SETS["external-redis"])
    assert not rendered.all("StatefulSet")
    assert not rendered.all("NetworkPolicy")
    assert not rendered.has("Service", "-redis")


def test_namespaced_value_set_renders_roles_and_no_crds() -> None:
    rendered = render_chart(VALUE_SETS["namespaced"])
    assert rendered.all("Role") and rendered.all("RoleBinding")
    assert not rendered.all("CustomResourceDefinition")


def test_servicemonitor_value_set_renders_the_monitors() -> None:
    rendered = render_chart(VALUE_SETS["servicemonitor"])
    assert rendered.has("ServiceMonitor", "-operator")
    assert rendered.has("PodMonitor", "-worker")


def test_external_redis_without_a_url_is_refused() -> None:
    with pytest.raises(HelmError, match=r"redis\.external\.url is required when redis\.enabled is false"):
        render_chart(**{"redis.enabled": False})


def test_service_monitor_without_the_metrics_service_is_refused() -> None:
    with pytest.raises(HelmError, match=r"metrics\.serviceMonitor\.enabled needs metrics\.service\.enabled"):
        render_chart(**{"metrics.serviceMonitor.enabled": True, "metrics.service.enabled": False})
