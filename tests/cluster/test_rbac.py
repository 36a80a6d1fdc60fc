"""The chart's RBAC is exactly what the operator uses: nothing it calls is missing, nothing granted
goes unused.

The operator runs with a token of the chart's ServiceAccount, so a missing grant is a 403 in
the API server's audit log. The test drives every path of the operator that calls the API
(a Workflow and its Deployment and Secret, a restart that mirrors the Secret again, runs with
input from a ConfigMap and a Secret, a run deleted after its TTL, Events, peering, scanning, a
namespace's Redis user created with its first Workflow and deleted with its last),
then compares every (group, resource, verb) the operator's user sent, over the whole session,
with the chart's ClusterRole.
"""

from __future__ import annotations

import json
import time

import yaml

from tests.cluster.controlplane import ControlPlane
from tests.cluster.installation import Installation, eventually, helm, workflow, workflow_run

NS = "floxide-system"

Grant = tuple[str, str, str]
"""(API group, resource[/subresource], verb)."""


def _granted(floxide: Installation, control_plane: ControlPlane) -> set[Grant]:
    manifest = helm(control_plane, "get", "manifest", floxide.release, "--namespace", NS).stdout
    grants: set[Grant] = set()
    for doc in yaml.safe_load_all(manifest):
        if (
            not doc
            or doc["kind"] not in ("ClusterRole", "Role")
            or not doc["metadata"]["name"].endswith("-operator")
        ):
            continue
        for rule in doc["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
            grants |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    return grants


def _used(floxide: Installation, control_plane: ControlPlane) -> tuple[set[Grant], list[str]]:
    assert floxide.operator is not None
    used: set[Grant] = set()
    denied = []
    for event in control_plane.audit():
        if event.user != floxide.operator.user or not event.resource:
            continue  # another user, or a non-resource URL (discovery: granted to every user)
        resource = f"{event.resource}/{event.subresource}" if event.subresource else event.resource
        used.add((event.group, resource, event.verb))
        if event.code == 403:
            denied.append(f"{event.verb} {event.uri}")
    return used, denied


def test_the_operator_uses_exactly_what_the_chart_grants(
    floxide: Installation, control_plane: ControlPlane, kubelet: object
) -> None:
    kube = floxide.kube
    kube.create("workflows", NS, workflow("grants", "examples.branching:workflow"))
    eventually(lambda: kube.secret(NS, "grants-redis"), what="the mirrored Secret")
    assert floxide.operator is not None
    floxide.operator.restart()  # mirrors the Secret again: create answers 409, then a patch

    opened = {"floxide.io/run-input": "true"}
    kube.core.create_namespaced_config_map(
        NS, {"metadata": {"name": "grants-input", "labels": opened}, "data": {"value": "42"}}
    )
    kube.put_secret(NS, "grants-input", {"value": "3"}, labels=opened)
    kube.create(
        "workflowruns",
        NS,
        workflow_run(
            "grants-cm", "grants", inputFrom={"configMapKeyRef": {"name": "grants-input", "key": "value"}}
        ),
    )
    kube.create(
        "workflowruns",
        NS,
        workflow_run(
            "grants-secret",
            "grants",
            inputFrom={"secretKeyRef": {"name": "grants-input", "key": "value"}},
            ttlSecondsAfterFinished=0,
        ),
    )
    schedule = {  # creates runs every second, keeps none once they finished
        "apiVersion": "floxide.io/v1alpha1",
        "kind": "WorkflowSchedule",
        "metadata": {"name": "grants-ticks"},
        "spec": {"schedule": "* * * * * *", "runTemplate": {"workflow": "grants", "input": 1},
                 "successfulRunsHistoryLimit": 0, "failedRunsHistoryLimit": 0},
    }  # fmt: skip
    kube.create("workflowschedules", NS, schedule)
    eventually(lambda: kube.status("workflowschedules", NS, "grants-ticks").get("startedRuns", 0) >= 3,
               timeout=90, what="the schedule creating runs")  # fmt: skip
    kube.patch("workflowschedules", NS, "grants-ticks", {"spec": {"suspend": True}})

    eventually(lambda: kube.status("workflowruns", NS, "grants-cm").get("phase") == "Succeeded", timeout=90)
    assert json.loads(kube.status("workflowruns", NS, "grants-cm")["outputPreview"]) == "BigNode: 84"
    eventually(
        lambda: kube.get("workflowruns", NS, "grants-secret") is None,
        timeout=90,
        what="the TTL to delete the run",
    )

    # A namespace's last Workflow gone: its Redis user's Secret (in the operator's namespace) goes too.
    kube.ensure_namespace("grants-tenant")
    kube.create("workflows", "grants-tenant", workflow("grants", "examples.branching:workflow"))
    eventually(
        lambda: kube.secret(NS, "floxide-redis-user-grants-tenant"), what="the namespace user's Secret"
    )
    kube.delete("workflows", "grants-tenant", "grants")
    eventually(lambda: kube.secret(NS, "floxide-redis-user-grants-tenant") is None, what="its deletion")

    used, denied = _used(floxide, control_plane)
    assert not denied, f"the chart's RBAC refused the operator: {denied}"
    granted = _granted(floxide, control_plane)
    assert sorted(used - granted) == [], "used but not granted"
    unused = sorted(granted - used)
    assert not unused, f"granted but never used: drop these from the chart's rules: {unused}"


def test_api_writes_per_run_stay_within_four(
    floxide: Installation, control_plane: ControlPlane, kubelet: object
) -> None:
    """A run costs the API server: kopf's finalizer on and off, one status patch and one Event per
    phase it is seen in; so 4 writes for a run that finishes within a tick. The operator's patches
    never race each other (no 422)."""
    kube = floxide.kube
    kube.create("workflows", NS, workflow("frugal", "examples.branching:workflow", scaling={"minWorkers": 1}))
    eventually(lambda: kube.status("workflows", NS, "frugal").get("graph"), timeout=60, what="the workers")
    names = [f"frugal-{i}" for i in range(12)]
    for name in names:
        kube.create("workflowruns", NS, workflow_run(name, "frugal", 42))
    for name in names:
        eventually(
            lambda name=name: kube.status("workflowruns", NS, name).get("phase") == "Succeeded", timeout=90
        )
    time.sleep(3.0)  # the finalizers come off once the runs show Succeeded
    assert floxide.operator is not None
    audit = [e for e in control_plane.audit() if e.user == floxide.operator.user]
    events = kube.core.list_namespaced_event(NS, field_selector="involvedObject.kind=WorkflowRun").items
    short = 0
    for name in names:
        writes = [e for e in audit if e.resource == "workflowruns" and e.name == name and e.verb != "get"]
        metadata = [e for e in writes if not e.subresource]
        phases = [
            (e.request or {}).get("status", {}).get("phase") for e in writes if e.subresource == "status"
        ]
        posted = sum(1 for event in events if event.involved_object.name == name)
        assert len(metadata) == 2, [e.request for e in metadata]  # the finalizer, on and off
        assert len(phases) == len(set(phases)) and posted == len(phases), (name, phases, posted)
        if phases == ["Succeeded"]:
            short += 1
            assert len(writes) + posted == 4
    assert short, "no run finished within one tick: nothing measured"
    # Only this test's namespace: other tests delete runs at once, and adding a finalizer to a run
    # already being deleted is refused by design.
    refused = [e for e in audit if e.code == 422 and f"/namespaces/{NS}/" in e.uri]
    assert not refused, [f"{e.verb} {e.uri}" for e in refused]
