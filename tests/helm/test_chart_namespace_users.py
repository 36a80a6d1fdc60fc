"""Per-namespace Redis users and the Redis NetworkPolicy's worker namespaces, as the chart renders them.

Cases:
- `redis.acl.namespaceUsers: auto` turns the operator's FLOXIDE_OPERATOR_REDIS_ACL on with the
  bundled Redis and off with an external one; `true`/`false` decide; the rotation grace is passed on;
- the Redis NetworkPolicy admits worker pods only from the release namespace when the operator
  serves only that one (`rbac.clusterWide=false`), only from `networkPolicy.workerNamespaces` when
  they are listed, and from any namespace otherwise (the namespace users' ACLs are the boundary);
- a bad namespace name in `networkPolicy.workerNamespaces` is refused by the schema.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.helm.helmchart import NAMESPACE, VALUE_SETS, HelmError, Rendered, render_chart

EXTERNAL = {"redis.enabled": False, "redis.external.url": "redis://redis.example:6379/0"}
WORKER_LABELS = {"app.kubernetes.io/component": "worker", "app.kubernetes.io/part-of": "floxide"}


def _operator_env(rendered: Rendered) -> dict[str, Any]:
    container = rendered.one("Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item.get("value") for item in container["env"]}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, "true"),
        (EXTERNAL, "false"),
        ({**EXTERNAL, "redis.acl.namespaceUsers": True}, "true"),
        ({"redis.acl.namespaceUsers": False}, "false"),
    ],
)
def test_namespace_users_follow_the_setting(values: dict[str, Any], expected: str) -> None:
    env = _operator_env(render_chart(**values))
    assert env["FLOXIDE_OPERATOR_REDIS_ACL"] == expected
    assert env["FLOXIDE_OPERATOR_REDIS_ACL_ROTATION_GRACE"] == "600"


def test_the_rotation_grace_is_passed_on_and_bad_settings_are_refused() -> None:
    env = _operator_env(render_chart(**{"redis.acl.rotationGraceSeconds": 30}))
    assert env["FLOXIDE_OPERATOR_REDIS_ACL_ROTATION_GRACE"] == "30"
    with pytest.raises(HelmError, match="namespaceUsers"):
        render_chart(**{"redis.acl.namespaceUsers": "sometimes"})


def _worker_peer(rendered: Rendered) -> dict[str, Any]:
    (rule,) = rendered.one("NetworkPolicy", "-redis")["spec"]["ingress"]
    peers = [peer for peer in rule["from"] if peer.get("podSelector", {}).get("matchLabels") == WORKER_LABELS]
    assert len(peers) == 1, rule["from"]
    return dict(peers[0]["namespaceSelector"])


def _in(*namespaces: str) -> dict[str, Any]:
    return {
        "matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": list(namespaces)}
        ]
    }


def test_redis_admits_workers_only_from_the_namespaces_the_operator_serves() -> None:
    assert _worker_peer(render_chart(VALUE_SETS["namespaced"])) == _in(NAMESPACE)
    listed = render_chart(
        **{"networkPolicy.workerNamespaces[0]": "team-a", "networkPolicy.workerNamespaces[1]": "b"}
    )
    assert _worker_peer(listed) == _in("team-a", "b")
    namespaced = render_chart(VALUE_SETS["namespaced"], **{"networkPolicy.workerNamespaces[0]": "team-a"})
    assert _worker_peer(namespaced) == _in(NAMESPACE)  # the only namespace it serves, whatever the list
    assert _worker_peer(render_chart()) == {}  # all namespaces: each one's Redis user is the boundary


def test_a_bad_worker_namespace_is_refused() -> None:
    with pytest.raises(HelmError, match="workerNamespaces"):
        render_chart(**{"networkPolicy.workerNamespaces[0]": "Team_A"})
